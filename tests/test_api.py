"""Black-box tests of the HTTP API and /metrics (lib/server/api/routes.py).

Real server processes (tests/api_server.py: srsedge plus start_api, kbps sampled every 0.5 s),
ffmpeg publishing a generated H.264/AAC stereo FLV, our RtmpTestClient as player. Response
shapes are checked against SRS 6 responses recorded in tests/data/srs_api/ (written from SRS's
srs_app_http_api.cpp and srs_app_statistic.cpp): every key SRS sends is there with the same JSON
type (where SRS sends a float any number will do; extra keys are allowed).
"""
import json
import os
import socket
import subprocess
import time

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import (PYTHON, ROOT, Publisher, ServerProc, free_port, need_tool, wait_for,
                            wait_port)
from tests.rtmpclient import RtmpTestClient

DATA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data", "srs_api")

API_CONF = """
listen {port};
srs_log_tank console;
http_api { enabled on; listen {api}; %s }
vhost __defaultVhost__ {
    http_hooks { enabled on; on_close http://127.0.0.1:1/refused; }
    %s
}
"""


class ApiProc(ServerProc):
    """A server process with the HTTP API on `api_port` (API_CONF, or `conf` with `{api}`)."""
    extra_ports = ()           # more ports a subclass's config listens on, waited for at start

    def __init__(self, tmp_path, name, api_extra="", vhost_extra="", conf=None):
        self.api_port = free_port()
        if conf is None:
            conf = API_CONF % (api_extra, vhost_extra)
        super().__init__(tmp_path, conf.replace("{api}", str(self.api_port)), name=name)

    def start(self, wait=True):
        self.logf = open(self.log, "ab")
        self.proc = subprocess.Popen([PYTHON, "tests/api_server.py", str(self.conf),
                                      "--sample-interval", "0.5"], cwd=ROOT,
                                     stdout=self.logf, stderr=subprocess.STDOUT)
        for port in (self.port, self.api_port, *self.extra_ports):
            wait_port(port, proc=self.proc)
        return self

    def request(self, method, path, **kw):
        return requests.request(method, f"http://127.0.0.1:{self.api_port}{path}", timeout=5, **kw)

    def get(self, path, **kw):
        r = self.request("GET", path, **kw)
        assert r.status_code == 200, (path, r.status_code, r.text)
        return r.json()

    def metrics(self):
        r = self.request("GET", "/metrics")
        assert r.status_code == 200
        samples = {}
        for family in text_string_to_metric_families(r.text):
            for s in family.samples:
                samples[(s.name, tuple(sorted(s.labels.items())))] = s.value
        return samples

    def stream(self, name="livestream"):
        return next((s for s in self.get("/api/v1/streams?count=100")["streams"]
                     if s["name"] == name), None)

    def clients(self):
        return self.get("/api/v1/clients?count=100")["clients"]


def wait_published(srv, name="livestream", timeout=30):
    """Until the API says the stream has a publisher (an event, not a sleep): its stream object."""
    return wait_for(lambda: (s := srv.stream(name)) and s["publish"]["active"] and s, timeout)


def players_gauge(metrics, stream="livestream"):
    key = ("srsedge_stream_players", (("app", "live"), ("stream", stream), ("vhost", "__defaultVhost__")))
    return metrics.get(key, 0)


def srs_example(name):
    with open(os.path.join(DATA, name)) as f:
        return json.load(f)


def assert_srs_shape(ours, srs, where="$"):
    """Every key of SRS's example is in ours, recursively, with the same JSON type."""
    if isinstance(srs, dict):
        assert isinstance(ours, dict), f"{where}: {ours!r} is not an object"
        for key, value in srs.items():
            assert key in ours, f"{where}.{key} missing"
            assert_srs_shape(ours[key], value, f"{where}.{key}")
    elif isinstance(srs, list):
        assert isinstance(ours, list) and ours, f"{where}: expected a non-empty list"
        for i, item in enumerate(ours):
            assert_srs_shape(item, srs[0], f"{where}[{i}]")
    elif isinstance(srs, bool):
        assert isinstance(ours, bool), f"{where}: {ours!r} is not a boolean"
    elif isinstance(srs, (int, float)):
        assert isinstance(ours, (int, float)) and not isinstance(ours, bool), f"{where}: {ours!r}"
        if isinstance(srs, int):
            assert isinstance(ours, int), f"{where}: {ours!r} is not an integer"
    elif isinstance(srs, str):
        assert isinstance(ours, str), f"{where}: {ours!r} is not a string"


