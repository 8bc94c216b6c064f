"""The edge cluster: on-demand pull, publish forwarding, origin failover (SRS `mode remote`).

Rules:
- One EdgeIngester per edge stream, stored on `source.edge`. The first player starts it; every
  later player (RTMP or HTTP-FLV) is served from the local source. The ingester is the source's
  publisher while it lives.
- The last player leaving starts a grace period (`cluster.edge_idle_timeout`); a player arriving
  in it re-attaches to the running link (see edge_state: no refusal while stopping).
- Origins: sticky, next one only on failure (connect error/timeout, close, no media for
  `cluster.origin_data_timeout`, an error/unpublish status). After a switch, video restarts at a
  keyframe and the source jitter continues timestamps right after the largest one sent.
- If no origin ever gave media after a full round, players get NetStream.Play.StreamNotFound and
  are closed, and the link stops.
- A publish to an edge vhost is proxied by a Pusher in give-up mode: the encoder gets
  Publish.Start only after an origin accepted; if every origin fails mid-publish, the encoder is
  disconnected with one log line.
- token_traverse: before serving a client the edge asks an origin with the client's own tcUrl,
  connect object and stream?param; a refusal or close refuses the client.
"""
import socket
import time

import gevent

from lib.media import flv
from lib.rtmp import session as rs
from lib.rtmp.message import MSG_VIDEO
from lib.rtmp.url import build_tc_url, stream_with_param
from lib.server.edge.state import EdgeState
from lib.server.core.errors import Reject
from lib.server.core.hooks import redact
from lib.server.edge.push import Pusher
from lib.server.edge.upstream import LinkError, Upstreams, debug_upnode_args, format_origin, open_link

NOT_FOUND = ("NetStream.Play.StreamNotFound", "stream not found on any origin")
FAIL_CODES = ("NetStream.Play.StreamNotFound", "NetStream.Play.UnpublishNotify",
              "NetStream.Play.Stop", "NetStream.Play.Failed")


class EdgeRefused(Reject):
    """The edge cannot serve this client (raised into the connection, which closes it)."""


def upstream_names(req, vhost_conf, origin):
    """(tc_url, app, stream?param) the edge uses towards `origin` for a client request."""
    vhost = vhost_conf.cluster.vhost or req.vhost
    tc_url = build_tc_url("rtmp", origin[0], vhost, req.app, origin[1])
    return tc_url, req.app, stream_with_param(req.stream, req.param, vhost_to_strip=True)


def connect_args_for(vhost_conf, cid):
    if vhost_conf.cluster.debug_srs_upnode:
        return (debug_upnode_args(cid),)
    return ()


