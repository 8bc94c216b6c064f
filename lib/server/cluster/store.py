"""The cluster directory in Redis (issue 21): the only module that knows the keys and speaks to
the store. It performs what lib/cluster/directory.py decides; it decides nothing itself.

Keys (prefix `srsedge:`; one Redis database per cluster, chosen by the URL's /DB):
  srsedge:origin:<id>         JSON membership record, expires after the member TTL
  srsedge:origins             set of member ids (a member whose record expired is pruned on read)
  srsedge:stream:<v/a/s>      owner id of the stream, expires after the lease TTL
  srsedge:hls:<v/a/s>         the stream's next HLS segment number, saved with each renewal and
                              kept an hour, so a new owner continues the playlist
  channel srsedge:moves       "<v/a/s> <owner>" when a stream gets an owner, "<v/a/s> " when
                              released (edges learn about moves here instead of polling)
Claims, releases and lookups are Lua scripts: each is one round trip and atomic in Redis.
Every call raises StoreError (one type, with the URL) on any failure of the store.
"""
import json

import redis

POOL_SIZE = 50            # connections to the directory per process, at most
PREFIX = "srsedge:"
MOVES = PREFIX + "moves"
ORIGINS = PREFIX + "origins"

_CLAIM = """
local me, ttl, out = ARGV[1], ARGV[2], {}
for i, k in ipairs(KEYS) do
  local v = redis.call('GET', k)
  if (not v) or v == me then
    redis.call('SET', k, me, 'PX', ttl)
    if not v then redis.call('PUBLISH', ARGV[3], string.sub(k, ARGV[4] + 1) .. ' ' .. me) end
    out[i] = me
  else
    out[i] = v
  end
end
return out
"""

_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('DEL', KEYS[1])
  redis.call('PUBLISH', ARGV[2], string.sub(KEYS[1], ARGV[3] + 1) .. ' ')
  return 1
end
return 0
"""

# owner id and its membership record in one round trip ({false, false} when nobody owns it)
_LOOKUP = """
local owner = redis.call('GET', KEYS[1])
if not owner then return {false, false} end
return {owner, redis.call('GET', ARGV[1] .. owner)}
"""


class StoreError(Exception):
    """The directory could not be reached or answered an error."""


def stream_lease_key(key):
    return f"{PREFIX}stream:{key}"


def member_key(member_id):
    return f"{PREFIX}origin:{member_id}"


class RedisDirectory:
    """One connection pool to the directory at `url` (redis://HOST:PORT/DB)."""

    def __init__(self, url, timeout=1.0):
        self.url = url
        try:
            # a burst of publishes or plays (one lookup each, at once) waits for a connection
            # (up to `timeout`) rather than failing: redis-py's default pool refuses the 101st
            pool = redis.BlockingConnectionPool.from_url(
                url, max_connections=POOL_SIZE, timeout=timeout, socket_timeout=timeout,
                socket_connect_timeout=timeout, decode_responses=True)
            self.redis = redis.Redis(connection_pool=pool)
        except ValueError as e:
            raise StoreError(f"directory {url}: {e}") from e
        self._claim = self.redis.register_script(_CLAIM)
        self._release = self.redis.register_script(_RELEASE)
        self._lookup = self.redis.register_script(_LOOKUP)

    def _call(self, what, f, *args, **kw):
        try:
            return f(*args, **kw)
        except redis.RedisError as e:
            raise StoreError(f"directory {self.url}: {what}: {e}") from e

    # ------------------------------------------------------------ leases (origins)
    def claim(self, owner, keys, ttl):
        """{key: owner after the claim} for each key (ours when it was free or ours)."""
        lease_keys = [stream_lease_key(k) for k in keys]
        owners = self._call("claim", self._claim, keys=lease_keys,
                            args=[owner, int(ttl * 1000), MOVES, len(PREFIX + "stream:")])
        return dict(zip(keys, owners))

    def save_hls_seqs(self, seqs, keep):
        """Remember each stream's next HLS segment number for `keep` seconds."""
        pipe = self.redis.pipeline(transaction=False)
        for key, seq in seqs.items():
            pipe.set(f"{PREFIX}hls:{key}", seq, ex=int(keep))
        self._call("save hls", pipe.execute)

    def hls_seq(self, key):
        value = self._call("hls seq", self.redis.get, f"{PREFIX}hls:{key}")
        return int(value) if value is not None and value.isdigit() else None

    def release(self, owner, key):
        return bool(self._call("release", self._release, keys=[stream_lease_key(key)],
                               args=[owner, MOVES, len(PREFIX + "stream:")]))

    # ------------------------------------------------------------ membership
    def register(self, record, ttl):
        pipe = self.redis.pipeline(transaction=True)
        pipe.set(member_key(record["id"]), json.dumps(record), px=int(ttl * 1000))
        pipe.sadd(ORIGINS, record["id"])
        self._call("register", pipe.execute)

    def deregister(self, member_id):
        pipe = self.redis.pipeline(transaction=True)
        pipe.delete(member_key(member_id))
        pipe.srem(ORIGINS, member_id)
        self._call("deregister", pipe.execute)

    def members(self):
        """The live members' records (expired ones are pruned from the id set)."""
        ids = sorted(self._call("members", self.redis.smembers, ORIGINS))
        if not ids:
            return []
        records = self._call("members", self.redis.mget, [member_key(i) for i in ids])
        gone = [i for i, r in zip(ids, records) if r is None]
        if gone:
            self._call("prune", self.redis.srem, ORIGINS, *gone)
        return [json.loads(r) for r in records if r is not None]

    # ------------------------------------------------------------ lookups (edges, API)
    def owner(self, key):
        """(owner id, its membership record or None) of the stream, or (None, None)."""
        owner, record = self._call("lookup", self._lookup, keys=[stream_lease_key(key)],
                                   args=[PREFIX + "origin:"])
        if not owner:
            return None, None
        return owner, (json.loads(record) if record else None)

    def streams_of(self):
        """{stream key: owner} of every leased stream (for the API; SCAN, not KEYS)."""
        out = {}
        names = list(self._call("scan", self.redis.scan_iter, match=PREFIX + "stream:*",
                                count=500))
        if names:
            owners = self._call("scan", self.redis.mget, names)
            skip = len(PREFIX + "stream:")
            out = {n[skip:]: o for n, o in zip(names, owners) if o}
        return out

    def subscribe_moves(self):
        """A PubSub subscribed to the moves channel (its owner greenlet reads it)."""
        pubsub = self.redis.pubsub(ignore_subscribe_messages=True)
        self._call("subscribe", pubsub.subscribe, MOVES)
        return pubsub

    def close(self):
        self.redis.close()
