"""The edge's upstream links under stress (issue 14, defects 4 and 5).

- One owner per upstream socket: a fake origin floods the edge's push link with ping requests
  while reading slowly, so the edge's writer blocks in sendall while pings arrive. Before the
  redesign a second greenlet answered the pings with its own sendall: bytes could interleave
  inside a chunk or gevent raised ConcurrentObjectUseError and the link died.
- The pull link never dies silently: a sink that raises on the edge used to kill the ingester
  while its state stayed `connected`, so its players and every new player got nothing.
"""
import socket
import threading
import time

from lib.rtmp import session as rs
from lib.rtmp.message import CSID_CONTROL, MSG_USER_CONTROL, UC_PING_REQUEST, user_control
from tests.conftest import ORIGIN_CONF, free_port, wait_for
from tests.rtmpclient import RtmpTestClient
from tests.test_http import ServerThread
from tests.test_nothing_lost import AUDIO_SH, VIDEO_SH, audio_frame, frame_numbers, video_frame


class PingingSlowOrigin(threading.Thread):
    """Accepts one publish, sends a ping request every ~3 ms and reads at most 64 KB per ~3 ms
    (a small receive buffer), so an edge pushing fast is blocked in sendall most of the time."""

    def __init__(self):
        super().__init__(daemon=True)
        self.listener = socket.socket()
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8192)
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(1)
        self.port = self.listener.getsockname()[1]
        self.media = []
        self.pongs = 0
        self.error = None
        self.stop = threading.Event()

    def run(self):
        conn, _ = self.listener.accept()
        conn.settimeout(0.005)
        sess = rs.ServerSession()
        n = 0
        try:
            while not self.stop.is_set():
                try:
                    data = conn.recv(65536)
                    if not data:
                        return
                except socket.timeout:
                    data = b""
                for ev in sess.feed(data) if data else []:
                    if isinstance(ev, rs.ConnectRequest):
                        sess.accept_connect()
                    elif isinstance(ev, rs.PublishRequest):
                        sess.accept_publish()
                    elif isinstance(ev, rs.Media):
                        self.media.append((ev.type_id, ev.timestamp, bytes(ev.payload)))
                self.pongs = sess.pongs if hasattr(sess, "pongs") else self.pongs
                if sess.state == "publishing":
                    n += 1
                    sess._send(CSID_CONTROL, MSG_USER_CONTROL, 0, user_control(UC_PING_REQUEST, n))
                out = sess.data_to_send()
                if out:
                    conn.sendall(out)
                time.sleep(0.003)
        except Exception as e:  # noqa: BLE001 - the test reports it
            self.error = e
        finally:
            conn.close()


def test_push_link_has_one_writer_while_pings_flood_in(server_factory):
    origin = PingingSlowOrigin()
    origin.start()
    edge = server_factory(f"""
listen {{port}};
srs_log_tank console;
vhost __defaultVhost__ {{
    cluster {{ mode remote; origin 127.0.0.1:{origin.port}; }}
    play {{ queue_length 600; }}
    publish {{ normal_timeout 60000; }}
}}
""", name="edge")
    # the publisher sends 60 s of media at once and then idles; the push queue holds it all
    # (queue_length 600) and drains it at the slow origin's pace, writer blocked most of the time
    pub = RtmpTestClient(edge.url("live/pings"))
    assert pub.pump_until(lambda: pub.session.state == "connected")
    assert pub.publish()
    pub.send_media(9, 0, VIDEO_SH)
    pub.send_media(8, 0, AUDIO_SH)
    frames = 600                                     # 12 MB: far more than the sockets hold
    for i in range(frames):
        pub.send_media(9, i * 40, video_frame(i, i % 50 == 0) + b"\x00" * 20000)
        pub.send_media(8, i * 40, audio_frame())
    got = wait_for(lambda: len(frame_numbers(origin.media)) >= frames or origin.error, 60)
    log = edge.log_text()                # before the fake origin goes away (that loses the link)
    origin.stop.set()
    assert origin.error is None, f"the origin saw bad bytes: {origin.error!r}"
    assert got and frame_numbers(origin.media) == list(range(frames))
    assert "ConcurrentObjectUseError" not in log and "link lost" not in log, log[-2000:]
    pub.close()


class RaisingOnce:
    """A sink that raises once, on the 30th message any source of the process gets."""
    seen = 0

    def on_publish(self, source):
        pass

    def on_unpublish(self, source):
        pass

    def on_message(self, msg):
        RaisingOnce.seen += 1
        if RaisingOnce.seen == 30:
            raise RuntimeError("a sink bug")


class RaisingSinkPlugin:
    def on_source_created(self, source):
        source.sinks.append(RaisingOnce())


def test_pull_link_crash_is_not_silent_and_new_players_get_a_fresh_link(server_factory,
                                                                         media_file,
                                                                         publisher_factory):
    origin = server_factory(ORIGIN_CONF, name="origin")
    publisher_factory(origin.url(), media_file)
    RaisingOnce.seen = 0
    edge = ServerThread(f"""
listen {free_port()};
http_server {{ enabled on; listen {free_port()}; }}
vhost __defaultVhost__ {{ cluster {{ mode remote; origin 127.0.0.1:{origin.port}; }} }}
""", plugins=[RaisingSinkPlugin()]).start()
    try:
        url = f"rtmp://127.0.0.1:{edge.rtmp_port}/live/livestream"
        first = RtmpTestClient(url)
        assert first.play()
        # the sink raises soon after media starts: the player is told and closed, not left hanging
        first.pump_until(lambda: first.closed, 15)
        assert first.closed, "the player of a crashed link is closed"
        key = "__defaultVhost__/live/livestream"
        assert wait_for(lambda: getattr(edge.server.sources.get(key), "edge", None) is None, 15), \
            "the crashed link released the source"
        second = RtmpTestClient(url)
        assert second.play()
        assert second.pump_until(lambda: sum(1 for t, _, _ in second.media if t == 9) > 10, 15), \
            "a new player gets media from a fresh link"
        second.close()
    finally:
        edge.stop()
