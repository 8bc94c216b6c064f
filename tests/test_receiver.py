"""lib/server/core/receiver.py over real socket pairs under the gevent hub: reads, and the idle
bound raised only while the reader waits in recv."""
import socket
import time

import gevent
from gevent import socket as gsocket

from lib.server.core.receiver import Receiver


def test_reads_what_arrives_and_raises_after_the_idle_bound():
    a, b = gsocket.socketpair()
    rx = Receiver(b)
    assert rx.raw is not None             # the plain socket under gevent's: the fast path
    rx.set_idle_timeout(1.0)              # 10 x the send interval: a loaded machine's
    got = []                              # scheduling lag (100-200 ms) cannot trip it

    def reader():
        while True:
            got.append(rx.recv(65536))

    g = gevent.spawn(reader)
    for _ in range(15):                   # bytes every 0.1 s keep it alive past the bound
        a.sendall(b"x" * 100)
        gevent.sleep(0.1)
    assert not g.dead and sum(map(len, got)) == 1500
    t0 = time.monotonic()
    g.join(timeout=5)
    assert g.dead and isinstance(g.exception, socket.timeout)
    assert 0.8 <= time.monotonic() - t0 < 3.0
    rx.close()
    a.close()
    b.close()


def test_no_idle_bound_when_unset_and_eof_is_empty_bytes():
    a, b = gsocket.socketpair()
    rx = Receiver(b)
    rx.set_idle_timeout(0.1)
    rx.set_idle_timeout(None)
    g = gevent.spawn(rx.recv, 100)
    gevent.sleep(0.4)
    assert not g.dead                     # no bound: still waiting
    a.close()
    assert g.get(timeout=3) == b""
    rx.close()
    b.close()


def test_stream_reads_in_the_hub_until_the_callback_hands_back():
    a, b = gsocket.socketpair()
    rx = Receiver(b)
    assert rx.can_stream
    seen = []

    def on_data(data):
        seen.append((data, gevent.getcurrent() is gevent.get_hub()))
        return "stop" if data.endswith(b"!") else None

    g = gevent.spawn(rx.stream, on_data, 4096)
    for piece in (b"one", b"two", b"three!"):
        a.sendall(piece)
        gevent.sleep(0.05)
    assert g.get(timeout=3) == "stop"
    assert b"".join(d for d, _ in seen) == b"onetwothree!"
    assert all(in_hub for _, in_hub in seen)      # no greenlet switch per read
    a.sendall(b"later")                           # not streaming: nothing reads it
    gevent.sleep(0.05)
    assert len(seen) == 3 and rx.recv(100) == b"later"
    a.close()
    assert rx.stream(on_data) is None             # EOF
    rx.close()
    b.close()


def test_stream_raises_the_callbacks_error_and_the_idle_bound_in_the_owner():
    a, b = gsocket.socketpair()
    rx = Receiver(b)

    def on_data(data):
        raise ValueError(data)

    g = gevent.spawn(rx.stream, on_data)
    a.sendall(b"bad")
    g.join(timeout=3)
    assert isinstance(g.exception, ValueError) and g.exception.args == (b"bad",)
    rx.set_idle_timeout(0.2)
    g = gevent.spawn(rx.stream, lambda data: None)
    a.sendall(b"x")
    g.join(timeout=3)
    assert isinstance(g.exception, socket.timeout)
    rx.close()
    a.close()
    b.close()


def test_merged_read_pauses_after_small_reads_and_loses_nothing():
    """SRS's publish.mr: small reads pause reading for mr_latency, so 100 writes in 1 s are
    taken in a handful of reads (and not one byte is lost); without it, about one each."""
    def reads_for(merge):
        a, b = gsocket.socketpair()
        rx = Receiver(b)
        sizes = []

        def on_data(data):
            sizes.append(len(data))
            return "done" if sum(sizes) >= 10000 else None

        g = gevent.spawn(rx.stream, on_data, 65536, merge)
        for _ in range(100):
            a.sendall(b"m" * 100)
            gevent.sleep(0.01)
        assert g.get(timeout=3) == "done"
        rx.close()
        a.close()
        b.close()
        return sizes

    merged, plain = reads_for(0.2), reads_for(0.0)
    assert sum(merged) == sum(plain) == 10000
    assert len(merged) <= 10 < 60 <= len(plain), (len(merged), len(plain))


def test_merged_reader_that_goes_silent_is_closed_by_the_idle_bound():
    """A publisher stops sending while the merged reader pauses: the idle bound still fires in
    the owner, and the paused read's timer is gone with it (nothing reads afterwards)."""
    a, b = gsocket.socketpair()
    rx = Receiver(b)
    rx.set_idle_timeout(0.3)
    got = []
    g = gevent.spawn(rx.stream, lambda data: got.append(data), 65536, 0.1)
    for _ in range(3):
        a.sendall(b"small")
        gevent.sleep(0.05)
    g.join(timeout=3)
    assert isinstance(g.exception, socket.timeout) and b"".join(got) == b"small" * 3
    assert rx._merge_timer is None and not rx.watcher.active
    rx.close()
    a.close()
    b.close()
