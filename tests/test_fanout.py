"""Fan-out behaviour under slow players, with real processes."""
import socket
import time

from tests.conftest import ORIGIN_CONF, wait_for, wait_live
from tests.rtmpclient import RtmpTestClient, longest_pause, read_all

SMALL_QUEUE = ORIGIN_CONF.replace("vhost __defaultVhost__ { }",
                                  "vhost __defaultVhost__ { play { queue_length 2; mw_latency 100; } }")


def rss_kb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def test_stuck_player_costs_nothing_to_others(server_factory, media_file,
                                                          publisher_factory):
    srv = server_factory(SMALL_QUEUE)
    publisher_factory(srv.url(), media_file)
    time.sleep(1)
    stuck = RtmpTestClient(srv.url())
    stuck.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    assert stuck.play()
    fast = RtmpTestClient(srv.url())
    assert fast.play()
    start = time.time()
    rss_before = rss_kb(srv.proc.pid)
    fast.read_for(8)                       # the stuck player reads nothing meanwhile
    assert longest_pause(fast, start + 0.5) < 1.0
    assert rss_kb(srv.proc.pid) - rss_before < 20000
    assert not fast.closed


def test_many_players_one_publisher(server_factory, media_file, publisher_factory):
    srv = server_factory(ORIGIN_CONF)
    publisher_factory(srv.url(), media_file)
    assert wait_live(srv.url())            # publishing (an event, not a sleep)
    players = [RtmpTestClient(srv.url()) for _ in range(30)]
    for p in players:
        assert p.play()

    def counts():
        return [sum(1 for t, _, _ in p.media if t == 9) for p in players]

    deadline = time.time() + 30            # every player gets 2 s of video and more
    while min(counts()) <= 50 and time.time() < deadline:
        read_all(players, 1)
    assert min(counts()) > 50, counts()
    for p in players:
        p.close()
    assert wait_for(lambda: srv.log_text().count("closed the connection") >= 30, 15)
