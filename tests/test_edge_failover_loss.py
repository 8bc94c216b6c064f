"""A two-layer edge chain loses no media that is ours to keep when origin A dies (issue 20,
point 15). The chain and the accounting are in tests/failover_chain.py.

- SIGTERM (fast quit): A sends what it received and had not flushed yet (its mw_latency
  window, up to ~8 frames at 25 fps before the fix) before closing its connections; the edges
  then lose nothing, and the switch to B's GOP cache leaves no gap.
- SIGKILL: what A never sent and B's cache does not start early enough for is the failover's
  inherent gap; neither edge may lose anything beyond it.
"""
import signal

from tests.failover_chain import run_chain, summary


def test_sigterm_origin_sends_its_pending_media_and_the_chain_loses_none(tmp_path):
    r = run_chain(tmp_path, signal.SIGTERM, seconds=6, kill_at=3.0)   # at a keyframe of B
    print(summary(r))
    # a frame still in flight to A when the signal came is A's to drop (it never read it)
    assert len(r["unsent_by_a"]) <= 2, summary(r)
    assert r["lost_edge1"] == [] and r["lost_edge2"] == [], summary(r)
    assert r["missing_edge2"] == r["failover_gap"], summary(r)


def test_sigkill_origin_edges_lose_nothing_beyond_the_failover_gap(tmp_path):
    r = run_chain(tmp_path, signal.SIGKILL, seconds=6, kill_at=3.0)
    print(summary(r))
    assert r["lost_edge1"] == [] and r["lost_edge2"] == [], summary(r)
    assert r["missing_edge2"] == r["failover_gap"], summary(r)
