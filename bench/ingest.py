"""Scenario ingest (issues 16, 22): an origin taking in N publishers, nobody playing.

Rules: one origin per target on the server core; the publishers (bench.publoads) publish N
streams (live/in0..) from the load core, paced in real time (1 Mbps file for 100, ~300 kbps for
500). The default load is real encoders (ffmpeg tee processes); `pubgen-bundled` (one write per
20 ms tick, friendlier than any encoder) is an extra row, labelled so, never the figure to
quote. After a warm-up the origin's CPU % of one core and RSS are measured over the window,
with the load's own CPU and whether it kept real time. A player on the first and last stream
must get a keyframe (the streams are live). Targets alternate per repeat so each row has its
peer's measured moments apart. `--load` chooses the loads (comma-separated).
"""
import time

from bench.procs import media_file
from bench.publoads import LABELS, Load
from bench.table import Table
from bench.topology import first_frame_ms

CASES = ((100, 900), (500, 240))           # (publishers, video kbps)
QUICK_CASES = ((50, 900),)
LOADS = ("ffmpeg", "pubgen-bundled")
QUICK_LOADS = ("ffmpeg",)
COLUMNS = [("server", "server"), ("load", "publishers are"), ("publishers", "publishers"),
           ("kbps", "kbps each"), ("publishing", "publishing"), ("cpu", "server CPU %"),
           ("softirq", "ksoftirqd %"), ("core", "server core busy %"), ("rss", "RSS MB"),
           ("live", "streams checked"), ("realtime", "load kept real time"),
           ("load_cpu", "load CPU %"), ("load_core", "load core busy %")]


def measure(ctx, target, load, n, kbps, quick):
    server = target.origin(f"ingest-{n}-{load}-")
    row = {"server": target.name, "load": LABELS[load], "publishers": n, "kbps": kbps + 64}
    try:
        with Load(ctx, load, media_file(kbps), server.url("live/in{i}"), n,
                  f"{target.name}-ingest-{n}-{load}") as pub:
            row.update(pub.window(server.pid, 2.0 if quick else 4.0, 4.0 if quick else 8.0))
            live = sum(first_frame_ms(server.url(f"live/in{i}"), 5.0) is not None for i in (0, n - 1))
            row["live"] = f"{live}/2"
            pub.finish(row)
    finally:
        server.kill()
    return row


def loads(ctx, default, quick_default):
    return tuple(ctx.load.split(",")) if getattr(ctx, "load", None) else (quick_default if ctx.quick else default)


def run(ctx):
    cases = QUICK_CASES if ctx.quick else CASES
    table = Table("ingest", "Ingest: an origin taking N publishers (no players), server on one core",
                  COLUMNS, notes=[
                      "ffmpeg (real encoders): ffmpeg 5.1 `-re -c copy -f tee` processes, one stream "
                      "each up to 100 streams (else ceil(n/100) each), two writes per message "
                      "(chunk header, payload; chunk size 60000), started staggered over one GOP; "
                      "`load kept real time` = the range of their speeds over the window "
                      "(1.00x = real time)",
                      "pubgen bundled: one write per publisher per 20 ms tick (chunk size 4096): "
                      "fewer readable events than any real encoder, a friendlier load; its `late` = "
                      "how far its sends fell behind schedule"])
    for n, kbps in cases:
        for load in loads(ctx, LOADS, QUICK_LOADS):
            for rep in range(ctx.repeat):
                for target in ctx.targets:
                    ctx.log(f"ingest {target.name} {n} publishers of {kbps + 64} kbps by {load} (run {rep + 1})")
                    row = measure(ctx, target, load, n, kbps, ctx.quick)
                    table.add(**row)
                    ctx.log(f"  -> {({k: row.get(k) for k, _ in COLUMNS})}")
    return table
