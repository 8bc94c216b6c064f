"""Sans-IO parts of the edge pull over HTTP-FLV (`cluster { protocol flv|flvs; }`): the FLV tag
reader (lib/media/flv.py) and the HTTP/1.1 response reader (lib/http1.py), fed every sample
split at every byte boundary; and the URL the edge asks its origin for (SRS's
SrsEdgeFlvUpstream: `/app/stream.flv` + the player's query)."""
import pytest

from lib import http1
from lib.names import VERSION
from lib.rtmp import amf0
from lib.rtmp.errors import ProtocolError
from lib.config.view import parse_text
from lib.media import flv
from lib.rtmp.url import Request
from lib.server.edge import flv_upstream

TAGS = [(flv.TAG_SCRIPT, 0, b"\x02\x00\x0aonMetaData\x08\x00\x00\x00\x00\x00\x00\x09"),
        (flv.TAG_VIDEO, 0, b"\x17\x00\x00\x00\x00\x01\x64"),
        (flv.TAG_AUDIO, 0, b"\xaf\x00\x12\x10"),
        (flv.TAG_VIDEO, 40, b"\x17\x01\x00\x00\x00" + bytes(300)),
        (flv.TAG_AUDIO, 0x01020304, b"\xaf\x01" + bytes(7)),      # extended timestamp
        (flv.TAG_VIDEO, 0x01020310, b"")]                          # an empty tag


def flv_file():
    return flv.file_header() + b"".join(flv.tag(t, ts, p) for t, ts, p in TAGS)


def feed_split(reader, data, cut):
    return reader.feed(data[:cut]) + reader.feed(data[cut:])


def test_flv_reader_every_split_point():
    data = flv_file()
    for cut in range(len(data) + 1):
        got = feed_split(flv.FlvTagReader(), data, cut)
        assert got == TAGS, cut


def test_flv_reader_byte_by_byte_and_header_offset():
    # a DataOffset beyond 9 (a longer header, as the spec allows) is skipped
    data = b"FLV\x01\x05\x00\x00\x00\x0c" + b"xyz" + b"\x00\x00\x00\x00" + \
        b"".join(flv.tag(t, ts, p) for t, ts, p in TAGS)
    reader = flv.FlvTagReader()
    got = []
    for i in range(len(data)):
        got += reader.feed(data[i:i + 1])
    assert got == TAGS


@pytest.mark.parametrize("bad, why", [
    (b"HTTP/1.1 200 OK\r\n", "not an FLV stream"),
    (b"FLV\x01\x05\x00\x00\x00\x03" + bytes(4), "bad FLV header size"),
    (flv.file_header() + flv.tag(flv.TAG_VIDEO, 0, b"\x17")[:0] + b"\x29" + bytes(14),
     "encrypted or unknown FLV tag type"),
])
def test_flv_reader_rejects_garbage(bad, why):
    with pytest.raises(flv.FlvError, match=why):
        flv.FlvTagReader().feed(bad)


def test_flv_reader_holds_at_most_one_tag():
    reader = flv.FlvTagReader()
    reader.feed(flv.file_header() + flv.tag(flv.TAG_VIDEO, 0, bytes(5000))[:3000])
    assert reader.buffered <= 3000


HEAD = (b"HTTP/1.1 200 OK\r\nServer: SRS/7.0.18\r\nContent-Type: video/x-flv\r\n"
        b"Transfer-Encoding: chunked\r\nConnection: Keep-Alive\r\n\r\n")
BODY = b"FLV\x01\x05" + bytes(300) + b"end"


def chunked(body, sizes=(5, 1, 17, 300)):
    out, pos = [], 0
    for size in sizes:
        piece = body[pos:pos + size]
        pos += size
        if piece:
            out.append(b"%x;ext=1\r\n" % len(piece) + piece + b"\r\n")
    return b"".join(out) + b"0\r\nX-Trailer: 1\r\n\r\n"


def read_all(data, cut):
    reader = http1.ResponseReader()
    body = reader.feed(data[:cut]) + reader.feed(data[cut:])
    return reader, body


def test_http_response_chunked_every_split_point():
    data = HEAD + chunked(BODY)
    for cut in range(len(data) + 1):
        reader, body = read_all(data, cut)
        assert reader.head.status == 200 and reader.head.headers["content-type"] == "video/x-flv"
        assert body == BODY and reader.finished, cut


def test_http_response_until_close_and_content_length():
    head = b"HTTP/1.1 200 OK\r\nContent-Type: video/x-flv\r\nConnection: close\r\n\r\n"
    for cut in range(len(head) + 20):
        reader, body = read_all(head + BODY, cut)
        assert body == BODY and not reader.finished       # the body ends when the server closes
    head = b"HTTP/1.1 302 Found\r\nLocation: http://b:8080/live/x.flv\r\nContent-Length: 3\r\n\r\n"
    for cut in range(len(head) + 4):
        reader, body = read_all(head + b"abcdef", cut)
        assert reader.head.status == 302
        assert reader.head.headers["location"] == "http://b:8080/live/x.flv"
        assert body == b"abc" and reader.finished


