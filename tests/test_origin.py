"""Black-box origin tests: real `srsedge.py` processes, real ffmpeg publishers and players."""
import json
import os
import socket
import subprocess
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from lib.media import flv
from tests.conftest import (ORIGIN_CONF, PYTHON, ROOT, ffprobe_streams, free_port, wait_for,
                            wait_live)
from tests.rtmpclient import RtmpTestClient, timestamp_regressions

FPS = 25


def test_play_before_publish_two_players_decode(server_factory, media_file, publisher_factory,
                                                 player_factory):
    srv = server_factory(ORIGIN_CONF)
    url = srv.url()
    players = [player_factory(url, 8) for _ in range(2)]
    time.sleep(1.0)                      # players wait for a stream that does not exist yet
    publisher_factory(url, media_file)
    for p in players:
        p.wait(60)
        assert p.has_video and p.has_audio, p.stderr[-2000:]
        assert p.frames >= 0.95 * 8 * FPS, (p.frames, p.stderr[-2000:])


def test_ffprobe_sees_h264_and_aac(server_factory, media_file, publisher_factory):
    srv = server_factory(ORIGIN_CONF)
    publisher_factory(srv.url(), media_file)
    time.sleep(1.5)
    assert ffprobe_streams(srv.url()) == ["aac,audio", "h264,video"]


def test_late_player_starts_at_keyframe_with_headers(server_factory, media_file, publisher_factory):
    srv = server_factory(ORIGIN_CONF)
    publisher_factory(srv.url(), media_file)
    time.sleep(3.0)                      # mid-GOP: the GOP cache has frames
    c = RtmpTestClient(srv.url())
    t0 = time.time()
    assert c.play()
    assert c.pump_until(lambda: any(t == 9 and not flv.is_video_sequence_header(p)
                                    for t, _, p in c.media), 5)
    first_frame = time.time() - t0
    c.close()
    assert c.statuses[:2] == ["NetStream.Play.Reset", "NetStream.Play.Start"]
    kinds = [(t, flv.is_video_sequence_header(p) or flv.is_audio_sequence_header(p))
             for t, _, p in c.media[:3]]
    assert kinds == [(18, False), (9, True), (8, True)]   # metadata, then both sequence headers
    frames = [p for t, _, p in c.media if t == 9 and not flv.is_video_sequence_header(p)]
    assert flv.is_video_keyframe(frames[0])
    assert first_frame < 1.0


def test_second_publisher_refused_first_keeps_going(server_factory, media_file, publisher_factory):
    srv = server_factory(ORIGIN_CONF)
    first = publisher_factory(srv.url(), media_file)
    assert wait_live(srv.url())                        # the first one publishes
    second = RtmpTestClient(srv.url())
    second.publish()
    assert second.session.state == "closed"
    assert "NetStream.Publish.BadName" in second.statuses
    assert second.pump_until(lambda: second.closed, 15)
    assert first.alive()
    assert wait_for(lambda: "second publisher refused" in srv.log_text())
    viewer = RtmpTestClient(srv.url())
    viewer.play()
    assert viewer.pump_until(lambda: len(viewer.media) > 20, 15)


def test_publisher_reconnect_player_continues_monotonic(server_factory, media_file,
                                                        publisher_factory):
    srv = server_factory(ORIGIN_CONF)
    viewer = RtmpTestClient(srv.url())
    assert viewer.play()
    pub = publisher_factory(srv.url(), media_file)
    assert viewer.pump_until(lambda: len(viewer.media) > 50, 30)
    before = len(viewer.media)
    pub.stop()
    viewer.read_for(1)                                 # the server notices the publisher left

    def headers():
        return [p for t, _, p in viewer.media if t == 9 and flv.is_video_sequence_header(p)]

    publisher_factory(srv.url(), media_file)
    # the second publisher's sequence headers and media reach the player
    assert viewer.pump_until(lambda: len(headers()) >= 2 and len(viewer.media) > before + 50, 30)
    assert not viewer.closed
    assert timestamp_regressions(viewer.media) == 0


class HookRecorder(BaseHTTPRequestHandler):
    calls = []

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        HookRecorder.calls.append(body)
        bad = "token=bad" in body.get("param", "")
        answer = b'{"code": 403}' if bad else b"0"
        self.send_response(200)
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

    def log_message(self, *args):
        pass


