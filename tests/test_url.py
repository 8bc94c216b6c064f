"""tcUrl/stream parsing: SRS's own unit-test cases as tables, plus ffmpeg/OBS styles."""

import pytest
from hypothesis import given, strategies as st

from lib.rtmp.errors import ProtocolError
from lib.rtmp.url import (
    DEFAULT_APP, DEFAULT_PORT, DEFAULT_VHOST, Request, UrlError, build_tc_url, discover,
    parse_query, parse_rtmp_url, parse_stream, stream_with_param, stream_with_query,
)

# (tc_url, stream) -> (schema, host, vhost, port, app, stream, param); param None = SRS's test
# did not check it (we still pin what we produce, so a change is noticed).
# From SRS trunk/src/utest/srs_utest_rtmp.cpp, TEST(ProtocolRTMPTest, DiscoveryTcUrl).
SRS_DISCOVERY = [
    # vhost and params
    ("rtmp://127.0.0.1:19351/live?vhost=demo&token=abc", "show",
     ("rtmp", "127.0.0.1", "demo", 19351, "live", "show", None)),
    ("rtmp://127.0.0.1:19351/live", "show?vhost=demo&token=abc",
     ("rtmp", "127.0.0.1", "demo", 19351, "live", "show", None)),
    # default vhost in param (SRS passes it as the param argument; here it rides on the stream)
    ("rtmp://winlin.cn/live", "show?vhost=__defaultVhost__",
     ("rtmp", "winlin.cn", "winlin.cn", 1935, "live", "show", None)),
    # default app
    ("rtmp://winlin.cn/", "show", ("rtmp", "winlin.cn", "winlin.cn", 1935, DEFAULT_APP, "show", None)),
    # general url
    ("rtmp://winlin.cn/live", "show", ("rtmp", "winlin.cn", "winlin.cn", 1935, "live", "show", None)),
    ("rtmp://winlin.cn:19351/live", "show",
     ("rtmp", "winlin.cn", "winlin.cn", 19351, "live", "show", None)),
    ("rtmp://winlin.cn/live", "show?key=abc",
     ("rtmp", "winlin.cn", "winlin.cn", 1935, "live", "show", "?key=abc")),
    ("rtmp://winlin.cn/live", "show?key=abc&&vhost=demo.com",
     ("rtmp", "winlin.cn", "demo.com", 1935, "live", "show", "?key=abc&&vhost=demo.com")),
    # vhost in app
    ("rtmp://winlin.cn/live?key=abc", "show",
     ("rtmp", "winlin.cn", "winlin.cn", 1935, "live", "show", "?key=abc")),
    ("rtmp://winlin.cn/live?key=abc&&vhost=demo.com", "show",
     ("rtmp", "winlin.cn", "demo.com", 1935, "live", "show", "?key=abc&&vhost=demo.com")),
    # without stream
    ("rtmp://winlin.cn/live", "", ("rtmp", "winlin.cn", "winlin.cn", 1935, "live", "", None)),
    ("rtmp://127.0.0.1:1935/live", "", ("rtmp", "127.0.0.1", "127.0.0.1", 1935, "live", "", None)),
    ("rtmp://127.0.0.1:19351/live", "", ("rtmp", "127.0.0.1", "127.0.0.1", 19351, "live", "", None)),
    ("rtmp://127.0.0.1:19351/live?vhost=demo", "",
     ("rtmp", "127.0.0.1", "demo", 19351, "live", "", None)),
    # no vhost
    ("rtmp://127.0.0.1:19351/live", "show",
     ("rtmp", "127.0.0.1", "127.0.0.1", 19351, "live", "show", None)),
    # ip and vhost
    ("rtmp://127.0.0.1:19351/live", "show?vhost=demo",
     ("rtmp", "127.0.0.1", "demo", 19351, "live", "show", None)),
    # _definst_ at the end of app
    ("rtmp://winlin.cn/live/_definst_", "show",
     ("rtmp", "winlin.cn", "winlin.cn", 1935, "live", "show", None)),
]

# From SRS trunk/src/utest/srs_utest_protocol.cpp, TEST(ProtocolRTMPTest, RTMPRequest): the
# request is stripped of whitespace (SrsRequest::strip).
SRS_REQUEST_STRIP = [
    "rtmp://std.ossrs.net/live",
    "rtmp://s td.os srs.n et/li v e",
    "rtmp://s\ntd.o\rssrs.ne\nt/li\nve",
    "rtmp://std.ossrs.net/live ",
]