@pytest.fixture(scope="module")
def stereo_media(tmp_path_factory):
    need_tool("ffmpeg")
    out = tmp_path_factory.mktemp("api_media") / "stereo.flv"
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", "testsrc2=size=320x240:rate=25",
                    "-f", "lavfi", "-i", "sine=sample_rate=44100", "-t", "6", "-c:v", "libx264",
                    "-preset", "ultrafast", "-g", "50", "-pix_fmt", "yuv420p", "-c:a", "aac", "-ac", "2",
                    "-f", "flv", str(out)], check=True, timeout=120)
    return out


@pytest.fixture(scope="module")
def origin(tmp_path_factory, stereo_media):
    """One origin with the API and an ffmpeg publisher on live/livestream for the module."""
    srv = ApiProc(tmp_path_factory.mktemp("api_origin"), "origin", api_extra="jsonp on;").start()
    pub = Publisher(srv.url(), stereo_media)
    try:
        assert wait_for(lambda: (s := srv.stream()) and s["video"] and s["audio"], 15), srv.log_text()
        yield srv
    finally:
        pub.stop()
        srv.stop()


def play(srv, stream="livestream"):
    client = RtmpTestClient(srv.url(f"live/{stream}"))
    assert client.play()
    return client


# ------------------------------------------------------------------ shapes and values
def test_shapes_match_recorded_srs_responses(origin):
    player = play(origin)
    try:
        assert wait_for(lambda: origin.stream()["clients"] == 2)
        stream = origin.stream()
        client = next(c for c in origin.clients() if c["type"] == "rtmp-play")
        for path, example in [("/api/v1/versions", "versions.json"),
                              ("/api/v1/summaries", "summaries.json"),
                              ("/api/v1/vhosts", "vhosts.json"),
                              ("/api/v1/streams", "streams.json"),
                              (f"/api/v1/streams/{stream['id']}", "stream.json"),
                              ("/api/v1/clients", "clients.json"),
                              (f"/api/v1/clients/{client['id']}", "client.json")]:
            ours = origin.get(path)
            assert_srs_shape(ours, srs_example(example), path)
            assert ours["code"] == 0 and ours["pid"] == str(origin.proc.pid)
        vhost = origin.get("/api/v1/vhosts")["vhosts"][0]
        assert origin.get(f"/api/v1/vhosts/{vhost['id']}")["vhost"]["name"] == "__defaultVhost__"
        assert stream["vhost"] == vhost["id"] == client["vhost"]
    finally:
        player.close()


def test_stream_shows_publisher_codecs_players_and_kbps(origin):
    stream = origin.stream()
    assert (stream["app"], stream["url"], stream["tcUrl"]) == \
        ("live", "/live/livestream", f"rtmp://127.0.0.1:{origin.port}/live")
    assert stream["publish"]["active"] is True
    publisher = next(c for c in origin.clients() if c["id"] == stream["publish"]["cid"])
    assert (publisher["type"], publisher["publish"], publisher["stream"]) == \
        ("fmle-publish", True, stream["id"])
    video = stream["video"]
    assert (video["codec"], video["width"], video["height"]) == ("H264", 320, 240)
    assert video["profile"] == "Baseline" and video["level"] != "Other"      # x264 ultrafast
    assert stream["audio"] == {"codec": "AAC", "sample_rate": 44100, "channel": 2, "profile": "LC",
                               "name": "AAC"}
    assert video["name"] == "H.264"
    assert stream["edge"] is None
    assert wait_for(lambda: origin.stream()["kbps"]["recv_30s"] > 50, 15)
    base = origin.stream()["clients"]
    player = play(origin)
    try:
        assert wait_for(lambda: origin.stream()["clients"] == base + 1)
        assert players_gauge(origin.metrics()) == 1
        player.read_for(1.5)
        stream = origin.stream()
        assert stream["send_bytes"] > 0 and stream["frames"] > 0
    finally:
        player.close()
    assert wait_for(lambda: origin.stream()["clients"] == base)
    assert wait_for(lambda: players_gauge(origin.metrics()) == 0)


def test_kick_a_client_with_delete(origin):
    before = {c["id"] for c in origin.clients()}
    player = play(origin)
    try:
        assert wait_for(lambda: {c["id"] for c in origin.clients()} - before)
        (cid,) = {c["id"] for c in origin.clients()} - before
        assert origin.get(f"/api/v1/clients/{cid}")["client"]["type"] == "rtmp-play"
        r = origin.request("DELETE", f"/api/v1/clients/{cid}")
        assert r.status_code == 200
        assert_srs_shape(r.json(), srs_example("kick.json"))
        assert player.pump_until(lambda: player.closed, 15), "kicked player's socket stays open"
        assert wait_for(lambda: origin.get(f"/api/v1/clients/{cid}") == srs_example("client_not_found.json"))
        assert origin.request("DELETE", f"/api/v1/clients/{cid}").json() == {"code": 2049}
        assert wait_for(lambda: "kicked by HTTP API" in origin.log_text(), 15)
    finally:
        player.close()
    assert origin.stream()["publish"]["active"]            # the publisher was not touched


