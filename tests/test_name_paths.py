"""Issue 20 point 1: names are paths that cannot move (lib/names.py, lib/rtmp/url.py).

The attacks of the issue against real processes and real ffmpeg: while `live/victim` is
published, a publisher naming app `./live` must not become a second stream writing the same
HLS playlist, and `../secure.test/live` on the default vhost must not write into the files of
vhost secure.test (whose `security` refuses publishing). The same names are refused for RTMP
play, HTTP-FLV, through an edge, and never appear in the API. Empty segments are one spelling
of the same name ("live//sub" is "live/sub"); a trailing slash in the tcUrl (rtmp://host/live/)
works as before. Oracles: ffmpeg's exit, HTTP status codes and the API, never the log.
"""
import http.client
import json
import subprocess
import urllib.request

from tests.conftest import free_port, need_tool, wait_for, wait_port
from tests.rtmpclient import RtmpTestClient

HLS = ("hls { enabled on; hls_path {dir}/www; hls_fragment 1; hls_window 10; "
       "hls_m3u8_file [vhost]/[app]/[stream].m3u8; hls_ts_file [vhost]/[app]/[stream]-[seq].ts; }")
ORIGIN = """
listen {port};
srs_log_tank console;
http_api { enabled on; listen 127.0.0.1:APIPORT; }
http_server { enabled on; listen 127.0.0.1:HTTPPORT; dir {dir}/www; }
vhost __defaultVhost__ {
    HLS
    http_remux { enabled on; mount [vhost]/[app]/[stream].flv; }
}
vhost secure.test {
    security { enabled on; deny publish all; allow play all; }
    HLS
}
"""
EDGE = """
listen {port};
srs_log_tank console;
http_api { enabled on; listen 127.0.0.1:APIPORT; }
http_server { enabled on; listen 127.0.0.1:HTTPPORT; dir {dir}/www; }
vhost __defaultVhost__ {
    cluster { mode remote; origin 127.0.0.1:ORIGINPORT; }
    http_remux { enabled on; mount [vhost]/[app]/[stream].flv; }
}
"""


def start(server_factory, template, name, **ports):
    api, http = free_port(), free_port()
    text = template.replace("HLS", HLS).replace("APIPORT", str(api)).replace("HTTPPORT", str(http))
    for key, value in ports.items():
        text = text.replace(key, str(value))
    srv = server_factory(text, name=name)
    srv.api, srv.http = api, http
    wait_port(api)
    wait_port(http)
    return srv


def api_get(srv, path):
    with urllib.request.urlopen(f"http://127.0.0.1:{srv.api}{path}", timeout=5) as r:
        return json.loads(r.read())


def published(srv):
    """(app, name) of every stream with an active publisher, from the API."""
    return sorted((s["app"], s["name"]) for s in api_get(srv, "/api/v1/streams?count=100")["streams"]
                  if s["publish"]["active"])


def client_names(srv):
    """The url of every client the API lists."""
    return [c["url"] for c in api_get(srv, "/api/v1/clients?count=100")["clients"]]