@pytest.mark.parametrize("bad", [b"RTMP garbage\r\n\r\n", b"HTTP/1.1 abc OK\r\n\r\n",
                                 b"HTTP/1.1 200 OK\r\n" + b"X: " + bytes(20000),
                                 HEAD + b"zz\r\n"])
def test_http_response_rejects_garbage(bad):
    with pytest.raises(http1.HttpError):
        http1.ResponseReader().feed(bad)


def request(stream="livestream", param="", app="live", vhost="__defaultVhost__"):
    return Request(schema="rtmp", host="edge", vhost=vhost, port=1935, app=app, stream=stream,
                   param=param, tc_url="")


def test_upstream_path_as_srs():
    # SRS: "/" + app + "/" + stream [+ ".flv"] + param; the vhost is not sent (Host: origin)
    assert flv_upstream.upstream_path(request()) == "/live/livestream.flv"
    assert flv_upstream.upstream_path(request(param="?token=abc&vhost=v1")) == \
        "/live/livestream.flv?token=abc&vhost=v1"
    assert flv_upstream.upstream_path(request(app="live/sub")) == "/live/sub/livestream.flv"


def test_redirect_location_parsed():
    base = "http://a:8080/live/x.flv?t=1"
    assert flv_upstream.parse_location("https://b.example:8443/live/x.flv?t=1", base) == \
        ("https", ("b.example", 8443), "/live/x.flv?t=1")
    assert flv_upstream.parse_location("http://[::1]/live/x.flv", base) == \
        ("http", ("::1", 80), "/live/x.flv")
    assert flv_upstream.parse_location("/other/y.flv", base) == \
        ("http", ("a", 8080), "/other/y.flv")
    for bad in ("rtmp://c/live/x", "", "https://:443/x.flv"):
        with pytest.raises(ValueError):
            flv_upstream.parse_location(bad, base)


def test_bare_origin_gets_the_http_default_port_as_srs():
    # SRS's SrsEdgeFlvUpstream: SRS_DEFAULT_HTTP_PORT 80 (flv), SRS_DEFAULT_HTTPS_PORT 443 (flvs)
    conf = parse_text("vhost a { cluster { mode remote; origin o1 o2:8080; protocol flv; } }\n"
                      "vhost b { cluster { mode remote; origin o1; protocol flvs; } }\n"
                      "vhost c { cluster { mode remote; origin o1; } }")
    assert conf.vhosts["a"].cluster.origin == [("o1", 80), ("o2", 8080)]
    assert conf.vhosts["b"].cluster.origin == [("o1", 443)]
    assert conf.vhosts["c"].cluster.origin == [("o1", 1935)]


def test_flv_session_every_split_point_gives_rtmp_like_events():
    """What the ingester's `_read` gets from an HTTP-FLV body, as from RTMP: audio/video as
    they are, onMetaData without @setDataFrame (rs.data_payload), empty script tags dropped."""
    meta = amf0.encode("@setDataFrame", "onMetaData", {"width": 320.0})
    tags = [(flv.TAG_SCRIPT, 0, meta), (flv.TAG_SCRIPT, 0, b"")] + TAGS[1:4]
    body = flv.file_header() + b"".join(flv.tag(t, ts, p) for t, ts, p in tags)
    data = HEAD + chunked(body, sizes=(7, 100, 3, 1000))
    # live metadata as SRS's SrsMetaCache makes it: the server's name and version added
    want = [(18, 0, amf0.encode("onMetaData", {"width": 320.0, "server": f"srsedge/{VERSION}",
                                               "server_version": VERSION}))] + TAGS[1:4]
    for cut in range(len(data) + 1):
        session = flv_upstream.FlvSession("http", ("o", 8080), "/live/s.flv")
        events = session.feed(data[:cut]) + session.feed(data[cut:])
        assert [(e.type_id, e.timestamp, e.payload) for e in events] == want, cut
        assert session.handle(events) == events and not session.has_output()


def test_flv_session_request_and_bad_bytes():
    session = flv_upstream.FlvSession("http", ("o", 8080), "/live/s.flv?token=1")
    assert session.start().startswith(b"GET /live/s.flv?token=1 HTTP/1.1\r\nHost: o:8080\r\n")
    assert b"Host: o\r\n" in flv_upstream.FlvSession("http", ("o", 80), "/a/b.flv").start()
    assert flv_upstream.FlvSession("https", ("o", 8088), "/a/b.flv").start()[:1] == b"\x16"
    with pytest.raises(ProtocolError):           # RTMP's S0+S1 where HTTP was expected
        session.feed(b"\x03" + bytes(1536))
    session = flv_upstream.FlvSession("http", ("o", 8080), "/live/s.flv")
    with pytest.raises(ProtocolError, match="not an FLV stream"):
        session.feed(HEAD + chunked(b"<html>not found</html>"))


def test_workers_pull_from_worker_0_over_rtmp():
    # workers 1..N-1 are edges of worker 0's RTMP port, whatever the vhost's own protocol
    from lib.server.process.workers import worker_config
    conf = parse_text("workers 2; vhost a { cluster { mode remote; origin o1; protocol flv; } }")
    cluster = worker_config(conf, 19350).vhosts["a"].cluster
    assert cluster.origin == [("127.0.0.1", 19350)] and cluster.protocol == "rtmp"
