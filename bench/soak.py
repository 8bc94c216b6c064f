"""Scenario soak (issue 7, a benchmark, not a test): `python -m bench soak --minutes 30`.

N players (default 1000, `--players N`) on an edge with two origins, for `--minutes`; the origin
the edge pulls from is SIGKILLed every FAIL_EVERY minutes (half the run when shorter; the first
half a period in) and restarted RESTART_AFTER s later. One row per minute: edge RSS and CPU,
origin RSS, players playing, Mbps they received, lost, longest media gap, players behind,
timestamp regressions, upstream links, faults.

Rules:
- Topology: origins A and B each with an ffmpeg publisher of the same file (load core), the edge
  (`origin A B`) on the server core. A restarted origin is the same command (same config and
  port), and its publisher comes back with it.
- The players are bench.loadgen's LoadGen in a child process (`python -m bench.soak --child`)
  whose reporter thread prints the players' states every REPORT_S s as JSON lines: playing,
  lost (disconnected after playing, or failed to start: cumulative), behind (lag over
  loadgen.BEHIND_S), regressions, and the longest gap between two video messages any player saw
  since the last report (player gaps include up to one read interval).
- CPU is % of one core over the row's minute, RSS from /proc. Every process is started through
  the run's Procs and killed by pid; the child ends by its own deadline, the harness waits at
  most that long plus a margin.
"""
import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time

from bench.loadgen import BEHIND_S, LoadGen, proc_cpu_seconds, proc_rss_mb, raise_fd_limit
from bench.procs import LOAD_CPU, PYTHON, SERVER_CPU, Publisher, tcp_links, wait_port
from bench.servers import Server
from bench.table import Table
from bench.topology import first_frame_ms

PLAYERS = 1000
FAIL_EVERY = 3.0               # minutes between two origin kills
RESTART_AFTER = 30.0           # s a killed origin stays down
ROW_S = 60.0
REPORT_S = 5.0
CONNECT_TIMEOUT = 60.0
COLUMNS = [("minute", "minute"), ("edge_rss", "edge RSS MB"), ("edge_cpu", "edge CPU %"),
           ("a_rss", "origin A RSS MB"), ("b_rss", "origin B RSS MB"),
           ("playing", "players playing"), ("mbps", "Mbps"), ("lost", "players lost"), ("gap", "max gap ms"),
           ("behind", f"behind >{BEHIND_S:g}s"), ("regressions", "ts regressions"),
           ("links", "links A/B"), ("events", "faults")]


# ------------------------------------------------------------ the player child
def child(url, n, seconds, read_interval):
    """Run N players on `url` for `seconds` after connecting; report every REPORT_S s."""
    raise_fd_limit()
    gen = LoadGen([url], n, read_interval=read_interval, connect_timeout=CONNECT_TIMEOUT,
                  warmup=0.0, duration=seconds)
    done = threading.Event()
    lock = threading.Lock()

    def emit(obj):
        with lock:
            sys.stdout.write(json.dumps(obj) + "\n")
            sys.stdout.flush()

    def reporter():
        received, then = 0, time.monotonic()
        while not done.wait(REPORT_S):
            now = time.monotonic()
            players = list(gen.players)
            total = sum(p.received for p in players)
            mbps, received, then = (total - received) * 8 / (now - then) / 1e6, total, now
            gap = max((p.max_gap for p in players), default=0.0)
            for p in players:
                p.max_gap = 0.0
            lags = [p.lag_at(now) for p in players if p.state == "playing" and p.t_first_v]
            emit({"playing": sum(p.state == "playing" for p in players),
                  "lost": sum(p.state in ("closed", "failed") for p in players),
                  "behind": sum(1 for lag in lags if lag is not None and lag > BEHIND_S),
                  "regressions": sum(p.regressions for p in players),
                  "gap_ms": round(gap * 1000), "mbps": round(mbps, 1)})

    thread = threading.Thread(target=reporter, daemon=True)
    thread.start()
    try:
        result = gen.run()
    finally:
        done.set()
        gen.close()
    emit({"result": {k: result[k] for k in ("players", "connected", "failed", "disconnects",
                                             "regressions", "errors")}})


# ------------------------------------------------------------ the harness
class Origin:
    """An origin and its publisher; kill() and restart() keep the port and config."""

    def __init__(self, ctx, target, label):
        self.ctx, self.label = ctx, label
        self.server = target.origin(f"soak-{label}", cpu=LOAD_CPU)
        self.publisher = None
        self.start_publisher()

    def start_publisher(self):
        log = os.path.join(self.ctx.workdir, f"soak-{self.label}-ffmpeg.log")
        self.publisher = Publisher(self.ctx.procs, self.ctx.media, self.server.url(), log)

    @property
    def up(self):
        return self.server.proc.poll() is None

    def kill(self):
        self.server.kill(signal.SIGKILL)
        self.publisher.stop()

    def restart(self):
        old = self.server
        argv = list(old.proc.args)
        if argv[0] == "taskset":       # Procs.start pins it again
            argv = argv[3:]
        proc = self.ctx.procs.start(argv, log=os.path.join(os.path.dirname(old.log), "stdout.log"),
                                    cpu=LOAD_CPU)
        wait_port(old.port, proc=proc)
        self.server = Server(old.target, old.role, old.label, old.port, proc, old.log)
        self.start_publisher()

    def rss(self):
        return round(proc_rss_mb(self.server.pid), 1) if self.up else None

    def stop(self):
        self.publisher.stop()
        self.server.kill()


