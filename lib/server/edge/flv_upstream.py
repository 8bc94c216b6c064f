"""The edge's upstream link over HTTP-FLV and HTTPS-FLV (SRS 5+ `cluster { protocol flv|flvs; }`,
SRS's SrsEdgeFlvUpstream): the second driver of the edge pull link, beside RTMP's
(lib/server/edge/upstream.py). Which origin, when to fail over, back off, give up: still
lib/cluster/pull.py's EdgePull; lib/server/edge/ingest.py performs its actions with either link.

Rules (this module owns them):
- The request, as SRS builds it: `GET /app/stream.flv?param` (".flv" added unless the stream
  ends with it; the player's query as it came, vhost= included), `Host: origin[:port]` (the
  origin's address, not the vhost: SRS sends no vhost either), to the origin as configured:
  `protocol flv` -> http, `flvs` -> https (view.py: a bare origin host means port 80 / 443,
  as SRS).
- Status: 200 plays; 404 is "not found on that origin" (the machine's not-found rule then
  counts it like RTMP's StreamNotFound); 301/302/303/307/308 follow Location (http or https,
  absolute or relative) up to MAX_REDIRECTS deep (SRS: 302 only, absolute, depth 3); any
  other status fails the link. All of it within the connect phase's one deadline
  (CONNECT_TIMEOUT).
- TLS (`flvs`): no certificate check, as SRS (srs_verify_callback accepts any certificate,
  the usual origin has a self-signed one); SNI when the host is a name. TLS runs in memory
  (ssl.MemoryBIO), so the link keeps RtmpLink's plain non-blocking socket and read watcher.
- FlvLink offers the surface of RtmpLink the ingester uses (read_available(raw=True), session
  with state "playing", handle, has_output; flush, arm, close): its session, FlvSession, turns
  bytes into rs.Media events (audio, video, and data normalized like RTMP's: onMetaData
  without @setDataFrame) through lib/http1.py's ResponseReader and lib/media/flv.py's
  FlvTagReader. The server closing fails the link as an RTMP close does (bytes after a framed
  body that ended are ignored; the origin closes, or the data timeout ends the link).
"""
import socket
import ssl
import time
from ipaddress import ip_address
from urllib.parse import urljoin, urlsplit

import gevent.socket

from lib.cluster.origins import format_origin
from lib.http1 import HttpError, ResponseReader
from lib.media.flv import TAG_SCRIPT, FlvError, FlvTagReader
from lib.names import SERVER_NAME
from lib.rtmp import session as rs
from lib.rtmp.errors import ProtocolError
from lib.rtmp.message import MSG_AMF0_DATA
from lib.rtmp.url import stream_with_param
from lib.server.edge.upstream import CONNECT_TIMEOUT, LinkError, RtmpLink

SCHEMES = {"flv": "http", "flvs": "https"}
DEFAULT_PORTS = {"http": 80, "https": 443}
MAX_REDIRECTS = 3
REDIRECTS = (301, 302, 303, 307, 308)


def scheme_for(vhost_conf, relay=False):
    """"http"/"https" when this edge pulls over HTTP(S)-FLV, else None (RTMP). The origins a
    directory gives (cluster.directory, relays) are RTMP addresses: those links stay RTMP."""
    cluster = vhost_conf.cluster
    if relay or cluster.directory:
        return None
    return SCHEMES.get(cluster.protocol)


def upstream_path(req):
    """SRS: "/" + app + "/" + stream [+ ".flv"] + the player's query."""
    name = req.stream if req.stream.endswith(".flv") else req.stream + ".flv"
    return stream_with_param(f"/{req.app}/{name}", req.param.partition("#")[0],
                             vhost_to_strip=False)


def parse_location(location, base):
    """A redirect's Location (absolute, or relative to the URL `base` that answered it) ->
    (scheme, (host, port), path?query); ValueError if unusable."""
    if not location:
        raise ValueError("a redirect without Location")
    url = urlsplit(urljoin(base, location))
    if url.scheme not in DEFAULT_PORTS or not url.hostname:
        raise ValueError(f"unusable redirect {location[:200]!r}")
    path = (url.path or "/") + (f"?{url.query}" if url.query else "")
    return url.scheme, (url.hostname, url.port or DEFAULT_PORTS[url.scheme]), path


def _url(scheme, where, path):
    host = f"[{where[0]}]" if ":" in where[0] else where[0]
    return f"{scheme}://{host}:{where[1]}{path}"


def _is_ip(host):
    try:
        ip_address(host)
        return True
    except ValueError:
        return False


