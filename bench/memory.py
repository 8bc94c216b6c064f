"""Scenario 5, memory: server RSS per 1000 players, idle (connected and playing a stream that
has no publisher) and playing (the ~1 Mbps stream).

Rules: a fresh origin process per case; RSS before the players (after the publisher is live)
is the baseline; the per-player figure is (RSS with players - baseline) / players connected.
"""
import os
import time

from bench.procs import Publisher, proc_rss_mb, run_loadgen
from bench.table import Table
from bench.topology import first_frame_ms

COLUMNS = [("server", "server"), ("case", "case"), ("players", "players"),
           ("base", "RSS before MB"), ("rss", "RSS with players MB"),
           ("per1000", "MB per 1000 players"), ("kib", "KiB per player")]


def run(ctx):
    n = 500 if ctx.quick else 1000
    table = Table("memory", "Memory: server RSS per player", COLUMNS)
    for target in ctx.targets:
        for case in ("idle", "playing"):
            server = target.origin(f"memory-{case}-")
            pub = None
            try:
                stream = "live/bench"
                if case == "playing":
                    pub = Publisher(ctx.procs, ctx.media, server.url(stream),
                                    os.path.join(ctx.workdir, f"{target.name}-memory-ffmpeg.log"))
                    deadline = time.monotonic() + 15
                    while first_frame_ms(server.url(stream), 3.0) is None and time.monotonic() < deadline:
                        time.sleep(0.2)
                else:
                    stream = "live/idle"
                time.sleep(1.0)
                base = proc_rss_mb(server.pid)
                ctx.log(f"memory {target.name} {case}: {n} players")
                res = run_loadgen(ctx.procs, [server.url(stream)], n, watch={"server": server.pid},
                                  read_interval=ctx.read_interval, warmup=1.0 if ctx.quick else 2.0,
                                  duration=2.0 if ctx.quick else 3.0,
                                  connect_timeout=20)
                row = {"server": target.name, "case": case, "players": res.get("connected"),
                       "base": round(base, 1), "detail": res}
                if "error" not in res and res["connected"]:
                    rss = res["servers"]["server"]["rss_mb"]
                    per = (rss - base) / res["connected"]
                    row.update(rss=rss, per1000=round(per * 1000, 1), kib=round(per * 1024, 1))
                table.add(**row)
                table.note_errors(f"{target.name} {case}", res)
                ctx.log(f"  -> {({k: row.get(k) for k, _ in COLUMNS})}")
            finally:
                if pub is not None:
                    pub.stop()
                server.kill()
    return table
