"""The origin cluster as a server plugin (issue 21: `cluster { directory redis://...; }`).

Rules:
- One DirectoryDriver per distinct directory URL in the config, started with the server and
  stopped (leases released, membership removed) with it. Without any directory: no driver, no
  Redis connection, and every hook here returns at once (everything behaves as before).
- Origin vhosts (`mode local`) with a directory: a publish is accepted only once the directory
  says this origin owns the stream (before_publish; refused as a duplicate when it is live on
  another origin, or when the directory cannot be reached); unpublish gives the lease back.
- Edge vhosts (`mode remote`) with a directory: the origins to pull from / publish to are looked
  up per stream (`origins_for`); the vhost's static `origin` list follows as a fallback.
- Runs first among the plugins, so a refused publish starts nothing else (HLS, DVR, forward).
"""
import time

from gevent.event import Event

from lib.server.cluster.directory import DirectoryDriver
from lib.server.cluster.store import StoreError
from lib.server.core.errors import Reject


OWNER_WAIT_POLL = 3.0        # s: a waiting player looks the owner up again (as SRS's edge retries)


class DirectoryRefused(Reject):
    """The directory does not let this origin publish the stream."""


class DirectoryPlugin:
    def __init__(self, server):
        self.server = server
        self.drivers = {}                   # url -> DirectoryDriver
        self.owner_waits = {}               # stream key -> [Event, waiters]: waiting players
        server.directory = self

    def driver_for(self, vhost_conf):
        url = vhost_conf.cluster.directory
        return self.drivers.get(url) if url else None

    # -- lifecycle
    def on_server_start(self):
        self._sync(self.server.config)

    def on_reload(self, old, new):
        self._sync(new)

    def on_server_stop(self):
        for driver in self.drivers.values():
            driver.stop()
        self.drivers.clear()

    def _sync(self, config):
        wanted = {}                         # url -> (ttl, member: an origin vhost uses it)
        for vhost in config.vhosts.values():
            url = vhost.cluster.directory
            if url:
                ttl, member = wanted.get(url, (vhost.cluster.directory_ttl, False))
                wanted[url] = (ttl, member or not vhost.is_edge)
        for url in [u for u in self.drivers if u not in wanted]:
            self.drivers.pop(url).stop()
        for url, (ttl, member) in wanted.items():
            if url not in self.drivers:
                driver = DirectoryDriver(self.server, url, ttl, member)
                driver.on_move = self._moved
                driver.start()
                self.drivers[url] = driver

    # -- origins: a lease per published stream
    def before_publish(self, conn, source):
        if conn.vhost_conf.is_edge or conn.trusted:
            return
        driver = self.driver_for(conn.vhost_conf)
        if driver is None:
            return
        ok, reason, owner = driver.claim(source.key)
        if not ok:
            raise DirectoryRefused(f"publish {source.key}: {reason}")
        conn.plugin_state["directory_lease"] = driver
        relay = source.publisher
        if relay is not None and getattr(relay, "relay", False):
            relay.hand_over("the stream is published on this origin now")

    def on_publish_stopped(self, conn, source):
        driver = conn.plugin_state.pop("directory_lease", None)
        if driver is not None:
            driver.released(source.key)

    # -- edges: where a stream lives
    def origins_for(self, vhost_conf, key, publish=False):
        """Origins for an edge link of `key`: the directory's answer, then the static list."""
        static = list(vhost_conf.cluster.origin)
        driver = self.driver_for(vhost_conf)
        if driver is None:
            return static
        try:
            found = driver.origins_for_publish(key) if publish else driver.origins_for_play(key)
        except StoreError as e:
            driver.log.warn(f"directory lookup {key}: {e}; using the static origins")
            found = []
        return found + [o for o in static if o not in found]

    def owner_elsewhere(self, vhost_conf, key):
        """[owner's RTMP address] when another origin owns `key`, else [] (origins' relays)."""
        driver = self.driver_for(vhost_conf)
        if driver is None:
            return []
        try:
            return driver.origins_for_play(key)
        except StoreError as e:
            driver.log.warn(f"directory lookup {key}: {e}")
            return []

    def hls_continue_at(self, vhost_conf, key):
        driver = self.driver_for(vhost_conf)
        if driver is None or vhost_conf.is_edge:
            return None
        return driver.hls_continue_at(key, vhost_conf.hls.hls_fragment)

    def wait_for_owner(self, vhost_conf, key, timeout):
        """Origins for `key` once it has an owner (the moves channel says so), [] after
        `timeout` seconds (a player waiting for a publisher, play.publisher_wait)."""
        if self.driver_for(vhost_conf) is None or timeout <= 0:
            return []
        deadline = time.monotonic() + timeout
        wait = self.owner_waits.setdefault(key, [Event(), 0])
        wait[1] += 1
        try:
            while True:
                origins = self.origins_for(vhost_conf, key)
                left = deadline - time.monotonic()
                if origins or left <= 0:
                    return origins
                wait[0].clear()
                # the moves channel wakes us; a periodic look covers a missed message
                wait[0].wait(min(left, OWNER_WAIT_POLL))
        finally:
            wait[1] -= 1
            if not wait[1] and self.owner_waits.get(key) is wait:
                del self.owner_waits[key]

    def _moved(self, key):
        wait = self.owner_waits.get(key)
        if wait is not None:
            wait[0].set()
        """A stream got a new owner: an edge link pulling it moves there (as on failover)."""
        source = self.server.sources.get(key)
        ingester = source.edge if source is not None else None
        if ingester is None or ingester.done:
            return
        origins = self.origins_for(ingester.vhost_conf, key)
        if origins:
            ingester.move_to(origins)
