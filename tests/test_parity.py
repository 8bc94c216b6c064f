"""SRS parity (issue 10), with real peers: rtmpdump, ffmpeg, curl-like HTTP clients and a real
HTTP hook server. SRS's behaviour each test pins is quoted from SRS 7.0.18's source
(trunk/src/app, ossrs/srs at 101382afd) in the docstrings.
"""
import json
import subprocess
import sys
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from tests.conftest import ROOT, free_port, need_tool, wait_for, wait_live, wait_port
from tests.rtmpclient import RtmpTestClient

HOOKED = """
listen {port};
srs_log_tank console;
http_api {{ enabled on; listen {api}; }}
vhost __defaultVhost__ {{
    http_hooks {{
        enabled on;
        on_connect {hook};
        on_close {hook};
        on_publish {hook};
        on_unpublish {hook};
        on_play {hook};
        on_stop {hook};
    }}
}}
"""


class TokenHooks(BaseHTTPRequestHandler):
    """A hook server that accepts a body whose param holds token=good, refuses anything else,
    records every body, and answers with the status/delay the test sets."""
    protocol_version = "HTTP/1.1"

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        srv = self.server
        srv.calls.append(body)
        time.sleep(srv.delay)
        ok = "token=good" in body.get("param", "") or body["action"] in srv.always_ok
        answer = b"0" if ok else b'{"code": 403}'
        try:
            self.send_response(srv.status)
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)
        except OSError:
            pass

    def log_message(self, *args):
        pass


@pytest.fixture
def hooks():
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), TokenHooks)
    httpd.daemon_threads = True
    httpd.calls, httpd.delay, httpd.status = [], 0.0, 200
    httpd.always_ok = {"on_close", "on_unpublish", "on_stop"}
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    httpd.url = f"http://127.0.0.1:{httpd.server_address[1]}/api/v1/hooks"
    httpd.actions = lambda: [c["action"] for c in httpd.calls]
    httpd.bodies = lambda action: [c for c in httpd.calls if c["action"] == action]
    yield httpd
    httpd.shutdown()


def api_get(port, path):
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as r:
        return json.loads(r.read())


def api_streams(port):
    return api_get(port, "/api/v1/streams")["streams"]


def hooked_server(server_factory, hooks, extra="", top=""):
    api = free_port()
    conf = HOOKED.format(port="{port}", api=api, hook=hooks.url).replace(
        "vhost __defaultVhost__ {\n", top + "vhost __defaultVhost__ {\n" + extra)
    srv = server_factory(conf)
    wait_port(api)
    srv.api = api
    return srv


def rtmpdump(url, stream, out, *extra, timeout=60):
    need_tool("rtmpdump")
    return subprocess.run(["rtmpdump", "-q", "-r", url, "-y", stream, "-o", str(out), *extra],
                          capture_output=True, text=True, timeout=timeout)


def video_span(path):
    """(first, last) video packet time in an FLV file, by ffprobe."""
    out = subprocess.run(["ffprobe", "-v", "error", "-select_streams", "v", "-show_entries",
                          "packet=pts_time", "-of", "csv=p=0", str(path)],
                         capture_output=True, text=True, timeout=30).stdout.split()
    times = [float(t.strip(",")) for t in out if t.strip(",")]
    return (times[0], times[-1]) if times else (0.0, 0.0)


# ---------------------------------------------------------------- 1. stream key, 4. duration

