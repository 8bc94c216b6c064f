"""`python -m bench workers`: how `workers N` divides an edge's work (run only when named).

Rules: one origin and one edge with `workers 1` then `workers 2`, all pinned to the server core;
the load generator plays N players (4000; 1000 with --quick) on the edge's shared port. The
table shows every edge process's CPU, players behind/disconnected and the upstream links the
origin saw (must stay 1). On a 2-core machine the second core belongs to the load generator, so
this shows that the work divides cleanly, not a wall-clock speed-up; docs/performance.md says
what it predicts for more cores.
"""
import os
import time

from bench.procs import PYTHON, SERVER_CPU, Publisher, free_port, run_loadgen, wait_port
from bench.table import Table

COLUMNS = [("workers", "edge workers"), ("players", "players"), ("behind", "behind"),
           ("disconnects", "disconnects"), ("mbps", "Mbps"), ("cpu", "edge CPU % per process"),
           ("total", "edge CPU % total"), ("links", "origin plays")]


def _server(ctx, name, body):
    d = os.path.join(ctx.workdir, f"workers-{name}")
    os.makedirs(d, exist_ok=True)
    port = free_port()
    conf = os.path.join(d, "srs.conf")
    with open(conf, "w") as f:
        f.write(f"listen {port};\nmax_connections 30000;\npid {d}/srs.pid;\n"
                f"srs_log_file {d}/srs.log;\n{body}\n")
    proc = ctx.procs.start([PYTHON, "srsedge.py", "-c", conf], log=os.path.join(d, "stdout.log"),
                           cpu=SERVER_CPU)
    wait_port(port, proc=proc)
    return port, proc, os.path.join(d, "srs.log")


def _children(pid):
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            return [int(x) for x in f.read().split()]
    except OSError:
        return []


def run(ctx):
    n = 1000 if ctx.quick else 4000
    table = Table("workers", "workers N: one edge, N processes on the shared port", COLUMNS)
    for workers in (1, 2):
        origin_port, origin, origin_log = _server(ctx, f"origin{workers}", "vhost __defaultVhost__ { }")
        edge_port, edge, _ = _server(ctx, f"edge{workers}", (
            f"workers {workers};\nvhost __defaultVhost__ {{ cluster {{ mode remote; "
            f"origin 127.0.0.1:{origin_port}; }} }}"))
        pub = Publisher(ctx.procs, ctx.media, f"rtmp://127.0.0.1:{origin_port}/live/bench",
                        os.path.join(ctx.workdir, f"workers-{workers}-ffmpeg.log"))
        try:
            time.sleep(2.0 + workers)
            watch = {"w0": edge.pid}
            watch.update({f"w{i + 1}": pid for i, pid in enumerate(_children(edge.pid))})
            ctx.log(f"workers {workers}: {n} players, watching {sorted(watch)}")
            res = run_loadgen(ctx.procs, [f"rtmp://127.0.0.1:{edge_port}/live/bench"], n,
                              watch=watch, read_interval=ctx.read_interval,
                              warmup=2.0 if ctx.quick else 4.0,
                              duration=4.0 if ctx.quick else 10.0, connect_timeout=30,
                              extra=("--connect-rate", "2000"))
            row = {"workers": workers, "detail": res}
            if "error" not in res:
                cpus = [res["servers"][k]["cpu_pct"] for k in sorted(res["servers"])]
                row.update(players=res["connected"], behind=res["behind"],
                           disconnects=res["disconnects"], mbps=res["mbps"],
                           cpu=" + ".join(f"{c:.1f}" for c in cpus), total=round(sum(cpus), 1))
            with open(origin_log, errors="replace") as f:
                row["links"] = f.read().count("play __defaultVhost__/live/bench to")
            table.add(**row)
            table.note_errors(f"workers {workers}", res)
        finally:
            pub.stop()
            ctx.procs.kill(edge)
            ctx.procs.kill(origin)
    return table
