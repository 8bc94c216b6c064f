"""HTTP-FLV players: a kick is never lost, waiting players wait on an event (no polling), and
what we need from pywsgi's internals holds (lib/server/http/flv.py, pywsgi_bridge.py).

In-process servers (tests/test_http.py's ServerThread); our own RTMP client publishes; the
players are raw sockets, so what they receive (a 404, the FLV bytes, the close) is seen as is.
"""
import socket
import time

import gevent
import gevent.socket
import pytest
from gevent import pywsgi

import lib.server.http.flv as flv_mod
import lib.server.http.server as http
from lib.media import flv
from lib.server.http import pywsgi_bridge
from tests.conftest import wait_for
from tests.rtmpclient import RtmpTestClient
from tests.test_http import ServerThread
from tests.test_http_flv import ORIGIN_CONF


@pytest.fixture
def srv(tmp_path):
    s = ServerThread(ORIGIN_CONF.replace("{www}", str(tmp_path))).start()
    yield s
    s.stop()


def publish(srv, stream):
    c = RtmpTestClient(f"rtmp://127.0.0.1:{srv.rtmp_port}/live/{stream}", timeout=10)
    assert c.publish()
    return c


def send_start(pub, media_file):
    """Metadata, sequence headers and the first GOP's start."""
    for tag_type, ts, payload in flv.iter_tags(media_file.read_bytes()):
        if ts > 200:
            break
        pub.session.send_media(tag_type, ts, payload)
    pub.sock.sendall(pub.session.data_to_send())


def open_player(srv, stream):
    s = socket.create_connection(("127.0.0.1", srv.http_port), timeout=10)
    s.sendall(f"GET /live/{stream}.flv HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
    return s


def players(srv):
    return [c for c in list(srv.server.clients.values()) if isinstance(c, flv_mod.FlvPlayer)]


def read_until_closed(sock, within):
    """Everything until the server closes; AssertionError if it is still open after `within`."""
    sock.settimeout(within)
    data = bytearray()
    try:
        while chunk := sock.recv(65536):
            data += chunk
    except socket.timeout:
        raise AssertionError(f"player still open after {within}s, got {bytes(data[:40])!r}") \
            from None
    except ConnectionResetError:
        pass
    return bytes(data)


def test_kick_between_waiting_and_attaching_is_not_lost(srv, media_file, monkeypatch):
    """The API's DELETE or the edge's not-found lands right after the wait ended, while the
    consumer is being made: the player must still go (404, or the stream closes)."""
    pub = publish(srv, "k1")
    real = flv_mod.Consumer

    def consumer_with_a_kick(*args, **kwargs):
        for player in players(srv):
            player.kick("test: kicked between waiting and attaching")
        return real(*args, **kwargs)

    monkeypatch.setattr(flv_mod, "Consumer", consumer_with_a_kick)
    sock = open_player(srv, "k1")
    assert wait_for(lambda: players(srv), 15)
    send_start(pub, media_file)
    read_until_closed(sock, 5)
    sock.close()
    assert wait_for(lambda: not players(srv), 15)
    pub.close()


class KickLater:
    """A plugin kicking each player 0.3 s after it came in (in the server's own hub)."""

    def before_play(self, conn, source):
        gevent.spawn_later(0.3, conn.kick, "test: kicked while waiting")


def test_kick_while_waiting_answers_404(tmp_path):
    srv = ServerThread(ORIGIN_CONF.replace("{www}", str(tmp_path)), plugins=[KickLater()]).start()
    try:
        pub = publish(srv, "k2")
        sock = open_player(srv, "k2")
        assert read_until_closed(sock, 5).startswith(b"HTTP/1.1 404")
        sock.close()
        assert wait_for(lambda: not players(srv), 15)
        pub.close()
    finally:
        srv.stop()


class WaitCounter:
    """Counts every wait a waiting player makes (gevent.wait and Event.wait in lib.server.http.flv):
    a player woken by its source's first media waits once; a 50 ms poll waits 20 times a second."""

    def __init__(self, monkeypatch):
        self.calls = 0
        counter = self

        class CountingGevent:
            def __getattr__(self, name):
                return getattr(gevent, name)

            def wait(self, *args, **kw):
                counter.calls += 1
                return gevent.wait(*args, **kw)

        class CountingEvent(flv_mod.Event):
            def wait(self, *args, **kw):
                counter.calls += 1
                return super().wait(*args, **kw)

        monkeypatch.setattr(flv_mod, "gevent", CountingGevent(), raising=False)
        monkeypatch.setattr(flv_mod, "Event", CountingEvent)


def test_waiting_players_wait_on_an_event(srv, media_file, monkeypatch):
    pub = publish(srv, "w1")
    waits = WaitCounter(monkeypatch)
    socks = [open_player(srv, "w1") for _ in range(5)]
    assert wait_for(lambda: len(players(srv)) == 5, 15)
    time.sleep(1.0)                     # 5 players waiting: a 50 ms poll would wait 100 times
    assert 1 <= waits.calls <= 10, waits.calls
    send_start(pub, media_file)
    for s in socks:                     # the first media wakes them all at once
        s.settimeout(5)
        assert s.recv(12).startswith(b"HTTP/1.1 200")
        s.close()
    pub.close()


def test_pywsgi_bridge_against_real_pywsgi():
    """What the bridge needs from gevent.pywsgi: if a gevent release changes it, this fails."""
    pywsgi_bridge.check()
    raw = b"HTTP/1.1 200 OK\r\nContent-Type: video/x-flv\r\n\r\nRAW-STREAM-BYTES"

    def app(environ, start_response):
        pywsgi_bridge.raw_socket(environ).sendall(raw)
        assert pywsgi_bridge.client_address(environ)[0] == "127.0.0.1"
        return pywsgi_bridge.written_by_app(environ, start_response, "200 OK",
                                            [("Content-Type", "video/x-flv")])

    server = pywsgi.WSGIServer(("127.0.0.1", 0), app, handler_class=http._Handler, log=None)
    server.start()
    try:
        client = gevent.socket.create_connection(("127.0.0.1", server.server_port), timeout=5)
        request = b"GET /a.flv HTTP/1.1\r\nHost: x\r\n\r\n"
        client.sendall(request * 2)     # keep-alive: a second request must not be answered
        data = bytearray()
        while chunk := client.recv(65536):
            data += chunk
        client.close()
    finally:
        server.stop(timeout=1)
    assert bytes(data) == raw           # nothing written by pywsgi, then the connection closed