def test_flv_extension_maps_to_the_stream_and_play_duration_ends_the_play(
        server_factory, media_file, publisher_factory, tmp_path):
    """SRS: srs_generate_stream_url(vhost, app, stream) keys sources by srs_path_filename(stream)
    (everything from the last '.' dropped), so the `s.flv` an SRS edge pulls for an HTTP-FLV
    player is the source `live/s`. SRS reads play's duration as ms and ends the play once the
    summed timestamp increases of what it sent reach it (SrsRtmpConn::do_playing:
    ERROR_RTMP_DURATION_EXCEED). rtmpdump -B 8 sends duration 8000.
    Seen with a built SRS 7.0.18: `rtmpdump -y s.flv -B 8` plays live/s, exits 0 after 7.6 s,
    its file holds video 0.01 s .. 8.06 s. And an SRS 7.0.18 edge in front of a srsedge origin
    served an ffmpeg HTTP-FLV player of live/s.flv?token=good: it pulled `s.flv?token=good`,
    which srsedge now maps to live/s (on_connect saw param ?token=good)."""
    api = free_port()
    srv = server_factory(f"listen {{port}};\nsrs_log_tank console;\nhttp_api {{ enabled on; "
                         f"listen {api}; }}\nvhost __defaultVhost__ {{ }}\n")
    publisher_factory(srv.url("live/s"), media_file)
    wait_port(api)
    assert wait_for(lambda: any(s["name"] == "s" and s["video"] for s in api_streams(api)), 15)
    out = tmp_path / "out.flv"
    started = time.time()
    res = rtmpdump(f"rtmp://127.0.0.1:{srv.port}/live", "s.flv", out, "-B", "8")
    took = time.time() - started
    assert res.returncode == 0, res.stderr
    first, last = video_span(out)
    assert 6.0 <= last - first <= 10.5, (first, last)     # 8 s of media, give or take a GOP
    assert took < 30
    streams = api_streams(api)
    assert [s["url"] for s in streams] == ["/live/s"]       # no second source "s.flv"
    assert wait_for(lambda: "play duration 8000ms reached" in srv.log_text(), 15)


def test_ffmpeg_gets_a_stream_length_answer(server_factory, media_file, publisher_factory,
                                           player_factory):
    """ffmpeg's rtmpproto.c read_number_result wants `_result, tid, null, number` for
    getStreamLength, else warns "Unexpected reply on getStreamLength()"; we answer 0, a live
    stream's length. (SRS 7.0.18 ignores the call in identify_create_stream_client, so ffmpeg
    gets no reply and does not warn either: checked against a built SRS 7.0.18.)"""
    srv = server_factory("listen {port};\nsrs_log_tank console;\nvhost __defaultVhost__ { }\n")
    publisher_factory(srv.url("live/s"), media_file)
    time.sleep(1.5)
    player = player_factory(srv.url("live/s"), 2).wait()
    assert player.frames > 10
    assert "getStreamLength" not in player.stderr


# ---------------------------------------------------------------- 2. on_connect, 3. hook values

def test_on_connect_gets_the_stream_query_and_hook_ids_match_the_api(
        server_factory, media_file, publisher_factory, hooks):
    """SRS 7 (SrsRtmpConn::stream_service_cycle): connect is answered, then the play/publish
    stream is parsed with srs_discovery_tc_url(tcUrl + stream), and check_vhost() calls
    on_connect with `stream` and `param` (the stream's query) before on_publish/on_play.
    Seen with a built SRS 7.0.18 publishing live/s?token=good: on_connect {stream: "s",
    param: "?token=good"} then on_publish with stream_id = the API's stream id.
    Hook bodies carry stream_id = the stat stream's id, the API's /api/v1/streams/<id>.
    on_close's send_bytes is the socket's send counter (skt->get_send_bytes())."""
    srv = hooked_server(server_factory, hooks)
    bad = publisher_factory(srv.url("live/s?token=bad"), media_file)
    assert wait_for(lambda: not bad.alive(), 15)
    assert "on_publish" not in hooks.actions()              # refused at on_connect
    good = publisher_factory(srv.url("live/s?token=good"), media_file)
    assert wait_for(lambda: any(s["video"] for s in api_streams(srv.api)), 15)
    sid = api_streams(srv.api)[0]["id"]

    # the token in the tcUrl's query and in the stream's both reach on_connect's param
    viewer = RtmpTestClient(f"rtmp://127.0.0.1:{srv.port}/live?token=good/s")
    assert viewer.play()
    assert viewer.pump_until(lambda: len(viewer.media) > 30, 10)
    received = sum(len(p) for _, _, p in viewer.media)
    viewer.close()
    assert wait_for(lambda: hooks.actions().count("on_close") >= 1, 10)

    connects = hooks.bodies("on_connect")
    assert [c["param"] for c in connects] == ["?token=bad", "?token=good", "?token=good"]
    assert all(c["stream"] == "s" and c["app"] == "live" for c in connects)
    acts = hooks.actions()
    assert acts.index("on_connect") < acts.index("on_publish")
    pub = hooks.bodies("on_publish")[0]
    play = hooks.bodies("on_play")[0]
    assert pub["stream_id"] == sid and play["stream_id"] == sid
    assert api_get(srv.api, f"/api/v1/streams/{sid}")["stream"]["url"] == pub["stream_url"]
    close = hooks.bodies("on_close")[0]
    assert close["send_bytes"] >= received > 0             # the player's bytes, not 0
    assert close["recv_bytes"] > 0
    good.stop()                                            # a publisher is sent control bytes
    assert wait_for(lambda: any(c["client_id"] == pub["client_id"]
                                for c in hooks.bodies("on_close")), 10)
    pub_close = [c for c in hooks.bodies("on_close") if c["client_id"] == pub["client_id"]][0]
    assert 0 < pub_close["send_bytes"] < 10000 < pub_close["recv_bytes"]