def test_jsonp_as_srs_console_reads_never_kicks(origin):
    """SRS's console loads the API with <script> tags (`jsonp on`): reads work, SRS codes come
    back wrapped in the callback too, but its kick (`?callback=F&method=DELETE`) is refused:
    JSONP is read-only (tests/test_cross_site.py)."""
    before = {c["id"] for c in origin.clients()}
    player = play(origin)
    try:
        assert wait_for(lambda: {c["id"] for c in origin.clients()} - before)
        (cid,) = {c["id"] for c in origin.clients()} - before
        r = origin.request("GET", f"/api/v1/clients/{cid}?callback=angular.callbacks._3")
        assert r.headers["Content-Type"] == "text/javascript"
        assert r.text.startswith('angular.callbacks._3({"code":0,')
        r = origin.request("GET", f"/api/v1/clients/{cid}?callback=angular.callbacks._4&method=DELETE")
        assert r.status_code == 405 and not r.text.startswith("angular")
        assert origin.get(f"/api/v1/clients/{cid}")["code"] == 0
        assert origin.request("GET", "/api/v1/clients/nothere?callback=cb").text == 'cb({"code": 2049})'
        assert origin.request("GET", "/api/v1/versions?method=DELETE").json()["code"] == 0
        raw = origin.get("/api/v1/raw?rpc=raw")       # SRS's console asks before its config pages
        assert raw["code"] == 0 and raw["http_api"]["raw_api"]["enabled"] is False
        assert origin.get("/api/v1/raw?rpc=reload") == {"code": 1061}
    finally:
        player.close()


def test_not_found_codes_methods_and_paging(origin):
    assert origin.get("/api/v1/streams/vid-nothere") == srs_example("stream_not_found.json")
    assert origin.get("/api/v1/clients/nothere") == {"code": 2049}
    assert origin.get("/api/v1/vhosts/vid-nothere") == {"code": 2014}
    for path in ("/api/v1/nothing", "/nothing", "/api/v2/streams", "/api/v1/streams/a/b"):
        r = origin.request("GET", path)
        assert (r.status_code, r.json()) == (404, {"code": 404}), path
    assert origin.request("POST", "/api/v1/streams").status_code == 405
    assert origin.request("PUT", "/api/v1/clients/x").status_code == 405
    assert origin.request("DELETE", "/api/v1/streams").status_code == 405
    # sources made by players waiting for streams nobody publishes: 1 + 11 streams
    waiting = [play(origin, f"s{i}") for i in range(11)]
    try:
        assert wait_for(lambda: origin.get("/api/v1/streams")["total"] == 12)
        assert len(origin.get("/api/v1/streams")["streams"]) == 10               # SRS default
        assert len(origin.get("/api/v1/streams?start=10&count=3")["streams"]) == 2
        assert len(origin.get("/api/v1/streams?count=1")["streams"]) == 10       # at least 10
        assert len(origin.get("/api/v1/streams?count=20&start=-4")["streams"]) == 12
        assert origin.get("/api/v1/streams?start=abc&count=x")["code"] == 0
        assert origin.get("/api/v1/streams?start=500")["streams"] == []
        idle = origin.stream("s3")
        assert (idle["publish"], idle["video"], idle["audio"]) == ({"active": False}, None, None)
        assert len(origin.get("/api/v1/clients?start=2&count=100")["clients"]) == \
            origin.get("/api/v1/clients")["total"] - 2
    finally:
        for client in waiting:
            client.close()
    r = origin.request("GET", "/api/v1/versions?callback=show_it")
    assert r.headers["Content-Type"] == "text/javascript"
    assert r.text.startswith("show_it({") and r.text.endswith("})")
    assert origin.request("GET", "/api/v1/versions?callback=<script>").json()["code"] == 0


def test_bad_requests_never_break_the_api(origin):
    for raw in (b"GARBAGE\r\n\r\n", b"GET /api/v1/streams HTTP/1.1\r\n" + b"X: y\r\n" * 200 + b"\r\n",
                b"GET /api/v1/streams/%ff%fe HTTP/1.1\r\nHost: x\r\n\r\n",
                b"GET /api/v1/clients/\x00\x01 HTTP/1.1\r\n\r\n", b"GET /api/v1/str"):
        with socket.create_connection(("127.0.0.1", origin.api_port), timeout=5) as s:
            s.sendall(raw)
            s.shutdown(socket.SHUT_WR)
            s.recv(65536)
    assert origin.request("GET", "/api/v1/streams/%ff%fe").json() == {"code": 2048}
    assert origin.get("/api/v1/streams")["code"] == 0
    assert origin.alive()