def ffmpeg_publish(srv, media, app, stream, seconds=8):
    """ffmpeg publishing `media` with -rtmp_app/-rtmp_playpath as given (its tcUrl is then
    rtmp://127.0.0.1:PORT/APP, as in the issue)."""
    return subprocess.Popen(
        ["ffmpeg", "-v", "error", "-re", "-i", str(media), "-t", str(seconds), "-c", "copy",
         "-f", "flv", "-rtmp_app", app, "-rtmp_playpath", stream,
         f"rtmp://127.0.0.1:{srv.port}/x/y"],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def refused_quickly(proc, timeout=6):
    """True when ffmpeg gave up (non-zero exit) within `timeout` s; kills it otherwise."""
    try:
        return proc.wait(timeout) != 0
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        return False


def http_status(srv, path):
    """The status of GET `path` sent as is (no client-side normalisation of dot segments)."""
    conn = http.client.HTTPConnection("127.0.0.1", srv.http, timeout=8)
    try:
        conn.request("GET", path)
        return conn.getresponse().status
    finally:
        conn.close()


def rtmp_refused(srv, tc_url, stream, action):
    c = RtmpTestClient(f"{tc_url}/placeholder", timeout=5)
    c.stream = stream
    ok = getattr(c, action)(timeout=5)
    state = c.session.state
    c.close()
    return not ok or state == "closed"


def test_dot_segments_cannot_hijack_hls_or_another_vhost(server_factory, media_file,
                                                         publisher_factory):
    need_tool("ffmpeg")
    origin = start(server_factory, ORIGIN, "origin")
    victim = publisher_factory(f"rtmp://127.0.0.1:{origin.port}/live/victim", media_file)
    playlist = origin.dir / "www" / "__defaultVhost__" / "live" / "victim.m3u8"
    assert wait_for(lambda: published(origin) == [("live", "victim")] and playlist.exists(), 30)

    # the hijack: another "spelling" of live/victim is refused (before: a second stream
    # "/./live/victim" writing the same playlist)
    assert refused_quickly(ffmpeg_publish(origin, media_file, "./live", "victim"))
    # out of the default vhost's directory into secure.test's, whose security refuses it
    assert refused_quickly(ffmpeg_publish(origin, media_file, "../secure.test/live", "x"))
    assert not (origin.dir / "www" / "secure.test").exists()
    for tc_url, stream in (("rtmp://127.0.0.1:{}/live", "../live/victim"),
                           ("rtmp://127.0.0.1:{}/live/..", "victim"),
                           ("rtmp://127.0.0.1:{}/live", "..flv"),
                           ("rtmp://127.0.0.1:{}/live", "")):        # empty: refused as SRS
        for action in ("publish", "play"):
            assert rtmp_refused(origin, tc_url.format(origin.port), stream, action), (tc_url, stream)

    # HTTP-FLV: the same rule (400), a plain name still plays
    for path in ("/./live/victim.flv", "/%2e/live/victim.flv", "/live/./victim.flv"):
        assert http_status(origin, path) == 400, path
    assert http_status(origin, "/live/victim.flv") == 200

    # the API never showed another stream, nor a client with such a name
    assert published(origin) == [("live", "victim")]
    assert all("/." not in url for url in client_names(origin)), client_names(origin)
    assert victim.alive()


def test_empty_segments_are_one_name_and_a_trailing_slash_works(server_factory, media_file):
    need_tool("ffmpeg")
    origin = start(server_factory, ORIGIN, "origin")
    # ffmpeg with the trailing slash users type: tcUrl rtmp://127.0.0.1:PORT/live/
    first = ffmpeg_publish(origin, media_file, "live/", "t", seconds=30)
    try:
        assert wait_for(lambda: published(origin) == [("live", "t")], 15), first.stderr
        # "live//" + "/t" and "/live" + "t" are the same stream: a second publisher is refused
        for tc_url, stream in (("rtmp://127.0.0.1:{}/live//", "/t"), ("rtmp://127.0.0.1:{}//live", "t")):
            assert rtmp_refused(origin, tc_url.format(origin.port), stream, "publish")
        c = RtmpTestClient(f"rtmp://127.0.0.1:{origin.port}/live//sub/s", timeout=5)
        assert c.publish()
        assert wait_for(lambda: ("live/sub", "s") in published(origin), 5), published(origin)
        c.close()
    finally:
        first.kill()
        first.wait()


def test_through_an_edge(server_factory, media_file, publisher_factory):
    need_tool("ffmpeg")
    origin = start(server_factory, ORIGIN, "origin")
    edge = start(server_factory, EDGE, "edge", ORIGINPORT=origin.port)
    publisher_factory(f"rtmp://127.0.0.1:{origin.port}/live/victim", media_file)
    assert wait_for(lambda: published(origin) == [("live", "victim")], 30)
    # publish through the edge: refused by the edge (before: proxied to the origin as ./live)
    assert refused_quickly(ffmpeg_publish(edge, media_file, "./live", "victim"))
    assert rtmp_refused(edge, f"rtmp://127.0.0.1:{edge.port}/./live", "victim", "play")
    assert http_status(edge, "/./live/victim.flv") == 400
    assert http_status(edge, "/live/../live/victim.flv") == 403     # the HTTP server's own rule
    # nothing reached the origin under another name, and the edge made no source of it
    assert published(origin) == [("live", "victim")]
    assert all("/." not in url for url in client_names(origin) + client_names(edge))
    assert not [s for s in api_get(edge, "/api/v1/streams")["streams"] if s["app"] != "live"]
