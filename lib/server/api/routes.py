"""SRS-compatible HTTP API (`/api/v1/...`) and Prometheus metrics (`/metrics`).

Rules (this module owns them):
- Its own gevent.pywsgi listener on `http_api.listen` (a bare port means 127.0.0.1, see the
  config schema), started by `start_api(server)` when `http_api.enabled`. `listen` needs a
  restart; auth and crossdomain are read per request, so a reload applies.
- SRS conventions and SRS 6 field names: HTTP 200 and a JSON body whose `code` is 0, or an SRS
  error code alone (`{"code": 2048}`): 2014 vhost, 2048 stream, 2049 client not found. Every
  success carries `server` (server id), `service` (service id) and `pid` (a string, as SRS).
  Ids are strings: a client's id is its connection's cid; a stream's id is `source.api_id`
  ("vid-" + 7 random chars, set here the first time the API sees the source); a vhost's id is
  made here once per vhost name. Lists take SRS's `?start=&count=` (count at least 10).
- Unknown paths: HTTP 404 `{"code": 404}`; a method a path does not take: HTTP 405. No request
  can break the server: an exception answers 500 and logs one line.
- Browsers (CORS, JSONP, the Origin check of a kick): lib/server/api/cross_origin.py decides.
  A state-changing request from a page of another site is 403 before anything else; JSONP
  (`?callback=name`, only with `jsonp on`) wraps SRS-code answers too and is read-only (SRS's
  `&method=DELETE` is 405). `crossdomain on`: OPTIONS answers 200 (else 405), as SRS.
- Auth (`http_api.auth.enabled`): every request but the CORS preflight needs HTTP basic auth
  with the configured username/password, else 401 with `WWW-Authenticate: Basic realm="SRS"`.
- Edge extension (not in SRS): every stream object has `"edge"`: on an edge stream
  `source.edge.describe()` = {state, since, origin, failovers, last_error, players,
  links_opened, last_gap_ms}; null otherwise.
- No per-packet work: everything is read from the live objects at request time. kbps comes from
  a sampler greenlet that every SAMPLE_INTERVAL seconds records byte counters and keeps
  KBPS_WINDOW seconds of samples. Totals over members that come and go (a stream's consumers,
  a vhost's sources) are kept monotonic by `ByteTotal`; what a member sent after the last
  sample before it left is not counted.
- Process extension (not in SRS): `/api/v1/processes[/ID]` lists transcode, exec and ingest
  processes (lib.server.ffmpeg.process.Supervised.describe); a stream object has `"dvr"`
  (recording, dropped, file, write errors) when its vhost records, null otherwise, and
  `"hls"` (playlist, dropped, write errors) when its vhost writes HLS.
- Debug extension (not in SRS): `/api/v1/debug/runtime` counts fds, sockets, loop watchers,
  sources, clients, plugin registries and RSS from what the server already holds (cheap);
  the greenlet count needs a full gc walk that stalls every stream, so only `?gc=1` does it.
- No token in clear: every answer goes through lib.redact `redact_tree` (tcUrls, pageUrls,
  process argv/output/last_output, an edge's last error): token-like query values are `***`.
- Hook calls are counted by wrapping `server.hooks.call` once at start (per action, ok/failed).
"""
import base64
import gc
import hmac
import json
import os
import socket
import time
from urllib.parse import parse_qs

import gevent
import greenlet
from gevent import pywsgi
from prometheus_client import (CONTENT_TYPE_LATEST, CollectorRegistry, ProcessCollector,
                               generate_latest)

from lib.media.codec_info import audio_json, video_json
from lib.names import VERSION
from lib.redact import redact_tree
from lib.server.api import cluster as cluster_api
from lib.server.api.cross_origin import CrossOrigin
from lib.server.api.metrics import MetricsCollector
from lib.server.api.stats import Stats, Traffic, atoi, client_bytes_out, rss_kbyte, summary_data
from lib.server.core.hooks import stream_url
from lib.server.http import listener
from lib.server.http.server import _ErrorLog, _Handler
from lib.server.rtmp.connection import RtmpConnection