def test_token_auth_behind_an_edge(server_factory, media_file, publisher_factory, hooks):
    """An edge puts the player's query in the stream it pulls (SRS: srs_generate_stream_with_query),
    so the origin's on_connect (SRS 7: with the stream's query) sees the player's token."""
    origin = hooked_server(server_factory, hooks)
    publisher_factory(origin.url("live/s?token=good"), media_file)
    assert wait_for(lambda: any(s["video"] for s in api_streams(origin.api)), 15)
    edge = server_factory(f"listen {{port}};\nsrs_log_tank console;\nvhost __defaultVhost__ {{ "
                          f"cluster {{ mode remote; origin 127.0.0.1:{origin.port}; }} }}\n",
                          name="edge")
    viewer = RtmpTestClient(edge.url("live/s?token=good"))
    assert viewer.play()
    assert viewer.pump_until(lambda: len(viewer.media) > 30, 20)
    viewer.close()
    edge_connects = [c for c in hooks.bodies("on_connect") if c["param"] != "?token=good"
                     or c["stream"] != "s"]
    assert not edge_connects
    assert len(hooks.bodies("on_connect")) >= 2              # publisher + the edge's pull
    # (a second player of the same stream is served from the edge's pull, as in SRS: per-player
    # auth at an edge is the edge's own hooks or token_traverse)


def test_hook_timeout_directive(server_factory, media_file, publisher_factory, hooks):
    """SRS 7 has no hook timeout directive: SrsHttpClient's fixed SRS_HTTP_CLIENT_TIMEOUT, 30 s.
    srsedge's `http_hooks.timeout` (default 30) bounds each hook URL; 201 is accepted as in SRS's
    SrsHttpHooks::do_post (SRS_CONSTS_HTTP_OK or SRS_CONSTS_HTTP_Created)."""
    api = free_port()
    conf = HOOKED.format(port="{port}", api=api, hook=hooks.url).replace(
        "enabled on;\n        on_connect", "enabled on;\n        timeout 1.5;\n        on_connect")
    srv = server_factory(conf, name="timeout")
    wait_port(api)
    hooks.status = 201
    ok = publisher_factory(srv.url("live/a?token=good"), media_file)
    # 201 + "0" accepts, as SRS: the API lists it publishing (an event, not a sleep)
    assert wait_for(lambda: any(s["name"] == "a" and s["publish"]["active"]
                                for s in api_streams(api)), 30)
    assert ok.alive()
    hooks.delay = 8.0
    started = time.time()
    slow = publisher_factory(srv.url("live/b?token=good"), media_file)
    assert wait_for(lambda: not slow.alive(), 10)
    assert time.time() - started < 6.0                     # refused before the hook answered
    assert wait_for(lambda: "timeout after 1.5s" in srv.log_text(), 15)


# ---------------------------------------------------------------- 6. refer

