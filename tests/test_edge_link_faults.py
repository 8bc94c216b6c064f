"""Edge links under origin faults (issue 20, points 12-14), against scripted fake origins.

- 12: a link's write timeout is its own (SRS_CONSTS_RTMP_TIMEOUT), not whatever the connect
  deadline left: an origin slow to answer publish and then briefly slow to read must not
  make the link fail.
- 13: media the edge read before its link failed reaches the players at once, not at the next
  successful read (which may never come).
- 14: an edge publish whose setup times out (or whose encoder leaves) leaves no Pusher behind:
  the origin's connection is closed and the encoder's retry is accepted.
"""
import array
import fcntl
import socket
import struct
import termios
import threading
import time

import gevent
import pytest

from lib.rtmp import session as rs
from lib.rtmp.message import CSID_CONTROL, MSG_USER_CONTROL, UC_PING_REQUEST, user_control
from lib.server.edge.push import Pusher
from lib.server.edge.upstream import RECV_SIZE, LinkError, RtmpLink, open_stream
from lib.server.rtmp import connection
from tests.conftest import free_port, wait_for
from tests.rtmpclient import RtmpTestClient
from tests.test_http import ServerThread
from tests.test_nothing_lost import AUDIO_SH, VIDEO_SH, audio_frame, frame_numbers, video_frame


class FakeOrigin(threading.Thread):
    """Accepts connections and runs `script(origin, conn, session, index)` for each in a thread
    of its own. The script decides what the origin answers; `pump` reads and answers connect."""

    def __init__(self, script, rcvbuf=None):
        super().__init__(daemon=True)
        self.script = script
        self.listener = socket.socket()
        if rcvbuf:
            self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(8)
        self.port = self.listener.getsockname()[1]
        self.connections = 0
        self.closed = []            # indexes of connections the edge closed
        self.media = {}             # index -> [(type, ts, payload)]
        self.errors = []
        self.stop = threading.Event()

    def run(self):
        while not self.stop.is_set():
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            index = self.connections
            self.connections += 1
            self.media[index] = []
            threading.Thread(target=self._serve, args=(conn, index), daemon=True).start()

    def _serve(self, conn, index):
        try:
            self.script(self, conn, rs.ServerSession(), index)
        except (ConnectionError, OSError):
            pass
        except Exception as e:  # noqa: BLE001 - the test reports it
            self.errors.append(e)
        finally:
            conn.close()

    def pump(self, conn, sess, index, until, timeout=10.0):
        """Read and answer (connect is accepted) until `until(sess)`; False when the edge
        closed the connection first."""
        deadline = time.monotonic() + timeout
        while not until(sess):
            conn.settimeout(max(0.01, deadline - time.monotonic()))
            data = conn.recv(65536)
            if not data:
                self.closed.append(index)
                return False
            for ev in sess.feed(data):
                if isinstance(ev, rs.ConnectRequest):
                    sess.accept_connect()
                elif isinstance(ev, rs.Media):
                    self.media[index].append((ev.type_id, ev.timestamp, bytes(ev.payload)))
            out = sess.data_to_send()
            if out:
                conn.sendall(out)
        return True

    def close(self):
        self.stop.set()
        self.listener.close()


def reset(conn, timeout=5.0):
    """Close with an RST, as a killed origin's kernel does, once the peer's kernel has every
    byte sent (an RST drops what is still unsent)."""
    deadline = time.monotonic() + timeout
    while unsent(conn) and time.monotonic() < deadline:
        time.sleep(0.005)
    conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    conn.close()


def unsent(conn):
    buf = array.array("i", [0])
    fcntl.ioctl(conn.fileno(), termios.TIOCOUTQ, buf)
    return buf[0]


# ---------------------------------------------------------------- point 12