def _reader(stream, out):
    for line in stream:
        try:
            out.put(json.loads(line))
        except ValueError:
            pass
    out.put(None)


def run(ctx):
    minutes = getattr(ctx, "minutes", None) or 30.0
    n = (ctx.players or [PLAYERS])[0]
    period = min(FAIL_EVERY, minutes / 2) * 60
    down_for = min(RESTART_AFTER, period / 2)
    table = Table("soak", f"Soak: {n} players on an edge with two origins, {minutes:g} min, "
                  f"the origin in use SIGKILLed every {period:g}s for {down_for:g}s", COLUMNS,
                  notes=[f"players read every {ctx.read_interval * 1000:.0f} ms; gaps include "
                         "up to one read interval", "lost: cumulative; links: edge's TCP links "
                         "to each origin at the end of the minute"])
    target = next(t for t in ctx.targets if t.name == "srsedge")
    origins, edge, child_proc = [], None, None
    try:
        origins = [Origin(ctx, target, "a"), Origin(ctx, target, "b")]
        edge = target.edge([o.server for o in origins], "soak-edge", cpu=SERVER_CPU)
        deadline = time.monotonic() + 20
        while first_frame_ms(edge.url(), 3.0) is None and time.monotonic() < deadline:
            time.sleep(0.5)
        ctx.log(f"soak: {n} players for {minutes:g} min, origin kill every {period:g}s")
        child_proc = ctx.procs.start(
            [PYTHON, "-m", "bench.soak", "--child", edge.url(), str(n), str(minutes * 60),
             str(ctx.read_interval)], log=os.path.join(ctx.workdir, "soak-loadgen.log"),
            stdout=subprocess.PIPE, cpu=LOAD_CPU)
        reports = queue.Queue()
        threading.Thread(target=_reader, args=(child_proc.stdout, reports), daemon=True).start()
        _loop(ctx, table, origins, edge, reports, minutes, period, down_for)
    finally:
        if child_proc is not None:
            ctx.procs.kill(child_proc)
        for part in [edge, *origins]:
            if part is not None:
                part.stop() if isinstance(part, Origin) else part.kill()
    return table


def _loop(ctx, table, origins, edge, reports, minutes, period, down_for):
    t0 = time.monotonic()
    end = t0 + minutes * 60
    next_row, next_kill = t0 + ROW_S, t0 + period / 2
    restart_at, killed = None, None
    cpu0, last, worst_gap, events, result = proc_cpu_seconds(edge.pid), {}, 0, [], None
    bound = end + CONNECT_TIMEOUT + 30
    while time.monotonic() < bound:
        try:
            msg = reports.get(timeout=1.0)
        except queue.Empty:
            msg = {}
        if msg is None or "result" in (msg or {}):
            result = msg and msg["result"]
            break
        if msg:
            worst_gap = max(worst_gap, msg["gap_ms"])
            last = msg
        now = time.monotonic()
        if now >= next_kill and killed is None and now < end - 10:
            killed = next((o for o in origins if o.up and tcp_links(edge.pid, o.server.port)), None)
            if killed is not None:
                killed.kill()
                events.append(f"killed {killed.label.upper()}")
                restart_at = now + down_for
            next_kill += period
        if killed is not None and now >= restart_at:
            killed.restart()
            events.append(f"{killed.label.upper()} back")
            killed = None
        if now >= next_row and now <= end + ROW_S / 2:
            cpu1 = proc_cpu_seconds(edge.pid)
            row = table.add(
                minute=len(table.rows) + 1, edge_rss=round(proc_rss_mb(edge.pid), 1),
                edge_cpu=round((cpu1 - cpu0) / (now - next_row + ROW_S) * 100, 1),
                a_rss=origins[0].rss(), b_rss=origins[1].rss(), playing=last.get("playing"),
                mbps=last.get("mbps"), lost=last.get("lost"), gap=worst_gap, behind=last.get("behind"),
                regressions=last.get("regressions"),
                links="/".join(str(tcp_links(edge.pid, o.server.port)) for o in origins),
                events=", ".join(events) or "")
            ctx.log("soak " + "  ".join(f"{h}={row.get(k)}" for k, h in COLUMNS))
            cpu0, worst_gap, events = cpu1, 0, []
            next_row += ROW_S
    if result:
        table.notes.append(f"load generator: {result['connected']}/{result['players']} playing at "
                           f"the end, {result['failed']} failed to start, {result['disconnects']} "
                           f"disconnected, {result['regressions']} regressions"
                           + (f"; errors {result['errors']}" if result["errors"] else ""))
    if len(table.rows) >= 2:
        first, final = table.rows[0], table.rows[-1]
        table.notes.append(f"edge RSS {first['edge_rss']} MB after minute 1, {final['edge_rss']} "
                           f"MB after minute {final['minute']}")


def main(argv):
    if len(argv) == 5 and argv[0] == "--child":
        child(argv[1], int(argv[2]), float(argv[3]), float(argv[4]))
        return 0
    print("usage: python -m bench soak [--minutes M] [--players N]  (this module's --child mode "
          "is for the harness)", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
