"""Watching the event loop: how long its callbacks run, how late its timers fire, and whether a
stall was the process's own doing (blocked) or the kernel's (starved). Figures: loopstats.py.

Rules:
- Per loop iteration two tiny callbacks, two clock reads and an append, nothing per message: a
  check watcher at the highest priority runs first after each poll, a prepare watcher at the
  lowest runs last before the next one (after gevent's own callbacks, which resume
  greenlets), and the time between is the iteration's callbacks. Neither watcher keeps the
  loop alive. The callbacks are C (`_iterclock.c`, built by scripts/build_accel.py) when
  built, so an iteration runs no Python for them (with real encoders the loop wakes about once
  per readable socket); otherwise two Python methods, 0.4-0.6 us per iteration.
- Every TICK a one-shot timer (a new one each time: gevent fires a restarted one at once)
  measures its own lateness and reads /proc/self/schedstat (the loop thread's time on a CPU
  and waiting for one), and rolls the window. A closed window that stalled logs one trace line
  (not a warning: a starved loop is the machine's state, not the server's error).
- gc pauses come from `gc.callbacks` (a collection is rare: see gctune.py).
- `start()`/`stop()` are idempotent; the server owns one monitor (`server.loop_monitor`).
"""
import gc
import os
import time
from time import perf_counter

import gevent

from lib.server.process.loopstats import LoopStats

IterationClock = None              # not built, or SRSEDGE_PURE_PYTHON: the Python callbacks below
if not os.environ.get("SRSEDGE_PURE_PYTHON"):
    try:
        from lib.server.process._iterclock import IterationClock
    except ImportError:
        pass

TICK = 0.1                     # seconds between lateness samples
WINDOW = 10.0                  # seconds per window
KEEP = 6                       # closed windows kept (a minute)
_SCHEDSTAT = "/proc/self/schedstat"


def read_schedstat():
    """(seconds on a CPU, seconds waiting for one) of the loop's (main) thread; zeros when the
    kernel does not say."""
    try:
        with open(_SCHEDSTAT, "rb") as f:
            fields = f.read().split()
        return int(fields[0]) / 1e9, int(fields[1]) / 1e9
    except (OSError, ValueError, IndexError):
        return 0.0, 0.0


class LoopMonitor:
    def __init__(self, log=None, window=WINDOW, keep=KEEP):
        self.log = log
        self.loop = gevent.get_hub().loop
        self.stats = LoopStats(time.perf_counter(), window, keep)
        self._t0 = None                # perf_counter after the last poll, while callbacks run
        self._busy = []                # iteration durations since the last tick
        self._check = self._prepare = self._timer = None
        self._due = 0.0
        self._sched = (0.0, 0.0)
        self._gc_t0 = 0.0
        self._clock = None             # the C IterationClock, when built

    def start(self):
        if self._check is not None:
            return self
        loop = self.loop
        self._check = loop.check(ref=False, priority=loop.MAXPRI)
        self._prepare = loop.prepare(ref=False, priority=loop.MINPRI)
        if IterationClock is not None:
            self._clock = IterationClock()
            self._check.start(self._clock.after_poll)
            self._prepare.start(self._clock.before_poll)
        else:
            self._check.start(self._after_poll)
            self._prepare.start(self._before_poll)
        self._sched = read_schedstat()
        self._arm()
        gc.callbacks.append(self._on_gc)
        return self

    def stop(self):
        for w in (self._check, self._prepare, self._timer):
            if w is not None:
                w.close()
        self._check = self._prepare = self._timer = None
        if self._on_gc in gc.callbacks:
            gc.callbacks.remove(self._on_gc)

    # ------------------------------------------------------------ per iteration
    def _after_poll(self):
        self._t0 = perf_counter()

    def _before_poll(self):
        t0 = self._t0
        if t0 is not None:
            self._t0 = None
            self._busy.append(perf_counter() - t0)

    # ------------------------------------------------------------ per tick
    def _arm(self):
        self._timer = self.loop.timer(TICK, ref=False)
        self._due = time.perf_counter() + TICK
        self._timer.start(self._on_tick, update=True)

    def _on_tick(self):
        now = time.perf_counter()
        cpu, wait = read_schedstat()
        if self._clock is not None:
            busy = self._clock.take()
        else:
            busy, self._busy = self._busy, []
        self.stats.busy(busy)
        closed = self.stats.tick(now, now - self._due, cpu - self._sched[0],
                                 wait - self._sched[1])
        self._sched = (cpu, wait)
        self._timer.close()
        self._arm()
        if closed is not None and closed.verdict != "ok" and self.log is not None:
            d = closed.describe()
            self.log.trace(
                f"event loop stalled in the last {d['seconds']:.1f} s: {d['verdict']}: timer "
                f"{d['lag_max_ms']:.0f} ms late (blocked {d['blocked_max_ms']:.0f} ms, starved "
                f"{d['starved_max_ms']:.0f} ms), longest iteration {d['busy_max_ms']:.0f} ms, "
                f"gc {d['gc_max_ms']:.0f} ms, on cpu {d['cpu_ms']:.0f} ms, waiting for a cpu "
                f"{d['cpu_wait_ms']:.0f} ms")

    # ------------------------------------------------------------ gc
    def _on_gc(self, phase, info):
        if phase == "start":
            self._gc_t0 = time.perf_counter()
        else:
            self.stats.gc_pause(time.perf_counter() - self._gc_t0)

    def describe(self):
        return self.stats.describe()
