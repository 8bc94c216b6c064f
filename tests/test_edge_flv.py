"""Edge pull over HTTP-FLV and HTTPS-FLV (SRS 5+: `cluster { mode remote; origin HOST:PORT;
protocol flv|flvs; }`): real origin and edge processes. The origin list names the origins'
HTTP(S) ports; the edge GETs `http(s)://origin/app/stream.flv?param` with the same link machine
as over RTMP (failover, not found, grace period).

What SRS 7.0.18 did as origin (SRS_BIN, test_real_srs_origin_over_http_flv; also seen with
curl): a published stream is answered `200`, `Connection: Close`, `Transfer-Encoding: chunked`
and our edge plays it like ours; an absent stream's GET is held without any answer (curl gave
up after 40 s with no status line), so our edge gives that origin up at its connect-phase
deadline (3 s, no response head) instead of at a 404 as with our origins."""
import os
import signal
import socket
import subprocess
import threading
import time

import pytest
import requests

from lib.media import flv
from tests.conftest import free_port, wait_for, wait_port
from tests.rtmpclient import RtmpTestClient, read_all, timestamp_regressions
from tests.test_https import self_signed

ORIGIN = """
listen {port};
srs_log_tank console;
http_server { enabled on; listen 127.0.0.1:HTTP; dir {dir};
              HTTPS }
vhost __defaultVhost__ {
    http_remux { enabled on; mount [vhost]/[app]/[stream].flv; }
    play { publisher_wait 0; }      # an absent stream is 404 at once (players do not wait)
}
"""
TLS = ("https { enabled on; listen 127.0.0.1:HTTPS_PORT; key {dir}/server.key; "
       "cert {dir}/server.crt; }")


def origin_conf(http, https=None):
    text = ORIGIN.replace("HTTP;", f"{http};")
    return text.replace("HTTPS", TLS.replace("HTTPS_PORT", str(https)) if https else "")


def edge_conf(ports, protocol="flv", extra="", play=""):
    return f"""
listen {{port}};
srs_log_tank console;
http_server {{ enabled on; listen 127.0.0.1:EDGE_HTTP; dir {{dir}}; }}
vhost __defaultVhost__ {{
    cluster {{
        mode remote;
        origin {' '.join(f'127.0.0.1:{p}' for p in ports)};
        protocol {protocol};
        edge_idle_timeout 2;
        {extra}
    }}
    http_remux {{ enabled on; mount [vhost]/[app]/[stream].flv; }}
    {play}
}}
"""


def start_origin(server_factory, name, tls=False):
    http, https = free_port(), (free_port() if tls else None)
    origin = server_factory(origin_conf(http, https), name=name, start=False)
    if tls:
        self_signed(origin.dir)
    origin.start()
    wait_port(http, proc=origin.proc)
    origin.http, origin.https = http, https
    return origin


def start_edge(server_factory, ports, protocol="flv", extra="", play=""):
    http = free_port()
    edge = server_factory(edge_conf(ports, protocol, extra, play).replace("EDGE_HTTP", str(http)),
                          name="edge")
    wait_port(http, proc=edge.proc)
    edge.http = http
    return edge


def flv_answers(port, path="/live/livestream.flv"):
    """The origin's HTTP-FLV has the stream (200), i.e. its publisher is on."""
    try:
        with requests.get(f"http://127.0.0.1:{port}{path}", stream=True, timeout=2) as r:
            return r.status_code == 200
    except requests.RequestException:
        return False


def pulls(origin):
    return origin.log_text().count("http-flv play __defaultVhost__/live/livestream")


def flv_player_tags(url, seconds):
    """(type, timestamp, payload) of the FLV tags an HTTP-FLV player got in `seconds`."""
    reader, tags = flv.FlvTagReader(), []
    end = time.monotonic() + seconds
    with requests.get(url, stream=True, timeout=5) as r:
        assert r.status_code == 200
        for chunk in r.iter_content(65536):
            tags += reader.feed(chunk)
            if time.monotonic() > end:
                break
    return tags


def assert_plays_everything(player, seconds=3.0):
    read_all([player], seconds)
    assert_plays_everything_tags(player.media, seconds)


