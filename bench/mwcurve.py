"""Scenario mwcurve (issue 16): edge CPU against the latency an edge hop adds, for
play.mw_latency 0, 50, 100 and 350 ms, at 2000 players.

Rules: for each mw_latency and target, a fresh origin (load core) and edge (server core), both
configured with that mw_latency (nginx-rtmp has no such setting: it sends each message at once,
so its row repeats per value as a reference); one load generator run holds the 2000 edge players
(read every 100 ms) and two eager probes, one on the origin and one on the edge, so the edge's
CPU and the added latency (edge probe vs origin probe, matched frames) come from the same window.
"""
from bench.procs import SERVER_CPU, run_loadgen
from bench.table import Table
from bench.topology import Topology

MW_VALUES = (0, 50, 100, 350)
COLUMNS = [("mw", "mw_latency ms"), ("server", "server"), ("players", "players"),
           ("connected", "connected"), ("cpu", "edge CPU %"), ("core", "edge core busy %"),
           ("median", "added median ms"), ("p99", "added p99 ms"), ("matched", "matched frames"),
           ("behind", "behind"), ("lag_p99", "lag p99 ms"), ("lg_cpu", "loadgen CPU %")]


def run(ctx):
    n = (ctx.players or [2000])[0]
    table = Table("mwcurve", f"Edge CPU vs added latency by mw_latency, {n} players", COLUMNS,
                  notes=["origin and edge both use the row's mw_latency (SRS: play.mw_latency; "
                         "mw_msgs default 8 in both)"])
    for mw in MW_VALUES:
        for target in ctx.targets:
            if hasattr(target, "mw_latency"):
                target.mw_latency = mw
            topo = Topology(ctx, target, "edge", label=f"mw{mw}-")
            try:
                topo.wait_stream()
                ctx.log(f"mwcurve {target.name} mw_latency {mw}: {n} players")
                res = run_loadgen(ctx.procs, [topo.edge.url()], n,
                                  probes=[topo.origin.url(), topo.edge.url()],
                                  watch={"edge": topo.edge.pid}, read_interval=ctx.read_interval,
                                  warmup=3.0, duration=10.0, connect_timeout=10 + n / 200)
                row = {"mw": mw, "server": target.name, "players": n, "detail": res}
                if "error" not in res:
                    lat = res["latency_ms"][0]
                    cores = {int(k): v for k, v in res["cpu_busy_pct"].items()}
                    row.update(connected=res["connected"], cpu=res["servers"]["edge"]["cpu_pct"],
                               core=cores.get(SERVER_CPU, {}).get("busy"), median=lat["median"],
                               p99=lat["p99"], matched=lat["n"], behind=res["behind"],
                               lag_p99=res["lag_ms"]["p99"], lg_cpu=res["loadgen_cpu_pct"])
                table.add(**row)
                table.note_errors(f"{target.name} mw {mw}", res)
                ctx.log(f"  -> {({k: row.get(k) for k, _ in COLUMNS})}")
            finally:
                topo.close()
    return table
