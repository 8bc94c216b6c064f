"""Scenario 4, failover: an edge with origins A and B both carrying the stream (two ffmpeg
publishers of the same file); players on the edge; A is SIGKILLed in the measure window.

Rules: "media gap" is the longest time between two video arrivals (players read in passes, so
it includes up to one read interval; the probe reads eagerly). Players lost and timestamp
regressions must be 0. srsedge only: nginx-rtmp's `pull` has no origin failover.
"""
import os
import signal
import threading
import time

from bench.procs import LOAD_CPU, SERVER_CPU, Publisher, run_loadgen, tcp_links
from bench.table import Table

COLUMNS = [("server", "server"), ("players", "players"), ("probe_gap", "probe gap ms"),
           ("gap_median", "player gap median ms"), ("gap_max", "player gap max ms"),
           ("links_a", "links to A at kill"), ("lost", "players lost"), ("regressions", "ts regressions"), ("links_b", "links to B after")]
KILL_AFTER_S = 3.0


def run(ctx):
    n = 50 if ctx.quick else 200
    table = Table("failover", "Failover: origin A SIGKILLed, edge switches to origin B", COLUMNS, notes=[
        "nginx-rtmp is not listed: its pull has no origin failover",
        f"players read every {ctx.read_interval * 1000:.0f} ms, the probe as soon as data arrives"])
    target = next(t for t in ctx.targets if t.name == "srsedge")
    parts = []
    try:
        a = target.origin("failover-a", cpu=LOAD_CPU)
        parts.append(a)
        b = target.origin("failover-b", cpu=LOAD_CPU)
        parts.append(b)
        for o in (a, b):
            parts.append(Publisher(ctx.procs, ctx.media, o.url(),
                                   os.path.join(ctx.workdir, f"failover-ffmpeg-{o.port}.log")))
        edge = target.edge([a, b], "failover-edge", cpu=SERVER_CPU)
        parts.append(edge)
        time.sleep(2.5)                # both publishers live, GOPs cached
        killed = []

        def kill_a():
            killed.append(tcp_links(edge.pid, a.port))
            a.kill(signal.SIGKILL)

        timers = []

        def on_measure():
            t = threading.Timer(KILL_AFTER_S, kill_a)
            t.start()
            timers.append(t)

        ctx.log(f"failover srsedge: {n} players, SIGKILL origin A after {KILL_AFTER_S:g}s")
        res = run_loadgen(ctx.procs, [edge.url()], n, probes=[edge.url()], watch={"edge": edge.pid},
                          on_measure=on_measure, read_interval=ctx.read_interval, warmup=2.0,
                          duration=KILL_AFTER_S + (5.0 if ctx.quick else 10.0))
        for t in timers:
            t.cancel()
        row = {"server": "srsedge", "players": n, "detail": res,
               "links_a": killed[0] if killed else None}
        if "error" not in res:
            row.update(probe_gap=res["probes"][0]["max_gap_ms"], gap_median=res["max_gap_ms"]["median"],
                       gap_max=res["max_gap_ms"]["max"],
                       lost=res["failed"] + res["disconnects"] + (n - res["players"]),
                       regressions=res["regressions"], links_b=tcp_links(edge.pid, b.port))
        table.add(**row)
        table.note_errors("srsedge", res)
        ctx.log(f"  -> {({k: row.get(k) for k, _ in COLUMNS})}")
    finally:
        for part in reversed(parts):
            part.stop() if isinstance(part, Publisher) else part.kill()
    return table
