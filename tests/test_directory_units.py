"""lib/cluster/directory.py: the lease rules with a fake clock, no store, no sockets."""
from lib.cluster.directory import (Answer, Claim, Deregister, LeaseBook, Register, Release,
                                   StopStream, StoreState)

ME, OTHER = "origin-a", "origin-b"
KEY = "__defaultVhost__/live/s1"


def book(now=0.0, ttl=3.0):
    b = LeaseBook(ME, ttl, now)
    b.handle_timer(now)
    assert b.take_actions() == [Register()]
    b.registered(now)
    return b


def held_book(key=KEY, now=0.0):
    b = book(now)
    b.publish_requested(key, now)
    assert b.take_actions() == [Claim((key,))]
    b.claim_answered({key: ME}, now)
    assert b.take_actions() == [Answer(key, True)]
    return b


def test_publish_accepted_when_the_store_says_ours():
    b = held_book()
    assert b.owns(KEY) and b.held() == [KEY]


def test_publish_owned_elsewhere_is_refused_with_the_owner():
    b = book()
    b.publish_requested(KEY, 0.1)
    b.take_actions()
    b.claim_answered({KEY: OTHER}, 0.2)
    assert b.take_actions() == [Answer(KEY, False, f"already publishing on {OTHER}", OTHER)]
    assert not b.owns(KEY) and b.held() == []


def test_renewal_every_third_of_the_ttl_claims_every_held_key():
    b = held_book()
    b.publish_requested("v/a/s2", 0.5)
    b.take_actions()
    b.claim_answered({"v/a/s2": ME}, 0.5)
    b.take_actions()
    assert b.get_timer() == 1.0                   # ttl 3 s -> renew every 1 s
    b.handle_timer(0.9)
    assert b.take_actions() == []                 # not due yet
    b.handle_timer(1.0)
    assert b.take_actions() == [Claim((KEY, "v/a/s2")), Register()]
    assert b.get_timer() == 2.0


def test_lease_taken_elsewhere_stops_our_copy():
    b = held_book()
    b.handle_timer(1.0)
    b.take_actions()
    b.claim_answered({KEY: OTHER}, 1.0)
    assert b.take_actions() == [StopStream(KEY, OTHER)]
    b.unpublished(KEY, 1.1)                       # the stopped copy's unpublish: no Release
    assert b.take_actions() == [] and b.held() == []


def test_store_down_keeps_live_streams_and_refuses_new_ones():
    b = held_book()
    b.handle_timer(1.0)
    b.take_actions()
    b.store_failed("connection refused", 1.0)
    assert b.take_actions() == [StoreState(False, "connection refused")]
    assert b.owns(KEY)                            # what is live stays live
    b.publish_requested("v/a/new", 1.2)
    assert b.take_actions() == [Answer("v/a/new", False, "directory unreachable")]
    assert b.get_timer() == 2.0                   # retried every second, not every renewal


def test_pending_publish_is_refused_when_the_store_fails():
    b = book()
    b.publish_requested(KEY, 0.1)
    b.take_actions()
    b.store_failed("timeout", 0.2)
    assert b.take_actions() == [Answer(KEY, False, "directory unreachable: timeout"),
                                StoreState(False, "timeout")]
    assert b.held() == []


def test_first_retry_after_an_outage_reclaims_everything_held():
    b = held_book()
    b.store_failed("down", 1.0)
    b.take_actions()
    b.handle_timer(2.0)
    assert b.take_actions() == [Claim((KEY,)), Register()]
    b.store_failed("still down", 2.0)
    b.take_actions()
    b.handle_timer(3.0)
    assert b.take_actions() == [Claim((KEY,)), Register()]
    b.claim_answered({KEY: ME}, 3.0)              # the store is back (maybe restarted empty)
    assert b.take_actions() == [StoreState(True, "reachable again")]
    assert b.owns(KEY) and b.get_timer() == 4.0


def test_reclaim_after_an_outage_finds_the_stream_moved():
    b = held_book()
    b.store_failed("link down", 1.0)
    b.take_actions()
    b.handle_timer(2.0)
    b.take_actions()
    b.claim_answered({KEY: OTHER}, 2.0)
    assert b.take_actions() == [StoreState(True, "reachable again"), StopStream(KEY, OTHER)]


def test_unpublish_releases_only_while_the_store_is_up():
    b = held_book()
    b.unpublished(KEY, 0.5)
    assert b.take_actions() == [Release(KEY)]
    b = held_book()
    b.store_failed("down", 0.5)
    b.take_actions()
    b.unpublished(KEY, 0.6)
    assert b.take_actions() == []                 # the lease expires by its TTL


def test_republish_of_a_held_stream_and_concurrent_pending_claims():
    b = held_book()
    b.publish_requested(KEY, 0.5)
    assert b.take_actions() == [Answer(KEY, True)]
    b.publish_requested("v/a/p", 0.5)
    b.take_actions()
    b.publish_requested("v/a/p", 0.6)
    assert b.take_actions() == [Answer("v/a/p", False, "a publish of this stream is pending")]


def test_stray_answer_is_ignored_and_counted():
    b = book()
    b.claim_answered({"v/a/never": ME}, 0.1)
    assert b.take_actions() == [] and b.held() == [] and b.ignored == 1


def test_stop_releases_everything_and_deregisters_once():
    b = held_book()
    b.stop(0.5)
    assert b.take_actions() == [Release(KEY), Deregister()]
    b.stop(0.6)
    b.publish_requested("v/a/x", 0.7)
    assert b.take_actions() == [Answer("v/a/x", False, "origin is stopping")]
    assert b.get_timer() is None
