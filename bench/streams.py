"""Scenario streams (issues 16, 22): an edge carrying many streams with few players each, the
load a CDN edge mostly sees.

Rules: per target an origin on the load core takes S publishers (~300 kbps each, live/st0..);
an edge of the target on the server core serves P players per stream (bench.loadgen, round
robin over the S streams, read in 100 ms passes). The edge's CPU % of one core and RSS are
measured over the load generator's window; every edge player must play.
The setup (issue 22, which measured 1.27x SRS where this scenario had said 0.87x; see
docs/performance.md "Issue 22: the benchmark's load"):
- the origin is the target's own (srsedge edge behind an srsedge origin, SRS behind SRS), as
  deployed: what reaches the edge is that origin's output (its merged writes), and an edge
  behind a foreign origin measured something no one runs. `--edge-origin srs` puts SRS behind
  every edge instead (the origin then costs least on the load core; issue 16's setup).
- the publishers are real encoders (ffmpeg tee, bench.publoads), not pubgen, PER_PROC streams
  per process (the edge sees the origin's writes, not the encoders');
- players arrive over time (CONNECT_RATE per s, so a stream's players join at different GOPs
  and get different timestamp bases), not all in one second as before; `--connect-rate`
  changes it.
- Over BIG_S streams the origin and its publishers must not saturate the load core (1000
  ffmpeg-fed streams into an srsedge origin would): SRS's origin (when SRS_BIN is set) fed by
  pubgen bundled, the cheapest pair; what the edge receives is the origin's merged writes either
  way (the publishers' write pattern moved the edge by < 1 point at 200 x 5). The row says so.
"""
from bench.procs import LOAD_CPU, SERVER_CPU, media_file, run_loadgen
from bench.publoads import LABELS, Load
from bench.table import Table

CASES = ((100, 5), (200, 5), (1000, 1))
QUICK_CASES = ((20, 5),)
KBPS = 240
CONNECT_RATE = 50.0
PER_PROC = 10                  # streams per ffmpeg: the load core also runs the origin and players
BIG_S = 300
COLUMNS = [("server", "server"), ("origin", "origin"), ("load", "publishers are"),
           ("arrive", "players arrive"), ("streams", "streams"), ("publishing", "publishing"),
           ("per", "players each"),
           ("connected", "connected"), ("mbps", "Mbps out"), ("cpu", "edge CPU %"),
           ("core", "edge core busy %"), ("rss", "edge RSS MB"), ("behind", "behind"),
           ("disconnects", "disconn."), ("lg_cpu", "loadgen CPU %"), ("load_cpu", "publishers CPU %"),
           ("origin_cpu", "origin CPU %")]


def measure(ctx, target, streams, per, quick, origin="same", load="ffmpeg", connect_rate=CONNECT_RATE):
    origin_target = target
    if origin == "srs":
        origin_target = next((t for t in ctx.targets if t.name == "SRS"), target)
    up = origin_target.origin(f"streams-{streams}-{target.name}-{origin}-{load}-origin", cpu=LOAD_CPU)
    edge = None
    row = {"server": target.name, "origin": origin_target.name, "load": LABELS[load],
           "arrive": f"{connect_rate:g}/s", "streams": streams, "per": per}
    try:
        edge = target.edge([up], f"streams-{streams}-{origin}-{load}-edge", cpu=SERVER_CPU)
        with Load(ctx, load, media_file(KBPS), up.url("live/st{i}"), streams,
                  f"{target.name}-streams-{streams}-{origin}-{load}", per_proc=PER_PROC) as pub:
            urls = [edge.url(f"live/st{i}") for i in range(streams)]
            watch = {"edge": edge.pid, "origin": up.pid}
            watch.update({f"load{j}": pid for j, pid in enumerate(pub.pids)})
            res = run_loadgen(ctx.procs, urls, streams * per, watch=watch,
                              read_interval=ctx.read_interval, warmup=3.0 if quick else 5.0,
                              duration=4.0 if quick else 8.0,
                              connect_timeout=20 + streams * per / min(100.0, connect_rate),
                              extra=["--connect-rate", str(connect_rate)])
            pub.finish(row)
        if "error" in res:
            row["error"] = res["error"]
            return row
        servers = res["servers"]
        cores = {int(k): v for k, v in res["cpu_busy_pct"].items()}
        row.update(connected=res["connected"], mbps=res["mbps"], cpu=servers["edge"]["cpu_pct"],
                   rss=servers["edge"]["rss_mb"], core=cores.get(SERVER_CPU, {}).get("busy"),
                   behind=res["behind"], disconnects=res["disconnects"], lg_cpu=res["loadgen_cpu_pct"],
                   load_cpu=round(sum(v["cpu_pct"] for k, v in servers.items() if k.startswith("load")), 1),
                   origin_cpu=servers["origin"]["cpu_pct"], detail=res)
    finally:
        for s in (edge, up):
            if s is not None:
                s.kill()
    return row


def run(ctx):
    from bench.ingest import loads
    cases = QUICK_CASES if ctx.quick else CASES
    if ctx.players_raw and "x" in ctx.players_raw:     # --players 100x5,200x5
        cases = [tuple(int(v) for v in c.split("x")) for c in ctx.players_raw.split(",")]
    origin = getattr(ctx, "edge_origin", None) or "same"
    rate = getattr(ctx, "connect_rate", None) or CONNECT_RATE
    table = Table("streams", "Many streams: an edge with S streams x P players, edge on one core",
                  COLUMNS, notes=[f"streams of ~{KBPS + 64} kbps published into the origin (load "
                                  "core); players read every "
                                  f"{ctx.read_interval * 1000:.0f} ms and arrive at the given rate"])
    for streams, per in cases:
        big = streams > BIG_S
        for load in loads(ctx, ("pubgen-bundled",) if big else ("ffmpeg",), ("ffmpeg",)):
            for rep in range(ctx.repeat):
                for target in ctx.targets:
                    where = "srs" if big and not getattr(ctx, "edge_origin", None) else origin
                    ctx.log(f"streams {target.name} {streams} x {per} origin {where} by {load} (run {rep + 1})")
                    row = measure(ctx, target, streams, per, ctx.quick, where, load, rate)
                    table.add(**row)
                    ctx.log(f"  -> {({k: row.get(k) for k, _ in COLUMNS})}")
    return table