class EdgeIngester:
    def __init__(self, plugin, source, req, vhost_conf):
        self.plugin = plugin
        self.server = plugin.server
        self.source = source
        self.req = req                      # the first player's request (carries ?param)
        self.vhost_conf = vhost_conf
        cluster = vhost_conf.cluster
        self.upstreams = Upstreams(cluster.origin)
        self.data_timeout = cluster.origin_data_timeout
        self.grace = cluster.edge_idle_timeout
        self.state = EdgeState(time.time())
        self.players = set()
        self.log = self.server.logger.context()
        self.greenlet = None
        self.idle_timer = None
        self.link = None
        self.origin_in_use = None
        self.got_media = False
        self.last_media_at = 0.0
        self.last_error = ""
        self.last_gap = None                # seconds without media around the last switch
        self.links_opened = 0

    def apply_config(self, vhost_conf):
        """Reload: the origin list and timeouts change; the current link stays if its origin
        is still listed, and the next pull uses the new list."""
        cluster = vhost_conf.cluster
        self.vhost_conf = vhost_conf
        self.upstreams.update(cluster.origin)
        self.data_timeout = cluster.origin_data_timeout
        self.grace = cluster.edge_idle_timeout
        if self.origin_in_use is not None and self.origin_in_use not in cluster.origin:
            self.log.trace(f"edge {self.source.key}: reload removed origin "
                           f"{format_origin(self.origin_in_use)}, switching")
            self._close_link()

    # ------------------------------------------------------------ players
    def add_player(self, conn):
        self.players.add(conn)
        st = self.state.state
        if st == "init":
            self.state.fire("play", time.time())
            self.greenlet = gevent.spawn(self._run)
        elif st == "stopping":
            self._cancel_idle()
            self.state.fire("play", time.time())
            self.log.trace(f"edge {self.source.key}: player re-attached in the grace period")

    def remove_player(self, conn):
        self.players.discard(conn)
        if not self.players and self.state.can("idle") and self.state.state != "stopping":
            self.state.fire("idle", time.time())
            self._cancel_idle()
            self.idle_timer = gevent.spawn_later(self.grace, self._idle_expired)

    def _cancel_idle(self):
        if self.idle_timer is not None:
            self.idle_timer.kill(block=False)
            self.idle_timer = None

    def _idle_expired(self):
        self.idle_timer = None
        if self.players or self.state.state != "stopping":
            return
        self.log.trace(f"edge {self.source.key}: no player for {self.grace:g}s, stop pulling")
        self.stop()

    def stop(self, trigger="stopped"):
        if self.state.state == "init":
            return
        self.state.fire(trigger, time.time())
        self._close_link()
        if self.greenlet is not None and self.greenlet is not gevent.getcurrent():
            self.greenlet.kill(block=False)
        self._release_source()

    def _release_source(self):
        src = self.source
        if src.edge is self:
            src.edge = None
        if src.publisher is self:
            src.on_unpublish(self)
        else:
            self.server.sources.maybe_remove(src)

    # ------------------------------------------------------------ pulling
    def _run(self):
        failed_round = set()
        src = self.source
        src.on_publish(self)
        while self.state.state != "init":
            origin, wait = self.upstreams.choose()
            if wait:
                gevent.sleep(wait)
            try:
                self._pull(origin)
            except LinkError as e:
                if self.state.state == "init":
                    break                   # stopped while pulling: the link was closed on us
                self.last_error = str(e)
                self.log.warn(f"edge {src.key}: pull from {format_origin(origin)} failed: {e}")
            self._close_link()
            if self.state.state == "init":
                break
            self.upstreams.failed(origin)
            failed_round.add(origin)
            self.state.fire("fail", time.time())
            if not self.got_media and failed_round >= set(self.upstreams.origins):
                self._not_found()
                return
            if self.got_media:
                failed_round.clear()

    def _pull(self, origin):
        tc_url, app, stream = upstream_names(self.req, self.vhost_conf, origin)
        link = open_link(origin, tc_url, app,
                         connect_args=connect_args_for(self.vhost_conf, self.log.cid))
        self.link = link
        self.links_opened += 1
        self.origin_in_use = origin
        self.log.trace(f"edge {self.source.key}: pulling {redact(stream)} from {format_origin(origin)} ({redact(tc_url)})")
        link.session.play(stream)
        link.flush()
        waiting_key = True
        first = True
        started = time.monotonic()
        last_media = started
        src = self.source
        while True:
            left = last_media + self.data_timeout - time.monotonic()
            if left <= 0:
                raise LinkError(f"{format_origin(origin)}: no media for {self.data_timeout:g}s")
            for ev in link.recv_events(left):
                if isinstance(ev, rs.Media):
                    t = ev.type_id
                    if t == MSG_VIDEO and waiting_key:
                        if flv.is_video_sequence_header(ev.payload):
                            pass
                        elif flv.is_video_keyframe(ev.payload):
                            waiting_key = False
                        else:
                            continue              # resume video at a keyframe
                    if first:
                        first = False
                        self._media_started(origin)
                    last_media = time.monotonic()
                    self.last_media_at = time.time()
                    src.on_media(t, ev.timestamp, ev.payload)
                elif isinstance(ev, rs.Status):
                    if ev.level == "error" or ev.code in FAIL_CODES:
                        raise LinkError(f"{format_origin(origin)}: {ev.code}")
            src.flush_burst()

    def _media_started(self, origin):
        now = time.time()
        if self.got_media:
            self.last_gap = now - self.last_media_at
            self.source.on_upstream_switch()
            self.log.trace(f"edge {self.source.key}: media from {format_origin(origin)}, "
                           f"gap {self.last_gap * 1000:.0f}ms, failovers {self.upstreams.failovers}")
        self.got_media = True
        self.upstreams.succeeded(origin)
        if self.state.can("media") and self.state.state != "connected":
            self.state.fire("media", now)

    def _close_link(self):
        link, self.link = self.link, None
        if link is not None:
            link.close()

    def _not_found(self):
        self.log.warn(f"edge {self.source.key}: no origin has the stream "
                      f"({self.last_error}); telling {len(self.players)} players")
        self.state.fire("not_found", time.time())
        players, self.players = list(self.players), set()
        for conn in players:
            conn.kick("edge: stream not found on any origin", NOT_FOUND)
        self._release_source()

    # ------------------------------------------------------------ status (API)
    def describe(self):
        return {"state": self.state.state, "since": self.state.since,
                "origin": format_origin(self.origin_in_use) if self.origin_in_use else None,
                "failovers": self.upstreams.failovers, "last_error": self.last_error,
                "players": len(self.players), "links_opened": self.links_opened,
                "last_gap_ms": None if self.last_gap is None else round(self.last_gap * 1000)}


