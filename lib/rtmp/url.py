"""RTMP url handling: tcUrl + stream -> schema/host/vhost/port/app/stream/param, as SRS does it.

Sans-IO, standard library only. Behaviour follows SRS's srs_discovery_tc_url (SRS 5, called
srs_net_url_parse_tcurl in SRS 7), srs_guess_stream_by_app, SrsRequest::strip,
srs_generate_stream_url, srs_generate_tc_url, srs_generate_stream_with_query and
srs_parse_rtmp_url. SRS's own unit-test cases for them are in tests/test_url.py.

Public API
    DEFAULT_VHOST = "__defaultVhost__"; DEFAULT_APP = "__defaultApp__"; DEFAULT_PORT = 1935
    UrlError(ProtocolError)          raised for malformed input, never another exception type.
                                     Its message never holds the url's query (tokens) or
                                     user:password, and at most SHOWN_CHARS of it.
    Request(schema, host, vhost, port, app, stream, param, tc_url)   (dataclass)
        .stream_url                  source key "vhost/app/stream"; "/app/stream" when vhost is
                                     the default vhost, and the stream's ".ext" is dropped (as SRS).
        .param_dict() -> dict        the query parsed like SRS (separators & && , ; and =).
    discover(tc_url, stream, guess_stream=True) -> Request
    parse_stream(stream) -> (name, param)
    parse_rtmp_url(url) -> (tc_url, stream)
    build_tc_url(schema, host, vhost, app, port) -> str
    stream_with_query(host, vhost, stream, param, with_vhost=True) -> str
    stream_with_param(stream, param, vhost_to_strip=True) -> str
An edge going upstream with a vhost transform builds its tcUrl with build_tc_url (the vhost
becomes the url's host) and its play/publish name with stream_with_param (vhost/domain removed,
token kept); stream_with_query is SRS's exact function, which also appends the vhost.

How discover() works (SRS 5 srs_discovery_tc_url):
  1. "...vhost..." is the legacy spelling of "?vhost=".
  2. full = tcUrl + "/" + stream. An FMLE url "rtmp://ip/app?k=v/stream" (query before the last
     slash) becomes "rtmp://ip/app/stream?k=v". "/_definst_" is removed.
  3. The last path segment is the stream, the rest the app ("__defaultApp__" when empty); the
     query (with its "?", plus any "#fragment") is the param.
  4. When the stream is empty (OBS puts it all in the server url) and guess_stream is set, it is
     guessed from the app ("live/livestream") or the param ("?k=v/livestream").
  5. vhost = query "vhost", else query "domain", else the host. "vhost=__defaultVhost__" keeps
     the host, and is dropped from param when it is the only parameter.
  6. SrsRequest::strip: whitespace removed from host/vhost/app/stream, slashes trimmed.
  7. Path segments (lib/names.py): runs of "/" in app and stream are one "/" ("live//app2" is
     "live/app2": one name, one file); a "." or ".." segment in app or stream, or a stream whose
     name without its extension is empty or ".", is refused with UrlError (the name is not
     quoted). So every Request's app and stream are relative paths that cannot move.
The vhost is the host when no vhost is given, also when the host is an IP: mapping that to the
default vhost is the config lookup's job (SRS then overwrites req->vhost with the config name).

Where this deviates from SRS: the vhost is resolved after guessing the stream (SRS resolves it
before, so "rtmp://ip/live?vhost=demo/livestream" with an empty stream gives it vhost
"demolivestream"; here "demo"). A tcUrl that SRS's http parser rejects (no "://", empty host, bad
port) leaves SRS's request half-empty and connect fails later; here it raises UrlError. A port
omitted (or 0) is 1935 for every schema except http (80) and https (443). SRS keeps "." and
".." segments and interior "//" (app "./live" is another stream than "live", whose HLS files
are the same; SRS's HTTP server refuses any url holding ".."); here step 7 refuses or merges them.
"""

import re
from dataclasses import dataclass

from lib.rtmp.errors import ProtocolError

from lib.names import DEFAULT_VHOST, bad_segment, stream_name, stream_url  # noqa: E402
DEFAULT_APP = "__defaultApp__"
DEFAULT_PORT = 1935

