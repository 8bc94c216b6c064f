"""Scenario cluster (issue 21): the origin cluster with its Redis directory.

Rules:
- A real redis-server (Debian's) on a free port, srsedge origins with `cluster { directory ...;
  directory_ttl 3; }` on the server core, a directory edge (and a static-origin edge) on the
  load core; every process is killed by pid through the run's Procs.
- Publishers: bench.pubgen for the many streams (chunk size 4096, paced in real time, but ONE
  write per 20 ms tick: friendlier than ffmpeg's two writes per message, so the origin CPU rows
  are lower than real encoders give; the placement, Redis, lookup and first-frame rows do not
  depend on it), ffmpeg in a retry loop (1 s between attempts, as OBS) for the re-home. Streams are published through the directory edge, which places them.
- Measured, each a row: origin CPU per publisher with 1 and with 3 origins (same publishers;
  the sum over the origins must not grow), placement spread, Redis commands per second per
  1000 held streams (INFO total_commands_processed over a window, and the top commands), the
  directory lookup's own round trip (p50/p99 of 1000), first frame through a cold directory
  edge vs a cold static edge (the owner cache is off by then: every sample looks up), and the
  re-home time (owner killed -> media again at a player of the directory edge).
"""
import os
import random
import signal
import threading
import time

from bench.loadgen import stats
from bench.procs import (LOAD_CPU, SERVER_CPU, PubGen, Publisher, free_port,
                         measure_window, media_file, run_loadgen, wait_port)
from bench.servers import SrsEdgeTarget
from bench.table import Table
from bench.topology import first_frame_ms

TTL = 3
RETRY_S = 1.0
KBPS = 240
COLUMNS = [("measure", "measure"), ("value", "value"), ("unit", "unit"), ("note", "detail")]


class ClusterTarget(SrsEdgeTarget):
    """srsedge origins and edges sharing one Redis directory."""

    def __init__(self, procs, workdir, redis_url):
        super().__init__(procs, workdir)
        self.redis_url = redis_url

    def origin(self, label="origin", cpu=SERVER_CPU):
        return self._start("origin", label, f"cluster {{ directory {self.redis_url}; "
                                            f"directory_ttl {TTL}; }}", cpu)

    def directory_edge(self, label="dir-edge", cpu=LOAD_CPU):
        return self._start("edge", label, f"cluster {{ mode remote; directory {self.redis_url}; "
                                          f"directory_ttl {TTL}; edge_idle_timeout 1; "
                                          f"origin_data_timeout 2; }}", cpu)


class Redis:
    def __init__(self, procs, workdir):
        import redis
        self.port = free_port()
        self.proc = procs.start(["redis-server", "--port", str(self.port), "--bind", "127.0.0.1",
                                 "--save", "", "--appendonly", "no", "--dir", workdir])
        wait_port(self.port, proc=self.proc)
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.client = redis.Redis(port=self.port, decode_responses=True, socket_timeout=2)

    def owners(self):
        keys = list(self.client.scan_iter(match="srsedge:stream:*", count=1000))
        return dict(zip(keys, self.client.mget(keys))) if keys else {}

    def members(self):
        return len([m for m in self.client.smembers("srsedge:origins")
                    if self.client.exists(f"srsedge:origin:{m}")])

    def commands(self):
        """(total commands processed, {command: calls})."""
        total = self.client.info("stats")["total_commands_processed"]
        calls = {k.removeprefix("cmdstat_"): v["calls"]
                 for k, v in self.client.info("commandstats").items()}
        return total, calls


class RetryingEncoder:
    """ffmpeg publishing in a loop, restarted RETRY_S after it ends (as OBS reconnects)."""

    def __init__(self, procs, media, url, log):
        self.procs, self.media, self.url, self.log = procs, media, url, log
        self.stopped = threading.Event()
        self.current = None
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        while not self.stopped.is_set():
            self.current = Publisher(self.procs, self.media, self.url, self.log)
            self.current.proc.wait()
            self.stopped.wait(RETRY_S)

    def stop(self):
        self.stopped.set()
        if self.current is not None:
            self.current.stop()
        self.thread.join(5)


def wait_for(predicate, timeout):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    return predicate()


def origins_cpu(origins, seconds):
    """(sum of the origins' CPU % of one core, [each]) over `seconds`."""
    res = measure_window({o.label: o.pid for o in origins}, seconds)
    each = [res[o.label]["cpu_pct"] for o in origins]
    return round(sum(each), 1), each


