"""`python -m bench [scenario ...] [--quick] [--json]`: the fan-out benchmark of issue 5.

Rules:
- Scenarios: fanout, latency, firstframe, failover, memory, ingest, originhls, streams (all by
  default, in that order). Publishers are real encoders (ffmpeg) unless a row says otherwise
  (bench/publoads.py; `--load` picks other loads).
  Each prints one Markdown table; `--json` also prints all results as one JSON document.
- Servers are real processes on the server core, load and publishers on the other core; every
  process is killed by pid at the end, on errors and on Ctrl-C. Work files go to a tmp dir,
  the generated media to a cache dir, never the repo.
- SRS runs beside ours in every scenario when SRS_BIN names its binary (issue 16; build it with
  a snapshot of ossrs/srs); nginx-rtmp runs beside ours in the same run when its module is
  installed (`--no-nginx` skips; originhls skips it: no SRS-style HLS/remux config).
- `mwcurve` (edge CPU vs added latency per mw_latency), `cluster` (the origin cluster with a Redis
  directory, issue 21: bench/cluster.py) and `soak` (issue 7) run only when named;
  soak: `python -m bench soak --minutes 30` (bench/soak.py).
- `--selftest`: the chunk parser check, then 10 players against one origin for ~5 s; exit 0
  when all played, else 1.
"""
import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time

from bench import (cluster, failover, fanout, firstframe, ingest, latency, memory, mwcurve, originhls,
                   parsercheck, soak, streams, workers)
from bench.procs import PINNED, ROOT, Procs, Publisher, media_file, pin_self, raise_fd_limit, run_loadgen
from bench.servers import SrsEdgeTarget, targets
from bench.topology import Context

SCENARIOS = {"fanout": fanout, "latency": latency, "firstframe": firstframe,
             "failover": failover, "memory": memory, "ingest": ingest, "originhls": originhls,
             "streams": streams}
LONG_SCENARIOS = {"soak": soak, "workers": workers, "mwcurve": mwcurve, "cluster": cluster}   # run only when named


def machine():
    model = "?"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return {"nproc": os.cpu_count(), "cpu": model, "python": platform.python_version(),
            "kernel": platform.release(), "pinned": PINNED}


def tree_state():
    """The commit measured and the files changed in the working tree (results depend on them)."""
    def git(*args):
        try:
            return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True,
                                  timeout=10).stdout.rstrip("\n")
        except (OSError, subprocess.SubprocessError):
            return ""
    changed = [line[3:] for line in git("status", "--porcelain", "--", "lib", "srsedge.py").splitlines()]
    return {"commit": git("rev-parse", "--short", "HEAD").strip(), "changed": changed}