def assert_plays_everything_tags(media, seconds):
    """The player got metadata, both sequence headers first, then media with monotonic
    timestamps and no hole."""
    kinds = [t for t, _, _ in media]
    assert 18 in kinds[:3], kinds[:5]                                  # onMetaData
    video = [(ts, p) for t, ts, p in media if t == 9]
    audio = [(ts, p) for t, ts, p in media if t == 8]
    assert video[0][1][:2] == b"\x17\x00" and audio[0][1][:2] == b"\xaf\x00"   # sequence headers
    assert video[1][1][0] >> 4 == 1                                     # then a keyframe
    assert len(video) >= 25 * (seconds - 1.5), len(video)
    assert timestamp_regressions(media) == 0
    steps = [b[0] - a[0] for a, b in zip(video[1:], video[2:])]
    assert max(steps) <= 80, max(steps)                                # 25 fps: no frame lost


def test_edge_pulls_over_http_flv_players_get_every_frame(server_factory, media_file,
                                                         publisher_factory):
    origin = start_origin(server_factory, "origin")
    edge = start_edge(server_factory, [origin.http])
    publisher_factory(origin.url(), media_file)
    assert wait_for(lambda: flv_answers(origin.http), 10)
    probes = wait_for(lambda: pulls(origin), 5)     # flv_answers' own play, once logged
    rtmp = RtmpTestClient(edge.url())
    assert rtmp.play()
    assert_plays_everything(rtmp)
    # the edge's pull is a play at the origin (a retry under load would be a second one)
    assert wait_for(lambda: pulls(origin) > probes, 5)
    linked = pulls(origin)
    assert "pulling livestream from 127.0.0.1" in edge.log_text()
    # players of the edge's own HTTP-FLV share the same upstream link
    tags = flv_player_tags(f"http://127.0.0.1:{edge.http}/live/livestream.flv", 2.5)
    assert_plays_everything_tags(tags, 2.5)
    probe = subprocess.run(["ffprobe", "-v", "error", "-show_entries", "stream=codec_name", "-of",
                            "csv=p=0", f"http://127.0.0.1:{edge.http}/live/livestream.flv"],
                           capture_output=True, text=True, timeout=30)
    assert sorted(set(probe.stdout.split())) == ["aac", "h264"], probe.stderr
    assert pulls(origin) == linked              # the edge's own players added no link
    rtmp.close()


def test_failover_between_two_http_flv_origins(server_factory, media_file, publisher_factory):
    a = start_origin(server_factory, "a")
    b = start_origin(server_factory, "b")
    edge = start_edge(server_factory, [a.http, b.http])
    publisher_factory(a.url(), media_file)
    publisher_factory(b.url(), media_file)
    assert wait_for(lambda: flv_answers(a.http) and flv_answers(b.http), 10)
    players = [RtmpTestClient(edge.url()) for _ in range(2)]
    for p in players:
        assert p.play()
    read_all(players, 1.5)
    probes_b = wait_for(lambda: pulls(b), 5)
    a.proc.send_signal(signal.SIGKILL)
    read_all(players, 4.0)
    assert pulls(b) > probes_b
    for p in players:
        assert not p.closed and timestamp_regressions(p.media) == 0
        after = len(p.media)
        read_all([p], 0.5)
        assert len(p.media) > after, "media flows from B"
    assert "gap" in edge.log_text()


def test_not_found_over_http_flv_in_bounded_time(server_factory):
    a = start_origin(server_factory, "a")
    b = start_origin(server_factory, "b")
    edge = start_edge(server_factory, [a.http, b.http], play="play { publisher_wait 0; }")
    player = RtmpTestClient(edge.url("live/nobody"))
    started = time.monotonic()
    player.play()
    assert player.pump_until(lambda: player.closed, 10)
    assert "NetStream.Play.StreamNotFound" in player.statuses
    assert time.monotonic() - started < 3.0            # two 404s, no data_timeout wait
    assert "404" in edge.log_text()