_SCHEMA_PORTS = {"http": 80, "https": 443}
_QUERY_SEPARATORS = ("=", ",", "&&", "&", ";")  # order matters: "&&" before "&"
_WHITESPACE = " \n\r\t"
_SLASHES = re.compile(r"/{2,}")
SHOWN_CHARS = 128     # of a client's url in an error message


class UrlError(ProtocolError):
    """A tcUrl or stream that cannot be parsed."""


@dataclass
class Request:
    schema: str = "rtmp"
    host: str = ""
    vhost: str = ""
    port: int = DEFAULT_PORT
    app: str = ""
    stream: str = ""
    param: str = ""  # query string with its leading "?", or ""
    tc_url: str = ""

    @property
    def stream_url(self) -> str:
        """SRS's source key (srs_generate_stream_url): "vhost/app/stream", "/app/stream" for the
        default vhost; the stream's extension is ignored ("livestream.flv" -> "livestream").
        Set vhost to the matched config vhost's name first (an IP host means the default vhost)."""
        return stream_url(self.vhost, self.app, self.stream)

    def param_dict(self) -> dict:
        """The query of param (without "?" and any "#fragment") parsed like SRS."""
        query = self.param.partition("#")[0]
        return parse_query(query[1:] if query.startswith("?") else query)


def parse_query(query: str) -> dict:
    """SRS's query parsing (SrsHttpUri::parse_query + srs_parse_query_string): everything up to
    the first "?" is ignored, then the text is split at any of = , && & ; and the pieces are
    taken as key, value, key, value... A later duplicate key wins."""
    query = query[query.find("?") + 1:]  # find() is -1 when absent: keeps the whole string
    pieces = _split_any(query, _QUERY_SEPARATORS)
    return {pieces[i]: (pieces[i + 1] if i + 1 < len(pieces) else "")
            for i in range(0, len(pieces), 2)}


def _split_any(text: str, separators) -> list:
    """srs_string_split with several separators: cut at the earliest one (the first listed wins
    a tie); empty pieces are kept except a trailing one."""
    pieces = []
    while True:
        best_pos, best_sep = -1, ""
        for sep in separators:
            pos = text.find(sep)
            if pos >= 0 and (best_pos < 0 or pos < best_pos):
                best_pos, best_sep = pos, sep
        if best_pos < 0:
            break
        pieces.append(text[:best_pos])
        text = text[best_pos + len(best_sep):]
    if text:
        pieces.append(text)
    return pieces


def parse_stream(stream: str) -> tuple:
    """"livestream?token=abc" -> ("livestream", "?token=abc"); no query -> (stream, "")."""
    _check_str("stream", stream)
    pos = stream.find("?")
    if pos < 0:
        return stream, ""
    return stream[:pos], stream[pos:]


def parse_rtmp_url(url: str) -> tuple:
    """srs_parse_rtmp_url: split a full url at its last slash into (tc_url, stream)."""
    _check_str("url", url)
    pos = url.rfind("/")
    if pos < 0:
        return url, ""
    return url[:pos], url[pos + 1:]


def discover(tc_url: str, stream: str, guess_stream: bool = True) -> Request:
    """Parse a client's connect tcUrl plus its publish/play stream name the way SRS does."""
    _check_str("tcUrl", tc_url)
    stream = "" if stream is None else stream
    _check_str("stream", stream)
    if not tc_url.strip(_WHITESPACE):
        raise UrlError("empty tcUrl")

    full = tc_url + (stream if stream.startswith("/") else "/" + stream)
    full = full.replace("...vhost...", "?vhost=")
    full = _query_after_stream(full)
    full = full.replace("/_definst_", "")

    schema, host, port, path, query, fragment = _split_url(full, tc_url)
    app = _dirname(path)
    app = app[1:] if app.startswith("/") else app
    param = ("?" + query if query else "") + ("#" + fragment if fragment else "")
    req = Request(schema=schema, host=host, vhost="", port=port, app=app or DEFAULT_APP,
                  stream=_basename(path), param=param, tc_url=tc_url)
    _strip(req)
    if guess_stream and not req.stream:
        _guess_stream(req)
        _strip(req)
    _check_segments(req)
    _resolve_vhost(req)
    return req


