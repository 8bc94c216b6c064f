"""A supervised child process (ffmpeg for transcode/ingest, a command for exec), gevent driver.

Rules:
- `Supervised(registry, kind, name, argv, log, **info)`: `start()` spawns it; when it exits it
  is restarted after the delay lib.server.ffmpeg.restart.RestartState decides (capped backoff,
  never a tight loop); `stop()` terminates it and what it started (its own session and process
  group: SIGTERM, SIGKILL after KILL_AFTER seconds) and it is not restarted. One greenlet per
  process waits for it; one reads its stderr.
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
from gevent import subprocess

from lib.server.core.hooks import redact
from lib.server.ffmpeg.restart import KILL, SPAWN, RestartError, RestartState
from lib.server.process.workers import die_with_parent

KILL_AFTER = 3.0
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
    def __init__(self):
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

    def describe(self):
        return [p.describe() for p in list(self.procs.values())]


class Supervised:
    def __init__(self, registry, kind, name, argv, log, **info):
        self.registry = registry
        self.kind, self.name = kind, name
        self.argv = list(argv)
        self.log = log
        self.info = info            # vhost/app/stream/engine/output for the API
        self.restart = RestartState()
        self.id = 0
        self.proc = None
        self.exit_code = None
        self.started = None         # time of the current spawn
        self.tail = collections.deque(maxlen=TAIL_LINES)
        self._greenlet = None
        self._window_start = 0.0
        self._window_lines = 0
        self._suppressed = 0

    # ------------------------------------------------------------ control
    def start(self):
        self.registry.add(self)
        self._greenlet = gevent.spawn(self._run)
        return self

    def stop(self):
        try:
            action = self.restart.stop()
        except RestartError as e:
            self.log.error(f"{self.kind} {self.name}: {e}")
            action = KILL
        self.registry.remove(self)
        proc = self.proc
        if action == KILL and proc is not None and proc.poll() is None:
            self.log.trace(f"{self.kind} {self.name}: stop pid {proc.pid}")
            _signal_group(proc, signal.SIGTERM)
            gevent.spawn_later(KILL_AFTER, self._kill, proc)
        elif self._greenlet is not None and action is None:
            self._greenlet.kill(block=False)

    @staticmethod
    def _kill(proc):
        if proc.poll() is None:
            _signal_group(proc, signal.SIGKILL)

    # ------------------------------------------------------------ driver
    def _run(self):
        action = self.restart.start(time.time())
        while action == SPAWN:
            code = self._spawn_and_wait()
            self.exit_code = code
            delay = self.restart.exited(time.time())
            if delay is None:
                return
            self.log.warn(f"{self.kind} {self.name}: exited with {code}, restart "
                          f"#{self.restart.restarts + 1} in {delay:g}s")
            action = None
            while action is None and self.restart.state == "backoff":
                gevent.sleep(max(0.0, self.restart.get_timer() - time.time()))
                action = self.restart.handle_timer(time.time())

    def _spawn_and_wait(self):
        self.registry.count(self.kind, restart=self.restart.restarts > 0)
        try:
            self.proc = subprocess.Popen(self.argv, stdin=std_subprocess.DEVNULL,
                                         stdout=std_subprocess.DEVNULL,
                                         stderr=std_subprocess.PIPE, preexec_fn=die_with_parent,
                                         start_new_session=True)
        except OSError as e:
            self.proc = None
            self.log.error(f"{self.kind} {self.name}: cannot start {self.argv[0]}: {e}")
            return None
        self.started = time.time()
        self.log.trace(f"{self.kind} {self.name}: started pid {self.proc.pid}: "
                       f"{redact(' '.join(self.argv))}")
        reader = gevent.spawn(self._read_stderr, self.proc)
        code = self.proc.wait()
        reader.join(timeout=1.0)
        reader.kill(block=False)
        return code

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
                "state": self.restart.state, "pid": proc.pid if alive else None,
                "restarts": self.restart.restarts, "exit_code": self.exit_code,
                "uptime": round(time.time() - self.started, 3) if alive and self.started else 0,
                "cid": self.log.cid, **self.info, "argv": [redact(w) for w in self.argv],
                "last_output": list(self.tail)}