@pytest.fixture
def hook_server():
    HookRecorder.calls = []
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), HookRecorder)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/api/v1/hooks"
    httpd.shutdown()


def test_hooks_accept_reject_and_pairing(server_factory, media_file, publisher_factory, hook_server):
    conf = ORIGIN_CONF.replace("vhost __defaultVhost__ { }", f"""
vhost __defaultVhost__ {{
    http_hooks {{
        enabled on;
        on_connect {hook_server};
        on_close {hook_server};
        on_publish {hook_server};
        on_unpublish {hook_server};
        on_play {hook_server};
        on_stop {hook_server};
    }}
}}""")
    srv = server_factory(conf)
    bad = publisher_factory(srv.url("live/livestream?token=bad"), media_file)
    assert wait_for(lambda: not bad.alive(), 10)
    good = publisher_factory(srv.url("live/livestream?token=good"), media_file)
    time.sleep(1.5)
    assert good.alive()
    refused = RtmpTestClient(srv.url("live/livestream?token=bad"))
    refused.play()
    assert "NetStream.Play.StreamNotFound" in refused.statuses
    viewer = RtmpTestClient(srv.url("live/livestream?token=good"))
    assert viewer.play()
    assert viewer.pump_until(lambda: len(viewer.media) > 10, 15)
    viewer.close()
    good.stop()
    actions = lambda: [c["action"] for c in HookRecorder.calls]  # noqa: E731
    assert wait_for(lambda: actions().count("on_unpublish") == 1 and "on_stop" in actions()
                    and actions().count("on_close") == 2, 10)
    acts = actions()
    # SRS 7: on_connect sees the stream's query, so the bad token is refused there already
    assert acts.count("on_connect") == 4
    assert acts.count("on_publish") == 1
    assert acts.count("on_unpublish") == 1          # only the accepted one is paired
    assert acts.count("on_play") == 1 and acts.count("on_stop") == 1
    assert acts.count("on_close") == 2              # after the two accepted on_connects
    pub = [c for c in HookRecorder.calls if c["action"] == "on_publish"][0]
    assert pub["stream"] == "livestream" and pub["param"] == "?token=good"
    assert pub["app"] == "live" and pub["vhost"] == "__defaultVhost__"
    assert "on_connect rejected" in srv.log_text() and "token=bad" not in srv.log_text()


def test_hook_server_down_rejects_with_log_line(server_factory, media_file, publisher_factory):
    dead = f"http://127.0.0.1:{free_port()}/hook"
    conf = ORIGIN_CONF.replace("vhost __defaultVhost__ { }",
                               f"vhost __defaultVhost__ {{ http_hooks {{ enabled on; on_publish {dead}; }} }}")
    srv = server_factory(conf)
    pub = publisher_factory(srv.url(), media_file)
    assert wait_for(lambda: not pub.alive(), 10)
    assert wait_for(lambda: "on_publish rejected" in srv.log_text(), 15)


# ---------------------------------------------------------------- CLI, config, pid, limits