def _resolve_vhost(req: Request) -> None:
    """vhost from the query ("vhost", else "domain"), else the host. An explicit default vhost
    keeps the host, and is dropped from param when it is the only parameter."""
    values = req.param_dict()
    in_query = values.get("vhost") or values.get("domain") or ""
    req.vhost = in_query if in_query not in ("", DEFAULT_VHOST) else req.host
    req.vhost = _remove(req.vhost, "/" + _WHITESPACE)
    if in_query == DEFAULT_VHOST and "&" not in req.param:
        req.param = ""


def _check_str(what: str, value) -> None:
    if not isinstance(value, str):
        raise UrlError(f"{what} must be a string, got {type(value).__name__}")


def _query_after_stream(url: str) -> str:
    """FMLE style "rtmp://ip/app?k=v/stream" (or "#k=v") -> "rtmp://ip/app/stream?k=v"."""
    pos_query = min((p for p in (url.find("?"), url.find("#")) if p >= 0), default=-1)
    pos_slash = url.rfind("/")
    if 0 <= pos_query < pos_slash:
        return url[:pos_query] + url[pos_slash:] + url[pos_query:pos_slash]
    return url


def _split_url(url: str, tc_url: str) -> tuple:
    """schema://[userinfo@]host[:port]/path?query#fragment -> its parts; port defaulted."""
    sep = url.find("://")
    schema, rest = url[:sep], url[sep + 3:]
    if sep <= 0 or "://" not in tc_url or not all(c.isalnum() or c in "+-." for c in schema):
        raise UrlError(f"tcUrl {_shown(tc_url)} has no schema (expected rtmp://host/app)")

    fragment = ""
    if "#" in rest:
        rest, fragment = rest.split("#", 1)
    query = ""
    if "?" in rest:
        rest, query = rest.split("?", 1)
    slash = rest.find("/")
    authority, path = (rest, "/") if slash < 0 else (rest[:slash], rest[slash:])
    authority = authority[authority.rfind("@") + 1:]  # drop any user:password@

    if authority.startswith("["):  # IPv6 literal: [::1]:1935
        end = authority.find("]")
        if end < 0:
            raise UrlError(f"tcUrl {_shown(tc_url)} has an unclosed IPv6 host")
        host, port_text = authority[1:end], authority[end + 1:]
        if port_text and not port_text.startswith(":"):
            raise UrlError(f"tcUrl {_shown(tc_url)} has junk after the IPv6 host")
        port_text = port_text[1:] if port_text else None
    else:
        host, colon, port_text = authority.partition(":")
        port_text = port_text if colon else None
    if not host.strip(_WHITESPACE):
        raise UrlError(f"tcUrl {_shown(tc_url)} has no host")
    return schema, host, _parse_port(port_text, schema, tc_url), path, query, fragment


def _shown(text: str) -> str:
    """A client's url as error messages (which get logged) show it: without its query and
    fragment (tokens), without user:password@, at most SHOWN_CHARS characters."""
    text = re.split(r"[?#]", text, maxsplit=1)[0]
    text = re.sub(r"//[^/]*@", "//", text)
    return repr(text[:SHOWN_CHARS]) + ("..." if len(text) > SHOWN_CHARS else "")


def _parse_port(text, schema: str, tc_url: str) -> int:
    if text is None:
        return _SCHEMA_PORTS.get(schema, DEFAULT_PORT)
    text = text.strip(_WHITESPACE)
    if not text.isascii() or not text.isdigit() or int(text) > 65535:
        raise UrlError(f"tcUrl {_shown(tc_url)} has a bad port {_shown(text)}")
    return int(text) or _SCHEMA_PORTS.get(schema, DEFAULT_PORT)  # SRS: port 0 means default


def _dirname(path: str) -> str:
    """srs_path_dirname: "/a/b" -> "/a", "/b" -> "/"."""
    pos = path.rfind("/")
    if pos < 0:
        return path
    return "/" if pos == 0 else path[:pos]


