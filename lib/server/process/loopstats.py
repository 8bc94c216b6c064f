"""Event loop lag statistics: windows, percentiles and the blocked/starved verdict (sans-IO).

Rules (this module owns them; `loopmonitor.py` only feeds it):
- No clock reads, no gevent: durations and `now` are passed in, so every rule is unit-tested
  with made-up figures.
- `busy(durations)`: loop iterations' callbacks, each from the end of one poll to the start of
  the next (io callbacks, timers, greenlets resumed); a long callback is one long iteration.
  The monitor hands them over in a batch per tick (a list append per iteration is all it pays).
- `tick(now, late, cpu, wait)`: the periodic timer fired `late` seconds after it was due; since
  the previous tick the loop's thread ran `cpu` seconds on a CPU and waited `wait` seconds for
  one (runnable, not running: /proc/self/schedstat). A late tick is *starved* when that wait
  is at least half its lateness (the kernel did not run us); otherwise it is *blocked* (a
  callback ran, or slept in a syscall, that long). `tick` also closes the window once `window`
  seconds have passed, and keeps the last `keep` closed windows.
- `gc_pause(seconds)`: one cyclic garbage collection (gc.callbacks start..stop).
- Percentiles come from a fixed log histogram (10 buckets a decade, 10 us .. 100 s, upper
  bounds 1, 1.25, 1.6, 2, 2.5, 3.2, 4, 5, 6.4, 8 x 10^k): p99 is the bound of the bucket that
  holds it, capped at the window's exact max; so within 25 % and never above the max.
- A window's verdict: "ok" when neither its longest iteration nor its latest tick reached
  STALL; else "starved" when its worst late tick was starved, else "blocked".
"""
from bisect import bisect_left, bisect_right

STALL = 0.1                    # seconds: a stall an operator should hear about
_MANTISSAS = (1, 1.25, 1.6, 2, 2.5, 3.2, 4, 5, 6.4, 8)
BOUNDS = tuple(round(m * 10.0 ** e, 12) for e in range(-5, 2) for m in _MANTISSAS) + (100.0,)
# the Prometheus histogram's buckets: a subset of BOUNDS
EXPORT_BOUNDS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class Histogram:
    """Counts of durations in BOUNDS buckets (the last count: above the last bound), the
    exact max and the sum."""
    __slots__ = ("counts", "max", "sum", "count")

    def __init__(self):
        self.counts = [0] * (len(BOUNDS) + 1)
        self.max = 0.0
        self.sum = 0.0
        self.count = 0

    def add(self, seconds):
        self.counts[bisect_left(BOUNDS, seconds)] += 1
        self.count += 1
        self.sum += seconds
        if seconds > self.max:
            self.max = seconds

    def add_many(self, values):
        """Add a batch (one bisect per bucket bound, not per value)."""
        if not values:
            return
        values = sorted(values)
        counts, prev = self.counts, 0
        for i, bound in enumerate(BOUNDS):
            upto = bisect_right(values, bound, prev)   # values <= bound, as `add`
            counts[i] += upto - prev
            prev = upto
            if prev == len(values):
                break
        counts[-1] += len(values) - prev
        self.count += len(values)
        self.sum += sum(values)
        if values[-1] > self.max:
            self.max = values[-1]

    def merge(self, other):
        self.counts = [a + b for a, b in zip(self.counts, other.counts)]
        self.count += other.count
        self.sum += other.sum
        self.max = max(self.max, other.max)

    def quantile(self, q):
        """The upper bound of the bucket holding the q-quantile, capped at the max; 0 if empty."""
        if not self.count:
            return 0.0
        rank = q * self.count
        seen = 0
        for i, n in enumerate(self.counts):
            seen += n
            if seen >= rank and n:
                return min(BOUNDS[i] if i < len(BOUNDS) else self.max, self.max)
        return self.max

    def cumulative(self, bounds=EXPORT_BOUNDS):
        """[(bound, count of durations <= bound)] for `bounds` (each one of BOUNDS)."""
        out, seen, i = [], 0, 0
        for bound in bounds:
            while i < len(BOUNDS) and BOUNDS[i] <= bound * (1 + 1e-9):
                seen += self.counts[i]
                i += 1
            out.append((bound, seen))
        return out


