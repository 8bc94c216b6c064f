"""Benchmark topologies: one target's origin (and edge) with an ffmpeg publisher, and the
small in-process probes the scenarios share.

Rules: the server under test (the origin, or the edge when there is one) runs on the server
core; the origin behind an edge, the publisher and the load run on the load core. Every wait is
bounded. `close()` kills what the topology started, by pid.
"""
import os
import time

from bench.loadgen import LoadGen, stats
from bench.procs import LOAD_CPU, SERVER_CPU, Publisher, tcp_links


class Context:
    """What a benchmark run shares: processes, tmp dir, media, targets and settings."""

    def __init__(self, procs, workdir, media, targets, quick, read_interval, players=None):
        self.procs, self.workdir, self.media = procs, workdir, media
        self.targets, self.quick, self.read_interval = targets, quick, read_interval
        self.players = players         # fan-out sizes chosen on the command line, or None

    def log(self, msg):
        print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", flush=True)


class Topology:
    def __init__(self, ctx, target, role, label=""):
        self.ctx, self.target, self.role = ctx, target, role
        self.publisher = self.edge = None
        self.origin = target.origin(f"{label}origin", cpu=SERVER_CPU if role == "origin" else LOAD_CPU)
        try:
            if role == "edge":
                self.edge = target.edge([self.origin], f"{label}edge", cpu=SERVER_CPU)
            log = os.path.join(ctx.workdir, f"{target.name}-{label}{role}-ffmpeg.log")
            self.publisher = Publisher(ctx.procs, ctx.media, self.origin.url(), log)
        except BaseException:
            self.close()
            raise

    @property
    def server(self):
        """The server under test."""
        return self.edge or self.origin

    def upstream_links(self):
        return tcp_links(self.edge.pid, self.origin.port) if self.edge else None

    def wait_stream(self, timeout=15.0):
        """Until a player on the origin gets a keyframe (the publisher is live)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if first_frame_ms(self.origin.url(), timeout=3.0) is not None:
                return True
            time.sleep(0.2)
        raise RuntimeError(f"{self.target.name}: no stream on {self.origin.url()} after {timeout}s")

    def close(self):
        for part in (self.publisher, self.edge, self.origin):
            if part is not None:
                part.stop() if part is self.publisher else part.kill()


def first_frame_ms(url, timeout=5.0):
    """One eager player: TCP connect to the first complete video keyframe, in ms (or None)."""
    gen = LoadGen([], 0, probes=[url], read_interval=0, connect_timeout=timeout, warmup=0,
                  duration=timeout, stop_on_video=True)
    try:
        gen.run()
    finally:
        gen.close()
    p = gen.probes[0]
    return (p.t_key - p.t_start) * 1000.0 if p.t_key is not None else None


def wait_links(topo, want, timeout):
    """Wait until the edge has `want` upstream links; returns the last count seen."""
    deadline = time.monotonic() + timeout
    while True:
        n = topo.upstream_links()
        if n == want or time.monotonic() >= deadline:
            return n
        time.sleep(0.1)


__all__ = ["Context", "Topology", "first_frame_ms", "wait_links", "stats"]
