"""The gevent driver of one cluster directory (issue 21): one greenlet owns this process's
LeaseBook (lib/cluster/directory.py) and performs its actions against the store
(lib/server/cluster/store.py); a second one reads the moves channel.

Rules:
- The book decides; this module performs, in order, one store call at a time, and feeds each
  answer or failure back (StoreError -> store_failed). Publishers' greenlets only enqueue a
  request and wait for its Answer (bounded by CLAIM_WAIT); they never touch the book.
- Lookups for edges (`origins_for_play`, `origins_for_publish`) run on the caller's greenlet
  (read-only, one round trip), cached per stream until the moves channel says it changed, and
  for at most one renewal interval: a lease that expires (its origin died) sends no message, so
  an older answer may name a dead origin (an encoder retrying through an edge would be sent
  there for ever).
- A moved stream (channel message) tells the edge plugin through `on_move(key)`, so its pull
  link moves to the new owner the way failover works.
- Logs: store reachable/unreachable once per transition, a lost lease, a move; never per renewal.
"""
import os
import socket
import time
from collections import deque

import gevent
from gevent.event import AsyncResult, Event

from lib.cluster.directory import (Answer, Claim, Deregister, LeaseBook, Register, Release,
                                   StopStream, StoreState)
from lib.server.cluster.srs_members import SrsMembers
from lib.server.cluster.store import RedisDirectory, StoreError

CLAIM_WAIT = 3.0          # s a publisher waits for the directory before it is refused
MEMBERS_FRESH = 1.0       # s a members list read for placement is reused
PLACED_SETTLE = 0.5       # s a placed publish takes to show in its origin's record
OWNER_CACHE_MAX = 10000   # cached owners before the stale ones are swept
HLS_SEQ_KEEP = 3600       # s a stream's next HLS segment number is kept in the directory


