"""HTTP-FLV: ffmpeg publishes over RTMP, ffprobe/ffmpeg play over HTTP; missing streams are 404
at once; on an edge vhost HTTP-FLV players start the edge's pull from the origin like RTMP
players (and get 404 when no origin has the stream); on_play hooks; nothing follows the FLV
bytes.
"""
import socket
import time

import pytest
import requests

from tests.conftest import ffprobe_streams, need_tool, wait_for
from tests.test_http import ServerThread

ORIGIN_CONF = """
listen 127.0.0.1:0;
srs_log_tank console;
http_server { enabled on; listen 127.0.0.1:0; dir {www}; }
vhost __defaultVhost__ {
    http_remux { enabled on; mount [vhost]/[app]/[stream].flv; }
    play { publisher_wait 3; }
}
"""

EDGE_CONF = """
listen 127.0.0.1:0;
srs_log_tank console;
http_server { enabled on; listen 127.0.0.1:0; dir {www}; }
vhost __defaultVhost__ {
    cluster { mode remote; origin 127.0.0.1:{origin}; edge_idle_timeout 1; }
    http_remux { enabled on; mount [app]/[stream].flv; }
}
vhost dead.test {
    cluster { mode remote; origin 127.0.0.1:1; }
    play { publisher_wait 1; }
    http_remux { enabled on; mount [vhost]/[app]/[stream].flv; }
}
vhost hooked.test {
    cluster { mode remote; origin 127.0.0.1:{origin}; }
    http_remux { enabled on; mount [vhost]/[app]/[stream].flv; }
    http_hooks { enabled on; on_play http://127.0.0.1:1/api/play; }
}
"""
KEY = "__defaultVhost__/live/livestream"


def parse_tags(data, pos=13):
    """FLV tags from `pos`: ([(type, timestamp, payload)], position after the last whole tag)."""
    tags = []
    while pos + 15 <= len(data):
        size = int.from_bytes(data[pos + 1:pos + 4], "big")
        end = pos + 11 + size + 4
        if end > len(data):
            break
        ts = int.from_bytes(data[pos + 4:pos + 7], "big") | data[pos + 7] << 24
        tags.append((data[pos], ts, data[pos + 11:pos + 11 + size]))
        pos = end
    return tags, pos


class Recorder:
    """A plugin that notes what the server tells plugins about each player."""

    def __init__(self):
        self.before = []
        self.after = []

    def before_play(self, conn, source):
        self.before.append({"kind": type(conn).__name__, "app": conn.req.app,
                            "stream": conn.req.stream, "param": conn.req.param,
                            "vhost": conn.vhost_conf.name, "edge": conn.vhost_conf.is_edge,
                            "cid": conn.cid, "log_cid": conn.log.cid, "ip": conn.ip})

    def after_play(self, conn, source):
        self.after.append(conn.cid)


@pytest.fixture(scope="module")
def origin(tmp_path_factory):
    www = tmp_path_factory.mktemp("flv-www")
    s = ServerThread(ORIGIN_CONF.replace("{www}", str(www))).start()
    yield s
    s.stop()


@pytest.fixture
def published(origin, media_file, publisher_factory):
    need_tool("ffprobe")
    pub = publisher_factory(f"rtmp://127.0.0.1:{origin.rtmp_port}/live/livestream", media_file)
    source = wait_for(lambda: (s := origin.server.sources.get(KEY)) and s.video_sh and s.audio_sh
                      and s.gop.items and s, timeout=15)
    assert source, "publisher did not start"
    yield pub
    pub.stop()


def test_origin_flv_play(origin, published, player_factory):
    url = origin.url("/live/livestream.flv")
    streams = ffprobe_streams(url)
    assert any("h264" in s for s in streams) and any("aac" in s for s in streams), streams
    player = player_factory(url, 3).wait(timeout=30)
    assert player.returncode == 0, player.stderr[-2000:]
    assert player.has_video and player.has_audio
    assert player.frames >= 50
    assert wait_for(lambda: not origin.server.sources.get(KEY).consumers, timeout=5)


def test_origin_head_and_headers(origin, published):
    r = requests.head(origin.url("/live/livestream.flv"), timeout=5)
    assert r.status_code == 200
    assert r.headers["Content-Type"] == "video/x-flv"
    assert r.headers.get("Content-Length") is None and r.content == b""
    assert r.headers["Access-Control-Allow-Origin"] == "*"