def run_cli(*args):
    return subprocess.run([PYTHON, "srsedge.py", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=30)


@pytest.mark.parametrize("conf", ["conf/srs.conf", "conf/origin.conf", "conf/edge.conf"])
def test_shipped_configs_pass_t(conf):
    res = run_cli("-t", "-c", conf)
    assert res.returncode == 0, res.stderr
    assert "test is successful" in res.stdout


def test_bad_config_names_file_line_and_directive(tmp_path):
    bad = tmp_path / "bad.conf"
    bad.write_text("listen 1935;\nvhost __defaultVhost__ {\n    cluster {\n        mode remote;\n"
                   "        orign 127.0.0.1;\n    }\n}\n")
    res = run_cli("-t", str(bad))
    assert res.returncode == 1
    assert f"{bad}:5:" in res.stderr and "vhost.cluster.orign" in res.stderr


def test_version_flag():
    res = run_cli("-v")
    assert res.returncode == 0 and res.stdout.strip()


def test_pid_file_refuses_second_instance(server_factory, tmp_path):
    srv = server_factory(ORIGIN_CONF)
    pid_path = srv.dir / "srs.pid"
    assert wait_for(lambda: pid_path.exists(), 15)
    assert int(pid_path.read_text()) == srv.proc.pid
    other = tmp_path / "other.conf"
    other.write_text(f"listen {free_port()};\npid {pid_path};\nsrs_log_tank console;\n"
                     "vhost __defaultVhost__ { }\n")
    res = run_cli("-c", str(other))
    assert res.returncode == 1 and "another instance" in res.stderr
    srv.stop()
    assert not pid_path.exists()


def test_max_connections_enforced_at_accept(server_factory):
    srv = server_factory(ORIGIN_CONF.replace("listen {port};", "listen {port};\nmax_connections 2;"))
    held = [socket.create_connection(("127.0.0.1", srv.port)) for _ in range(2)]
    for s in held:                                     # each one is counted: its handshake runs
        s.sendall(b"\x03" + bytes(1536))
        s.settimeout(30)
        assert s.recv(1) == b"\x03"
    extra = socket.create_connection(("127.0.0.1", srv.port))
    extra.settimeout(3)
    assert extra.recv(10) == b""                       # closed at once
    assert wait_for(lambda: "max_connections 2 reached" in srv.log_text(), 15)
    for s in held + [extra]:
        s.close()


def test_log_file_tank_and_context_ids(server_factory, media_file, publisher_factory):
    srv = server_factory(ORIGIN_CONF.replace("srs_log_tank console;",
                                             "srs_log_tank file;\nsrs_log_file {dir}/file.log;"))
    publisher_factory(srv.url(), media_file)
    log = srv.dir / "file.log"
    assert wait_for(lambda: log.exists() and "publish __defaultVhost__" in log.read_text(), 10)
    lines = [line for line in log.read_text().splitlines() if "publish __defaultVhost__" in line]
    assert lines and lines[0].count("][") >= 3     # [time][level][pid][cid]
    assert os.path.getsize(log) < 20000            # nothing per packet


def test_metadata_then_a_pause_inside_the_first_packet_window_is_not_cut(server_factory):
    """As SRS (SrsRtmpConn::do_publishing): the first window is firstpkt_timeout long whatever
    arrives in it, normal_timeout bounds the silences after it. ffmpeg's tee sends onMetaData on
    each output as it opens it and media only once all are open: with 50 outputs the first
    waited more than 5 s and srsedge cut it at normal_timeout."""
    from lib.rtmp import amf0
    srv = server_factory(ORIGIN_CONF.replace(
        "vhost __defaultVhost__ { }",
        "vhost __defaultVhost__ { publish { firstpkt_timeout 3000; normal_timeout 1000; } }"))
    c = RtmpTestClient(srv.url())
    assert c.publish() and c.session.state == "publishing"
    t0 = time.time()
    c.send_media(18, 0, amf0.encode("@setDataFrame", "onMetaData", {"duration": 0.0}))
    c.read_for(2.0)                                 # twice normal_timeout, inside firstpkt
    assert not c.closed
    c.send_media(9, 0, b"\x17\x00\x00\x00\x00" + b"\x00" * 20)
    c.send_media(8, 0, b"\xaf\x00\x12\x10")
    assert c.pump_until(lambda: c.closed, 15)       # now silent: cut after the window
    waited = time.time() - t0
    assert 3.9 <= waited < 7, waited                # window end (3 s) + normal_timeout (1 s)
    assert wait_for(lambda: "publisher sent no media for 1s" in srv.log_text(), 3)


def test_idle_publisher_closed_after_firstpkt_timeout(server_factory):
    srv = server_factory(ORIGIN_CONF.replace("vhost __defaultVhost__ { }",
                                             "vhost __defaultVhost__ { publish { firstpkt_timeout 1000; } }"))
    c = RtmpTestClient(srv.url())
    assert c.publish() and c.session.state == "publishing"
    t0 = time.time()
    assert c.pump_until(lambda: c.closed, 15)
    assert time.time() - t0 < 3
    assert wait_for(lambda: "publisher sent no media for 1s" in srv.log_text(), 3)
    again = RtmpTestClient(srv.url())               # the stream is free again
    assert again.publish() and again.session.state == "publishing"
