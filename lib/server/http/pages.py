"""The browser pages of the HTTP server: landing (`/`), players (`/players/`), console (`/console/`),
and `/favicon.ico` (www/assets/favicon.ico).

Rules (this module owns them):
- These are fallbacks: the HTTP server tries `http_server.dir` first, and only a 404 there comes
  here, so a file in the dir (an `index.html`, SRS's own `players/` or `console/`) overrides them.
- The pages are files under `www/` (plain HTML/CSS/JS, no build step). `/` is rendered here from
  `www/index.html` with the URLs to publish to and play from for this request's Host header and
  the configured ports and mounts. `/players/config.js` and `/console/config.js` (one generator)
  tell the pages the API port, the RTMP port and each vhost's HTTP-FLV/HLS URL templates.
- The JavaScript players (mpegts.js, hls.js) are npm packages with pinned versions and a
  lockfile in `www/`, installed by `npm ci` (make run / make test); they are served from
  `www/node_modules/*/dist` under `/players/js/`, never from a CDN. Not installed: 404 with a
  body saying how to install them (the player page says it too).
- GET and HEAD only (the caller checks the method). Nothing is read outside `www/`.
"""
import html
import json
import os
import string
from urllib.parse import quote

from lib.names import DEFAULT_VHOST, SERVER_NAME, VERSION
from lib.server.http.flv import request_host
from lib.server.http.static import Response, serve_file

WWW = os.path.realpath(os.path.join(os.path.dirname(__file__), "..", "..", "..", "www"))
PAGE_DIRS = ("players", "console", "assets")
VENDOR_JS = {
    "/players/js/mpegts.js": "/node_modules/mpegts.js/dist/mpegts.js",
    "/players/js/hls.js": "/node_modules/hls.js/dist/hls.min.js",
}
CONFIG_JS = ("/players/config.js", "/console/config.js")
FAVICON = ("/favicon.ico", "/assets/favicon.ico")    # browsers ask every site for it
NOT_INSTALLED = (b"The browser players are not installed: run `make www` (npm ci in www/; "
                 b"needs npm: apt-get install npm).\n")


def serve_page(server, environ, start_response, path, cors_headers):
    """Answer `path` with a built-in page, or raise Response (404 when there is none)."""
    head = environ["REQUEST_METHOD"] == "HEAD"
    if path == "/":
        body = render_landing(server, environ).encode()
        return _answer(start_response, "text/html; charset=utf-8", body, head, cors_headers)
    if path in CONFIG_JS:
        body = ("window.SRSEDGE = " + json.dumps(page_config(server), indent=1) + ";\n").encode()
        return _answer(start_response, "text/javascript; charset=utf-8", body, head, cors_headers)
    if path == FAVICON[0]:
        return serve_file(environ, start_response, WWW, FAVICON[1], cors_headers)
    if path in VENDOR_JS:
        try:
            return serve_file(environ, start_response, WWW, VENDOR_JS[path], cors_headers)
        except Response as r:
            if r.status == 404:
                raise Response(404, body=NOT_INSTALLED) from None
            raise
    parts = [p for p in path.split("/") if p]
    if parts and parts[0] in PAGE_DIRS:
        if len(parts) == 1 and not path.endswith("/"):
            query = environ.get("QUERY_STRING", "")
            raise Response(301, [("Location", path + "/" + (f"?{query}" if query else ""))])
        return serve_file(environ, start_response, WWW, path, cors_headers)
    raise Response(404)


def _answer(start_response, content_type, body, head, cors_headers):
    start_response("200 OK", [("Content-Type", content_type), ("Content-Length", str(len(body))),
                              ("Cache-Control", "no-cache"), ("Server", SERVER_NAME),
                              *cors_headers])
    return [] if head else [body]


