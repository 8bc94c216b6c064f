"""Event loop lag: the sans-IO windows and verdicts (lib/server/process/loopstats.py), the
monitor on a real gevent loop (loopmonitor.py), and what the API and /metrics report when a
test launcher's callback blocks a real server's loop for 300 ms (tests/api_server.py, SIGUSR2).
"""
import signal
import time

import gevent
import pytest

from lib.server.process.loopmonitor import LoopMonitor
from lib.server.process.loopstats import BOUNDS, EXPORT_BOUNDS, Histogram, LoopStats
from tests.conftest import wait_for
from tests.test_api import ApiProc


# ------------------------------------------------------------------ sans-IO
def test_histogram_quantile_is_a_bucket_bound_capped_at_the_max():
    h = Histogram()
    assert h.quantile(0.99) == 0.0
    for _ in range(990):
        h.add(0.0001)
    for _ in range(10):
        h.add(0.3)
    assert h.max == 0.3 and h.count == 1000
    assert h.quantile(0.99) == 0.0001          # the 990th of 1000 is in the 100 us bucket
    assert h.quantile(0.999) == 0.3            # the 0.32 bucket, capped at the max
    h.add(250.0)                               # above the last bound: the max
    assert h.quantile(1.0) == 250.0
    batch = Histogram()
    batch.add_many([0.3] * 10 + [0.0001] * 990 + [250.0])
    assert (batch.counts, batch.count, batch.max) == (h.counts, h.count, h.max)
    assert all(b in BOUNDS for b in EXPORT_BOUNDS)
    cum = dict(h.cumulative())
    assert cum[0.001] == 990 and cum[0.25] == 990 and cum[0.5] == 1000 and cum[10.0] == 1000


def test_window_closes_after_its_length_and_keeps_the_last_ones():
    s = LoopStats(now=100.0, window=10.0, keep=2)
    s.busy([0.002])
    assert s.tick(105.0, 0.001, 0.01, 0.0) is None
    closed = s.tick(110.0, 0.001, 0.01, 0.0)
    assert closed is not None and closed.busy.count == 1 and closed.verdict == "ok"
    for t in (120.0, 130.0, 140.0):
        s.tick(t, 0.0, 0.0, 0.0)
    assert len(s.closed) == 2 and s.current.busy.count == 0
    busy, lag, gc = s.totals()
    assert busy.count == 1 and lag.count == 5 and gc.count == 0


def test_a_long_callback_is_blocked_and_cpu_wait_is_starved():
    s = LoopStats(now=0.0)
    s.busy([0.3])                              # one iteration of 300 ms ...
    s.tick(0.5, 0.25, 0.3, 0.01)               # ... made the timer 250 ms late, on a CPU
    assert s.current.verdict == "blocked"
    d = s.current.describe()
    assert d["busy_max_ms"] == 300.0 and d["blocked_max_ms"] == 250.0 and d["starved_max_ms"] == 0
    s = LoopStats(now=0.0)
    s.busy([0.0002] * 100)                     # short callbacks ...
    s.tick(1.5, 1.3, 0.05, 1.25)               # ... but 1.25 s waiting for a CPU
    assert s.current.verdict == "starved"
    assert s.current.describe()["starved_max_ms"] == 1300.0
    s = LoopStats(now=0.0)
    s.busy([0.001])
    s.tick(0.1, 0.002, 0.001, 0.0)
    s.gc_pause(0.004)
    assert s.current.verdict == "ok" and s.current.describe()["gc_max_ms"] == 4.0


# ------------------------------------------------------------------ the monitor, in process
def _blocking_callback(seconds):
    time.sleep(seconds)                        # the real sleep: this process is not patched


def test_monitor_sees_a_planted_blocking_callback_and_stays_low_when_idle():
    mon = LoopMonitor().start()
    try:
        gevent.sleep(0.5)
        idle = mon.stats.current
        # idle: iterations of microseconds (a loaded machine may preempt one: < 200 ms)
        assert idle.busy.count > 0 and idle.busy.max < 0.2, idle.describe()
        assert idle.lag.count >= 2
        timer = gevent.get_hub().loop.timer(0.01)
        timer.start(_blocking_callback, 0.3)
        gevent.sleep(0.5)
        timer.close()
        d = mon.stats.current.describe()
        assert d["busy_max_ms"] >= 290 and d["lag_max_ms"] >= 150, d
        assert d["verdict"] == "blocked", d
    finally:
        mon.stop()


# ------------------------------------------------------------------ a real server
def _loop(srv):
    return srv.get("/api/v1/summaries")["data"]["loop"]


def test_api_and_metrics_report_a_blocked_loop(tmp_path):
    srv = ApiProc(tmp_path, "lag")
    srv.start()
    try:
        idle = _loop(srv)
        assert idle["window_s"] > 0 and idle["current"]["verdict"] in ("ok", "starved"), idle
        assert idle["current"]["busy_max_ms"] < 200, idle
        m = srv.metrics()
        assert m[("srsedge_loop_busy_max_seconds", ())] < 0.2
        srv.send_signal(signal.SIGUSR2)        # the launcher blocks its loop for 300 ms
        got = wait_for(lambda: [w for w in [_loop(srv)["current"], *_loop(srv)["windows"]]
                                if w["busy_max_ms"] >= 290], 10)
        assert got and got[0]["verdict"] == "blocked", got
        m = srv.metrics()
        assert m[("srsedge_loop_busy_max_seconds", ())] >= 0.29
        assert m[("srsedge_loop_lag_max_seconds", ())] >= 0.1
        assert m[("srsedge_loop_busy_seconds_count", ())] > 0
        over = m[("srsedge_loop_busy_seconds_bucket", (("le", "+Inf"),))] \
            - m[("srsedge_loop_busy_seconds_bucket", (("le", "0.25"),))]
        assert over >= 1
    finally:
        srv.stop()


if __name__ == "__main__":
    pytest.main([__file__])


def test_the_c_iteration_clock_records_each_iteration_once_and_is_bounded():
    """lib/server/process/_iterclock.c: what the loop monitor's watchers call when it is built."""
    clock_mod = pytest.importorskip("lib.server.process._iterclock")
    clock = clock_mod.IterationClock(capacity=3)
    clock.before_poll()                     # no after_poll yet: nothing to record
    assert clock.take() == []
    clock.after_poll()
    time.sleep(0.02)
    clock.before_poll()
    clock.before_poll()                     # the same iteration is not recorded twice
    got = clock.take()
    assert len(got) == 1 and 0.015 <= got[0] < 1.0
    assert clock.take() == []               # a take starts a new batch
    for _ in range(5):
        clock.after_poll()
        clock.before_poll()
    assert len(clock.take()) == 3 and clock.dropped == 2      # bounded, the rest counted


def test_the_monitor_uses_the_c_clock_when_built():
    from lib.server.process import loopmonitor
    if loopmonitor.IterationClock is None:
        pytest.skip("lib/server/process/_iterclock.c not built")
    mon = loopmonitor.LoopMonitor().start()
    try:
        assert mon._clock is not None
        for _ in range(50):                 # the loop must run: gevent's sleep, not time's
            gevent.sleep(0.1)
            if mon.describe()["current"]["iterations"] > 0:
                break
        assert mon.describe()["current"]["iterations"] > 0
    finally:
        mon.stop()
