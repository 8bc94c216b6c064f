"""A supervised child process (ffmpeg for transcode/ingest, a command for exec), gevent driver.

Rules:
- `Supervised(registry, kind, name, argv, log, **info)` is the gevent driver of one
  lib.cluster.child.ChildMachine, which decides everything: when to spawn, restart (capped
  backoff), SIGTERM and SIGKILL. The driver only performs its actions, in ONE greenlet (so a
  stop() that arrives while Popen is in flight is performed when Popen returns: the new child
  is terminated, never left unsupervised). `stop()` feeds the machine and wakes that greenlet.
  Signals go to the child's own session and process group, so what a command started (a
  shell's children) stops with it. A helper greenlet waits for each child; one reads its
  stderr.
- The child gets stdin/stdout from /dev/null, its stderr is read line by line (ffmpeg ends
  progress lines with \\r) and written to the log with the owner's context id: at most
  LOG_LINES lines per LOG_WINDOW seconds, then one line saying how many were left out. The last
  TAIL_LINES lines are kept for the API. The child dies with the server (PR_SET_PDEATHSIG).
- `describe()` is the API's view: id, kind, name, state, pid, restarts, exit code, command.
- ProcessRegistry holds every Supervised by id; the API and metrics read it.
"""
import collections
import os
import signal
import subprocess as std_subprocess
import time

import gevent
import gevent.event
from gevent import subprocess

from lib.cluster.child import BACKOFF, RUNNING, ChildMachine, Kill, Spawn, Terminate
from lib.cluster.child_cap import ChildCap
from lib.server.core.hooks import redact
from lib.server.process.workers import die_with_parent

LOG_WINDOW = 10.0
LOG_LINES = 20
TAIL_LINES = 5
MAX_LINE = 500


def _signal_group(proc, sig):
    """Signal the child's process group (it leads its own session), so what a command started
    (a shell's children) stops with it."""
    try:
        os.killpg(proc.pid, sig)
    except OSError:
        try:
            proc.send_signal(sig)
        except OSError:
            pass


class ProcessRegistry:
    """Every Supervised the API lists, by id, and the cap on children (lib.cluster.child_cap):
    a slot is taken before a Supervised is made and released when its driver ends."""

    def __init__(self, limit=1 << 30):
        self.cap = ChildCap(limit)
        self.procs = {}
        self._next = 0
        self.spawns = {}            # kind -> processes spawned since the server started
        self.restarts = {}          # kind -> of which restarts after an exit

    def count(self, kind, restart):
        self.spawns[kind] = self.spawns.get(kind, 0) + 1
        if restart:
            self.restarts[kind] = self.restarts.get(kind, 0) + 1

    def add(self, proc):
        self._next += 1
        proc.id = self._next
        self.procs[proc.id] = proc

    def remove(self, proc):
        self.procs.pop(proc.id, None)

    def finished(self, proc):
        """The driver ended (no child left): its slot is free."""
        self.remove(proc)
        self.cap.release(proc.info.get("vhost", ""))

    def describe(self):
        return [p.describe() for p in list(self.procs.values())]


