"""/api/v1/clusters (srsedge's origin cluster, issue 21, docs/cluster.md) and each stream's owner.

Rules:
- Without a directory in the config: `{"directories": []}` and no `owner` on streams.
- With one: for each directory, whether it is reachable from here, this process's id and role,
  the live origins with their load (read from Redis on each request: the API is not a hot path),
  how many streams each owns (and the first MAX_OWNED_LISTED of them by name, for the
  console's streams per origin), and the moves seen. `?vhost=&app=&stream=` answers one stream's
  owner in SRS's shape (`data.origin`: ip, port, id), or code 2048 (SRS's stream-not-found)
  when nobody owns it.
- A stream's owner in /api/v1/streams comes from what this process knows (its own leases, an
  edge's cached lookups): no Redis call per stream.
"""
import json

from lib.names import DEFAULT_VHOST, stream_key
from lib.server.cluster.srs_members import srs_record
from lib.server.cluster.store import StoreError

ERROR_RTMP_STREAM_NOT_FOUND = 2048
MAX_HEARTBEAT_BYTES = 64 * 1024
MAX_OWNED_LISTED = 100


def srs_register(server, environ):
    """POST /api/v1/srs/register (SRS 7's heartbeat): (http status, answer)."""
    plugin = getattr(server, "directory", None)
    drivers = list(plugin.drivers.values()) if plugin is not None else []
    if not drivers:
        return 404, {"code": 404, "error": "no cluster directory in this server's config"}
    try:
        size = int(environ.get("CONTENT_LENGTH") or 0)
        if not 0 < size <= MAX_HEARTBEAT_BYTES:
            raise ValueError(f"body of {size} bytes")
        record = srs_record(json.loads(environ["wsgi.input"].read(size)))
    except (ValueError, UnicodeDecodeError) as e:
        return 400, {"code": 400, "error": str(e)[:200]}
    try:
        for driver in drivers:
            driver.srs_members.heartbeat(record)
    except StoreError as e:
        return 503, {"code": 503, "error": str(e)[:200]}
    return 200, {"code": 0, "id": record["id"]}


def directories_json(server):
    plugin = getattr(server, "directory", None)
    drivers = plugin.drivers.values() if plugin is not None else []
    return [_directory_json(d) for d in drivers]


def _directory_json(driver):
    out = {"url": driver.url, "self": driver.book.origin_id,
           "role": "origin" if driver.member else "edge", "ttl": driver.ttl,
           "held": len(driver.book.held()), "moves_seen": driver.moves}
    try:
        members = driver.store.members()
        owners = driver.store.streams_of()
        out["reachable"] = True
    except StoreError as e:
        out.update(reachable=False, error=str(e))
        return out
    owned = {}
    for key, owner in sorted(owners.items()):
        owned.setdefault(owner, []).append(key)
    out["origins"] = [dict(m, streams_owned=len(owned.get(m["id"], [])),
                           owned=owned.get(m["id"], [])[:MAX_OWNED_LISTED]) for m in members]
    out["streams"] = len(owners)
    return out


def owner_query_json(server, query):
    """(code, data) for `?vhost=&app=&stream=`."""
    vhost = query.get("vhost", [DEFAULT_VHOST])[0] or DEFAULT_VHOST
    app, stream = query.get("app", [""])[0], query.get("stream", [""])[0]
    vhost_conf = server.config.vhost(vhost)
    name = vhost_conf.name if vhost_conf is not None else vhost
    key = stream_key(name, app, stream)
    data = {"query": {"vhost": vhost, "app": app, "stream": stream}}
    driver = server.directory.driver_for(vhost_conf) if vhost_conf is not None else None
    if driver is None:
        return ERROR_RTMP_STREAM_NOT_FOUND, data
    owner, record = driver.store.owner(key)
    if not owner:
        return ERROR_RTMP_STREAM_NOT_FOUND, data
    host, _, port = (record or {}).get("rtmp", ":").rpartition(":")
    data["origin"] = {"id": owner, "ip": host, "port": int(port) if port else None,
                      "api": (record or {}).get("api"), "http": (record or {}).get("http")}
    return 0, data


def stream_owner(server, source):
    """This process's knowledge of `source`'s owner, or None without a directory."""
    plugin = getattr(server, "directory", None)
    vhost_conf = server.config.vhost(source.vhost) if plugin is not None else None
    driver = plugin.driver_for(vhost_conf) if vhost_conf is not None else None
    if driver is None:
        return None
    if driver.book.owns(source.key):
        return driver.book.origin_id
    return driver.cached_owner(source.key)