def place(ctx, target, redis, origins, n, media, label):
    """n streams through a new directory edge; returns (edge, pubgen, owner counts)."""
    edge = target.directory_edge(f"{label}-edge")
    wait_for(lambda: redis.members() == len(origins), 10)
    pub = PubGen(ctx.procs, media, [edge.url("live/c{i}")], n,
                 log=os.path.join(ctx.workdir, f"cluster-{label}-pubgen.log"))
    owners = wait_for(lambda: (lambda o: o if len(o) >= n else None)(redis.owners()), 30)
    if not owners:
        raise RuntimeError(f"{label}: {len(redis.owners())} of {n} streams owned after 30 s "
                           f"({pub.started})")
    ids = sorted(set(owners.values()))
    return edge, pub, sorted((list(owners.values()).count(i) for i in ids), reverse=True)


def lookup_round_trip(redis_url, key, count):
    from lib.server.cluster.store import RedisDirectory
    store = RedisDirectory(redis_url)
    times = []
    for _ in range(count):
        t0 = time.perf_counter()
        store.owner(key)
        times.append((time.perf_counter() - t0) * 1000)
    store.close()
    times.sort()
    return times[len(times) // 2], times[int(len(times) * 0.99)]


def first_frames(edges, url_of, count, rng):
    """{edge label: [ms]}: cold samples, alternating edges, each edge idle > its idle timeout
    and the owner cache (TTL / 3) between two of its samples."""
    out = {e.label: [] for e in edges}
    for _ in range(count):
        for e in edges:
            ms = first_frame_ms(url_of(e), timeout=5.0)
            if ms is not None:
                out[e.label].append(ms)
        time.sleep(max(1.0, TTL / 3) + 0.3 + rng.uniform(0, 0.5))
    return out


def p99(values):
    values = sorted(values)
    return round(values[min(len(values) - 1, int(len(values) * 0.99))], 1) if values else None


def run(ctx):
    n = ctx.players[0] if ctx.players else 30 if ctx.quick else 60     # --players N
    ff_count = 5 if ctx.quick else 20
    media = media_file(KBPS)
    table = Table("cluster", f"Origin cluster: Redis directory, {n} streams of ~{KBPS + 64} kbps",
                  COLUMNS, notes=[
                      "origins on the server core, edges, Redis and encoders on the load core; "
                      f"directory_ttl {TTL} s (renewal every {TTL / 3:g} s)",
                      "encoders: bench.pubgen through a directory edge (it places the streams); "
                      f"re-home: ffmpeg restarted {RETRY_S:g} s after it ends, as OBS"])
    redis = Redis(ctx.procs, ctx.workdir)
    target = ClusterTarget(ctx.procs, ctx.workdir, redis.url)
    window = 4.0 if ctx.quick else 8.0
    parts = []
    try:
        # 1 origin: the reference for CPU per publisher
        one = target.origin("cl-one")
        wait_for(lambda: redis.members() == 1, 10)
        idle_one, _ = origins_cpu([one], window / 2)
        edge, pub, _ = place(ctx, target, redis, [one], n, media, "one")
        time.sleep(2.0)
        cpu_one, _ = origins_cpu([one], window)
        pub.stop()
        edge.kill()
        one.kill(signal.SIGTERM)
        wait_for(lambda: not redis.owners() and redis.members() == 0, 10)
        table.add(measure="origin CPU, 1 origin", value=cpu_one, unit="% of a core",
                  note=f"idle {idle_one} %; {(cpu_one - idle_one) / n:.3f} % per publisher "
                       "above idle")
        ctx.log(f"cluster: 1 origin, {n} publishers: {cpu_one} % CPU")

        # 3 origins: spread, CPU, Redis load
        origins = [target.origin(f"cl-o{i}") for i in range(3)]
        parts += origins
        wait_for(lambda: redis.members() == 3, 10)
        idle_three, _ = origins_cpu(origins, window / 2)
        edge, pub, counts = place(ctx, target, redis, origins, n, media, "three")
        parts.append(edge)
        table.add(measure="placement over 3 origins", unit="max/min",
                  value=round(counts[0] / max(1, counts[-1]), 2),
                  note=f"streams per origin {counts}")
        time.sleep(2.0)
        t0, (c0, calls0) = time.monotonic(), redis.commands()
        cpu_three, each = origins_cpu(origins, window)
        span, (c1, calls1) = time.monotonic() - t0, redis.commands()
        table.add(measure="origin CPU, 3 origins (sum)", value=cpu_three, unit="% of a core",
                  note=f"idle {idle_three} %; {(cpu_three - idle_three) / n:.3f} % per "
                       f"publisher above idle; each origin {each}; sum vs 1 origin "
                       f"x{cpu_three / max(cpu_one, 0.1):.2f}, above idle "
                       f"x{(cpu_three - idle_three) / max(cpu_one - idle_one, 0.1):.2f}")
        ops = (c1 - c0) / span
        top = sorted(((calls1.get(k, 0) - calls0.get(k, 0), k) for k in calls1), reverse=True)[:4]
        table.add(measure="Redis commands per 1000 held streams", value=round(ops * 1000 / n),
                  unit="per s", note=f"{ops:.1f}/s for {n} streams, 3 origins, 1 edge; top: "
                  + ", ".join(f"{k} {v / span:.1f}/s" for v, k in top))
        ctx.log(f"cluster: 3 origins {each}, spread {counts}, redis {ops:.1f} ops/s")
        p50, p99_ms = lookup_round_trip(redis.url, "__defaultVhost__/live/c0", 1000)
        table.add(measure="directory lookup round trip", value=round(p99_ms, 2), unit="ms p99",
                  note=f"p50 {p50:.2f} ms (one Lua call: owner and its member record)")

        # first frame: a cold directory edge vs a cold static edge, same origin, same stream
        ff = Publisher(ctx.procs, media, origins[0].url("live/ff"),
                       os.path.join(ctx.workdir, "cluster-ff-ffmpeg.log"))
        parts.append(ff)
        static = target.edge([origins[0]], "cl-static-edge", cpu=LOAD_CPU)
        direct = target.directory_edge("cl-ff-edge")
        parts += [static, direct]
        wait_for(lambda: redis.client.get("srsedge:stream:__defaultVhost__/live/ff"), 10)
        time.sleep(2.5)
        got = first_frames([direct, static], lambda e: e.url("live/ff"), ff_count,
                           random.Random(1))
        d, s = got[direct.label], got[static.label]
        sd, ss = stats(d), stats(s)
        table.add(measure="first frame, cold directory edge", value=sd["median"], unit="ms median",
                  note=f"p99 {p99(d)} ms, {len(d)} samples")
        table.add(measure="first frame, cold static edge", value=ss["median"], unit="ms median",
                  note=f"p99 {p99(s)} ms, {len(s)} samples")
        if d and s:
            table.add(measure="directory edge minus static edge", value=round(
                sd["median"] - ss["median"], 1), unit="ms median",
                note=f"p99 {round(p99(d) - p99(s), 1)} ms")

        # re-home: the owner of a stream played on the directory edge is killed
        enc = RetryingEncoder(ctx.procs, media, edge.url("live/rh"),
                              os.path.join(ctx.workdir, "cluster-rh-ffmpeg.log"))
        owner = wait_for(lambda: redis.client.get("srsedge:stream:__defaultVhost__/live/rh"), 15)
        owner_rtmp = redis.client.get(f"srsedge:origin:{owner}") or ""
        victim = next(o for o in origins if f":{o.port}\"" in owner_rtmp)
        timers = []

        def on_measure():
            t = threading.Timer(2.0, lambda: victim.kill(signal.SIGKILL))
            t.start()
            timers.append(t)
        res = run_loadgen(ctx.procs, [edge.url("live/rh")], 5, probes=[edge.url("live/rh")],
                          watch={}, on_measure=on_measure, read_interval=ctx.read_interval,
                          warmup=2.0, duration=2.0 + 2 * TTL + RETRY_S + 5.0)
        for t in timers:
            t.cancel()
        enc.stop()
        if "error" in res:
            table.add(measure="re-home", note=res["error"])
        else:
            table.add(measure="re-home: owner kill -9 -> media again", unit="ms",
                      value=res["probes"][0]["max_gap_ms"],
                      note=f"target < {(2 * TTL + RETRY_S) * 1000:.0f} ms (2 x TTL + retry); "
                           f"players lost {res['failed'] + res['disconnects']}, ts regressions "
                           f"{res['regressions']}")
        pub.stop()
    finally:
        for part in reversed(parts):
            part.stop() if isinstance(part, Publisher) else part.kill()
    return table

