"""`python -m bench.profile [--players N] [--role origin|edge] [--seconds S] [--mw-latency MS]`: py-spy profile of
the srsedge server under the fan-out load, summarised as the top functions by own time and by
inclusive time (the raw collapsed stacks and a speedscope file are kept for a closer look).

Rules: same topology, pinning and load generator as the fan-out scenario; needs py-spy
(`.venv/bin/pip install py-spy`); py-spy samples with `--nonblocking` so it does not stall the
server it measures. Everything started is killed by pid.
"""
import argparse
import collections
import os
import shutil
import subprocess
import sys
import tempfile
import threading

from bench.procs import Procs, media_file, pin_self, raise_fd_limit, run_loadgen
from bench.servers import SrsEdgeTarget
from bench.topology import Context, Topology


def _frame(text, with_line):
    """'func (path/file.py:123)' -> 'func (file.py)' or 'func (file.py:123)'."""
    func, _, where = text.rpartition(" (")
    path, _, line = where.rstrip(")").rpartition(":")
    name = path.rsplit("/", 1)[-1]
    return f"{func} ({name}:{line})" if with_line else f"{func} ({name})"


def summarize(raw_path, top=25):
    """Sample counts from py-spy's collapsed stacks: own time by line, own and inclusive time
    by function, and the total."""
    own_line, own, incl = collections.Counter(), collections.Counter(), collections.Counter()
    total = 0
    with open(raw_path) as f:
        for line in f:
            stack, _, count = line.rstrip().rpartition(" ")
            if not stack:
                continue
            n = int(count)
            total += n
            frames = stack.split(";")
            own_line[_frame(frames[-1], True)] += n
            own[_frame(frames[-1], False)] += n
            for fr in {_frame(fr, False) for fr in frames}:
                incl[fr] += n
    return own_line.most_common(top), own.most_common(top), incl.most_common(top), total


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python -m bench.profile")
    ap.add_argument("--players", type=int, default=2000)
    ap.add_argument("--role", choices=("origin", "edge"), default="origin")
    ap.add_argument("--seconds", type=int, default=20)
    ap.add_argument("--mw-latency", type=int, default=None, help="play.mw_latency ms (default: server's)")
    ap.add_argument("--out", default=None, help="directory for the raw and speedscope files")
    args = ap.parse_args(argv)
    pyspy = shutil.which("py-spy") or os.path.join(os.path.dirname(sys.executable), "py-spy")
    if not os.path.exists(pyspy):
        print("py-spy not found: .venv/bin/pip install py-spy", file=sys.stderr)
        return 2
    raise_fd_limit()
    pin_self()
    workdir = tempfile.mkdtemp(prefix="srsedge-profile-")
    out = args.out or workdir
    raw = os.path.join(out, "profile.raw")
    with Procs() as procs:
        ctx = Context(procs, workdir, media_file(), [], False, 0.1)
        topo = Topology(ctx, SrsEdgeTarget(procs, workdir, args.mw_latency), args.role, label="profile-")
        topo.wait_stream()
        pid = str(topo.server.pid)
        spy = []

        def record():
            cmd = [pyspy, "record", "--nonblocking", "-d", str(args.seconds), "-p", pid]
            spy.append(subprocess.run(cmd + ["-f", "raw", "-o", raw], capture_output=True, text=True))

        thread = threading.Thread(target=record)
        res = run_loadgen(procs, [topo.server.url()], args.players, watch={"server": topo.server.pid},
                          on_measure=thread.start, duration=args.seconds + 3,
                          connect_timeout=10 + args.players / 200)
        thread.join(args.seconds + 30)
        topo.close()
    srv = res.get("servers", {}).get("server", {})
    print(f"{args.players} players on the {args.role}: connected {res.get('connected')}, "
          f"server CPU {srv.get('cpu_pct')}% (while sampled), behind {res.get('behind')}")
    if not os.path.exists(raw):
        print("py-spy failed:", spy[0].stderr if spy else "not run", file=sys.stderr)
        return 1
    own_line, own, incl, total = summarize(raw)
    for title, rows in (("own time by line", own_line), ("own time by function", own),
                        ("inclusive time by function", incl)):
        print(f"\n{total} samples; top {title}:")
        for name, n in rows:
            print(f"  {100.0 * n / total:5.1f}%  {name}")
    print(f"\nraw stacks: {raw}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
