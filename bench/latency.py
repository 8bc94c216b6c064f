"""Scenario 2, latency: the extra delay a player on an edge sees compared with a player on the
origin, idle and under load.

Rules: two eager probe players in the load generator, one on the origin and one on the edge,
record when each video message arrives; messages are matched by length and timestamp offset (a
server may rebase timestamps) and the difference of arrival times is the edge hop's delay. The
bulk players (if any) are on the edge and read in passes like the fan-out players.
"""
from bench.procs import run_loadgen
from bench.table import Table
from bench.topology import Topology

COLUMNS = [("server", "server"), ("players", "edge players"), ("matched", "matched frames"),
           ("median", "added median ms"), ("p99", "added p99 ms"), ("max", "added max ms"),
           ("cpu", "edge CPU %"), ("behind", "behind")]


def run(ctx):
    loads = (0, 200) if ctx.quick else (0, 1000)
    table = Table("latency", "Latency added by one edge hop (edge player vs origin player)", COLUMNS,
                  notes=["matched frames: video messages seen by both probes in the window; "
                         "probes read as soon as data arrives"])
    for target in ctx.targets:
        topo = Topology(ctx, target, "edge", label="latency-")
        try:
            topo.wait_stream()
            for n in loads:
                ctx.log(f"latency {target.name} with {n} edge players")
                edge = topo.edge
                res = run_loadgen(ctx.procs, [edge.url()] if n else [], n,
                                  probes=[topo.origin.url(), edge.url()], watch={"edge": edge.pid},
                                  read_interval=ctx.read_interval, warmup=2.0 if ctx.quick else 3.0,
                                  duration=4.0 if ctx.quick else 10.0, connect_timeout=10 + n / 200)
                row = {"server": target.name, "players": n, "detail": res}
                if "error" not in res:
                    lat = res["latency_ms"][0]
                    row.update(matched=lat["n"], median=lat["median"], p99=lat["p99"], max=lat["max"],
                               cpu=res["servers"]["edge"]["cpu_pct"],
                               behind=res["behind"] if n else None)
                table.add(**row)
                table.note_errors(f"{target.name} {n}", res)
                ctx.log(f"  -> {({k: row.get(k) for k, _ in COLUMNS})}")
        finally:
            topo.close()
    return table
