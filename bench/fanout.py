"""Scenario 1, fan-out: N players of one ~1 Mbps stream on an origin, and on an edge pulling
from a separate origin process.

Rules: for each role every target's topology is up at once and the player counts alternate
between targets, so each of our rows sits next to nginx-rtmp's measured moments apart. Server
CPU is % of one core over the measure window; "core busy" is the whole server core (ours plus
any neighbour), so noise is visible. Upstream links are the edge's established TCP connections
to the origin port during the window (must be 1). `--connect-rate R` makes players arrive at R
per second (2000 at 20/s: over 100 s, so they join at many GOPs and timestamp bases) instead of
all at once (loadgen's default 1000/s).
"""
import time

from bench.procs import LOAD_CPU, SERVER_CPU, ksoftirqd_pid, run_loadgen
from bench.table import Table
from bench.topology import Topology

SIZES = (100, 500, 1000, 2000, 4000)
QUICK_SIZES = (100, 500)

COLUMNS = [("role", "role"), ("server", "server"), ("players", "players"),
           ("connected", "connected"), ("mbps", "Mbps"), ("cpu", "server CPU %"),
           ("softirq", "ksoftirqd %"), ("core", "server core busy %"), ("rss", "RSS MB"),
           ("behind", "behind"), ("disconnects", "disconn."), ("links", "upstream links"),
           ("lag_p99", "lag p99 ms"), ("gap_max", "max gap ms"), ("lg_cpu", "loadgen CPU %"),
           ("lg_core", "load core busy %")]


def measure(ctx, topo, n, quick):
    links = []
    server = topo.server
    watch = {"server": server.pid}
    softirqd = ksoftirqd_pid(SERVER_CPU)
    if softirqd:
        watch["ksoftirqd"] = softirqd
    rate = getattr(ctx, "connect_rate", None)
    res = run_loadgen(ctx.procs, [server.url()], n, watch=watch,
                      on_measure=lambda: links.append(topo.upstream_links()),
                      read_interval=ctx.read_interval, warmup=1.5 if quick else 3.0,
                      duration=4.0 if quick else 8.0,
                      connect_timeout=10 + n / min(200.0, rate or 200.0),
                      extra=["--connect-rate", str(rate)] if rate else ())
    row = {"role": topo.role, "server": topo.target.name, "players": n}
    if "error" in res:
        row["error"] = res["error"]
        return row, res
    srv = res["servers"]["server"]
    cores = {int(k): v for k, v in res["cpu_busy_pct"].items()}
    row.update(connected=res["connected"], mbps=res["mbps"], cpu=srv["cpu_pct"], rss=srv["rss_mb"],
               softirq=res["servers"].get("ksoftirqd", {}).get("cpu_pct"),
               core=cores.get(SERVER_CPU, {}).get("busy"), lg_core=cores.get(LOAD_CPU, {}).get("busy"),
               behind=res["behind"], disconnects=res["disconnects"],
               links=links[0] if links else None, lag_p99=res["lag_ms"]["p99"],
               gap_max=res["max_gap_ms"]["max"], lg_cpu=res["loadgen_cpu_pct"])
    return row, res


def run(ctx):
    sizes = ctx.players or (QUICK_SIZES if ctx.quick else SIZES)
    table = Table("fanout", "Fan-out: N players of one ~1 Mbps stream, server on one core", COLUMNS, notes=[
        f"players read in passes every {ctx.read_interval * 1000:.0f} ms; behind = lag > 3 s at "
        "the end; max gap = longest time between two video arrivals at a player",
        "server CPU % = the server process, % of one core (its kernel time includes loopback "
        "packet work done in its context); ksoftirqd % = packet work the kernel deferred to "
        "the server core's ksoftirqd; core busy % = the whole core, neighbours included",
        "edge rows: the edge is measured, its origin runs on the load core"]
        + ([f"players arrive at {ctx.connect_rate:g}/s"] if getattr(ctx, "connect_rate", None) else []))
    for role in getattr(ctx, "roles", ("origin", "edge")):
        topos = []
        try:
            for target in ctx.targets:
                topos.append(Topology(ctx, target, role, label="fanout-"))
            for topo in topos:
                topo.wait_stream()
            for n in sizes:
                for topo in topos:
                    ctx.log(f"fan-out {role} {topo.target.name} {n} players")
                    row, res = measure(ctx, topo, n, ctx.quick)
                    row["detail"] = res
                    table.note_errors(f"{role} {topo.target.name} {n}", res)
                    table.add(**row)
                    ctx.log(f"  -> {({k: row.get(k) for k, _ in COLUMNS})}")
                    time.sleep(1.0)    # let the server drop the players before the next point
        finally:
            for topo in topos:
                topo.close()
    return table
