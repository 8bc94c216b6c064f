"""Scenario originhls (issue 22): an origin taking N publishers of ~1 Mbps with HLS (2 s
fragments) and HTTP-FLV remux on, nobody playing.

Rules: per target (srsedge and SRS: the same config text for both, SRS 7's conf/full.conf
syntax; nginx-rtmp has no such config and is skipped) one origin on the server core with
`hls { enabled on; hls_fragment 2; hls_path <tmp>; }`, `http_remux { enabled on; mount
[vhost]/[app]/[stream].flv; }` and an http_server on a free port. The publishers are real
encoders by default (bench.publoads). Over the window: the origin's CPU % of one core and RSS;
after it: the .ts segments written per stream, stream 0's playlist (segments listed, their
durations) and one HTTP-FLV read of stream 0 (an FLV header and >= 64 KB within 5 s).
`--players N` (fan-out sizes) sets the publisher counts (e.g. 50,100).
"""
import glob
import os
import re
import time
import urllib.request

from bench.procs import free_port, media_file
from bench.publoads import LABELS, Load
from bench.table import Table
from bench.topology import first_frame_ms

CASES = (50,)
QUICK_CASES = (20,)
KBPS = 900
LOADS = ("ffmpeg",)
COLUMNS = [("server", "server"), ("load", "publishers are"), ("publishers", "publishers"),
           ("publishing", "publishing"), ("cpu", "server CPU %"), ("softirq", "ksoftirqd %"),
           ("core", "server core busy %"), ("rss", "RSS MB"), ("segs", "segments/stream"),
           ("playlist", "stream 0 playlist"), ("flv", "HTTP-FLV read"),
           ("realtime", "load kept real time"), ("load_cpu", "load CPU %"),
           ("load_core", "load core busy %")]


def config(hls_dir, http_port):
    """(vhost body, top-level text): the same for srsedge and SRS."""
    vhost = (f"hls {{ enabled on; hls_fragment 2; hls_path {hls_dir}; }}\n"
             "    http_remux { enabled on; mount [vhost]/[app]/[stream].flv; }")
    top = f"http_server {{ enabled on; listen {http_port}; dir {hls_dir}; }}"
    return vhost, top


def playlist_facts(hls_dir, stream):
    """'k segs, durations a-b s' of the stream's playlist, or what is wrong."""
    path = os.path.join(hls_dir, "live", f"{stream}.m3u8")
    try:
        with open(path) as f:
            text = f.read()
    except OSError:
        return "missing"
    durs = [float(d) for d in re.findall(r"#EXTINF:([0-9.]+)", text)]
    segs = [line for line in text.splitlines() if line.endswith(".ts")]
    if not durs or len(segs) != len(durs):
        return "bad"
    missing = sum(not os.path.exists(os.path.join(hls_dir, "live", s)) for s in segs)
    return (f"{len(durs)} segs, {min(durs):.1f}-{max(durs):.1f} s"
            + (f", {missing} files missing" if missing else ""))


def flv_read(http_port, stream, timeout=5.0):
    """'ok N KB' when an HTTP-FLV GET of the stream gives an FLV header and >= 64 KB."""
    url = f"http://127.0.0.1:{http_port}/live/{stream}.flv"
    got, deadline = b"", time.monotonic() + timeout
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            while len(got) < 65536 and time.monotonic() < deadline:
                chunk = r.read(16384)
                if not chunk:
                    break
                got += chunk
    except OSError as e:
        return f"error {type(e).__name__}"
    return f"ok {len(got) // 1024} KB" if got[:3] == b"FLV" and len(got) >= 65536 else f"bad ({len(got)} B)"


def measure(ctx, target, load, n, quick):
    label = f"originhls-{n}-{load}"
    hls_dir = os.path.join(ctx.workdir, f"{target.name}-{label}-hls")
    os.makedirs(hls_dir, exist_ok=True)
    http_port = free_port()
    vhost, top = config(hls_dir, http_port)
    server = target.origin(label, vhost=vhost, top=top)
    row = {"server": target.name, "load": LABELS[load], "publishers": n}
    try:
        with Load(ctx, load, media_file(KBPS), server.url("live/in{i}"), n, f"{target.name}-{label}") as pub:
            row.update(pub.window(server.pid, 3.0 if quick else 5.0, 6.0 if quick else 12.0))
            flv = flv_read(http_port, "in0")
            live = first_frame_ms(server.url("live/in0"), 5.0) is not None
            segs = len(glob.glob(os.path.join(hls_dir, "live", "*.ts"))) / n
            row.update(segs=round(segs, 1), flv=flv,
                       playlist=playlist_facts(hls_dir, "in0") + ("" if live else ", RTMP play failed"))
            pub.finish(row)
    finally:
        server.kill()
    return row


def run(ctx):
    from bench.ingest import loads
    cases = ctx.players or (QUICK_CASES if ctx.quick else CASES)
    table = Table("originhls", "Origin with HLS (2 s) + HTTP-FLV remux: N publishers of ~1 Mbps, "
                  "server on one core", COLUMNS, notes=[
                      "same config text for srsedge and SRS; segments/stream = .ts files written "
                      "per stream since the start (none deleted: hls_window 60 s)",
                      "ffmpeg (real encoders): see the ingest table's note"])
    for n in cases:
        for load in loads(ctx, LOADS, LOADS):
            for rep in range(ctx.repeat):
                for target in ctx.targets:
                    if target.name == "nginx-rtmp":
                        continue
                    ctx.log(f"originhls {target.name} {n} publishers by {load} (run {rep + 1})")
                    row = measure(ctx, target, load, n, ctx.quick)
                    table.add(**row)
                    ctx.log(f"  -> {({k: row.get(k) for k, _ in COLUMNS})}")
    return table