def test_cors(origin):
    """crossdomain on, no http_server and no allow_origin: no other page is let in
    (tests/test_cross_site.py has the whole policy)."""
    headers = {"Origin": "http://page.example", "Access-Control-Request-Method": "DELETE"}
    r = origin.request("OPTIONS", "/api/v1/clients/x", headers=headers)
    assert r.status_code == 200 and r.headers["Vary"] == "Origin"
    assert "Access-Control-Allow-Origin" not in r.headers
    r = origin.request("GET", "/api/v1/versions", headers={"Origin": "http://page.example"})
    assert r.json()["code"] == 0 and "Access-Control-Allow-Origin" not in r.headers


def test_metrics_parse_and_move_with_traffic(origin):
    before = origin.metrics()
    assert before[("srsedge_streams", ())] >= 1
    assert before[("srsedge_connections", (("role", "publish"),))] == 1
    assert players_gauge(before) == 0
    player = play(origin)
    try:
        assert wait_for(lambda: players_gauge(origin.metrics()) == 1)
        player.read_for(1.0)
        first = origin.metrics()
        player.read_for(1.0)
        second = origin.metrics()
        assert second[("srsedge_sent_bytes_total", ())] > first[("srsedge_sent_bytes_total", ())]
        assert second[("srsedge_received_bytes_total", ())] > first[("srsedge_received_bytes_total", ())]
        key = (("app", "live"), ("stream", "livestream"), ("vhost", "__defaultVhost__"))
        assert second[("srsedge_stream_sent_bytes_total", key)] > 0
        assert ("srsedge_stream_dropped_messages_total", key) in second
        assert second[("srsedge_connections", (("role", "play"),))] >= 1
    finally:
        player.close()
    assert wait_for(lambda: players_gauge(origin.metrics()) == 0)
    # on_close points at a refused port: each closed client counts one failed hook call
    failed = ("srsedge_hook_calls_total", (("action", "on_close"), ("result", "failed")))
    assert wait_for(lambda: origin.metrics().get(failed, 0) >= 1)


# ------------------------------------------------------------------ auth, edge extension
def test_basic_auth(tmp_path):
    srv = ApiProc(tmp_path, "auth", api_extra="auth { enabled on; username admin; password s3cret; }")
    srv.start()
    try:
        for headers in ({}, {"Authorization": "Basic " + "YWRtaW46d3Jvbmc="},   # admin:wrong
                        {"Authorization": "Bearer s3cret"}, {"Authorization": "Basic !!!"}):
            r = srv.request("GET", "/api/v1/versions", headers=headers)
            assert r.status_code == 401 and r.headers["WWW-Authenticate"] == 'Basic realm="SRS"'
        assert srv.request("GET", "/metrics").status_code == 401
        assert srv.request("GET", "/api/v1/versions", auth=("admin", "s3cret")).json()["code"] == 0
        assert srv.request("GET", "/metrics", auth=("admin", "s3cret")).status_code == 200
        assert srv.request("OPTIONS", "/api/v1/versions").status_code == 200   # CORS preflight
    finally:
        srv.stop()


def test_edge_extension(origin, tmp_path):
    cluster = f"cluster {{ mode remote; origin 127.0.0.1:{origin.port}; }}"
    edge = ApiProc(tmp_path, "edge", vhost_extra=cluster)
    edge.start()
    player = play(edge)
    try:
        assert wait_for(lambda: ((edge.stream() or {}).get("edge") or {}).get("state") == "streaming",
                        10)
        stream = edge.stream()
        info = stream["edge"]
        assert set(info) == {"state", "since", "origin", "failovers", "last_error", "players",
                             "links_opened", "last_gap_ms"}
        assert (info["origin"], info["failovers"], info["players"], info["links_opened"]) == \
            (f"127.0.0.1:{origin.port}", 0, 1, 1)
        assert info["since"] <= time.time()
        assert stream["publish"]["active"] and stream["clients"] == 1      # the player only
        assert wait_for(lambda: edge.stream()["video"] is not None)
        metrics = edge.metrics()
        assert metrics[("srsedge_upstream_links", (("state", "streaming"),))] == 1
        key = (("app", "live"), ("stream", "livestream"), ("vhost", "__defaultVhost__"))
        assert metrics[("srsedge_upstream_failovers_total", key)] == 0
        info_key = tuple(sorted(key + (("origin", f"127.0.0.1:{origin.port}"),
                                       ("state", "streaming"))))
        assert metrics[("srsedge_upstream_info", info_key)] == 1
    finally:
        player.close()
        edge.stop()