def test_refer_checks_page_url_and_referer(server_factory, media_file, publisher_factory,
                                           tmp_path):
    """SRS's SrsRefer::check: the pageUrl's domain (no scheme, path, port) must end with one of
    the entries; `all` for everyone (check_vhost), `play` in playing(), `publish` in
    publishing(). srsedge also checks HTTP-FLV's Referer header (SRS does not)."""
    http = free_port()
    srv = server_factory(f"""
listen {{port}};
srs_log_tank console;
http_server {{ enabled on; listen {http}; }}
vhost __defaultVhost__ {{
    refer {{ enabled on; all github.com ossrs.net; play ossrs.net; }}
    http_remux {{ enabled on; mount [vhost]/[app]/[stream].flv; }}
}}
""")
    wait_port(http)
    refused = publisher_factory(srv.url("live/s"), media_file, extra=())  # ffmpeg: no pageUrl
    assert wait_for(lambda: not refused.alive(), 30)        # publish refused: no pageUrl ...
    assert wait_for(lambda: "refer all" in srv.log_text())  # ... by the refer rule
    # the publisher needs a page in `all`: our client sets pageUrl
    pub = RtmpTestClient(srv.url("live/s"), connect_extra={"pageUrl": "https://www.github.com/x"})
    assert pub.publish() and pub.session.state == "publishing"
    from lib.rtmp.message import MSG_VIDEO
    pub.send_media(MSG_VIDEO, 0, bytes([0x17, 0, 0, 0, 0]) + bytes(20))

    out = tmp_path / "p.flv"
    res = rtmpdump(f"rtmp://127.0.0.1:{srv.port}/live", "s", out, "-p", "https://github.com/a",
                   "-B", "1", timeout=30)
    assert res.returncode != 0                              # in `all` but not in `play`
    assert wait_for(lambda: "refer play" in srv.log_text(), 15)

    url = f"http://127.0.0.1:{http}/live/s.flv"
    for referer, want in (("http://evil.com/", 403), ("http://www.ossrs.net:8080/p", 200)):
        req = urllib.request.Request(url, headers={"Referer": referer})
        try:
            with urllib.request.urlopen(req, timeout=10) as r:
                status = r.status
        except urllib.error.HTTPError as e:
            status = e.code
        assert status == want, referer
    pub.close()


@pytest.mark.parametrize("page,refers,ok", [
    ("http://www.github.com/x", ["github.com"], True),
    ("https://github.com:8080/a/b", ["github.com"], True),
    ("github.com", ["github.com"], True),
    ("http://evil.com/", ["ossrs.net"], False),           # find() miss is not a match
    ("http://github.com.evil.com/", ["github.com"], False),
    ("http://evilgithub.com/", ["github.com"], True),      # as SRS: a suffix, not a label
    ("", ["github.com"], False),
    ("", [], True),                                        # list not configured: allowed
    ("http://a.com/", ["b.com", "a.com"], True),
])
def test_refer_rule(page, refers, ok):
    from lib.server.core.refer import allowed
    assert allowed(page, refers) is ok


# ---------------------------------------------------------------- 6. HTTP-TS

def test_http_ts_mount_serves_live_mpegts(server_factory, media_file, publisher_factory,
                                          player_factory):
    """SRS: an http_remux mount ending in .ts serves the stream as live MPEG-TS over HTTP
    (SrsTsStreamEncoder, Content-Type video/MP2T). Two ffmpeg players, the second joining
    later, both decode H.264 + AAC from the one shared muxing."""
    http = free_port()
    srv = server_factory(f"""
listen {{port}};
srs_log_tank console;
http_server {{ enabled on; listen {http}; }}
vhost __defaultVhost__ {{ http_remux {{ enabled on; mount [vhost]/[app]/[stream].ts; }} }}
""")
    wait_port(http)
    publisher_factory(srv.url("live/s"), media_file)
    assert wait_live(srv.url("live/s"))                     # publishing (an event, not a sleep)
    url = f"http://127.0.0.1:{http}/live/s.ts"
    with urllib.request.urlopen(url, timeout=10) as r:
        assert r.headers["Content-Type"] == "video/MP2T"
        head = r.read(188 * 4)
    assert head[0] == 0x47 and head[188] == 0x47          # TS sync bytes: PAT, PMT
    first = player_factory(url, 4)
    time.sleep(1.5)
    second = player_factory(url, 3)
    for p in (first.wait(), second.wait()):
        assert p.frames > 40, p.stderr
        assert "Video: h264" in p.stderr and "Audio: aac" in p.stderr
    assert wait_for(lambda: "http-ts player" in srv.log_text() and "gone" in srv.log_text(), 15)


