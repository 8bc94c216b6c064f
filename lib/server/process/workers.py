"""`workers N`: N processes share the RTMP port (SO_REUSEPORT) on one machine.

Rules:
- Worker 0 is the real server: it runs the config as written (origin or edge, HLS, HTTP, API,
  hooks) and also listens on a private loopback port. Connections on that port come from the
  other workers and are trusted (no hooks, no security rules: the workers applied them).
- Workers 1..N-1 run the same config turned into an edge of worker 0: every vhost is
  `cluster { mode remote; origin 127.0.0.1:<private port>; }`, without HLS, forward, HTTP
  server or API. Their players pull through worker 0, so the machine keeps ONE upstream link per
  stream however many workers there are; publishes to a worker are proxied to worker 0.
- The kernel spreads new connections over the workers' listening sockets.
- Worker 0 starts the others, forwards SIGHUP/SIGUSR1 to them, restarts one that dies, and stops
  them when it stops.
"""
import copy
import dataclasses
import os
import signal
import subprocess
import sys

import gevent

RESTART_DELAY = 1.0
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))  # the repo (srsedge.py)
PR_SET_PDEATHSIG = 1

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))


def die_with_parent():
    """A worker gets SIGTERM when worker 0 dies, even by SIGKILL (Linux prctl). Until exec
    the child still has the server's SIGTERM handler, which would swallow that signal (the
    child then exec'd and lived on): the default action is restored first."""
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    try:
        import ctypes
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    except (OSError, AttributeError):
        return
    if os.getppid() == 1:                  # the parent died before prctl took effect
        os.kill(os.getpid(), signal.SIGTERM)


def worker_config(config, upstream_port):
    """The config a worker 1..N-1 runs: every vhost an edge of worker 0."""
    cfg = copy.copy(config)
    origin = [("127.0.0.1", upstream_port)]
    vhosts = {}
    for name, v in config.vhosts.items():
        cluster = dataclasses.replace(v.cluster, mode="remote", origin=origin, token_traverse=False,
                                      vhost=None, debug_srs_upnode=False, protocol="rtmp")
        vhosts[name] = dataclasses.replace(
            v, cluster=cluster, hls=dataclasses.replace(v.hls, enabled=False),
            forward=dataclasses.replace(v.forward, enabled=False))
    cfg.vhosts = vhosts
    cfg.http_api = dataclasses.replace(config.http_api, enabled=False)
    cfg.http_server = dataclasses.replace(config.http_server, enabled=False)
    cfg.workers = 1
    cfg.warnings = []
    return cfg


class WorkerPool:
    """Worker 0's view of the other workers (child processes)."""

    def __init__(self, server, conf_path, count, upstream_port):
        self.server = server
        self.conf_path = conf_path
        self.count = count
        self.upstream_port = upstream_port
        self.procs = {}
        self.stopping = False
        self.watcher = None

    def command(self, index):
        script = os.path.join(ROOT, "srsedge.py")
        return [sys.executable, script, "-c", self.conf_path, "--worker", str(index),
                "--upstream-port", str(self.upstream_port)]

    def start(self):
        for index in range(1, self.count):
            self._spawn(index)
        self.watcher = gevent.spawn(self._watch)

    def _spawn(self, index):
        proc = subprocess.Popen(self.command(index), stdin=subprocess.DEVNULL)
        self.procs[index] = proc
        self.server.log.trace(f"worker {index} started, pid={proc.pid}")

    def _watch(self):
        while not self.stopping:
            gevent.sleep(RESTART_DELAY)
            for index, proc in list(self.procs.items()):
                if proc.poll() is not None and not self.stopping:
                    self.server.log.warn(f"worker {index} (pid {proc.pid}) exited with "
                                         f"{proc.returncode}, restarting")
                    self._spawn(index)

    def signal_all(self, sig):
        for proc in self.procs.values():
            if proc.poll() is None:
                try:
                    proc.send_signal(sig)
                except OSError:
                    pass

    def stop(self, sig=signal.SIGTERM, timeout=10.0):
        self.stopping = True
        self.signal_all(sig)
        for proc in self.procs.values():
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