def test_write_timeout_is_not_what_the_connect_deadline_left():
    """The origin answers publish just before the setup deadline (so the last blocking read
    had ~0.4 s left), then stops reading for 1.5 s while the link writes 8 MB."""
    connect_timeout = 0.5                  # the publish wait is connect_timeout + 2
    answered = threading.Event()

    def script(origin, conn, sess, index):
        origin.pump(conn, sess, index, lambda s: s.state == "publish_pending")
        time.sleep(connect_timeout + 2 - 0.45)
        sess._send(CSID_CONTROL, MSG_USER_CONTROL, 0, user_control(UC_PING_REQUEST, 1))
        conn.sendall(sess.data_to_send())  # the link's last blocking read starts after this
        time.sleep(0.2)
        sess.accept_publish()
        conn.sendall(sess.data_to_send())
        answered.set()
        time.sleep(1.5)                    # a short stall in reading
        origin.pump(conn, sess, index, lambda s: False, timeout=30)

    origin = FakeOrigin(script, rcvbuf=8192)
    origin.start()
    try:
        tc_url = f"rtmp://127.0.0.1:{origin.port}/live"
        link = open_stream(("127.0.0.1", origin.port), tc_url, "live", "slow", "publish",
                           timeout=connect_timeout)
        assert answered.is_set()
        frames = 200
        for i in range(frames):            # 8 MB: far more than the sockets hold
            link.session.send_media(9, i * 40, video_frame(i, i == 0) + b"\x00" * 40000)
            link.flush()                   # LinkError before the fix: "write failed: timed out"
        assert wait_for(lambda: len(frame_numbers(origin.media[0])) == frames, 20)
        link.close()
        assert origin.connections == 1 and not origin.errors
    finally:
        origin.close()


# ---------------------------------------------------------------- point 13

def edge_thread(origin_port, extra=""):
    return ServerThread(f"""
listen {free_port()};
http_server {{ enabled on; listen {free_port()}; }}
vhost __defaultVhost__ {{
    cluster {{ mode remote; origin 127.0.0.1:{origin_port}; }}
    {extra}
}}
""").start()


@pytest.mark.parametrize("ending", ["unpublish_notify", "reset"])
def test_media_read_before_a_link_failure_reaches_players_at_once(ending):
    """The first link sends N frames and fails in the same burst (an UnpublishNotify, or an
    RST after more than one read's worth); later links play but never send media. The
    players must get all N frames promptly: no later read will flush them."""
    frames = 40
    pad = 0 if ending == "unpublish_notify" else 12000    # reset: ~500 KB, two reads' worth
    hold = threading.Event()

    def script(origin, conn, sess, index):
        if index > 0:                      # later links: the origin never answers
            hold.wait(30)
            return
        if not origin.pump(conn, sess, index, lambda s: s.state == "play_pending"):
            return
        sess.accept_play()
        sess._send(6, 9, 1, VIDEO_SH)
        sess._send(4, 8, 1, AUDIO_SH)
        for i in range(frames):
            sess._send(6, 9, 1, video_frame(i, i == 0) + b"\x00" * pad, i * 40)
            sess._send(4, 8, 1, audio_frame(), i * 40)
        if ending == "unpublish_notify":
            sess._on_status("NetStream.Play.UnpublishNotify", "stream is unpublished")
            conn.sendall(sess.data_to_send())
            hold.wait(30)
        else:
            conn.sendall(sess.data_to_send())
            reset(conn)

    origin = FakeOrigin(script)
    origin.start()
    edge = edge_thread(origin.port)
    try:
        player = RtmpTestClient(f"rtmp://127.0.0.1:{edge.rtmp_port}/live/faulty")
        assert player.play()
        got = player.pump_until(lambda: len(frame_numbers(player.media)) >= frames, 3)
        assert got, (f"the player got {len(frame_numbers(player.media))} of {frames} frames; "
                     f"links opened: {origin.connections}")
        assert frame_numbers(player.media) == list(range(frames))
        player.close()
    finally:
        hold.set()
        edge.stop()
        origin.close()


class ScriptedSocket:
    """recv() hands out the scripted results in order: bytes, or an exception to raise."""

    def __init__(self, *results):
        self.results = list(results)

    def recv(self, size):
        r = self.results.pop(0)
        if isinstance(r, BaseException):
            raise r
        return r


