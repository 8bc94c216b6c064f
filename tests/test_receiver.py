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
    rx.set_idle_timeout(0.3)
    got = []

    def reader():
        while True:
            got.append(rx.recv(65536))

    g = gevent.spawn(reader)
    for _ in range(6):                    # bytes every 0.1 s keep it alive past the bound
        a.sendall(b"x" * 100)
        gevent.sleep(0.1)
    assert not g.dead and sum(map(len, got)) == 600
    t0 = time.monotonic()
    g.join(timeout=3)
    assert g.dead and isinstance(g.exception, socket.timeout)
    assert 0.2 <= time.monotonic() - t0 < 1.0
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