def _basename(path: str) -> str:
    """srs_path_basename: "/a/b" -> "b", "/a/" -> "", "/" -> "/"."""
    pos = path.rfind("/")
    if pos < 0 or path == "/":
        return path
    return path[pos + 1:]


def _guess_stream(req: Request) -> None:
    """srs_guess_stream_by_app, for clients (OBS) that put the stream in the server url:
    app "live/livestream" or "live/livestream?k=v", or param "?k=v/livestream"."""
    pos = req.app.find("/")
    if pos >= 0:
        req.app, stream = req.app[:pos], req.app[pos + 1:]
        req.stream, param = parse_stream(stream)
        req.param = param or req.param
        return
    pos = req.param.find("/")
    if pos >= 0:
        req.param, req.stream = req.param[:pos], req.param[pos + 1:]


def _remove(text: str, chars: str) -> str:
    return text.translate({ord(c): None for c in chars})


def _strip(req: Request) -> None:
    """SrsRequest::strip: no whitespace in names, no slashes in hosts, no edge slashes; and
    (srsedge) no empty segment: "live//app2" is "live/app2"."""
    req.host = _remove(req.host, "/" + _WHITESPACE)
    req.app = _SLASHES.sub("/", _remove(req.app, _WHITESPACE)).strip("/")
    req.stream = _SLASHES.sub("/", _remove(req.stream, _WHITESPACE)).strip("/")


def _check_segments(req: Request) -> None:
    """No "." or ".." segment in app or stream, and a stream's name without its extension (its
    identity, lib/names.py) neither empty nor ".": names are paths that cannot move."""
    if not req.app:
        raise UrlError("empty app")          # "rtmp://host///": SRS refuses it too
    names = [("app", req.app)]
    if req.stream:
        names += [("stream", req.stream), ("stream without its extension", stream_name(req.stream))]
    for what, name in names:
        wrong = bad_segment(name)
        if wrong is not None:
            raise UrlError(f"{what} has {wrong}")


def build_tc_url(schema: str, host: str, vhost: str, app: str, port: int) -> str:
    """srs_generate_tc_url: the vhost is the url's host unless it is the default vhost (then the
    host, or "__defaultVhost__" when there is no host); the port only when not 1935."""
    if vhost == DEFAULT_VHOST:
        authority = host or DEFAULT_VHOST
    else:
        authority = vhost
    if port and port != DEFAULT_PORT:
        authority += f":{port}"
    return f"{schema}://{authority}/{app}"


def _is_ipv4(host: str) -> bool:
    """srs_is_ipv4: only digits and dots (so "" counts, as in SRS)."""
    return all(c == "." or "0" <= c <= "9" for c in host)


def stream_with_query(host: str, vhost: str, stream: str, param: str,
                      with_vhost: bool = True) -> str:
    """srs_generate_stream_with_query: stream plus its query. When the query has no "vhost=",
    a non-default vhost (or else a host that is not an IPv4 address) is appended as
    "vhost=..."; with_vhost=False then removes the (first) vhost parameter again."""
    query = param
    if "vhost=" not in query:
        guess = vhost if vhost != DEFAULT_VHOST else ("" if _is_ipv4(host) else host)
        if guess:
            query += "&vhost=" + guess
    if not with_vhost:
        pos = query.find("&vhost=")
        if pos < 0:
            pos = query.find("vhost=")
        if pos >= 0:
            end = query.find("&", pos + 1)
            query = query[:pos] + (query[end:] if end >= 0 else "")
    query = query.lstrip("&?")
    return f"{stream}?{query}" if query else stream


def stream_with_param(stream: str, param: str, vhost_to_strip: bool = True) -> str:
    """Stream name plus its query (param with or without its "?"). With vhost_to_strip, the
    "vhost=" and "domain=" parameters are removed (the vhost then travels in the tcUrl) and all
    others, like token, are kept in order."""
    query = param[1:] if param.startswith("?") else param
    # SRS appends the tcUrl's query to the stream's with a second "?": both are parameters
    parts = [p for p in query.replace("?", "&").split("&") if p]
    if vhost_to_strip:
        parts = [p for p in parts if p.partition("=")[0] not in ("vhost", "domain")]
    return f"{stream}?{'&'.join(parts)}" if parts else stream
