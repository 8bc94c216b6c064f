"""Real SRS origins in the cluster (issue 21): SRS 7's own heartbeat
(`heartbeat { enabled on; url http://SRSEDGE:1985/api/v1/srs/register; ports on; }`) registers
an SRS origin as a member, as SRS 7's proxy (proxy/api.go) accepts it.

Rules:
- The body is SRS's (srs_app_heartbeat.cpp): `ip`, `server`, `service`, `pid` (strings), `rtmp`
  (listen endpoints: "1935" or "HOST:1935", mandatory), `http`, `api` (optional), `device_id`.
  Anything else missing or malformed is refused (code 400), nothing is written.
- The member id is `srs-<server>`; its record says kind "srs" and lives SRS_MEMBER_TTL (three of
  SRS's default 9.9 s heartbeats): SRS renews it with every heartbeat, a dead SRS expires.
- SRS knows nothing of leases, so its streams are claimed on its behalf: after each heartbeat
  its HTTP API's /api/v1/streams is read (when it announced `api`), each active stream is
  claimed for `srs-<server>` with the member TTL, and those it no longer publishes are
  released. So edges find SRS's streams in the directory like any origin's. Two copies are not
  prevented for SRS as they are for srsedge (SRS never asks): a claim that finds another owner
  is left to that owner and logged.
- Load for placement: `publishers` and `streams` are its active streams; when they cannot be
  read (or a read for that member is still running) the last load read stands.
- Whoever can POST a heartbeat makes srsedge GET `/api/v1/streams` from the address it names
  (keep the API on the cluster's network or behind auth): at most one read per member and
  MAX_FETCHES in all run at once, each bounded by API_TIMEOUT and MAX_ANSWER bytes.
"""
import json
import time

import gevent
import requests

from lib.names import DEFAULT_VHOST, stream_key
from lib.server.cluster.store import StoreError

SRS_MEMBER_TTL = 30.0
API_TIMEOUT = 2.0
MAX_FETCHES = 8              # SRS APIs read at once: a flood of heartbeats reads no more
MAX_ANSWER = 4 << 20         # bytes of an SRS /api/v1/streams answer read at most
MAX_LOADS = 1000             # members whose last load is remembered


def _port(endpoint):
    port = str(endpoint).rpartition(":")[2]
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"bad endpoint {endpoint!r}")
    return int(port)


def srs_record(body):
    """The membership record of an SRS heartbeat body; ValueError when it is not one."""
    if not isinstance(body, dict):
        raise ValueError("body is not a JSON object")
    for name in ("ip", "server", "service", "pid"):
        if not isinstance(body.get(name), str) or not body[name] or len(body[name]) > 256:
            raise ValueError(f"missing or bad {name!r}")
    rtmp = body.get("rtmp")
    if not isinstance(rtmp, list) or not rtmp:
        raise ValueError("missing rtmp endpoints (heartbeat.ports on)")
    ip = body["ip"]
    record = {"id": f"srs-{body['server']}", "kind": "srs", "pid": body["pid"],
              "service": body["service"], "ip": ip, "rtmp": f"{ip}:{_port(rtmp[0])}",
              "device_id": str(body.get("device_id", ""))[:256]}
    for name in ("http", "api"):
        if isinstance(body.get(name), list) and body[name]:
            record[name] = f"{ip}:{_port(body[name][0])}"
    return record


def stream_key_of_url(url):
    """SRS's stream `url` ("/live/s" on the default vhost, "vhost/live/s") as a stream key."""
    vhost, _, rest = url.partition("/")
    app, _, stream = rest.rpartition("/")
    if not app or not stream:
        return None
    return stream_key(vhost or DEFAULT_VHOST, app, stream)


class SrsMembers:
    """Per directory driver: the SRS members heard from here and the streams claimed for them."""

    def __init__(self, driver):
        self.driver = driver
        self.claimed = {}                   # member id -> set of stream keys
        self.fetching = set()               # members whose API is being read
        self.loads = {}                     # member id -> active streams last read

    def heartbeat(self, record):
        member, streams = record["id"], None
        if member not in self.fetching and len(self.fetching) < MAX_FETCHES:
            self.fetching.add(member)
            try:
                streams = self._streams(record)
            finally:
                self.fetching.discard(member)
        if streams is not None:
            if len(self.loads) >= MAX_LOADS:
                self.loads.clear()
            self.loads[member] = len(streams)
        load = self.loads.get(member, 0)
        record = dict(record, load={"publishers": load, "streams": load},
                      updated=round(time.time(), 3))
        self.driver.store.register(record, SRS_MEMBER_TTL)       # StoreError: the caller's
        if streams is not None:
            gevent.spawn(self._claim, record["id"], streams)
        return record

    def _streams(self, record):
        if not record.get("api"):
            return None
        try:
            with requests.get(f"http://{record['api']}/api/v1/streams?count=10000",
                              timeout=API_TIMEOUT, stream=True) as r:
                body = r.raw.read(MAX_ANSWER + 1, decode_content=True)
            if len(body) > MAX_ANSWER:
                raise ValueError(f"answer over {MAX_ANSWER} bytes")
            answer = json.loads(body)
        except (requests.RequestException, ValueError, OSError) as e:
            self.driver.log.warn(f"srs member {record['id']}: streams unreadable: "
                                 f"{type(e).__name__}")
            return None
        keys = set()
        for s in answer.get("streams", []) if isinstance(answer, dict) else []:
            if isinstance(s, dict) and (s.get("publish") or {}).get("active"):
                key = stream_key_of_url(str(s.get("url", "")))
                if key:
                    keys.add(key)
        return keys

    def _claim(self, member, keys):
        store, log = self.driver.store, self.driver.log
        try:
            owners = store.claim(member, sorted(keys), SRS_MEMBER_TTL) if keys else {}
            for key in self.claimed.get(member, set()) - keys:
                store.release(member, key)
        except StoreError as e:
            log.warn(f"srs member {member}: {e}")
            return
        for key, owner in owners.items():
            if owner != member:
                log.warn(f"srs member {member} publishes {key}, owned by {owner}")
        self.claimed[member] = {k for k, o in owners.items() if o == member}