class DirectoryDriver:
    def __init__(self, server, url, ttl, member, clock=time.monotonic):
        self.server = server
        self.member = member                # an origin: registers itself; an edge only looks up
        self.url = url
        self.ttl = ttl
        self.clock = clock
        self.store = RedisDirectory(url)
        self.book = LeaseBook(server.server_id, ttl, clock())
        self.log = server.logger.context()
        self.inbox = deque()
        self.waiting = {}                   # stream key -> [AsyncResult] in request order
        self.wake = Event()
        self.greenlets = []
        self.owner_cache = {}               # stream key -> (read at, owner id, record)
        self.members_cache = (None, [])     # (read at, records)
        self.placed = []                    # (member id, wall time) of publishes placed here
        self.on_move = None                 # callable(key), set by the plugin
        self.moves = 0
        self._cpu = (time.monotonic(), sum(os.times()[:2]))
        self.srs_members = SrsMembers(self)

    # ------------------------------------------------------------ lifecycle
    def start(self):
        self.greenlets = [gevent.spawn(self._run), gevent.spawn(self._read_moves)]

    def stop(self):
        self.inbox.append(("stop", None))
        self.wake.set()
        if self.greenlets:
            self.greenlets[0].join(timeout=2.0)
        gevent.killall(self.greenlets, block=False)
        self.store.close()

    # ------------------------------------------------------------ from publishers' greenlets
    def claim(self, key):
        """(ok, reason, owner): may this process publish `key`? Blocks up to CLAIM_WAIT."""
        result = AsyncResult()
        self.waiting.setdefault(key, []).append(result)
        self.inbox.append(("publish", key))
        self.wake.set()
        try:
            return result.get(timeout=CLAIM_WAIT)
        except gevent.Timeout:
            pending = self.waiting.get(key, [])
            if result in pending:
                pending.remove(result)
            return False, "directory did not answer in time", ""

    def released(self, key):
        self.inbox.append(("unpublish", key))
        self.wake.set()

    # ------------------------------------------------------------ lookups (edges)
    def owner(self, key):
        """(owner id, record) of `key`, cached until a move or for one renewal interval;
        StoreError propagates."""
        now = self.clock()
        hit = self.owner_cache.get(key)
        if hit is not None and now - hit[0] < self.book.renew_interval:
            return hit[1], hit[2]
        owner, record = self.store.owner(key)
        if owner is not None:
            self.owner_cache[key] = (now, owner, record)
            if len(self.owner_cache) > OWNER_CACHE_MAX:     # never outgrow the live streams
                self.owner_cache = {k: v for k, v in self.owner_cache.items()
                                    if now - v[0] < self.book.renew_interval}
        else:
            self.owner_cache.pop(key, None)
        return owner, record

    def cached_owner(self, key):
        """The owner id this process last read for `key` (no store call), or None."""
        hit = self.owner_cache.get(key)
        return hit[1] if hit else None

    def origins_for_play(self, key):
        """[the owner's RTMP address], [] when nobody owns `key` or this process does."""
        owner, record = self.owner(key)
        return [rtmp_address(record)] if record and owner != self.book.origin_id else []

    def origins_for_publish(self, key):
        """The owner when there is one, else the least-loaded live origin."""
        owner, record = self.owner(key)
        if record:
            return [rtmp_address(record)]
        member = self._least_loaded()
        return [rtmp_address(member)] if member else []

    def members(self):
        at, records = self.members_cache
        now = self.clock()
        if at is None or now - at > MEMBERS_FRESH:
            records = self.store.members()
            self.members_cache = (now, records)
        return records

    def _least_loaded(self):
        records = [r for r in self.members() if r.get("rtmp")]
        if not records:
            return None

        now = time.time()
        updated = {r["id"]: r.get("updated", 0) for r in records}
        # a placement counts here until its origin's record was written after it had time to
        # arrive (PLACED_SETTLE s), at most one TTL; a fresh members read does not forget it
        self.placed = [(i, at) for i, at in self.placed if i in updated
                       and updated[i] < at + PLACED_SETTLE and now - at < self.ttl]
        pending = {}
        for i, _ in self.placed:
            pending[i] = pending.get(i, 0) + 1

        def load(r):                        # what it reported plus what is on its way there
            reported, placed = r.get("load", {}), pending.get(r["id"], 0)
            return (reported.get("publishers", 0) + placed, reported.get("streams", 0) + placed,
                    r["id"])
        best = min(records, key=load)
        self.placed.append((best["id"], now))
        return best

    # ------------------------------------------------------------ the owner greenlet
    def _run(self):
        while True:
            while self.inbox:
                what, key = self.inbox.popleft()
                now = self.clock()
                if what == "publish":
                    self.book.publish_requested(key, now)
                elif what == "unpublish":
                    self.book.unpublished(key, now)
                else:
                    self.book.stop(now)
                    self._perform()
                    return
                self._perform()
            self.book.handle_timer(self.clock())
            self._perform()
            timer = self.book.get_timer()
            self.wake.clear()
            if not self.inbox:
                self.wake.wait(None if timer is None else max(0.0, timer - self.clock()))

    def _perform(self):
        actions = self.book.take_actions()
        while actions:
            for action in actions:
                self._do(action)
            actions = self.book.take_actions()

    def _do(self, action):
        now = self.clock()
        try:
            self._do_one(action, now)
        except StoreError as e:
            self.book.store_failed(str(e), now)
        except Exception as e:  # noqa: BLE001 - a bug here must not end the cluster's leases
            self.log.error(f"directory {self.url}: {type(action).__name__} failed: {e!r}")
            self.book.store_failed(f"internal error: {e!r}", now)

    def _do_one(self, action, now):
        book, store = self.book, self.store
        if isinstance(action, Claim):
            book.claim_answered(store.claim(book.origin_id, action.keys, self.ttl), self.clock())
            seqs = self._hls_seqs(action.keys)
            if seqs:
                store.save_hls_seqs(seqs, HLS_SEQ_KEEP)
        elif isinstance(action, Release):
            store.release(book.origin_id, action.key)
        elif isinstance(action, Register):
            if self.member:
                store.register(self.record(), self.ttl)
                book.registered(self.clock())
        elif isinstance(action, Deregister):
            if self.member:
                store.deregister(book.origin_id)
        elif isinstance(action, Answer):
            pending = self.waiting.get(action.key)
            if pending:
                pending.pop(0).set((action.ok, action.reason, action.owner))
                if not pending:
                    del self.waiting[action.key]
        elif isinstance(action, StopStream):
            self._stop_copy(action.key, action.owner)
        elif isinstance(action, StoreState):
            if action.up:
                self.log.trace(f"directory {self.url}: reachable again")
            else:
                self.log.warn(f"directory {self.url}: unreachable ({action.reason}); "
                              f"live streams continue, new publishes are refused")

    def _hls_seqs(self, keys):
        """{key: next HLS segment number} of the streams among `keys` this origin holds."""
        plugin = next((p for p in self.server.plugins if hasattr(p, "next_seq_of")), None)
        if plugin is None:
            return {}
        seqs = {k: plugin.next_seq_of(k) for k in keys if self.book.owns(k)}
        return {k: s for k, s in seqs.items() if s is not None}

    def hls_continue_at(self, key, fragment):
        """The first segment number for a stream this origin starts cutting: past what the
        previous owner may have written since its last save (one renewal interval of segments
        of `fragment` seconds, plus one), or None when the directory has no number."""
        try:
            seq = self.store.hls_seq(key)
        except StoreError:
            return None
        if seq is None:
            return None
        return seq + int(self.book.renew_interval / max(fragment, 0.1)) + 2

    def _stop_copy(self, key, owner):
        source = self.server.sources.get(key)
        publisher = source.publisher if source is not None else None
        self.log.warn(f"directory: {key} is owned by {owner} now; stopping the copy here")
        if publisher is not None and hasattr(publisher, "kick"):
            publisher.kick(f"stream {key} moved to {owner}")

    def _read_moves(self):
        """Forget cached owners the moves channel names and tell the plugin."""
        backoff = 0.5
        while True:
            try:
                pubsub = self.store.subscribe_moves()
                backoff = 0.5
                while True:
                    msg = pubsub.get_message(timeout=5.0)
                    if msg is None or msg.get("type") != "message":
                        continue
                    key, _, owner = msg["data"].rpartition(" ")
                    self.owner_cache.pop(key, None)
                    self.moves += 1
                    if self.on_move is not None:
                        self.on_move(key)
            except (StoreError, OSError, Exception) as e:  # noqa: BLE001 - redis errors vary
                self.owner_cache.clear()     # we may have missed moves meanwhile
                self.log.info(f"directory {self.url}: moves channel lost ({e}); retrying")
                gevent.sleep(backoff)
                backoff = min(backoff * 2, 5.0)

    # ------------------------------------------------------------ membership record
    def record(self):
        server = self.server
        host = advertised_host(self.store)
        players = sum(len(s.consumers) for s in server.sources.sources.values())
        publishers = sum(1 for s in server.sources.sources.values() if s.publisher is not None)
        now, cpu = time.monotonic(), sum(os.times()[:2])
        then, cpu_then = self._cpu
        self._cpu = (now, cpu)
        rec = {"id": self.book.origin_id, "kind": "srsedge", "pid": os.getpid(),
               "ip": host, "rtmp": f"{host}:{server.rtmp_ports[0]}" if server.listeners else "",
               "load": {"publishers": publishers, "streams": len(self.book.held()),
                        "players": players,
                        "cpu": round(100.0 * (cpu - cpu_then) / max(now - then, 1e-3), 1)},
               "updated": round(time.time(), 3)}
        for name in ("http_server", "http_api"):
            conf = getattr(server.config, name)
            if conf.enabled:
                rec["http" if name == "http_server" else "api"] = f"{host}:{conf.listen[1]}"
        return rec


def rtmp_address(record):
    host, _, port = record["rtmp"].rpartition(":")
    return host, int(port)


def advertised_host(store):
    """The local address this host uses to reach the store: what other hosts can reach too."""
    kw = store.redis.connection_pool.connection_kwargs
    probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        probe.connect((kw.get("host", "127.0.0.1"), int(kw.get("port", 6379))))
        return probe.getsockname()[0]
    except OSError:
        return "127.0.0.1"
    finally:
        probe.close()