# ---------------------------------------------------------------- 6. unsupported is said

UNSUPPORTED_CONF = """listen {port};
pid {dir}/srs.pid;
srs_log_tank console;
heartbeat { enabled on; url http://127.0.0.1:1/x; }
rtc_server { enabled on; listen 8000; }
vhost __defaultVhost__ {
    hds { enabled on; }
    exec { enabled off; publish ./x; }
    play { atc on; gop_cache on; }
    http_remux { enabled on; mount [vhost]/[app]/[stream].mp3; }
}
"""


def test_unsupported_directives_are_reported_at_t_and_startup(tmp_path, server_factory):
    """SRS implements every directive of its full.conf; srsedge says which it ignores, with
    FILE:LINE, at `-t` (which still succeeds) and in the startup log. A block `enabled off`
    and a value equal to its default ask nothing, so they are not reported."""
    srv = server_factory(UNSUPPORTED_CONF, start=False)
    res = subprocess.run([sys.executable, "srsedge.py", "-t", "-c", str(srv.conf)],
                         cwd=ROOT, capture_output=True, text=True, timeout=30)
    assert res.returncode == 0 and "test is successful" in res.stdout
    want = [f"{srv.conf}:4: heartbeat is not supported by srsedge, ignored",
            f"{srv.conf}:5: rtc_server is not supported by srsedge, ignored",
            f"{srv.conf}:7: vhost.hds is not supported by srsedge, ignored",
            f"{srv.conf}:9: vhost.play.atc is not supported by srsedge, ignored",
            f"{srv.conf}:10: vhost.http_remux.mount [vhost]/[app]/[stream].mp3 is not "
            "supported by srsedge, ignored (only .flv and .ts mounts are served)"]
    for line in want:
        assert line in res.stderr, res.stderr
    assert "exec" not in res.stderr and "gop_cache" not in res.stderr
    srv.start()
    assert wait_for(lambda: all(line in srv.log_text() for line in want), 10)


# ---------------------------------------------------------------- 5. player timestamps

def test_a_late_player_starts_near_zero(server_factory, media_file, publisher_factory):
    """SRS 7 with `time_jitter full` (the default): SrsLiveConsumer::enqueue runs each message
    through the consumer's own SrsRtmpJitter, whose first corrected timestamp is 0, so every
    player starts near 0 whatever the stream's age (srsedge: at the stream's age, 1506 s after
    25 minutes). Seen with a built SRS 7.0.18 and this test's client joining an 8 s old stream:
    metadata, audio and video at 0, then 10, 18 ..."""
    srv = server_factory("listen {port};\nsrs_log_tank console;\nvhost __defaultVhost__ { }\n")
    publisher_factory(srv.url("live/s"), media_file)
    time.sleep(6)                                          # the stream is now ~6 s old
    viewer = RtmpTestClient(srv.url("live/s"))
    assert viewer.play()
    assert viewer.pump_until(lambda: sum(t == 9 for t, _, _ in viewer.media) > 10, 10)
    first_video = next(ts for t, ts, _ in viewer.media if t == 9)
    assert first_video < 1000, first_video


# ---------------------------------------------------------------- 7. the reference config

