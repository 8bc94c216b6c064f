"""The lifecycle of one supervised child process (transcode, exec, ingest) as a sans-IO state
machine. This module owns every decision; the gevent driver (lib/server/ffmpeg/process.py) only
performs the actions and feeds back what happened. It lives in lib/cluster beside the edge
links because it has their shape (a table, `now` passed in, actions returned, an error state)
and shares their action records; a package of its own for one machine would say less.

States: idle -> spawning -> running -> backoff -> spawning ... ; stop() leads to stopped:
- spawning: the driver is starting the process (Popen yields until the child has exec'd). A
  stop() here cannot kill anything yet: the machine goes to `cancelling`, and the moment the
  spawn reports the child (spawned) it asks for Terminate. A spawn never outlives a stop.
- stopping: Terminate was asked; Kill follows after `kill_after` seconds if it has not exited.
- stopped (exited after stop, or stopped with no child): Stop, the driver ends.
- error: an event not in TABLE for the state; `error` says which; Kill + Stop.

Rules:
- start(now) -> Spawn. A stop() before the driver took that Spawn drops it (nothing started).
- A process that exits (or fails to start) while wanted is restarted after a delay that
  doubles with each quick failure: base, 2x, 4x ... capped at `cap`. A run of `stable`
  seconds or more resets the count, so a crash after a long run restarts after `base`.
- `restarts` counts respawns after exits (API); get_timer() is the next respawn (backoff) or
  the SIGKILL deadline (stopping), else None.
"""
from dataclasses import dataclass

from lib.cluster.actions import Stop

IDLE, SPAWNING, RUNNING, BACKOFF = "idle", "spawning", "running", "backoff"
CANCELLING, STOPPING, STOPPED, ERROR = "cancelling", "stopping", "stopped", "error"
ALL = (IDLE, SPAWNING, RUNNING, BACKOFF, CANCELLING, STOPPING, STOPPED, ERROR)

BASE_DELAY = 1.0
MAX_DELAY = 30.0
STABLE_AFTER = 10.0
KILL_AFTER = 3.0

TABLE = {
    "start": (IDLE,),
    "spawned": (SPAWNING, CANCELLING),
    "spawn_failed": (SPAWNING, CANCELLING),
    "exited": (RUNNING, STOPPING),
    "timer": ALL,
    "stop": ALL,
}


@dataclass(frozen=True)
class Spawn:
    """Start the process (`restart`: after an exit, for the counts)."""
    restart: bool


@dataclass(frozen=True)
class Terminate:
    """SIGTERM the running child and its process group."""


@dataclass(frozen=True)
class Kill:
    """SIGKILL the child and its process group (no-op when none runs)."""


class ChildMachine:
    def __init__(self, now, base=BASE_DELAY, cap=MAX_DELAY, stable=STABLE_AFTER,
                 kill_after=KILL_AFTER):
        self.base, self.cap, self.stable, self.kill_after = base, cap, stable, kill_after
        self.state = IDLE
        self.since = now
        self.started_at = None      # when the current (or last) child was reported up
        self.failures = 0           # quick exits in a row
        self.restarts = 0
        self.exit_code = None
        self.deadline = None        # backoff: next spawn; stopping: SIGKILL
        self.error = None
        self.actions = []

    # ------------------------------------------------------------ plumbing
    def take_actions(self):
        actions, self.actions = self.actions, []
        return actions

    @property
    def done(self):
        return self.state in (STOPPED, ERROR)

    def _allowed(self, event):
        if self.state in TABLE[event]:
            return True
        if self.state == ERROR:         # the first error stands; nothing more is asked
            return False
        self.error = f"child process: {event} not allowed in state {self.state}"
        self.actions += [Kill(), Stop(self.error)]
        self._set(ERROR, self.since, None)
        return False

    def _set(self, state, now, deadline):
        if state != self.state:
            self.state, self.since = state, now
        self.deadline = deadline

    def _stopped(self, now, why):
        self.actions.append(Stop(why))
        self._set(STOPPED, now, None)

    def _terminate(self, now):
        self.actions.append(Terminate())
        self._set(STOPPING, now, now + self.kill_after)

    def _backoff(self, now):
        if self.started_at is not None and now - self.started_at >= self.stable:
            self.failures = 0
        self.failures += 1
        self._set(BACKOFF, now, now + min(self.cap, self.base * 2 ** (self.failures - 1)))

    # ------------------------------------------------------------ events
    def start(self, now):
        if self._allowed("start"):
            self.actions.append(Spawn(restart=False))
            self._set(SPAWNING, now, None)

    def spawned(self, now):
        if not self._allowed("spawned"):
            return
        self.started_at = now
        if self.state == CANCELLING:
            self._terminate(now)
        else:
            self._set(RUNNING, now, None)

    def spawn_failed(self, reason, now):
        if not self._allowed("spawn_failed"):
            return
        self.exit_code = None
        if self.state == CANCELLING:
            self._stopped(now, f"stopped (spawn failed: {reason})")
        else:
            self.started_at = None
            self._backoff(now)

    def exited(self, code, now):
        if not self._allowed("exited"):
            return
        self.exit_code = code
        if self.state == STOPPING:
            self._stopped(now, f"stopped (exit {code})")
        else:
            self._backoff(now)

    def stop(self, now):
        if not self._allowed("stop"):
            return
        if self.state == SPAWNING:
            pending = [a for a in self.actions if isinstance(a, Spawn)]
            if pending:                 # the driver has not started it: nothing to cancel
                self.actions = [a for a in self.actions if a not in pending]
                self._stopped(now, "stopped before it started")
            else:
                self._set(CANCELLING, now, None)
        elif self.state == RUNNING:
            self._terminate(now)
        elif self.state in (IDLE, BACKOFF):
            self._stopped(now, "stopped")
        # cancelling, stopping, stopped, error: already on the way out

    def get_timer(self):
        return self.deadline if self.state in (BACKOFF, STOPPING) else None

    def handle_timer(self, now):
        if not self._allowed("timer") or self.deadline is None or now < self.deadline:
            return
        if self.state == BACKOFF:
            self.restarts += 1
            self.actions.append(Spawn(restart=True))
            self._set(SPAWNING, now, None)
        elif self.state == STOPPING:
            self.actions.append(Kill())
            self._set(STOPPING, now, None)     # one SIGKILL, then wait for the exit
