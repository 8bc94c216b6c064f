"""When a supervised process (transcode, exec, ingest) is (re)started: a sans-IO state machine.

Rules (this module owns them):
- States: idle -> running -> backoff -> running ... ; stop() from any state ends in stopped
  (via stopping while a process still has to exit). The table `TRANSITIONS` is complete: an
  event not in it for the current state raises RestartError and the object sits in `error`.
- `start(now)` and `handle_timer(now)` return SPAWN when the driver must start the process;
  `stop()` returns KILL when a running process must be terminated.
- `exited(now)`: the process ended (or failed to start). While running, a restart is scheduled
  after a delay that doubles with each quick failure: BASE_DELAY, 2x, 4x ... capped at
  MAX_DELAY. A process that ran STABLE_AFTER seconds or more resets the count, so a crash after
  a long run restarts after BASE_DELAY and a crash loop never restarts faster than the cap allows.
- `restarts` counts respawns after exits (for the API); `get_timer()` is the time of the next
  respawn, or None.
- No clock reads: every time is passed in.
"""

BASE_DELAY = 1.0
MAX_DELAY = 30.0
STABLE_AFTER = 10.0

SPAWN, KILL = "spawn", "kill"

TRANSITIONS = {
    ("idle", "start"): "running",
    ("idle", "stop"): "stopped",
    ("running", "exited"): "backoff",
    ("running", "stop"): "stopping",
    ("backoff", "timer"): "running",
    ("backoff", "stop"): "stopped",
    ("stopping", "exited"): "stopped",
    ("stopping", "stop"): "stopping",
    ("stopped", "stop"): "stopped",
    ("stopped", "exited"): "stopped",
}


class RestartError(Exception):
    pass


class RestartState:
    def __init__(self, base=BASE_DELAY, cap=MAX_DELAY, stable=STABLE_AFTER):
        self.base, self.cap, self.stable = base, cap, stable
        self.state = "idle"
        self.started_at = None
        self.failures = 0          # quick exits in a row
        self.restarts = 0
        self.next_at = None

    def _go(self, event):
        nxt = TRANSITIONS.get((self.state, event))
        if nxt is None:
            was, self.state = self.state, "error"
            raise RestartError(f"restart: event {event!r} not allowed in state {was!r}")
        self.state = nxt

    def start(self, now):
        self._go("start")
        self.started_at = now
        return SPAWN

    def exited(self, now):
        """The process ended; returns the delay before the next start (None: not restarted)."""
        self._go("exited")
        if self.state != "backoff":
            return None
        if self.started_at is not None and now - self.started_at >= self.stable:
            self.failures = 0
        self.failures += 1
        delay = min(self.cap, self.base * 2 ** (self.failures - 1))
        self.next_at = now + delay
        return delay

    def get_timer(self):
        return self.next_at if self.state == "backoff" else None

    def handle_timer(self, now):
        if self.state != "backoff" or now < self.next_at:
            return None
        self._go("timer")
        self.next_at = None
        self.started_at = now
        self.restarts += 1
        return SPAWN

    def stop(self):
        was = self.state
        self._go("stop")
        self.next_at = None
        return KILL if was == "running" else None