# The examples of SRS's srs_guess_stream_by_app comment: OBS with an empty stream key.
SRS_GUESS = [
    ("rtmp://ip/live/livestream", ("live", "livestream", "")),
    ("rtmp://ip/live/livestream?secret=xxx", ("live", "livestream", "?secret=xxx")),
    ("rtmp://ip/live?secret=xxx/livestream", ("live", "livestream", "?secret=xxx")),
]

# Clients as they really connect, and the other spellings SRS accepts.
CLIENTS = [
    # ffmpeg: tcUrl without query, token on the stream
    ("rtmp://127.0.0.1:1935/live", "livestream?token=abc",
     ("rtmp", "127.0.0.1", "127.0.0.1", 1935, "live", "livestream", "?token=abc")),
    ("rtmp://127.0.0.1/live?vhost=down.srs.com", "livestream",
     ("rtmp", "127.0.0.1", "down.srs.com", 1935, "live", "livestream", "?vhost=down.srs.com")),
    ("rtmp://127.0.0.1/live?domain=down.srs.com", "livestream",
     ("rtmp", "127.0.0.1", "down.srs.com", 1935, "live", "livestream", "?domain=down.srs.com")),
    ("rtmp://127.0.0.1/live?vhost=a.com&domain=b.com", "livestream",
     ("rtmp", "127.0.0.1", "a.com", 1935, "live", "livestream", "?vhost=a.com&domain=b.com")),
    # legacy ...vhost... form
    ("rtmp://127.0.0.1/live...vhost...demo.com", "livestream",
     ("rtmp", "127.0.0.1", "demo.com", 1935, "live", "livestream", "?vhost=demo.com")),
    # an explicit default vhost keeps the host; dropped from param only when alone
    ("rtmp://ossrs.net/live?vhost=__defaultVhost__", "livestream",
     ("rtmp", "ossrs.net", "ossrs.net", 1935, "live", "livestream", "")),
    ("rtmp://ossrs.net/live?vhost=__defaultVhost__&token=t", "livestream",
     ("rtmp", "ossrs.net", "ossrs.net", 1935, "live", "livestream",
      "?vhost=__defaultVhost__&token=t")),
    # multi-level app; FMLE query before the stream; fragment
    ("rtmp://ossrs.net/live/app2", "livestream",
     ("rtmp", "ossrs.net", "ossrs.net", 1935, "live/app2", "livestream", "")),
    ("rtmp://ossrs.net/live/app2?vhost=demo", "livestream",
     ("rtmp", "ossrs.net", "demo", 1935, "live/app2", "livestream", "?vhost=demo")),
    ("rtmp://ossrs.net/live#k=v", "livestream",
     ("rtmp", "ossrs.net", "ossrs.net", 1935, "live", "livestream", "#k=v")),
    ("rtmp://ossrs.net/live/_definst_?vhost=demo", "livestream",
     ("rtmp", "ossrs.net", "demo", 1935, "live", "livestream", "?vhost=demo")),
    # query on both: SRS appends the tcUrl's after the stream's; its parser then reads the
    # query after the second "?" only, so the vhost is found and the token is not a key.
    ("rtmp://127.0.0.1/live?vhost=demo", "livestream?token=abc",
     ("rtmp", "127.0.0.1", "demo", 1935, "live", "livestream", "?token=abc?vhost=demo")),
    # stream with a leading slash; user info; IPv6; default vhost as host
    ("rtmp://ossrs.net/live", "/livestream",
     ("rtmp", "ossrs.net", "ossrs.net", 1935, "live", "livestream", "")),
    ("rtmp://user:pass@ossrs.net:1936/live", "livestream",
     ("rtmp", "ossrs.net", "ossrs.net", 1936, "live", "livestream", "")),
    ("rtmp://[::1]:19350/live", "livestream",
     ("rtmp", "::1", "::1", 19350, "live", "livestream", "")),
    ("rtmp://__defaultVhost__/live", "livestream",
     ("rtmp", DEFAULT_VHOST, DEFAULT_VHOST, 1935, "live", "livestream", "")),
    # no path at all; port 0 means the default, as in SRS
    ("rtmp://ossrs.net", "livestream",
     ("rtmp", "ossrs.net", "ossrs.net", 1935, DEFAULT_APP, "livestream", "")),
    ("rtmp://ossrs.net:0/live", "s", ("rtmp", "ossrs.net", "ossrs.net", 1935, "live", "s", "")),
]