class EdgePlugin:
    """Server plugin for vhosts with `cluster.mode remote`."""

    def __init__(self, server):
        self.server = server

    # -- play
    def before_play(self, conn, source):
        vhost_conf = conn.vhost_conf
        if not vhost_conf.is_edge:
            return
        if vhost_conf.cluster.token_traverse:
            self._traverse(conn, vhost_conf, "play")
        if source.publisher is not None and not isinstance(source.publisher, EdgeIngester):
            return                          # published through this edge: serve it locally
        ing = source.edge
        if ing is None or ing.state.state == "init":
            ing = EdgeIngester(self, source, conn.req, vhost_conf)
            source.edge = ing
        ing.add_player(conn)

    def after_play(self, conn, source):
        ing = source.edge
        if ing is not None:
            ing.remove_player(conn)

    # -- publish
    def before_publish(self, conn, source):
        vhost_conf = conn.vhost_conf
        if not vhost_conf.is_edge:
            return
        if source.edge is not None:
            raise EdgeRefused(f"edge publish {source.key}: the stream is being pulled from an origin")
        req = conn.req
        pusher = Pusher(source, vhost_conf.cluster.origin,
                        lambda origin: upstream_names(req, vhost_conf, origin), conn.log,
                        connect_args=connect_args_for(vhost_conf, conn.cid),
                        queue_ms=int(vhost_conf.play.queue_length * 1000), give_up=True,
                        on_give_up=lambda why: conn.kick(why), what="edge publish")
        try:
            pusher.connect_first()
        except LinkError as e:
            raise EdgeRefused(f"edge publish {source.key}: no origin accepted: {e}") from e
        source.sinks.append(pusher)
        conn.plugin_state["edge_push"] = pusher
        pusher.start()

    def on_publish_stopped(self, conn, source):
        pusher = conn.plugin_state.pop("edge_push", None)
        if pusher is not None:
            pusher.stop()
            if pusher in source.sinks:
                source.sinks.remove(pusher)

    # -- token traverse
    def _traverse(self, conn, vhost_conf, kind):
        req = conn.req
        errors = []
        upstreams = Upstreams(vhost_conf.cluster.origin)
        for _ in range(len(upstreams.origins)):
            origin, _ = upstreams.choose()
            try:
                self._ask_origin(conn, origin, kind)
                return
            except EdgeRefused:
                raise
            except (LinkError, OSError, socket.error) as e:
                errors.append(str(e))
                upstreams.failed(origin)
        raise EdgeRefused(f"token_traverse {req.stream}: no origin answered: {'; '.join(errors)}")

    def _ask_origin(self, conn, origin, kind):
        """Connect with the client's own tcUrl/args and play or publish its stream?param."""
        req = conn.req
        args = tuple(conn.connect_args or ())
        extra = {k: v for k, v in (conn.connect_object or {}).items()
                 if k not in ("tcUrl", "app")}
        try:
            link = open_link(origin, req.tc_url, req.app, connect_args=args, connect_extra=extra)
        except LinkError as e:
            if "connect refused" in str(e):
                raise EdgeRefused(f"token_traverse: origin refused connect: {e}") from e
            raise
        try:
            stream = stream_with_param(req.stream, req.param, vhost_to_strip=False)
            if kind == "play":
                link.session.play(stream)
            else:
                link.session.publish(stream)
            link.flush()
            want = "playing" if kind == "play" else "publishing"
            try:
                link.wait_state((want, "closed"), 5.0)
            except LinkError as e:
                raise EdgeRefused(f"token_traverse: origin closed the check: {e}") from e
            if link.session.state != want:
                raise EdgeRefused(f"token_traverse: origin refused {kind} of {req.stream}")
        finally:
            if link.session.state in ("publishing", "playing"):
                try:
                    link.session.close_stream()
                    link.flush()
                except OSError:
                    pass
            link.close()