ERROR_SUCCESS = 0
ERROR_SYSTEM_CONFIG_RAW_DISABLED = 1061
ERROR_RTMP_VHOST_NOT_FOUND = 2014
ERROR_RTMP_STREAM_NOT_FOUND = 2048
ERROR_RTMP_CLIENT_NOT_FOUND = 2049

SAMPLE_INTERVAL = 5.0          # seconds between kbps samples (tests may lower it)
MIN_COUNT = 10                 # SRS: count = max(10, ?count)
KICK_REASON = "kicked by HTTP API"
SERVER = f"srsedge/{VERSION}"
_REASONS = {200: "OK", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found",
            405: "Method Not Allowed", 500: "Internal Server Error"}
V1_URLS = {
    "versions": "the version of SRS",
    "summaries": "the summary(pid, argv, pwd, cpu, mem) of SRS",
    "vhosts": "manage all vhosts or specified vhost",
    "streams": "manage all streams or specified stream",
    "clients": "manage all clients or specified client, default query top 10 clients",
    "processes": "srsedge: transcode, exec and ingest processes (state, pid, restarts)",
    "clusters": "srsedge: the origin cluster's directories (origins, load, owners)",
}


# ------------------------------------------------------------------ debug
def open_fds():
    """(open file descriptors, of which sockets) of this process, from /proc/self/fd."""
    fds = sockets = 0
    for name in os.listdir("/proc/self/fd"):
        fds += 1
        try:
            sockets += os.readlink(f"/proc/self/fd/{name}").startswith("socket:")
        except OSError:
            pass               # the fd of the listdir itself, gone by now
    return fds, sockets


# ------------------------------------------------------------------ clients
def client_type(conn):
    """SRS's client type names."""
    if not isinstance(conn, RtmpConnection):
        return "flv-play"              # the only other kind of client: HTTP-FLV players
    if conn.role == "publish":
        return "fmle-publish" if conn.session.fmle else "flash-publish"
    return "rtmp-play"


def is_listed(conn):
    """As SRS: a client is listed once it publishes or plays."""
    if conn.req is None:
        return False
    return not isinstance(conn, RtmpConnection) or conn.role in ("publish", "play")


# ------------------------------------------------------------------ the API
class ApiError(Exception):
    """An answer other than a success: an SRS code (HTTP 200) or an HTTP status."""

    def __init__(self, code=0, status=200, headers=()):
        super().__init__(code or status)
        self.code, self.status, self.headers = code, status, list(headers)


