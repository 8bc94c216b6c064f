"""The edge cluster as a server plugin (SRS `cluster { mode remote; }`).

Rules:
- Play on an edge vhost: the first player of a stream creates an EdgeIngester (stored on
  `source.edge`, lib/server/edge/ingest.py); every later player, RTMP or HTTP-FLV, joins it: one
  upstream link per stream per process. A stream published through this edge is served locally.
- Publish on an edge vhost is proxied by a Pusher in give-up mode (lib/server/edge/push.py): the
  encoder gets Publish.Start only after an origin accepted; when every origin fails mid-publish
  the encoder is disconnected with one log line. A publish whose setup ends otherwise (no
  origin accepted, the connection's setup timeout, the encoder leaving meanwhile) stops its
  Pusher and removes it from the source's sinks: nothing keeps the name busy at the origin.
- token_traverse: before serving a client the edge asks an origin with the client's own tcUrl,
  connect object and stream?param; a refusal or close refuses the client.
"""
import socket
import time

from lib.cluster.origins import OriginPicker
from lib.rtmp.url import stream_with_param
from lib.server.core.errors import Reject
from lib.server.edge.ingest import EdgeIngester, connect_args_for, upstream_names
from lib.server.edge.push import Pusher
from lib.server.edge.upstream import LinkError, open_link


ENCODER_CHECK = 0.25           # seconds: how often an edge publish in setup checks its encoder


def wait_accepted(conn, pusher):
    """The pusher's answer (None: accepted, else why not); EdgeRefused when the encoder left
    meanwhile (nobody reads its socket during the wait, so a look every ENCODER_CHECK)."""
    accepted = pusher.accepted
    while not accepted.ready():
        accepted.wait(ENCODER_CHECK)            # returns the value: None once accepted
        if not accepted.ready() and peer_closed(conn.sock):
            raise EdgeRefused("edge publish: the encoder left while an origin was asked")
    return accepted.get()


def peer_closed(sock):
    """True when the far side closed or reset the socket (looks without reading)."""
    raw = getattr(sock, "_sock", sock)          # gevent's socket would wait for data
    try:
        return raw.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT) == b""
    except (BlockingIOError, InterruptedError):
        return False
    except OSError:
        return True


class EdgeRefused(Reject):
    """The edge cannot serve this client (raised into the connection, which closes it)."""


class EdgePlugin:
    """Server plugin for vhosts with `cluster.mode remote`."""

    def __init__(self, server):
        self.server = server

    # -- play
    def before_play(self, conn, source):
        vhost_conf = conn.vhost_conf
        if not vhost_conf.is_edge:
            self._relay(conn, source, vhost_conf)
            return
        if vhost_conf.cluster.token_traverse:
            self._traverse(conn, vhost_conf, "play")
        if source.publisher is not None and not isinstance(source.publisher, EdgeIngester):
            return                          # published through this edge: serve it locally
        directory = self.server.directory

        def lookup():                       # not published yet: wait for an owner, as SRS waits
            return directory.origins_for(vhost_conf, source.key) or directory.wait_for_owner(
                vhost_conf, source.key, vhost_conf.play.publisher_wait)
        ing = self._join_or_start(
            source, lookup,
            lambda origins: EdgeIngester(self.server, source, conn.req, vhost_conf,
                                         origins=origins))
        if ing is None:
            raise EdgeRefused(f"edge {source.key}: no origin has the stream (directory)")
        ing.add_player(conn)

    @staticmethod
    def _join_or_start(source, lookup, start):
        """The stream's running link, else a new one to `lookup()`'s origins (None: none).
        The lookup may yield (a directory round trip) while another player of the stream
        starts a link: look again after it, so a stream keeps one upstream link."""
        ing = source.edge
        if ing is not None and not ing.done:
            return ing
        origins = lookup()
        ing = source.edge
        if ing is not None and not ing.done:
            return ing
        if not origins:
            return None
        source.edge = ing = start(origins)
        return ing

    def _relay(self, conn, source, vhost_conf):
        """An origin of a cluster serving a stream that another origin owns: pull it from the
        owner with one link, as an edge would (docs/cluster.md). Not while it is published here."""
        if not vhost_conf.cluster.directory or source.publisher is not None and not isinstance(
                source.publisher, EdgeIngester):
            return
        ing = self._join_or_start(
            source, lambda: self.server.directory.owner_elsewhere(vhost_conf, source.key),
            lambda origins: EdgeIngester(self.server, source, conn.req, vhost_conf,
                                         origins=origins, relay=True))
        if ing is None:
            return                          # nobody else owns it: wait for a publisher here
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
        origins = self.server.directory.origins_for(vhost_conf, source.key, publish=True)
        if not origins:
            raise EdgeRefused(f"edge publish {source.key}: no origin in the directory")
        pusher = Pusher(source, origins,
                        lambda origin: upstream_names(req, vhost_conf, origin), conn.log,
                        connect_args=connect_args_for(vhost_conf, conn.cid),
                        queue_ms=int(vhost_conf.play.queue_length * 1000), give_up=True,
                        on_give_up=lambda why: conn.kick(why), what="edge publish")
        source.sinks.append(pusher)
        pusher.start()
        accepted = False
        try:
            error = wait_accepted(conn, pusher)  # the encoder starts only once an origin accepted
            if error is not None:
                raise EdgeRefused(f"edge publish {source.key}: no origin accepted: {error}")
            accepted = True
        finally:        # refused, the setup timeout, the encoder gone, the connection killed
            if not accepted:
                pusher.stop()
                if pusher in source.sinks:
                    source.sinks.remove(pusher)
        conn.plugin_state["edge_push"] = pusher

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
        key = self.server.stream_key(req, vhost_conf)
        origins = self.server.directory.origins_for(vhost_conf, key)
        if not origins:
            raise EdgeRefused(f"token_traverse {req.stream}: no origin has the stream (directory)")
        picker = OriginPicker(origins)
        for _ in range(len(picker.origins)):
            origin, _ = picker.choose(time.monotonic())
            try:
                self._ask_origin(conn, origin, kind)
                return
            except EdgeRefused:
                raise
            except (LinkError, OSError, socket.error) as e:
                errors.append(str(e))
                picker.failed(origin, time.monotonic())
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