def _fields(req):
    return (req.schema, req.host, req.vhost, req.port, req.app, req.stream, req.param)


@pytest.mark.parametrize("tc_url,stream,expected", SRS_DISCOVERY + CLIENTS)
def test_discover(tc_url, stream, expected):
    req = discover(tc_url, stream)
    got = _fields(req)
    if expected[6] is None:
        got, expected = got[:6], expected[:6]
    assert got == expected
    assert req.tc_url == tc_url


@pytest.mark.parametrize("tc_url", SRS_REQUEST_STRIP)
def test_discover_strips_whitespace(tc_url):
    req = discover(tc_url, "livestream")
    assert _fields(req) == ("rtmp", "std.ossrs.net", "std.ossrs.net", 1935, "live", "livestream", "")


@pytest.mark.parametrize("tc_url,expected", SRS_GUESS)
def test_guess_stream_from_app_or_param(tc_url, expected):
    req = discover(tc_url, "")
    assert (req.app, req.stream, req.param) == expected


def test_guess_is_optional_for_connect_time():
    req = discover("rtmp://ip/live/livestream", "", guess_stream=False)
    assert (req.app, req.stream) == ("live/livestream", "")


def test_guessed_param_gives_the_vhost():
    # SRS resolves the vhost before guessing and would get "demolivestream"; we guess first.
    req = discover("rtmp://127.0.0.1/live?vhost=demo/livestream", "")
    assert (req.vhost, req.app, req.stream, req.param) == ("demo", "live", "livestream", "?vhost=demo")


MALFORMED = [
    ("", "livestream"),
    ("   ", "livestream"),
    ("live/livestream", ""),            # no schema
    ("127.0.0.1:1935/live", "s"),       # no schema
    ("://127.0.0.1/live", "s"),         # empty schema
    ("rtmp:///live", "s"),              # no host
    ("rtmp:// /live", "s"),             # blank host
    ("rtmp://:1935/live", "s"),         # no host
    ("rtmp://ossrs.net:abc/live", "s"),  # bad port
    ("rtmp://ossrs.net:/live", "s"),    # empty port
    ("rtmp://ossrs.net:99999/live", "s"),
    ("rtmp://ossrs.net:-1/live", "s"),
    ("rtmp://[::1/live", "s"),          # unclosed IPv6
    ("live", "rtmp://ossrs.net/x"),     # the schema must come from the tcUrl
    (None, "s"),
    (b"rtmp://ossrs.net/live", "s"),
    ("rtmp://ossrs.net/live", 5),
]


@pytest.mark.parametrize("tc_url,stream", MALFORMED)
def test_malformed_raises_protocol_error(tc_url, stream):
    with pytest.raises(UrlError) as info:
        discover(tc_url, stream)
    assert isinstance(info.value, ProtocolError)
    assert str(info.value)


def test_none_stream_is_empty():
    assert discover("rtmp://ossrs.net/live", None).stream == ""


@given(st.text(), st.text())
def test_any_text_parses_or_raises_protocol_error(tc_url, stream):
    for url in (tc_url, "rtmp://" + tc_url):
        try:
            req = discover(url, stream)
        except UrlError:
            continue
        assert req.host and req.vhost and req.app and 0 < req.port <= 65535
        assert req.param == "" or req.param[0] in "?#"


# From SRS TEST(ProtocolRTMPTest, ParseRTMPURL).
@pytest.mark.parametrize("url,expected", [
    ("rtmp://ossrs.net/live/show/livestream?token=abc", ("rtmp://ossrs.net/live/show", "livestream?token=abc")),
    ("rtmp://ossrs.net/live/show/livestream", ("rtmp://ossrs.net/live/show", "livestream")),
    ("rtmp://ossrs.net/live/livestream", ("rtmp://ossrs.net/live", "livestream")),
    ("livestream", ("livestream", "")),
])
def test_parse_rtmp_url(url, expected):
    assert parse_rtmp_url(url) == expected


@pytest.mark.parametrize("stream,expected", [
    ("livestream", ("livestream", "")),
    ("livestream?token=abc", ("livestream", "?token=abc")),
    ("livestream?token=abc?vhost=x", ("livestream", "?token=abc?vhost=x")),
    ("", ("", "")),
])
def test_parse_stream(stream, expected):
    assert parse_stream(stream) == expected


def test_parse_stream_rejects_non_string():
    with pytest.raises(UrlError):
        parse_stream(None)