# ------------------------------------------------------------------ what the pages are told
def flv_template(vhost_conf):
    """The HTTP-FLV path of the vhost's streams with `[app]` and `[stream]` left in, as the
    server matches it (lib/server/http/flv.py); None when http_remux is off."""
    remux = vhost_conf.http_remux
    if not remux.enabled or not remux.mount.endswith(".flv"):
        return None
    name = vhost_conf.name
    path = remux.mount.replace("[vhost]", name).replace(DEFAULT_VHOST + "/", "/")
    if path.startswith(name + "/"):
        path = path[len(name):]
    return path if path.startswith("/") else "/" + path


def hls_template(vhost_conf, http_dir):
    """The HLS playlist path under the http_server's dir, `[app]`/`[stream]` left in; None when
    this vhost makes no HLS (off, an edge) or writes it outside the dir."""
    hls = vhost_conf.hls
    if vhost_conf.is_edge or not hls.enabled:
        return None
    rel = os.path.relpath(os.path.realpath(hls.hls_path), os.path.realpath(http_dir))
    if rel == ".." or rel.startswith("../"):
        return None
    rel = "" if rel == "." else rel + "/"
    return "/" + rel + hls.hls_m3u8_file.replace("[vhost]", vhost_conf.name)


def page_config(server):
    """What /players/ and /console/ need to know about this server (window.SRSEDGE)."""
    config = server.config
    api = getattr(server, "api", None)
    api_host, api_port = config.http_api.listen
    tls_port = config.http_api.https.listen[1] if config.http_api.https.enabled else None
    if api is not None and api.wsgi is not None:
        api_port = api.wsgi.server_port
    if api is not None and api.tls_wsgi is not None:
        tls_port = api.tls_wsgi.server_port
    vhosts = {}
    for name, conf in config.vhosts.items():
        vhosts[name] = {"edge": conf.is_edge,
                        "origins": [f"{h}:{p}" for h, p in conf.cluster.origin],
                        "flv": flv_template(conf),
                        "hls": hls_template(conf, config.http_server.dir)}
    return {"server": SERVER_NAME, "version": VERSION,
            "rtmp_port": _rtmp_port(server),
            "api": {"enabled": config.http_api.enabled, "port": api_port, "tls_port": tls_port,
                    "host": api_host or "", "auth": config.http_api.auth.enabled,
                    "crossdomain": config.http_api.crossdomain},
            "vhosts": vhosts, "default_vhost": DEFAULT_VHOST}


def _rtmp_port(server):
    ports = getattr(server, "rtmp_ports", None) or []
    return ports[0] if ports else server.config.listen[0][1]


# ------------------------------------------------------------------ the landing page
def _stream_path(template, app, stream):
    return template.replace("[app]", app).replace("[stream]", stream)


def _url_row(label, url, play=None):
    link = f' <a class="btn" href="{html.escape(play)}">&#9654; play</a>' if play else ""
    return (f"<tr><th>{label}</th><td><code>{html.escape(url)}</code>"
            f"<button class='copy' data-copy='{html.escape(url)}'>copy</button>{link}</td></tr>")


def _play_rows(conf, host, http_base, rtmp_base, app, stream, http_dir):
    rows = [_url_row("RTMP", f"{rtmp_base}/{app}/{stream}")]
    flv = flv_template(conf)
    if flv:
        rows.append(_url_row("HTTP-FLV", http_base + _stream_path(flv, app, stream),
                             f"/players/?stream={app}/{stream}&type=flv"))
    else:
        rows.append("<tr><th>HTTP-FLV</th><td class='muted'>off (vhost http_remux)</td></tr>")
    hls = hls_template(conf, http_dir)
    if hls:
        rows.append(_url_row("HLS", http_base + _stream_path(hls, app, stream),
                             f"/players/?stream={app}/{stream}&type=hls"))
    elif conf.is_edge:
        rows.append("<tr><th>HLS</th><td class='muted'>made by the origin (an edge makes no "
                    "HLS; the nginx cache tier serves it)</td></tr>")
    else:
        rows.append("<tr><th>HLS</th><td class='muted'>off (vhost hls, or hls_path outside "
                    "http_server dir)</td></tr>")
    return "\n".join(rows)