def test_full_conf_documents_every_directive_and_passes_t():
    """conf/full.conf shows every directive the schema accepts (set to its default, or
    commented out with an example when it has none) and passes -t; docs/config.md has a row for
    every directive of SRS's full.conf and of the schema; both are what
    scripts/config_reference.py renders from the schema now."""
    from lib.config import schema
    from lib.config.parser import parse_file
    res = subprocess.run([sys.executable, "srsedge.py", "-t", "-c", "conf/full.conf"],
                         cwd=ROOT, capture_output=True, text=True, timeout=30)
    assert res.returncode == 0 and "test is successful" in res.stdout, res.stderr
    root = parse_file(f"{ROOT}/conf/full.conf")
    active = {}                                       # dotted path -> first node

    def walk(node, path):
        for child in node.children:
            p = f"{path}.{child.name}" if path else child.name
            active.setdefault(p, child)
            walk(child, p)
    walk(root, "")
    text = open(f"{ROOT}/conf/full.conf").read()

    def paths(block, path=""):
        for name, spec in block.children.items():
            p = f"{path}.{name}" if path else name
            yield p, spec
            if isinstance(spec, schema.Block) and spec.children is not None:
                yield from paths(spec, p)
    for p, spec in paths(schema.ROOT):
        name = p.rsplit(".", 1)[-1]
        assert p in active or f"# {name} " in text, p
        examples_from = text[:text.index("# ==== BEGIN ORIGIN FEATURES")].count("\n") + 1
        if p in active and isinstance(spec, schema.Value) and spec.default not in (None, []) \
                and active[p].line < examples_from:     # the origin features part is examples
            node = active[p]
            default = spec.default if isinstance(spec.default, list) else [spec.default]
            assert node.args == default, p
    doc = open(f"{ROOT}/docs/config.md").read()
    srs = [line.strip() for line in open(f"{ROOT}/tests/data/srs_full_conf_directives.txt")
           if line.strip() and not line.startswith("#")]
    assert len(srs) > 300
    for p in srs:
        assert f"| `{p}` |" in doc, p
    check = subprocess.run([sys.executable, "scripts/config_reference.py", "--check"], cwd=ROOT,
                           capture_output=True, text=True, timeout=60)
    assert check.returncode == 0, check.stdout


def test_http_flv_hooks_as_srs(server_factory, media_file, publisher_factory, hooks):
    """SRS 7's SrsLiveStream::serve_http calls on_play (no on_connect) for HTTP-FLV players, with
    the URL's query as `param`; on_stop when the player goes."""
    http = free_port()
    srv = hooked_server(server_factory, hooks, extra=(
        "    http_remux { enabled on; mount [vhost]/[app]/[stream].flv; }\n"),
        top=f"http_server {{ enabled on; listen {http}; }}\n")
    wait_port(http)
    publisher_factory(srv.url("live/s?token=good"), media_file)
    assert wait_for(lambda: "on_publish" in hooks.actions(), 15)
    time.sleep(1)
    before = len(hooks.bodies("on_connect"))
    url = f"http://127.0.0.1:{http}/live/s.flv"
    with urllib.request.urlopen(url + "?token=good", timeout=10) as r:
        assert r.read(13)[:3] == b"FLV"
    try:
        urllib.request.urlopen(url + "?token=bad", timeout=10)
        assert False, "a bad token was served"
    except urllib.error.HTTPError as e:
        assert e.code == 403
    assert wait_for(lambda: "on_stop" in hooks.actions(), 10)
    assert len(hooks.bodies("on_connect")) == before         # HTTP players: no on_connect
    play = hooks.bodies("on_play")[0]
    sid = api_get(srv.api, "/api/v1/streams")["streams"][0]["id"]
    assert play["param"] == "?token=good" and play["stream"] == "s"
    assert play["stream_id"] == sid and play["stream_url"] == "/live/s"


def test_refer_legacy_spellings():
    """SRS's srs_config_transform_vhost: `refer A;`, `refer_play B;`, `refer_publish C;` become
    `refer { enabled on; all A; play B; publish C; }`."""
    from lib.config import parse_text
    refer = parse_text("vhost v { refer a.com; refer_play b.com; refer_publish c.com d.com; }"
                       ).vhost("v").refer
    assert (refer.enabled, refer.all, refer.play, refer.publish) == \
        (True, ["a.com"], ["b.com"], ["c.com", "d.com"])