class Supervised:
    def __init__(self, registry, kind, name, argv, log, **info):
        self.registry = registry
        self.kind, self.name = kind, name
        self.argv = list(argv)
        self.log = log
        self.info = info            # vhost/app/stream/engine/output for the API
        self.machine = ChildMachine(time.time())
        self.id = 0
        self.proc = None
        self.started = None         # time of the current spawn
        self.tail = collections.deque(maxlen=TAIL_LINES)
        self._greenlet = None
        self._waiter = None         # greenlet waiting for the current child's exit
        self._reader = None
        self._wake = gevent.event.Event()
        self._window_start = 0.0
        self._window_lines = 0
        self._suppressed = 0

    # ------------------------------------------------------------ control
    def start(self):
        self.registry.add(self)
        self.machine.start(time.time())
        self._greenlet = gevent.spawn(self._run)
        return self

    def stop(self):
        """Ask the machine to stop and wake the driver, which performs what it decides (the
        driver alone signals and spawns, so a stop during a spawn is never lost)."""
        self.registry.remove(self)
        self.machine.stop(time.time())
        self._wake.set()

    # ------------------------------------------------------------ driver
    def _run(self):
        machine = self.machine
        try:
            while True:
                for action in machine.take_actions():
                    self._perform(action)
                if machine.done:
                    break
                if not machine.actions:
                    self._wait(machine.get_timer())
                    machine.handle_timer(time.time())
            if machine.error:
                self.log.error(f"{self.kind} {self.name}: {machine.error}")
        finally:
            if not machine.done:        # the driver itself failed: leave no child behind
                self.log.error(f"{self.kind} {self.name}: supervisor ended in state "
                               f"{machine.state}; child killed")
                self._signal(signal.SIGKILL)
            self.registry.finished(self)

    def _perform(self, action):
        if isinstance(action, Spawn):
            self._spawn(action.restart)
        elif isinstance(action, Terminate):
            self._signal(signal.SIGTERM)
        elif isinstance(action, Kill):
            self._signal(signal.SIGKILL)

    def _signal(self, sig):
        proc = self.proc
        if proc is not None and proc.poll() is None:
            self.log.trace(f"{self.kind} {self.name}: {signal.Signals(sig).name} pid {proc.pid}")
            _signal_group(proc, sig)

    def _wait(self, deadline):
        """Until the child exits, stop() wakes us, or the machine's deadline passes."""
        timeout = None if deadline is None else max(0.0, deadline - time.time())
        events = [self._wake] + ([self._waiter] if self._waiter is not None else [])
        gevent.wait(events, timeout=timeout, count=1)
        self._wake.clear()
        if self._waiter is not None and self._waiter.ready():
            code, self._waiter = self._waiter.value, None
            self._reader.join(timeout=1.0)
            self._reader.kill(block=False)
            was = self.machine.state
            self.machine.exited(code, time.time())
            if was == RUNNING and self.machine.state == BACKOFF:
                delay = self.machine.get_timer() - time.time()
                self.log.warn(f"{self.kind} {self.name}: exited with {code}, restart "
                              f"#{self.machine.restarts + 1} in {delay:.3g}s")

    def _spawn(self, restart):
        self.registry.count(self.kind, restart=restart)
        try:
            proc = subprocess.Popen(self.argv, stdin=std_subprocess.DEVNULL,
                                    stdout=std_subprocess.DEVNULL,
                                    stderr=std_subprocess.PIPE, preexec_fn=die_with_parent,
                                    start_new_session=True)
        except (OSError, std_subprocess.SubprocessError) as e:
            self.log.error(f"{self.kind} {self.name}: cannot start {self.argv[0]}: {e}")
            self.machine.spawn_failed(str(e), time.time())
            return
        self.proc, self.started = proc, time.time()
        self.log.trace(f"{self.kind} {self.name}: started pid {proc.pid}: "
                       f"{redact(' '.join(self.argv))}")
        self._reader = gevent.spawn(self._read_stderr, proc)
        self._waiter = gevent.spawn(proc.wait)
        self.machine.spawned(time.time())

    def _read_stderr(self, proc):
        pending = b""
        while True:
            data = proc.stderr.read1(4096) if hasattr(proc.stderr, "read1") else \
                proc.stderr.read(4096)
            if not data:
                break
            pending += data.replace(b"\r", b"\n")
            *lines, pending = pending.split(b"\n")
            for line in lines:
                if line.strip():
                    self._log_line(line[:MAX_LINE].decode("utf-8", "replace").rstrip())
            if len(pending) > MAX_LINE:
                self._log_line(pending[:MAX_LINE].decode("utf-8", "replace"))
                pending = b""
        try:
            proc.stderr.close()
        except OSError:
            pass

    def _log_line(self, text):
        self.tail.append(redact(text))
        now = time.time()
        if now - self._window_start >= LOG_WINDOW:
            if self._suppressed:
                self.log.trace(f"{self.kind} {self.name}: {self._suppressed} more output lines "
                               f"not logged")
            self._window_start, self._window_lines, self._suppressed = now, 0, 0
        if self._window_lines < LOG_LINES:
            self._window_lines += 1
            self.log.trace(f"{self.kind} {self.name}: {text}")
        else:
            self._suppressed += 1

    # ------------------------------------------------------------ API
    def describe(self):
        proc = self.proc
        alive = proc is not None and proc.poll() is None
        return {"id": self.id, "kind": self.kind, "name": self.name,
                "state": self.machine.state, "pid": proc.pid if alive else None,
                "restarts": self.machine.restarts, "exit_code": self.machine.exit_code,
                "uptime": round(time.time() - self.started, 3) if alive and self.started else 0,
                "cid": self.log.cid, **self.info, "argv": [redact(w) for w in self.argv],
                "last_output": list(self.tail)}
