"""HLS of the origin cluster (issue 21): an origin asked for a playlist or segment it does not
have serves the file from the stream's owner, so the nginx tier (or a player) may ask any origin
and never gets a second, diverging segmenter's files.

Rules:
- Only when the file is missing here, the path fits the HLS templates of a vhost with a
  directory (lib/server/hls/access.py `streams_of`), and the directory names another origin as
  the owner, with an HTTP address. Anything else: None (the caller answers as before).
- One hop: the request to the owner carries `X-Srsedge-Proxied`, and a request carrying it is
  never proxied again (no loops, whatever the directory says meanwhile).
- The owner's status, type, caching and validator headers pass through; a failing owner is
  502 and its cached address is forgotten (the next request looks it up again).
"""
import requests

from lib.names import stream_key
from lib.server.cluster.store import StoreError
from lib.server.http.static import status_line

PROXIED = "X-Srsedge-Proxied"
PASS_HEADERS = ("Content-Type", "Cache-Control", "ETag", "Last-Modified")
TIMEOUT = (1.0, 5.0)                # connect, read (s)


def serve_from_owner(server, access, environ, start_response, real_path, path, extra_headers):
    if environ.get("HTTP_X_SRSEDGE_PROXIED"):
        return None
    plugin = getattr(server, "directory", None)
    if plugin is None or not plugin.drivers:
        return None
    for vhost, app, stream in access.rules().streams_of(real_path):
        driver = plugin.driver_for(vhost)
        if driver is None:
            continue
        key = stream_key(vhost.name, app, stream)
        try:
            owner, record = driver.owner(key)
        except StoreError:
            return None
        if not owner or owner == driver.book.origin_id or not (record or {}).get("http"):
            continue
        return _fetch(driver, key, record["http"], environ, start_response, path, extra_headers)
    return None


def _fetch(driver, key, http, environ, start_response, path, extra_headers):
    query = environ.get("QUERY_STRING", "")
    url = f"http://{http}{path}" + (f"?{query}" if query else "")
    try:
        r = requests.get(url, headers={PROXIED: "1"}, timeout=TIMEOUT)
    except requests.RequestException as e:
        driver.owner_cache.pop(key, None)
        driver.log.warn(f"hls {path}: owner {http} failed: {type(e).__name__}")
        start_response(status_line(502), [("Content-Length", "0")])
        return []
    headers = [(h, r.headers[h]) for h in PASS_HEADERS if h in r.headers]
    headers += [("Content-Length", str(len(r.content)))] + list(extra_headers)
    start_response(status_line(r.status_code), headers)
    return [] if environ["REQUEST_METHOD"] == "HEAD" else [r.content]