# From SRS TEST(ProtocolRTMPTest, GenerateURL): (host, vhost, stream, param) -> stream with query.
@pytest.mark.parametrize("host,vhost,stream,param,expected", [
    ("184.23.22.14", "ossrs.net", "stream", "token=abc", "stream?token=abc&vhost=ossrs.net"),
    ("184.23.22.14", DEFAULT_VHOST, "stream", "vhost=ossrs.net", "stream?vhost=ossrs.net"),
    ("184.23.22.14", DEFAULT_VHOST, "stream", "", "stream"),
    ("184.23.22.14", "ossrs.net", "stream", "", "stream?vhost=ossrs.net"),
    ("ossrs.net", DEFAULT_VHOST, "stream", "", "stream?vhost=ossrs.net"),
    # the param as discover() returns it, with its "?"
    ("184.23.22.14", "ossrs.net", "stream", "?token=abc", "stream?token=abc&vhost=ossrs.net"),
])
def test_stream_with_query(host, vhost, stream, param, expected):
    assert stream_with_query(host, vhost, stream, param) == expected


@pytest.mark.parametrize("host,vhost,param,expected", [
    ("184.23.22.14", "ossrs.net", "?token=abc", "stream?token=abc"),
    ("184.23.22.14", "ossrs.net", "?vhost=a.com&token=abc", "stream?token=abc"),
    ("184.23.22.14", "ossrs.net", "?token=abc&vhost=a.com&k=v", "stream?token=abc&k=v"),
    ("ossrs.net", DEFAULT_VHOST, "", "stream"),
])
def test_stream_with_query_without_vhost(host, vhost, param, expected):
    assert stream_with_query(host, vhost, "stream", param, with_vhost=False) == expected


@pytest.mark.parametrize("param,strip,expected", [
    ("", True, "livestream"),
    ("?token=abc", True, "livestream?token=abc"),
    ("?vhost=down.srs.com&token=abc", True, "livestream?token=abc"),
    ("?token=abc&domain=down.srs.com", True, "livestream?token=abc"),
    ("?vhost=down.srs.com", True, "livestream"),
    ("token=abc&vhost=a.com", False, "livestream?token=abc&vhost=a.com"),
    ("?token=abc&&k=v", True, "livestream?token=abc&k=v"),
])
def test_stream_with_param(param, strip, expected):
    assert stream_with_param("livestream", param, strip) == expected


@pytest.mark.parametrize("args,expected", [
    (("rtmp", "127.0.0.1", DEFAULT_VHOST, "live", 1935), "rtmp://127.0.0.1/live"),
    (("rtmp", "127.0.0.1", DEFAULT_VHOST, "live", 19350), "rtmp://127.0.0.1:19350/live"),
    (("rtmp", "127.0.0.1", "demo.com", "live", 1935), "rtmp://demo.com/live"),
    (("rtmp", "127.0.0.1", "demo.com", "live", 19350), "rtmp://demo.com:19350/live"),
    (("rtmp", "", DEFAULT_VHOST, "live", 0), "rtmp://__defaultVhost__/live"),
])
def test_build_tc_url(args, expected):
    assert build_tc_url(*args) == expected


def test_build_tc_url_round_trip():
    req = discover(build_tc_url("rtmp", "10.0.0.1", "demo.com", "live/app2", 19350), "s")
    assert (req.host, req.vhost, req.port, req.app, req.stream) == ("demo.com", "demo.com", 19350, "live/app2", "s")


@pytest.mark.parametrize("vhost,stream,expected", [
    (DEFAULT_VHOST, "livestream", "/live/livestream"),
    ("demo.com", "livestream", "demo.com/live/livestream"),
    (DEFAULT_VHOST, "livestream.flv", "/live/livestream"),
])
def test_stream_url(vhost, stream, expected):
    assert Request(vhost=vhost, app="live", stream=stream).stream_url == expected


@pytest.mark.parametrize("query,expected", [
    ("", {}),
    ("key=abc&&vhost=demo.com", {"key": "abc", "vhost": "demo.com"}),
    ("a=1,b=2;c=3&d", {"a": "1", "b": "2", "c": "3", "d": ""}),
    ("a=&b=2", {"a": "", "b": "2"}),
    ("token=abc?vhost=x", {"vhost": "x"}),
])
def test_parse_query(query, expected):
    assert parse_query(query) == expected


