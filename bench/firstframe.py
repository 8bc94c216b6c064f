"""Scenario 3, first frame: TCP connect to the first complete video keyframe, for a player on
the origin (reference), on a cold edge (no player, no upstream link) and on a warm edge (the
stream already pulled for another player).

Rules: samples are sequential, one eager player each. Before a cold sample the edge must have no
upstream link (waited for, bounded: srsedge edges stop pulling `edge_idle_timeout` 1 s after
their last player); a sample taken while a link remained is counted as "not cold" and left out.
Each sample starts at a random point of the 2 s GOP.
The warm edge is kept warm by one load-generator player in the background.
"""
import random
import time

from bench.loadgen import stats
from bench.procs import PYTHON
from bench.table import Table
from bench.topology import Topology, first_frame_ms, wait_links

GOP_S = 2.0
COLUMNS = [("server", "server"), ("case", "case"), ("samples", "samples"), ("median", "median ms"),
           ("p90", "p90 ms"), ("max", "max ms"), ("note", "note")]


def samples(n, url, before=None, rng=None):
    """n first-frame times; each sample starts at a random point of the GOP (0..GOP_S), so a
    server without a GOP cache is not always caught at the same phase."""
    rng = rng or random.Random(1)
    out, skipped = [], 0
    for _ in range(n):
        if before is not None and not before():
            skipped += 1
            continue
        time.sleep(rng.uniform(0, GOP_S))
        ms = first_frame_ms(url, timeout=5.0)
        if ms is not None:
            out.append(ms)
    return out, skipped


def add_row(table, server, case, values, note=""):
    s = stats(values)
    p90 = round(sorted(values)[int(0.9 * len(values))], 1) if values else None
    table.add(server=server, case=case, samples=len(values), median=s["median"], p90=p90,
              max=s["max"], note=note or None)


def run(ctx):
    count = 3 if ctx.quick else 20
    table = Table("firstframe", f"First frame: TCP connect to first video keyframe (median of {count})",
                  COLUMNS, notes=["stream: 2 s GOP; a server without a GOP cache waits for the next "
                                  "keyframe (about 1 s on average)"])
    for target in ctx.targets:
        topo = Topology(ctx, target, "edge", label="firstframe-")
        keeper = None
        try:
            topo.wait_stream()
            ctx.log(f"first frame {target.name}: origin")
            values, _ = samples(count, topo.origin.url())
            add_row(table, target.name, "origin", values)
            ctx.log(f"first frame {target.name}: cold edge")
            values, skipped = samples(count, topo.edge.url(), before=lambda: wait_links(topo, 0, 6.0) == 0)
            add_row(table, target.name, "cold edge", values,
                    f"{skipped} samples skipped: upstream link still open after 6 s" if skipped else "")
            ctx.log(f"first frame {target.name}: warm edge")
            keeper = ctx.procs.start([PYTHON, "-m", "bench.loadgen", topo.edge.url(), "-n", "1",
                                      "--warmup", "0", "--duration", "600"])
            links = wait_links(topo, 1, 10.0)
            time.sleep(1.0)
            values, _ = samples(count, topo.edge.url())
            add_row(table, target.name, "warm edge", values, "" if links == 1 else f"{links} upstream links")
        finally:
            if keeper is not None:
                ctx.procs.kill(keeper)
            topo.close()
        ctx.log(f"  -> {table.rows[-3:]}")
    return table
