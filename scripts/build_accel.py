"""`python scripts/build_accel.py [--check]`: build the optional C accelerators in place.

Rules: today that is lib/rtmp/_chunkc.c, the chunk reader (lib/rtmp/chunk.py has the pure
reference and picks the C one when it imports), lib/server/core/_pumpc.c, the ingest read
(recv + parse in one call; lib/server/core/receiver.py reads in Python without it),
lib/media/_tsc.c, the TS packetizer of HLS and HTTP-TS (lib/media/ts.py likewise), and
lib/server/process/_iterclock.c, the loop monitor's per-iteration clock (loopmonitor.py), and
lib/server/core/_sourcec.c, a source's per-message media path (source.py). Compiled
with the C compiler and flags this Python was built with (sysconfig), no setuptools needed. No compiler, or a failed build: one
line saying so, the old build removed, exit 0 (the server runs the pure-Python reader; `-t`
and the start log say which one is in use). Rebuilds only when the source is newer.
`--check` prints which reader (and TS packetizer) the server would use and exits 1 when the
reader is not the C one.
"""
import os
import shlex
import shutil
import subprocess
import sys
import sysconfig

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MODULES = (("lib/rtmp/_chunkc.c", "lib/rtmp/_chunkc"),
           ("lib/server/core/_pumpc.c", "lib/server/core/_pumpc"),
           ("lib/media/_tsc.c", "lib/media/_tsc"),
           ("lib/server/process/_iterclock.c", "lib/server/process/_iterclock"),
           ("lib/server/core/_sourcec.c", "lib/server/core/_sourcec"))


def build(source, target):
    src = os.path.join(ROOT, source)
    out = os.path.join(ROOT, target + sysconfig.get_config_var("EXT_SUFFIX"))
    if os.path.exists(out) and os.path.getmtime(out) >= os.path.getmtime(src):
        return True
    cc = shlex.split(sysconfig.get_config_var("CC") or "cc")
    if not shutil.which(cc[0]):
        print(f"build_accel: no C compiler ({cc[0]}): {source} not built, the pure-Python "
              f"path is used")
        return False
    cflags = shlex.split(sysconfig.get_config_var("CFLAGS") or "")
    cflags = [f for f in cflags if not f.startswith("-Werror")]
    cmd = [*cc, *cflags, "-O2", "-fPIC", "-shared", "-Wall",
           f"-I{sysconfig.get_paths()['include']}", src, "-o", out + ".tmp"]
    res = subprocess.run(cmd, capture_output=True, text=True)
    if res.returncode != 0:
        print(f"build_accel: {source} did not build, the pure-Python path is used:\n"
              f"{res.stderr[-2000:]}")
        if os.path.exists(out):
            os.remove(out)
        return False
    os.replace(out + ".tmp", out)
    print(f"build_accel: built {os.path.relpath(out, ROOT)}")
    return True


def main(argv):
    if "--check" in argv:
        sys.path.insert(0, ROOT)
        from lib.rtmp import chunk
        from lib.media import ts
        print(f"chunk reader: {chunk.IMPLEMENTATION}")
        print(f"TS packetizer: {ts.IMPLEMENTATION}")
        return 0 if chunk.IMPLEMENTATION == "c" else 1
    for source, target in MODULES:
        build(source, target)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