class Window:
    """One interval's figures."""
    __slots__ = ("start", "end", "busy", "lag", "gc", "cpu", "wait", "blocked", "starved")

    def __init__(self, start):
        self.start = self.end = start
        self.busy = Histogram()        # loop iterations
        self.lag = Histogram()         # timer lateness
        self.gc = Histogram()          # gc pauses
        self.cpu = 0.0                 # seconds on a CPU
        self.wait = 0.0                # seconds runnable, waiting for a CPU
        self.blocked = 0.0             # the latest tick that was blocked
        self.starved = 0.0             # ... and starved

    @property
    def verdict(self):
        if max(self.busy.max, self.lag.max) < STALL:
            return "ok"
        return "starved" if self.starved >= STALL and self.starved >= self.blocked else "blocked"

    def describe(self):
        ms = _ms
        return {
            "seconds": round(self.end - self.start, 3), "verdict": self.verdict,
            "iterations": self.busy.count, "busy_ms": ms(self.busy.sum),
            "busy_max_ms": ms(self.busy.max), "busy_p99_ms": ms(self.busy.quantile(0.99)),
            "lag_max_ms": ms(self.lag.max), "lag_p99_ms": ms(self.lag.quantile(0.99)),
            "blocked_max_ms": ms(self.blocked), "starved_max_ms": ms(self.starved),
            "cpu_ms": ms(self.cpu), "cpu_wait_ms": ms(self.wait),
            "gc_count": self.gc.count, "gc_ms": ms(self.gc.sum), "gc_max_ms": ms(self.gc.max),
        }


def _ms(seconds):
    return round(seconds * 1000, 1)


class LoopStats:
    """The window in progress, the last `keep` closed ones, and totals since the start."""

    def __init__(self, now, window=10.0, keep=6):
        self.window = window
        self.keep = keep
        self.current = Window(now)
        self.closed = []               # newest first
        self.busy_total = Histogram()  # closed windows only: add `current` when reading
        self.lag_total = Histogram()
        self.gc_total = Histogram()
        self.cpu_total = 0.0
        self.wait_total = 0.0

    def busy(self, durations):
        self.current.busy.add_many(durations)

    def gc_pause(self, seconds):
        self.current.gc.add(seconds)

    def tick(self, now, late, cpu, wait):
        """The periodic timer fired; returns the window it closed, else None."""
        w = self.current
        late = max(0.0, late)
        w.lag.add(late)
        w.cpu += cpu
        w.wait += wait
        if wait >= late / 2:
            w.starved = max(w.starved, late)
        else:
            w.blocked = max(w.blocked, late)
        w.end = now
        if now - w.start < self.window:
            return None
        self.busy_total.merge(w.busy)
        self.lag_total.merge(w.lag)
        self.gc_total.merge(w.gc)
        self.cpu_total += w.cpu
        self.wait_total += w.wait
        self.closed.insert(0, w)
        del self.closed[self.keep:]
        self.current = Window(now)
        return w

    def totals(self):
        """(busy, lag, gc) histograms since the start, the window in progress included."""
        out = []
        for total, part in ((self.busy_total, self.current.busy),
                            (self.lag_total, self.current.lag), (self.gc_total, self.current.gc)):
            h = Histogram()
            h.merge(total)
            h.merge(part)
            out.append(h)
        return out

    def recent_max(self):
        """(busy max, lag max) over the window in progress and the kept ones."""
        windows = [self.current, *self.closed]
        return max(w.busy.max for w in windows), max(w.lag.max for w in windows)

    def describe(self):
        return {"window_s": self.window, "current": self.current.describe(),
                "windows": [w.describe() for w in self.closed]}