def render_landing(server, environ):
    config = server.config
    host = request_host(environ) or "127.0.0.1"
    good_host = environ.get("HTTP_HOST") if request_host(environ) else None
    http_host = good_host or f"{host}:{server.http.port}"
    rtmp_port = _rtmp_port(server)
    rtmp_base = f"rtmp://{host}" + ("" if rtmp_port == 1935 else f":{rtmp_port}")
    http_base = f"http://{http_host}"
    conf = config.vhost(DEFAULT_VHOST)
    if conf.is_edge:
        origins = ", ".join(f"{h}:{p}" for h, p in conf.cluster.origin)
        role = f"an <b>edge</b>: it pulls each stream once from {html.escape(origins)}"
        publish_note = ("<p class='muted'>This edge forwards what you publish to its origin "
                        "(the first that accepts).</p>")
        idle = ("No stream is pulled right now: an edge pulls a stream from its origin when the "
                "first player comes.")
    else:
        role = "an <b>origin</b>: encoders publish here, players play from here"
        publish_note = ""
        idle = "No stream is being published right now."
    watch = []
    for kind, label, template in (("flv", "HTTP-FLV", flv_template(conf)),
                                  ("hls", "HLS", hls_template(conf, config.http_server.dir))):
        if template:
            watch.append(f"<a class='btn' href='/players/?stream=live/livestream&amp;type={kind}'>"
                         f"&#9654; {label} player</a>")
    live = sorted((s for s in server.sources.sources.values() if s.publisher is not None),
                  key=lambda s: s.key)
    live_rows = []
    for src in live[:50]:
        vconf = config.vhost(src.vhost)
        name = html.escape(f"{src.app}/{src.stream}")
        query = html.escape(quote(f"{src.app}/{src.stream}", safe="/"))
        links = []
        if src.vhost == DEFAULT_VHOST and flv_template(vconf):
            links.append(f"<a href='/players/?stream={query}&amp;type=flv'>HTTP-FLV</a>")
        if src.vhost == DEFAULT_VHOST and hls_template(vconf, config.http_server.dir):
            links.append(f"<a href='/players/?stream={query}&amp;type=hls'>HLS</a>")
        vhost = "" if src.vhost == DEFAULT_VHOST else f" <span class='muted'>({html.escape(src.vhost)})</span>"
        live_rows.append(f"<li><code>{name}</code>{vhost} {' '.join(links)}</li>")
    api_port = page_config(server)["api"]["port"]
    api = (f"<a href='http://{html.escape(host)}:{api_port}/api/v1/'>"
           f"http://{html.escape(host)}:{api_port}/api/v1/</a>"
           if config.http_api.enabled else "off (<code>http_api { enabled on; }</code>)")
    with open(os.path.join(WWW, "index.html"), encoding="utf-8") as f:
        template = string.Template(f.read())
    return template.safe_substitute(
        server=html.escape(SERVER_NAME), role=role, host=html.escape(host),
        watch=" ".join(watch) or "<span class='muted'>No HTTP-FLV or HLS here (http_remux, hls)."
        "</span>", publish_note=publish_note,
        publish_url=html.escape(f"{rtmp_base}/live/livestream"),
        publish_rows=_url_row("Server (OBS)", f"{rtmp_base}/live") + "\n"
        + _url_row("Stream key", "livestream") + "\n"
        + _url_row("Full URL", f"{rtmp_base}/live/livestream"),
        play_rows=_play_rows(conf, host, http_base, rtmp_base, "live", "livestream",
                             config.http_server.dir),
        live=("<ul class='live'>" + "\n".join(live_rows) + "</ul>") if live_rows
        else f"<p class='muted'>{idle}</p>",
        api=api)


__all__ = ["serve_page", "page_config", "render_landing", "WWW"]