class Redirector:
    """A one-trick HTTP server: records each request head and answers 302 to `location`."""

    def __init__(self, location):
        self.location, self.requests = location, []
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with conn:
                head = b""
                while b"\r\n\r\n" not in head:
                    data = conn.recv(4096)
                    if not data:
                        break
                    head += data
                self.requests.append(head.decode("latin-1"))
                conn.sendall(f"HTTP/1.1 302 Found\r\nLocation: {self.location}\r\n"
                             f"Content-Length: 0\r\n\r\n".encode())

    def close(self):
        self.sock.close()


def test_redirect_followed_and_request_as_srs(server_factory, media_file, publisher_factory):
    origin = start_origin(server_factory, "origin")
    redirector = Redirector(f"http://127.0.0.1:{origin.http}/live/livestream.flv")
    try:
        edge = start_edge(server_factory, [redirector.port])
        publisher_factory(origin.url(), media_file)
        assert wait_for(lambda: flv_answers(origin.http), 10)
        player = RtmpTestClient(edge.url("live/livestream?token=abc"))
        assert player.play()
        assert player.pump_until(lambda: len(player.media) > 20, 10)
        # SRS's request: the path with the player's query, Host = the origin's address
        request = redirector.requests[0].split("\r\n")
        assert request[0] == "GET /live/livestream.flv?token=abc HTTP/1.1"
        assert f"Host: 127.0.0.1:{redirector.port}" in request
        assert "token=***" in edge.log_text() and "abc" not in edge.log_text()   # redacted
    finally:
        redirector.close()


def test_edge_pulls_over_https_flv(server_factory, media_file, publisher_factory):
    origin = start_origin(server_factory, "origin", tls=True)
    wait_port(origin.https, proc=origin.proc)
    # a self-signed certificate: SRS's client does not verify either (srs_verify_callback)
    edge = start_edge(server_factory, [origin.https], protocol="flvs")
    publisher_factory(origin.url(), media_file)
    assert wait_for(lambda: flv_answers(origin.http), 10)
    player = RtmpTestClient(edge.url())
    assert player.play()
    assert_plays_everything(player)
    assert "https://127.0.0.1" in edge.log_text()


SRS_ORIGIN = """
listen {port};
daemon off;
srs_log_tank file;
srs_log_file {dir}/srs.log;
pid {dir}/srs.pid;
http_server { enabled on; listen HTTP; dir {dir}; }
http_api { enabled off; }
rtc_server { enabled off; }
vhost __defaultVhost__ {
    http_remux { enabled on; mount [vhost]/[app]/[stream].flv; }
}
"""


def test_real_srs_origin_over_http_flv(server_factory, media_file, publisher_factory, tmp_path):
    srs_bin = os.environ.get("SRS_BIN", "/tmp/srs-build/objs/srs")
    if not os.access(srs_bin, os.X_OK):
        pytest.skip("SRS_BIN not built (../shared/tools/build-srs.sh)")
    rtmp, http = free_port(), free_port()
    conf = tmp_path / "srs.conf"
    conf.write_text(SRS_ORIGIN.replace("{port}", str(rtmp)).replace("{dir}", str(tmp_path))
                    .replace("HTTP", str(http)))
    srs = subprocess.Popen([srs_bin, "-c", str(conf)],
                           cwd=os.path.dirname(os.path.dirname(srs_bin)),
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_port(http, proc=srs)
        edge = start_edge(server_factory, [http], play="play { publisher_wait 0; }")
        missing = RtmpTestClient(edge.url("live/nobody"))
        started = time.monotonic()
        missing.play()
        assert missing.pump_until(lambda: missing.closed, 10)
        assert "NetStream.Play.StreamNotFound" in missing.statuses
        waited = time.monotonic() - started
        print(f"SRS holds the absent stream's GET; not found after {waited:.1f}s")
        assert 2.5 < waited < 6.0                   # the 3 s connect-phase deadline
        assert "no HTTP response" in edge.log_text()
        publisher_factory(f"rtmp://127.0.0.1:{rtmp}/live/livestream", media_file)
        assert wait_for(lambda: flv_answers(http), 10)
        player = RtmpTestClient(edge.url())
        assert player.play()
        assert_plays_everything(player)
    finally:
        srs.kill()
        srs.wait()
