"""Scenario ingest (issue 16): an origin taking in N publishers, nobody playing.

Rules: one origin per target on the server core; bench.pubgen publishes N streams (live/in0..)
from the load core, paced in real time (1 Mbps file for 100, ~300 kbps for 500); after a
warm-up the origin's CPU % of one core and RSS are measured over the window, with pubgen's
own CPU. A player on the first and last stream must get a keyframe (the streams are live).
Targets alternate per repeat so each row has its peer's measured moments apart.
"""
import os
import time

from bench.procs import SERVER_CPU, PubGen, ksoftirqd_pid, measure_window, media_file
from bench.table import Table
from bench.topology import first_frame_ms

CASES = ((100, 900), (500, 240))           # (publishers, video kbps)
QUICK_CASES = ((50, 900),)
COLUMNS = [("server", "server"), ("publishers", "publishers"), ("kbps", "kbps each"),
           ("publishing", "publishing"), ("mbps", "Mbps in"), ("cpu", "server CPU %"),
           ("softirq", "ksoftirqd %"), ("core", "server core busy %"), ("rss", "RSS MB"),
           ("live", "streams checked"), ("late", "pubgen late ms"), ("pg_cpu", "pubgen CPU %")]


def measure(ctx, target, n, kbps, quick):
    server = target.origin(f"ingest-{n}-")
    pub = None
    row = {"server": target.name, "publishers": n, "kbps": kbps + 64}
    try:
        pub = PubGen(ctx.procs, media_file(kbps), [server.url("live/in{i}")], n,
                     log=os.path.join(ctx.workdir, f"{target.name}-ingest-{n}.log"))
        time.sleep(2.0 if quick else 4.0)
        pids = {"server": server.pid, "pubgen": pub.pid}
        softirqd = ksoftirqd_pid(SERVER_CPU)
        if softirqd:
            pids["ksoftirqd"] = softirqd
        res = measure_window(pids, 4.0 if quick else 8.0)
        live = sum(first_frame_ms(server.url(f"live/in{i}"), 5.0) is not None for i in (0, n - 1))
        result = pub.stop()
        pub = None
        row.update(publishing=result.get("publishing"), mbps=result.get("mbps"),
                   cpu=res["server"]["cpu_pct"], rss=res["server"]["rss_mb"],
                   softirq=res.get("ksoftirqd", {}).get("cpu_pct"),
                   core=res["cores"].get(SERVER_CPU, {}).get("busy"), live=f"{live}/2",
                   late=result.get("late_ms_max"), pg_cpu=res["pubgen"]["cpu_pct"],
                   detail={"window": res, "pubgen": result})
    finally:
        if pub is not None:
            pub.stop()
        server.kill()
    return row


def run(ctx):
    cases = QUICK_CASES if ctx.quick else CASES
    table = Table("ingest", "Ingest: an origin taking N publishers (no players), server on one core",
                  COLUMNS, notes=["publishers: bench.pubgen, chunk size 4096, paced in real time; "
                                  "pubgen late ms = how far its sends fell behind schedule (0 = the "
                                  "server took everything in time)"])
    for n, kbps in cases:
        for rep in range(ctx.repeat):
            for target in ctx.targets:
                ctx.log(f"ingest {target.name} {n} publishers of {kbps + 64} kbps (run {rep + 1})")
                row = measure(ctx, target, n, kbps, ctx.quick)
                table.add(**row)
                ctx.log(f"  -> {({k: row.get(k) for k, _ in COLUMNS})}")
    return table