def test_origin_nothing_after_the_stream(origin, published):
    """The FLV bytes end the response: pywsgi adds nothing when the player leaves."""
    with socket.create_connection(("127.0.0.1", origin.http_port), timeout=5) as s:
        s.sendall(b"GET /live/livestream.flv?token=abc HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        data = b""
        deadline = time.time() + 1.5
        while time.time() < deadline:
            data += s.recv(65536)
        assert wait_for(lambda: [c for c in origin.server.clients.values()
                                 if type(c).__name__ == "FlvPlayer"], timeout=2)
        s.shutdown(socket.SHUT_WR)
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 OK\r\n")
    assert b"\r\nConnection: close" in head and b"\r\nContent-Length:" not in head
    assert body[:3] == b"FLV"
    tags, end = parse_tags(body)
    assert end == len(body), f"{len(body) - end} stray bytes after the last FLV tag"
    assert {t for t, _, _ in tags} >= {8, 9, 18}
    assert wait_for(lambda: not [c for c in origin.server.clients.values()
                                 if type(c).__name__ == "FlvPlayer"], timeout=2)


def test_origin_missing_stream_is_404_after_the_publisher_wait(origin):
    """A player waits for a publisher (as an RTMP player, and as SRS): 404 once
    play.publisher_wait (3 s here) is over, and nothing of the stream stays."""
    t0 = time.monotonic()
    r = requests.get(origin.url("/live/nosuchstream.flv"), timeout=10)
    assert r.status_code == 404
    assert 3.0 <= time.monotonic() - t0 < 6.0
    assert wait_for(lambda: origin.server.sources.get("__defaultVhost__/live/nosuchstream")
                    is None, timeout=2)


@pytest.fixture(scope="module")
def edge(tmp_path_factory, origin):
    www = tmp_path_factory.mktemp("flv-edge-www")
    recorder = Recorder()
    conf = EDGE_CONF.replace("{www}", str(www)).replace("{origin}", str(origin.rtmp_port))
    s = ServerThread(conf, plugins=[recorder]).start()
    s.recorder = recorder
    yield s
    s.stop()


def test_edge_missing_stream_is_404(edge):
    """No origin answers: the player waits play.publisher_wait (1 s here; the edge retries
    every 3 s meanwhile), then 404."""
    t0 = time.monotonic()
    r = requests.get(edge.url("/live/nosuch.flv?token=t1"), headers={"Host": "dead.test"},
                     timeout=10)
    assert r.status_code == 404
    assert time.monotonic() - t0 < 5.0
    seen = edge.recorder.before[-1]
    assert seen == {"kind": "FlvPlayer", "app": "live", "stream": "nosuch", "param": "?token=t1",
                    "vhost": "dead.test", "edge": True, "cid": seen["log_cid"],
                    "log_cid": seen["log_cid"], "ip": "127.0.0.1"}
    assert wait_for(lambda: seen["cid"] in edge.recorder.after, timeout=2)
    assert wait_for(lambda: edge.server.sources.get("dead.test/live/nosuch") is None, timeout=2)


def test_edge_pulls_for_flv_players(edge, origin, published, player_factory):
    url = edge.url("/live/livestream.flv?token=abc")
    streams = ffprobe_streams(url)
    assert any("h264" in s for s in streams) and any("aac" in s for s in streams), streams
    player = player_factory(url, 3).wait(timeout=30)
    assert player.returncode == 0, player.stderr[-2000:]
    assert player.frames >= 50 and player.has_video and player.has_audio
    plays = [p for p in edge.recorder.before if p["stream"] == "livestream"]
    assert len(plays) == 2 and all(p["param"] == "?token=abc" for p in plays)
    assert all(p["kind"] == "FlvPlayer" and p["edge"] for p in plays)
    assert wait_for(lambda: {p["cid"] for p in plays} <= set(edge.recorder.after), timeout=5)
    # the edge stops pulling after its grace period, and the local source goes away
    assert wait_for(lambda: edge.server.sources.get(KEY) is None, timeout=10)


def test_edge_on_play_hook_rejects_with_403(edge):
    seen = len(edge.recorder.before)
    r = requests.get(edge.url("/live/livestream.flv"), headers={"Host": "hooked.test:8080"},
                     timeout=10)
    assert r.status_code == 403
    assert len(edge.recorder.before) == seen
    assert edge.server.sources.get("hooked.test/live/livestream") is None