def selftest(ctx):
    problems = parsercheck.run()
    if problems:
        print("selftest FAILED: chunk parser:", "; ".join(problems))
        return 1
    target = SrsEdgeTarget(ctx.procs, ctx.workdir)
    server = target.origin("selftest")
    Publisher(ctx.procs, ctx.media, server.url(), os.path.join(ctx.workdir, "selftest-ffmpeg.log"))
    time.sleep(2.0)
    res = run_loadgen(ctx.procs, [server.url()], 10, watch={"server": server.pid},
                      read_interval=ctx.read_interval, warmup=1.0, duration=4.0, connect_timeout=10)
    print(json.dumps(res, indent=1))
    ok = ("error" not in res and res["connected"] == 10 and res["with_video"] == 10
          and res["disconnects"] == 0 and res["regressions"] == 0 and res["mbps"] > 5)
    print("selftest", "ok" if ok else "FAILED")
    return 0 if ok else 1


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n")[0])
    ap.add_argument("scenarios", nargs="*", metavar="scenario",
                    help=f"any of {', '.join(SCENARIOS)} (default: all), or soak, workers, mwcurve, cluster")
    ap.add_argument("--quick", action="store_true", help="small sizes and short windows (~2 min)")
    ap.add_argument("--json", action="store_true", help="also print the results as JSON")
    ap.add_argument("--selftest", action="store_true", help="10 players for ~5 s; exit 0/1")
    ap.add_argument("--read-interval", type=float, default=0.1,
                    help="seconds between two reads of a player (default 0.1)")
    ap.add_argument("--mw-latency", type=int, default=None,
                    help="set play.mw_latency (ms) in srsedge configs (default: server default)")
    ap.add_argument("--players", default=None,
                    help="fan-out player counts, comma-separated (default 100,500,1000,2000,4000); "
                         "streams: SxP cases, e.g. 100x5,200x5")
    ap.add_argument("--repeat", type=int, default=1, help="ingest/streams: runs per case")
    ap.add_argument("--load", default=None,
                    help="ingest/originhls/streams: publisher loads, comma-separated, of ffmpeg, "
                         "pubgen-ffmpeg, pubgen-obs, pubgen-bundled (default: per scenario)")
    ap.add_argument("--edge-origin", choices=("same", "srs"), default=None,
                    help="streams: the origin behind each edge: the target's own (default) or SRS")
    ap.add_argument("--connect-rate", type=float, default=None,
                    help="streams: players arriving per second (default 50)")
    ap.add_argument("--roles", default="origin,edge", help="fanout: roles to measure (origin,edge)")
    ap.add_argument("--minutes", type=float, default=30.0, help="soak: run time (default 30)")
    ap.add_argument("--no-nginx", action="store_true", help="do not run nginx-rtmp beside ours")
    ap.add_argument("--keep", action="store_true", help="keep the tmp dir (configs, logs)")
    args = ap.parse_args(argv)
    names = args.scenarios or list(SCENARIOS)
    every = {**SCENARIOS, **LONG_SCENARIOS}
    unknown = [n for n in names if n not in every]
    if unknown:
        ap.error(f"unknown scenario {', '.join(unknown)}; choose from {', '.join(every)}")

    raise_fd_limit()
    pin_self()
    workdir = tempfile.mkdtemp(prefix="srsedge-bench-")
    info = {"machine": machine(), "command": "python -m bench " + " ".join(argv if argv is not None else sys.argv[1:]),
            "read_interval_ms": round(args.read_interval * 1000), "mw_latency": args.mw_latency,
            "started": time.strftime("%Y-%m-%d %H:%M:%S"), "tree": tree_state()}
    results = []
    try:
        with Procs() as procs:
            media = media_file()
            ctx = Context(procs, workdir, media, targets(procs, workdir, not args.no_nginx, args.mw_latency),
                          args.quick, args.read_interval,
                          [int(x) for x in args.players.split(",") if "x" not in x] if args.players else None)
            ctx.players_raw, ctx.repeat = args.players, max(1, args.repeat)
            ctx.roles = args.roles.split(",")
            ctx.load, ctx.edge_origin, ctx.connect_rate = args.load, args.edge_origin, args.connect_rate
            ctx.minutes = args.minutes
            if args.selftest:
                return selftest(ctx)
            m = info["machine"]
            print(f"# srsedge bench: {m['nproc']} cpus ({m['cpu']}), Python {m['python']}, "
                  f"players read every {info['read_interval_ms']} ms, srsedge play.mw_latency "
                  f"{args.mw_latency if args.mw_latency is not None else 'default'}, servers: "
                  f"{', '.join(t.name for t in ctx.targets)}, tmp {workdir}", flush=True)
            tree = info["tree"]
            print(f"# srsedge at {tree['commit']}"
                  + (f" with uncommitted changes in {', '.join(tree['changed'])}" if tree["changed"] else "")
                  + "\n", flush=True)
            for name in names:
                t0 = time.monotonic()
                try:
                    table = every[name].run(ctx)
                except Exception as e:     # one scenario failing must not lose the others
                    ctx.log(f"scenario {name} failed: {type(e).__name__}: {e}")
                    results.append({"name": name, "error": f"{type(e).__name__}: {e}"})
                    continue
                print("\n" + table.render(), flush=True)
                ctx.log(f"{name} took {time.monotonic() - t0:.0f}s")
                results.append(table.as_json())
    except KeyboardInterrupt:
        print("interrupted; all processes killed", file=sys.stderr)
        return 130
    finally:
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
    if args.json:
        print(json.dumps({**info, "scenarios": results}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