class ApiServer:
    """The WSGI application, its pywsgi listener and the stats sampler."""

    def __init__(self, server):
        self.server = server
        self.log = server.logger.context("api")
        self.stats = Stats(server)
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(MetricsCollector(self))
        ProcessCollector(registry=self.registry)
        self.wsgi = None
        self.tls_wsgi = None
        self.sampler = None
        self.routes = {"versions": self.versions, "summaries": self.summaries,
                       "vhosts": self.vhosts, "streams": self.streams, "clients": self.clients,
                       "debug": self.debug, "raw": self.raw, "processes": self.processes,
                       "clusters": self.clusters}

    def start(self):
        host, port = self.server.config.http_api.listen
        host = host or "127.0.0.1"
        self.stats.count_hooks(self.server.hooks)
        self.wsgi = listener.listen(self, (host, port), _Handler, _ErrorLog(self.log))
        endpoints = [f"http://{host}:{self.wsgi.server_port}"]
        https = self.server.config.http_api.https
        if https.enabled:
            host, port = https.listen
            self.tls_wsgi = listener.listen(self, (host or "127.0.0.1", port), _Handler,
                                            _ErrorLog(self.log), https, "http_api.https")
            endpoints.append(f"https://{host or '127.0.0.1'}:{self.tls_wsgi.server_port}")
        self.sampler = gevent.spawn(self._sample_loop)
        return endpoints

    def close(self):
        if self.sampler is not None:
            self.sampler.kill(block=False)
        for wsgi in (self.wsgi, self.tls_wsgi):
            if wsgi is not None:
                wsgi.close()

    def _sample_loop(self):
        while True:
            try:
                self.stats.sample(time.monotonic())
            except Exception as e:  # noqa: BLE001 - stats must never stop
                self.log.error(f"api stats sample failed: {e!r}")
            gevent.sleep(SAMPLE_INTERVAL)

    # ------------------------------------------------------------ WSGI entry
    def __call__(self, environ, start_response):
        method = environ["REQUEST_METHOD"]
        origin = environ.get("HTTP_ORIGIN", "")
        query = parse_qs(environ.get("QUERY_STRING", ""), keep_blank_values=True)
        http = getattr(self.server, "http", None)
        sites = CrossOrigin(self.server.config.http_api, self._pages_port(),
                            environ.get("HTTP_HOST", ""),
                            http.tls_port if http is not None and http.wsgi is not None else None,
                            environ.get("wsgi.url_scheme", "http"))
        try:
            status, headers, body = self._serve(environ, method, query, sites)
        except ApiError as e:
            status, headers = e.status, e.headers
            body = json.dumps({"code": e.code or e.status}) if e.status != 401 else ""
            callback = sites.jsonp_callback(query)
            if callback and e.status == 200:
                headers.append(("Content-Type", "text/javascript"))
                body = f"{callback}({body})"
            else:
                headers.append(("Content-Type", "application/json"))
            body = body.encode()
        except Exception as e:  # noqa: BLE001 - one bad request must not kill the server
            self.log.error(f"api {method} {environ.get('PATH_INFO')!r}: {e!r}")
            status, headers, body = 500, [("Content-Type", "application/json")], b'{"code":500}'
        headers += [("Content-Length", str(len(body))), ("Server", SERVER)]
        headers += sites.cors_headers(origin, preflight=method == "OPTIONS")
        start_response(f"{status} {_REASONS.get(status, 'Unknown')}", headers)
        return [body] if method != "HEAD" else []

    def _pages_port(self):
        """The port of this server's http_server (its console), None when it has none."""
        http = getattr(self.server, "http", None)
        return http.port if http is not None and http.wsgi is not None else None

    def _serve(self, environ, method, query, sites):
        path = environ.get("PATH_INFO", "")
        if method == "OPTIONS":
            if not self.server.config.http_api.crossdomain:
                raise ApiError(status=405)
            return 200, [], b""
        origin = environ.get("HTTP_ORIGIN", "")
        if not sites.may_change_state(method, origin):
            self.log.warn(f"api {method} {path[:128]!r} refused: asked by a page of "
                          f"{origin[:128]!r}, not this server's pages nor http_api.allow_origin")
            raise ApiError(status=403)
        self._check_auth(environ)
        if path.rstrip("/") == "/metrics":
            if method not in ("GET", "HEAD"):
                raise ApiError(status=405, headers=[("Allow", "GET, HEAD")])
            self.stats.refresh()
            return 200, [("Content-Type", CONTENT_TYPE_LATEST)], generate_latest(self.registry)
        if path.rstrip("/") == "/api/v1/srs/register":          # SRS 7's heartbeat
            if method != "POST":
                raise ApiError(status=405, headers=[("Allow", "POST")])
            status, answer = cluster_api.srs_register(self.server, environ)
            return status, [("Content-Type", "application/json")], json.dumps(answer).encode()
        callback = sites.jsonp_callback(query)
        if callback and sites.jsonp_method(query) != "GET":
            raise ApiError(status=405, headers=[("Allow", "GET")])     # JSONP is read-only
        if method == "HEAD":
            method = "GET"
        obj = redact_tree(self._route(method, path, query))
        body = json.dumps(obj, separators=(",", ":"))
        if callback:
            return 200, [("Content-Type", "text/javascript")], f"{callback}({body})".encode()
        return 200, [("Content-Type", "application/json")], body.encode()

    def _check_auth(self, environ):
        auth = self.server.config.http_api.auth
        if not auth.enabled:
            return
        scheme, _, token = environ.get("HTTP_AUTHORIZATION", "").partition(" ")
        user = password = ""
        if scheme.lower() == "basic":
            try:
                user, _, password = base64.b64decode(token.strip(), validate=True) \
                    .decode("utf-8").partition(":")
            except (ValueError, UnicodeError):
                user = password = ""
        good_user = hmac.compare_digest(user.encode(), auth.username.encode())
        good_password = hmac.compare_digest(password.encode(), auth.password.encode())
        if not (user and good_user and good_password):
            raise ApiError(status=401, headers=[("WWW-Authenticate", 'Basic realm="SRS"')])

    def _route(self, method, path, query):
        parts = [p for p in path.split("/") if p]
        if len(parts) <= 2 and parts == ["api", "v1"][:len(parts)]:
            self._only(method, "GET")
            urls = {0: {"api": "the api root"}, 1: {"v1": "the api version 1.0"}, 2: V1_URLS}
            return self.ok(urls=urls[len(parts)])
        handler = self.routes.get(parts[2]) if parts[:2] == ["api", "v1"] else None
        if handler is None or len(parts) > 4:
            raise ApiError(status=404)
        return handler(method, parts[3] if len(parts) == 4 else "", query)

    @staticmethod
    def _only(method, *allowed):
        if method not in allowed:
            raise ApiError(status=405, headers=[("Allow", ", ".join(allowed))])

    def ok(self, **fields):
        return {"code": ERROR_SUCCESS, "server": self.server.server_id,
                "service": self.server.service_id, "pid": str(os.getpid()), **fields}

    @staticmethod
    def _page(items, query):
        start = max(0, atoi(query.get("start", [""])[0]))
        count = max(MIN_COUNT, atoi(query.get("count", [""])[0]))
        return items[start:start + count]

    # ------------------------------------------------------------ /api/v1/versions, summaries
    def versions(self, method, rest, query):
        self._only(method, "GET")
        if rest:
            raise ApiError(status=404)
        major, minor, revision = ([int(v) for v in VERSION.split(".")[:3]] + [0, 0, 0])[:3]
        return self.ok(data={"major": major, "minor": minor, "revision": revision,
                             "version": VERSION})

    def summaries(self, method, rest, query):
        self._only(method, "GET")
        if rest:
            raise ApiError(status=404)
        return self.ok(data=summary_data(self.server, self.stats))

    # ------------------------------------------------------------ /api/v1/raw
    def raw(self, method, rest, query):
        """SRS's RAW API, not implemented: `?rpc=raw` describes http_api with raw_api off (SRS's
        console asks it before showing its config pages); every other rpc answers 1061."""
        self._only(method, "GET")
        if rest:
            raise ApiError(status=404)
        if query.get("rpc", [""])[0] != "raw":
            raise ApiError(ERROR_SYSTEM_CONFIG_RAW_DISABLED)
        conf = self.server.config.http_api
        host, port = conf.listen
        return self.ok(http_api={
            "enabled": conf.enabled, "listen": f"{host}:{port}" if host else str(port),
            "crossdomain": conf.crossdomain,
            "raw_api": {"enabled": False, "allow_reload": False, "allow_query": False,
                        "allow_update": False}})

    # ------------------------------------------------------------ /api/v1/debug/runtime
    def debug(self, method, rest, query):
        """srsedge extension for leak checks. By default only cheap counts: the server's own
        registries, the event loop's active watchers, /proc/self/fd. The greenlet walk
        (gc.collect + gc.get_objects: it stalls every stream while it runs, for as long as the
        heap is big) only when asked with ?gc=1."""
        self._only(method, "GET")
        if rest != "runtime":
            raise ApiError(status=404)
        counts = {}
        if query.get("gc", [""])[-1] == "1":
            gc.collect()
            greenlets = [o for o in gc.get_objects() if isinstance(o, greenlet.greenlet)]
            counts.update(greenlets=sum(1 for g in greenlets if not g.dead),
                          greenlet_objects=len(greenlets))
        fds, sockets = open_fds()
        counts.update(watchers=gevent.get_hub().loop.activecnt, fds=fds, sockets=sockets,
                      sources=len(self.server.sources.sources), clients=len(self.server.clients),
                      connections=self.server.connections, rss_kb=rss_kbyte())
        for plugin in self.server.plugins:        # e.g. HLS: sinks and remembered sequences
            counts.update(getattr(plugin, "runtime_counts", dict)())
        return self.ok(**counts)

    # ------------------------------------------------------------ /api/v1/vhosts
    def vhosts(self, method, vid, query):
        self._only(method, "GET")
        self.stats.refresh()
        names = list(self.server.config.vhosts)
        if not vid:
            return self.ok(vhosts=[self.vhost_json(name) for name in names])
        name = self.stats.vhost_by_id(vid)
        if name is None or name not in self.server.config.vhosts:
            raise ApiError(ERROR_RTMP_VHOST_NOT_FOUND)
        return self.ok(vhost=self.vhost_json(name))

    def vhost_json(self, name):
        conf = self.server.config.vhosts[name]
        traffic = self.stats.vhosts.get(name) or Traffic()
        sources = [s for s in self.server.sources.sources.values() if s.vhost == name]
        clients = [c for c in self.server.clients.values() if is_listed(c) and c.req.vhost == name]
        hls = {"enabled": conf.hls.enabled}
        if conf.hls.enabled:
            hls["fragment"] = float(conf.hls.hls_fragment)
        return {"id": self.stats.vhost_id(name), "name": name, "enabled": conf.enabled,
                "clients": len(clients), "streams": sum(1 for s in sources if s.publisher),
                "send_bytes": traffic.send.total, "recv_bytes": traffic.recv.total,
                "kbps": traffic.kbps(), "hls": hls}

    # ------------------------------------------------------------ /api/v1/streams
    def streams(self, method, sid, query):
        self._only(method, "GET")
        sources = sorted(self.stats.refresh(), key=lambda s: (s.created, s.key))
        groups = self._clients_by_source()
        if not sid:
            page = self._page(sources, query)
            return self.ok(total=len(sources),
                           streams=[self.stream_json(s, groups.get(s, [])) for s in page])
        for src in sources:
            if src.api_id == sid:
                return self.ok(stream=self.stream_json(src, groups.get(src, [])))
        raise ApiError(ERROR_RTMP_STREAM_NOT_FOUND)

    def _client_source(self, conn):
        src = conn.source
        if src is None and conn.vhost_conf is not None:
            src = self.server.sources.get(self.server.stream_key(conn.req, conn.vhost_conf))
        return src

    def _clients_by_source(self):
        groups = {}
        for conn in sorted(self.server.clients.values(), key=lambda c: c.created):
            if is_listed(conn):
                src = self._client_source(conn)
                if src is not None:
                    groups.setdefault(src, []).append(conn)
        return groups

    def stream_json(self, src, clients):
        traffic = self.stats.streams.get(src) or Traffic()
        pub = src.publisher
        publish = {"active": pub is not None}
        pub_cid = getattr(pub, "cid", None) or getattr(getattr(pub, "log", None), "cid", None)
        if pub_cid:
            publish["cid"] = pub_cid
        requests = [c.req for c in clients] + [getattr(src.edge, "req", None)]
        tc_url = next((r.tc_url for r in requests if r is not None and r.tc_url), "")
        return {
            "id": self.stats.stream_id(src), "name": src.stream,
            "vhost": self.stats.vhost_id(src.vhost), "app": src.app, "tcUrl": tc_url,
            "url": stream_url(src.vhost, src.app, src.stream),
            "live_ms": int(time.time() * 1000), "clients": len(clients), "frames": src.video_frames,
            "send_bytes": traffic.send.total, "recv_bytes": src.bytes_in,
            "kbps": traffic.kbps(), "publish": publish,
            "video": video_json(getattr(src.video_sh, "payload", None)),
            "audio": audio_json(getattr(src.audio_sh, "payload", None)),
            "edge": src.edge.describe() if src.edge is not None else None,
            "dvr": src.dvr.describe() if getattr(src, "dvr", None) is not None else None,
            "owner": cluster_api.stream_owner(self.server, src),
            "hls": src.hls.describe() if getattr(src, "hls", None) is not None else None,
        }

    # ------------------------------------------------------------ /api/v1/clusters (srsedge)
    def clusters(self, method, rest, query):
        self._only(method, "GET")
        if rest:
            raise ApiError(status=404)
        if "stream" in query:
            code, data = cluster_api.owner_query_json(self.server, query)
            return {**self.ok(data=data), "code": code}
        return self.ok(data={"directories": cluster_api.directories_json(self.server)})

    # ------------------------------------------------------------ /api/v1/processes (srsedge)
    def processes(self, method, pid, query):
        self._only(method, "GET")
        registry = getattr(self.server, "processes", None)
        procs = registry.describe() if registry is not None else []
        if not pid:
            cap = registry.cap.describe() if registry is not None else None
            return self.ok(total=len(procs), cap=cap, processes=self._page(procs, query))
        for proc in procs:
            if str(proc["id"]) == pid:
                return self.ok(process=proc)
        raise ApiError(status=404)

    # ------------------------------------------------------------ /api/v1/clients
    def clients(self, method, cid, query):
        self._only(method, "GET", "DELETE")
        conn = self.server.clients.get(cid) if cid else None
        if cid and (conn is None or not is_listed(conn)):
            raise ApiError(ERROR_RTMP_CLIENT_NOT_FOUND)
        if method == "DELETE":
            if conn is None:
                raise ApiError(ERROR_RTMP_CLIENT_NOT_FOUND)
            conn.kick(KICK_REASON)
            return self.ok()
        if conn is not None:
            return self.ok(client=self.client_json(conn))
        listed = sorted((c for c in self.server.clients.values() if is_listed(c)),
                        key=lambda c: c.created)
        return self.ok(total=len(listed),
                       clients=[self.client_json(c) for c in self._page(listed, query)])

    def client_json(self, conn):
        req = conn.req
        src = self._client_source(conn)
        connect = conn.connect_object or {}
        swf_url = connect.get("swfUrl")
        ctype = client_type(conn)
        return {
            "id": conn.cid, "vhost": self.stats.vhost_id(req.vhost),
            "stream": self.stats.stream_id(src) if src is not None else "",
            "ip": conn.ip, "pageUrl": conn.page_url or "",
            "swfUrl": swf_url if isinstance(swf_url, str) else "", "tcUrl": req.tc_url or "",
            "url": stream_url(req.vhost, req.app, req.stream or ""), "name": req.stream or "",
            "type": ctype, "publish": ctype.endswith("-publish"),
            "alive": round(time.time() - conn.created, 3),
            "send_bytes": client_bytes_out(conn), "recv_bytes": conn.bytes_in,
            "kbps": self.stats.client_kbps(conn.cid),
        }


# ------------------------------------------------------------------ wiring
def start_api(server):
    """Start the HTTP API when `http_api.enabled` (once); it is then `server.api`.
    Returns the endpoint strings (none when disabled or already started)."""
    if not server.config.http_api.enabled or getattr(server, "api", None) is not None:
        return []
    api = ApiServer(server)
    server.api = api
    try:
        return api.start()
    except BaseException:
        api.close()
        raise


__all__ = ["start_api", "ApiServer",
           "ERROR_RTMP_STREAM_NOT_FOUND", "ERROR_RTMP_CLIENT_NOT_FOUND",
           "ERROR_RTMP_VHOST_NOT_FOUND"]