class FlvSession:
    """Bytes from the origin -> rs.Media events; the request (and TLS records) to send."""
    state = "playing"

    def __init__(self, scheme, where, path):
        host = f"[{where[0]}]" if ":" in where[0] else where[0]
        if where[1] != DEFAULT_PORTS[scheme]:
            host += f":{where[1]}"
        self.request = (f"GET {path} HTTP/1.1\r\nHost: {host}\r\nAccept: */*\r\n"
                        f"User-Agent: {SERVER_NAME}\r\nConnection: close\r\n\r\n"
                        ).encode("latin-1")
        self.response = ResponseReader()
        self.tags = FlvTagReader()
        self.tls = None
        if scheme == "https":
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE      # as SRS: any certificate (self-signed)
            self._in, self._out = ssl.MemoryBIO(), ssl.MemoryBIO()
            self.tls = context.wrap_bio(self._in, self._out,
                                        server_hostname=None if _is_ip(where[0]) else where[0])
            self._handshaken = False

    # ------------------------------------------------------------ bytes out
    def start(self):
        if self.tls is None:
            return self.request
        self._handshake()
        return self.data_to_send()

    def has_output(self):
        return self.tls is not None and self._out.pending > 0

    def data_to_send(self):
        return self._out.read() if self.tls is not None else b""

    # ------------------------------------------------------------ bytes in
    def feed(self, data):
        try:
            plain = data if self.tls is None else self._decrypt(data)
            body = self.response.feed(plain) if plain else b""
        except HttpError as e:
            raise ProtocolError(str(e)) from e
        except ssl.SSLError as e:
            raise ProtocolError(f"TLS: {e}") from e
        head = self.response.head
        if not body or head.status != 200:
            return []                    # the head only: open_flv_stream reads the status
        try:
            tags = self.tags.feed(body)
        except FlvError as e:
            raise ProtocolError(str(e)) from e
        events = []
        for tag_type, timestamp, payload in tags:
            if tag_type == TAG_SCRIPT:
                payload = rs.data_payload(MSG_AMF0_DATA, payload)
                if payload is None:
                    continue
                tag_type = MSG_AMF0_DATA
            events.append(rs.Media(tag_type, timestamp, payload))
        return events

    read_messages = feed

    @staticmethod
    def handle(events):
        return events                    # already events: nothing else comes over HTTP-FLV

    def _handshake(self):
        try:
            self.tls.do_handshake()
        except ssl.SSLWantReadError:
            return
        self._handshaken = True
        self.tls.write(self.request)

    def _decrypt(self, data):
        self._in.write(data)
        if not self._handshaken:
            self._handshake()
            if not self._handshaken:
                return b""
        out = []
        while True:
            try:
                out.append(self.tls.read(262144))
            except ssl.SSLWantReadError:
                break
            except ssl.SSLZeroReturnError:
                raise ProtocolError("closed by the server (TLS close_notify)") from None
        return b"".join(out)


class FlvLink(RtmpLink):
    """An HTTP(S)-FLV response being read: RtmpLink's socket handling with an FlvSession.
    Media that came with the response head is returned by the first read."""

    def __init__(self, sock, session, origin, url):
        super().__init__(sock, session, origin)
        self.url = url
        self._early = []

    def read_available(self, raw=False):
        early, self._early = self._early, []
        if early:
            try:
                return early + super().read_available(raw)
            except LinkError as e:
                self._failure, self.readable = e, True
                return early
        return super().read_available(raw)

    def wait_head(self, deadline):
        """Connect phase: read until the response head is in; media read with it is kept."""
        session = self.session
        while session.response.head is None:
            left = deadline - time.monotonic()
            if left <= 0:
                raise LinkError(f"no HTTP response in {CONNECT_TIMEOUT:g}s")
            try:
                self._early.extend(self.recv_events(left))
            except LinkError as e:
                raise LinkError(f"no HTTP response ({e})") from e
        self.readable = bool(self._early)
        return session.response.head


def open_flv_stream(origin, scheme, req, timeout=CONNECT_TIMEOUT):
    """GET the stream from `origin` (following redirects); an FlvLink playing it, or LinkError.
    The link's `origin` stays the configured one (the machine's), its `url` says what plays."""
    deadline = time.monotonic() + timeout
    where, path = origin, upstream_path(req)
    for _ in range(MAX_REDIRECTS + 1):
        url = _url(scheme, where, path)
        link = _get(origin, scheme, where, path, url, deadline)
        head = link.session.response.head
        if head.status == 200:
            return link
        link.close()
        if head.status == 404:
            raise LinkError(f"{url}: HTTP 404, stream not found")
        if head.status not in REDIRECTS:
            raise LinkError(f"{url}: HTTP {head.status} {head.reason}")
        try:
            scheme, where, path = parse_location(head.headers.get("location", ""), url)
        except ValueError as e:
            raise LinkError(f"{url}: HTTP {head.status}: {e}") from None
    raise LinkError(f"{format_origin(origin)}: more than {MAX_REDIRECTS} redirects")


def _get(origin, scheme, where, path, url, deadline):
    left = max(0.01, deadline - time.monotonic())
    try:
        sock = gevent.socket.create_connection(where, timeout=left)
    except OSError as e:
        raise LinkError(f"{url}: connect failed: {e}") from e
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    link = FlvLink(sock, FlvSession(scheme, where, path), origin, url)
    try:
        sock.sendall(link.session.start())
        link.wait_head(deadline)
    except (LinkError, OSError) as e:
        link.close()
        raise LinkError(f"{url}: {e}") from e
    except BaseException:                # the owner was killed meanwhile (a stop)
        link.close()
        raise
    return link