class CountingSession:
    def read_messages(self, data):
        return [len(data)]

    feed = read_messages


@pytest.mark.parametrize("failure", [ConnectionResetError(104, "Connection reset by peer"), b""])
def test_read_available_returns_what_it_read_before_a_failure(failure):
    """A full read, then a reset (or a close) in the same call: the events of the full read
    come back first, the failure on the next call (it used to drop them)."""
    link = RtmpLink(ScriptedSocket(b"x" * RECV_SIZE, failure), CountingSession(), ("o", 1))
    assert link.read_available(raw=True) == [RECV_SIZE]
    assert link.readable, "the owner comes back at once for the failure"
    with pytest.raises(LinkError):
        link.read_available(raw=True)


# ---------------------------------------------------------------- point 14

def busy_name_origin(answer_first):
    """Like an origin: a name stays busy while its publisher is connected. The first publish is
    answered only once `answer_first` is set (if the edge still holds it)."""
    state = {"publishing": 0}

    def script(origin, conn, sess, index):
        if not origin.pump(conn, sess, index, lambda s: s.state == "publish_pending"):
            return
        if index == 0:
            while not answer_first.wait(0.05):
                if closed_by_peer(conn):
                    origin.closed.append(index)
                    return
        if state["publishing"]:
            sess.reject("NetStream.Publish.BadName", "Stream already publishing")
            conn.sendall(sess.data_to_send())
            return
        state["publishing"] += 1
        try:
            sess.accept_publish()
            conn.sendall(sess.data_to_send())
            origin.pump(conn, sess, index, lambda s: False, timeout=60)
        finally:
            state["publishing"] -= 1

    return script


def closed_by_peer(conn):
    try:
        return conn.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT) == b""
    except BlockingIOError:
        return False
    except OSError:
        return True


def pushers(edge, key):
    src = edge.server.sources.get(key)
    return [] if src is None else [s for s in src.sinks if isinstance(s, Pusher)]


def encoder(url):
    pub = RtmpTestClient(url)
    assert pub.pump_until(lambda: pub.session.state == "connected")
    pub.session.publish(pub.stream)
    pub.sock.sendall(pub.session.data_to_send())
    assert pub.pump_until(lambda: pub.session.state != "creating")     # publish is sent
    return pub


@pytest.mark.parametrize("how", ["setup_timeout", "encoder_left"])
def test_edge_publish_setup_that_ends_leaves_no_pusher(how, monkeypatch):
    if how == "setup_timeout":
        monkeypatch.setattr(connection, "SETUP_TIMEOUT", 1.0)
    answer_first = threading.Event()
    origin = FakeOrigin(busy_name_origin(answer_first))
    origin.start()
    edge = edge_thread(origin.port)
    key = "__defaultVhost__/live/cam"
    url = f"rtmp://127.0.0.1:{edge.rtmp_port}/live/cam"
    try:
        first = encoder(url)
        assert wait_for(lambda: origin.connections == 1, 5)
        if how == "setup_timeout":          # the edge gives up on the encoder after 1 s
            assert first.pump_until(lambda: first.closed, 10), "the setup timeout closed it"
        else:
            first.close()                  # the encoder leaves while the edge waits
        # the edge lets go of the origin's connection at once and keeps no Pusher
        assert wait_for(lambda: 0 in origin.closed, 3), "the edge still holds the origin link"
        assert wait_for(lambda: not pushers(edge, key), 3), "a Pusher stayed in source.sinks"
        answer_first.set()
        retry = encoder(url)
        assert retry.pump_until(lambda: retry.session.state in ("publishing", "closed"), 10)
        assert retry.session.state == "publishing", retry.statuses
        retry.session.send_media(9, 0, VIDEO_SH)
        retry.sock.sendall(retry.session.data_to_send())
        assert wait_for(lambda: any(origin.media.get(i) for i in range(1, origin.connections)), 5)
        retry.close()
        assert not origin.errors, origin.errors
    finally:
        answer_first.set()
        edge.stop()
        origin.close()