def test_param_dict():
    req = discover("rtmp://127.0.0.1/live", "livestream?token=abc&vhost=demo#frag")
    assert req.param == "?token=abc&vhost=demo#frag"
    assert req.param_dict() == {"token": "abc", "vhost": "demo"}
    assert req.vhost == "demo"
    assert DEFAULT_PORT == 1935


def test_stream_with_param_merges_tcurl_and_stream_queries():
    req = discover("rtmp://127.0.0.1/live?token=A", "livestream?token=B&key=C")
    assert stream_with_param(req.stream, req.param) == "livestream?token=B&key=C&token=A"


# Issue 20 point 1: every name a Request holds is a path that cannot move (lib/rtmp/url.py
# header, "Path segments"). Empty segments are one spelling of the same name (SRS already trims
# the edge ones); "." and ".." segments are refused, wherever they come from.
SAME_NAME = [
    ("rtmp://h/live/", "s", ("live", "s")),                 # what ffmpeg/OBS users type
    ("rtmp://h//live//", "/s", ("live", "s")),
    ("rtmp://h/live//app2", "s", ("live/app2", "s")),
    ("rtmp://h/live///app2/", "s", ("live/app2", "s")),
    ("rtmp://h/live//app2//s", "", ("live", "app2/s")),        # guessed, OBS style
    ("rtmp://h/live", "s...flv", ("live", "s...flv")),          # dots inside a name are fine
    ("rtmp://h/live..x", "a.b.c", ("live..x", "a.b.c")),
]


@pytest.mark.parametrize("tc_url,stream,expected", SAME_NAME)
def test_empty_segments_are_one_spelling(tc_url, stream, expected):
    req = discover(tc_url, stream)
    assert (req.app, req.stream) == expected


DOT_SEGMENTS = [
    ("rtmp://h/./live", "victim"),               # the HLS hijack of issue 20
    ("rtmp://h/../secure.test/live", "x"),       # out of the vhost's HLS directory
    ("rtmp://h/live/..", "x"),
    ("rtmp://h/live/./app2", "x"),
    ("rtmp://h/live/.", "x"),
    ("rtmp://h/live", "."),
    ("rtmp://h/live", ".."),
    ("rtmp://h/live", "../x"),
    ("rtmp://h/live/../x", ""),                  # guessed stream "../x"
    ("rtmp://h/live/x/..", ""),
    ("rtmp://h/live", "..flv"),                  # its name without the extension is "."
    ("rtmp://h/live", ".flv"),                   # ... or empty
    ("rtmp://h/live?k=v/..", ""),                # guessed from the param
    ("rtmp://h///", "s"),                        # empty app (before: app "", key "vhost//s")
    ("rtmp://h/ /", "s"),
]


@pytest.mark.parametrize("tc_url,stream", DOT_SEGMENTS)
def test_dot_segments_are_refused(tc_url, stream):
    with pytest.raises(UrlError) as info:
        discover(tc_url, stream)
    assert "segment" in str(info.value) or "empty" in str(info.value)
    assert "secure" not in str(info.value)       # the name is not quoted (limits.py's rule)


def test_dot_segments_are_refused_at_connect_too():
    with pytest.raises(UrlError):
        discover("rtmp://h/./live", "", guess_stream=False)
    assert discover("rtmp://h/live/", "", guess_stream=False).app == "live"


@given(st.lists(st.sampled_from(["", ".", "..", "a", "b.c", ". ", "..."]), max_size=5),
       st.lists(st.sampled_from(["", ".", "..", "s", "s.flv", "..."]), max_size=3))
def test_no_request_name_holds_an_empty_or_dot_segment(app, stream):
    try:
        req = discover("rtmp://h/" + "/".join(app), "/".join(stream))
    except UrlError:
        return
    for name in (req.app, req.stream):
        assert name == "" or all(seg not in ("", ".", "..") for seg in name.split("/")), req


def test_one_path_is_one_stream():
    """Names that put the same files on disk (app/stream) are one source: the extension a
    stream key drops is only the last segment's (issue 20)."""
    from lib.names import stream_key
    guessed = discover("rtmp://h/live/a.b/c", "")          # OBS style: app live, stream a.b/c
    plain = discover("rtmp://h/live/a.b", "c")
    assert (guessed.app, guessed.stream) == ("live", "a.b/c")
    assert stream_key("v", guessed.app, guessed.stream) == stream_key("v", plain.app, plain.stream)
    assert stream_key("v", "live", "s.flv") == stream_key("v", "live", "s") == "v/live/s"
