"""Scenario streams (issue 16): an edge carrying many streams with few players each, the load
a CDN edge mostly sees.

Rules: per target an origin on the load core takes S publishers (bench.pubgen, ~300 kbps each,
live/st0..): SRS's when SRS_BIN is set (the origin is not what is measured, and 1000 streams
must not saturate the load core), else the target's own; an edge of the target on the server core serves P players per stream
(bench.loadgen, round robin over the S streams, read in 100 ms passes). The edge's CPU % of one
core and RSS are measured over the load generator's window; every edge player must play.
"""
import os
import time

from bench.procs import LOAD_CPU, SERVER_CPU, PubGen, media_file, run_loadgen
from bench.table import Table

CASES = ((100, 5), (200, 5), (1000, 1))
QUICK_CASES = ((20, 5),)
KBPS = 240
COLUMNS = [("server", "server"), ("streams", "streams"), ("per", "players each"),
           ("connected", "connected"), ("mbps", "Mbps out"), ("cpu", "edge CPU %"),
           ("core", "edge core busy %"), ("rss", "edge RSS MB"), ("behind", "behind"),
           ("disconnects", "disconn."), ("lg_cpu", "loadgen CPU %"), ("pg_cpu", "pubgen CPU %")]


def measure(ctx, target, streams, per, quick):
    # the origin is not measured: SRS (the cheapest) when it is there, for every edge alike
    origin_target = next((t for t in ctx.targets if t.name == "SRS"), target)
    origin = origin_target.origin(f"streams-{streams}-{target.name}-origin", cpu=LOAD_CPU)
    edge = pub = None
    row = {"server": target.name, "streams": streams, "per": per}
    try:
        edge = target.edge([origin], f"streams-{streams}-edge", cpu=SERVER_CPU)
        pub = PubGen(ctx.procs, media_file(KBPS), [origin.url("live/st{i}")], streams,
                     log=os.path.join(ctx.workdir, f"{target.name}-streams-{streams}.log"))
        time.sleep(1.0)
        urls = [edge.url(f"live/st{i}") for i in range(streams)]
        res = run_loadgen(ctx.procs, urls, streams * per, watch={"edge": edge.pid, "pubgen": pub.pid},
                          read_interval=ctx.read_interval, warmup=3.0 if quick else 5.0,
                          duration=4.0 if quick else 8.0, connect_timeout=20 + streams * per / 100)
        if "error" in res:
            row["error"] = res["error"]
            return row
        cores = {int(k): v for k, v in res["cpu_busy_pct"].items()}
        row.update(connected=res["connected"], mbps=res["mbps"], cpu=res["servers"]["edge"]["cpu_pct"],
                   rss=res["servers"]["edge"]["rss_mb"], core=cores.get(SERVER_CPU, {}).get("busy"),
                   behind=res["behind"], disconnects=res["disconnects"], lg_cpu=res["loadgen_cpu_pct"],
                   pg_cpu=res["servers"]["pubgen"]["cpu_pct"], detail=res)
    finally:
        if pub is not None:
            pub.stop()
        for s in (edge, origin):
            if s is not None:
                s.kill()
    return row


def run(ctx):
    cases = QUICK_CASES if ctx.quick else CASES
    if ctx.players_raw and "x" in ctx.players_raw:     # --players 100x5,200x5
        cases = [tuple(int(v) for v in c.split("x")) for c in ctx.players_raw.split(",")]
    table = Table("streams", "Many streams: an edge with S streams x P players, edge on one core",
                  COLUMNS, notes=[f"streams of ~{KBPS + 64} kbps published into the origin (load "
                                  "core) by bench.pubgen; players read every "
                                  f"{ctx.read_interval * 1000:.0f} ms"])
    for streams, per in cases:
        for rep in range(ctx.repeat):
            for target in ctx.targets:
                ctx.log(f"streams {target.name} {streams} x {per} (run {rep + 1})")
                row = measure(ctx, target, streams, per, ctx.quick)
                table.add(**row)
                ctx.log(f"  -> {({k: row.get(k) for k, _ in COLUMNS})}")
    return table
