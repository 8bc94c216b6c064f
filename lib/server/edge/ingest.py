"""The edge pull link's driver: one greenlet per edge stream (SRS `mode remote` ingest).

Rules:
- Every decision (which origin, when to fail over, back off, stop after the grace period, give
  up with "not found", what a reload changes) is made by lib/cluster/pull.py's EdgePull. This
  module only performs its actions and feeds it events: players come and go, the link came up
  or failed, media arrived, a timer fired.
- One greenlet (`_run`) owns the upstream socket and the ClientSession: it connects, reads,
  writes and closes. While the machine is streaming it lends the read side to the event loop
  (`_read_in_hub`): each burst from the origin is read and delivered in the io callback,
  without waking the owner; anything to send, any action of the machine and any failure go
  back to the owner. Every read ends with `flush_burst`, a failed one too (media read before
  a failure is never held back). Players' greenlets only call `add_player`/`remove_player`,
  which tell the machine and wake the owner.
- The ingester is the source's publisher while it lives. It never dies silently: anything
  unexpected (a bug, a sink raising) puts the machine in its error state, the players are told,
  and the source is released, so new players start a fresh link.
- Log lines (one per event that matters): pulling X from O, pull from O failed: why, media from O
  gap Nms, no player for Ns stop pulling, not found, errors.
"""
import time

import gevent
from gevent.event import Event

from lib.cluster.actions import Close, Connect, NotFound, Resumed, Stop
from lib.cluster.origins import format_origin
from lib.cluster.pull import STREAMING, EdgePull
from lib.media import frame as media_frame
from lib.rtmp import session as rs
from lib.rtmp.message import MSG_AUDIO, MSG_VIDEO
from lib.rtmp.url import build_tc_url, stream_with_param
from lib.server.core.hooks import redact
from lib.server.edge import flv_upstream
from lib.server.edge.driver import LinkDriver
from lib.server.edge.upstream import LinkError, debug_upnode_args, open_stream

NOT_FOUND = ("NetStream.Play.StreamNotFound", "stream not found on any origin")
FAIL_CODES = ("NetStream.Play.StreamNotFound", "NetStream.Play.UnpublishNotify",
              "NetStream.Play.Stop", "NetStream.Play.Failed")


def upstream_names(req, vhost_conf, origin):
    """(tc_url, app, stream?param) the edge uses towards `origin` for a client request."""
    vhost = vhost_conf.cluster.vhost or req.vhost
    tc_url = build_tc_url("rtmp", origin[0], vhost, req.app, origin[1])
    return tc_url, req.app, stream_with_param(req.stream, req.param, vhost_to_strip=True)


def connect_args_for(vhost_conf, cid):
    if vhost_conf.cluster.debug_srs_upnode:
        return (debug_upnode_args(cid),)
    return ()


class EdgeIngester(LinkDriver):
    def __init__(self, server, source, req, vhost_conf, clock=time.monotonic, origins=None,
                 relay=False):
        self.server = server
        self.source = source
        self.req = req                      # the first player's request (carries ?param)
        self.vhost_conf = vhost_conf
        self.clock = clock
        # an origin pulling a stream that another origin of its cluster owns (docs/cluster.md):
        # a publish of the stream here takes over from it (Source.can_publish, hand_over)
        self.relay = relay
        cluster = vhost_conf.cluster
        self.machine = EdgePull(origins or cluster.origin, cluster.origin_data_timeout,
                                cluster.edge_idle_timeout, clock(),
                                wait_for=vhost_conf.play.publisher_wait)
        self.players = set()
        self.log = server.logger.context()
        self.wake = Event()
        self.link = None
        self.greenlet = None
        self._hub_crash = None              # an exception from _read_in_hub, raised by the owner
        self.started_at = time.time()

    # ------------------------------------------------------------ from other greenlets
    @property
    def done(self):
        return self.machine.done

    def add_player(self, conn):
        self.players.add(conn)
        lingering = self.machine.lingering
        self.machine.player_added(self.clock())
        if lingering:
            self.log.trace(f"edge {self.source.key}: player re-attached in the grace period")
        if self.greenlet is None:
            self.greenlet = gevent.spawn(self._run)
        self.wake.set()

    def remove_player(self, conn):
        if conn in self.players:
            self.players.discard(conn)
            self.machine.player_removed(self.clock())
            self.wake.set()

    def apply_config(self, vhost_conf):
        """Reload: new origins and timeouts; a vhost that is no longer an edge stops the link."""
        cluster = vhost_conf.cluster
        origins = cluster.origin if vhost_conf.is_edge else []
        if vhost_conf.is_edge and cluster.directory:
            origins = self.server.directory.origins_for(vhost_conf, self.source.key)
        elif self.relay and cluster.directory:
            origins = self.machine.picker.origins
        self.vhost_conf = vhost_conf
        self.machine.reconfigure(origins, cluster.origin_data_timeout, cluster.edge_idle_timeout,
                                 self.clock())
        self.wake.set()

    def hand_over(self, reason):
        """A publisher of this stream was accepted here (a relay only): stop pulling and give
        the source up now, so the publisher takes it; the players stay attached."""
        self.machine.shutdown(self.clock(), reason)
        self.wake.set()
        src = self.source
        if src.edge is self:
            src.edge = None
        if src.publisher is self:
            src.on_unpublish(self)

    def move_to(self, origins):
        """The directory says the stream lives elsewhere now: move the link (as on failover)."""
        cluster = self.vhost_conf.cluster
        self.machine.reconfigure(origins, cluster.origin_data_timeout, cluster.edge_idle_timeout,
                                 self.clock(), why="the stream moved")
        self.wake.set()

    def stop(self, reason="shutdown"):
        self.machine.shutdown(self.clock(), reason)
        self.wake.set()

    # ------------------------------------------------------------ the owner greenlet
    def _run(self):
        self.source.on_publish(self, burst_fed=True)     # _read ends with flush_burst
        try:
            self._loop()
        except gevent.GreenletExit:
            raise
        except Exception as e:  # noqa: BLE001 - a bug or a sink raising must not kill silently
            self.log.error(f"edge {self.source.key}: link crashed: {e!r}")
            self.machine.shutdown(self.clock(), f"link crashed: {e!r}")
            self._kick_players(f"edge: upstream link failed ({e!r})", NOT_FOUND)
            self._perform(self.machine.take_actions())
        finally:
            self._close_link()
            self._release_source()

    def _io(self, link):
        crash, self._hub_crash = self._hub_crash, None
        if crash is not None:
            raise crash
        if link.readable:
            self._read(link)
            return True
        return False

    def _arm(self, link):
        # once media flows, reads run in the hub (no wake-up of this greenlet per burst)
        link.arm(self.wake, self._read_in_hub if self.machine.state == STREAMING else None)

    def _read_in_hub(self):
        """The link's reader while streaming, in the event loop (must not block or write):
        True to go on; False hands over to this greenlet (something to send, a decision of
        the machine to perform, a read budget used up, a failure)."""
        link, machine = self.link, self.machine
        if link is None or link.closed or machine.state != STREAMING or machine.actions:
            return False
        try:
            self._read(link, in_hub=True)
        except Exception as e:  # noqa: BLE001 - raised in the owner, as if it had read
            self._hub_crash = e
            return False
        return not (link.readable or machine.actions or link.session.has_output()
                    or link is not self.link or machine.state != STREAMING)

    def _perform(self, actions):
        """Carry out the machine's actions in order; True when the link is over."""
        for action in actions:
            if isinstance(action, Connect):
                self._connect(action.origin)
            elif isinstance(action, Close):
                self._close_link()
            elif isinstance(action, Resumed):
                self._resumed(action)
            elif isinstance(action, NotFound):
                self.log.warn(f"edge {self.source.key}: {action.reason}; "
                              f"telling {len(self.players)} players")
                self._kick_players("edge: stream not found on any origin", NOT_FOUND)
            elif isinstance(action, Stop):
                if self.machine.error:
                    self.log.error(f"edge {self.source.key}: {self.machine.error}")
                    self._kick_players(f"edge: {self.machine.error}", NOT_FOUND)
                elif self.machine.players == 0 and not self.players:
                    self.log.trace(f"edge {self.source.key}: {action.reason}, stop pulling")
                return True
        return False

    def _open(self, origin):
        """(link, stream, url): an RTMP play, or an HTTP(S)-FLV GET (cluster.protocol flv|flvs,
        lib/server/edge/flv_upstream.py); either link feeds `_read` the same way."""
        scheme = flv_upstream.scheme_for(self.vhost_conf, self.relay)
        if scheme:
            link = flv_upstream.open_flv_stream(origin, scheme, self.req)
            return link, stream_with_param(self.req.stream, self.req.param, False), link.url
        tc_url, app, stream = upstream_names(self.req, self.vhost_conf, origin)
        link = open_stream(origin, tc_url, app, stream, "play",
                           connect_args=connect_args_for(self.vhost_conf, self.log.cid))
        return link, stream, tc_url

    def _connect(self, origin):
        try:
            link, stream, tc_url = self._open(origin)
        except LinkError as e:
            self.log.warn(f"edge {self.source.key}: pull from {format_origin(origin)} failed: {e}")
            if not self.machine.actions:      # nothing changed while we were connecting
                self.machine.link_failed(str(e), self.clock())
            return
        if self.machine.actions or self.machine.origin != origin:
            link.close()                      # a reload or stop came meanwhile: obey it instead
            return
        self.link = link
        self.log.trace(f"edge {self.source.key}: pulling {redact(stream)} from "
                       f"{format_origin(origin)} ({redact(tc_url)})")
        self.machine.link_up(self.clock())

    def _read(self, link, in_hub=False):
        """Feed what the origin sent: media to the source (as the machine says), statuses.
        In the hub (`_read_in_hub`) it neither performs the machine's actions nor writes:
        those are left to this greenlet."""
        src = self.source
        machine = self.machine
        passed = False                            # media passed on unchecked (passes_all_media)
        try:
            messages = link.read_available(raw=True)
            now = self.clock()
            session = link.session
            playing = session.state == "playing"
            for msg in messages:
                t = msg.type_id
                if playing and (t == MSG_VIDEO or t == MSG_AUDIO):    # plain media: no event
                    if machine.passes_all_media:                     # the usual case: no
                        src.on_media(t, msg.timestamp, msg.payload)  # facts needed here
                        passed = True
                    else:
                        self._deliver(t, msg.timestamp, msg.payload, now, in_hub)
                    continue
                for ev in session.handle((msg,)):
                    if type(ev) is rs.Media:
                        self._deliver(ev.type_id, ev.timestamp, ev.payload, now, in_hub)
                    elif isinstance(ev, rs.Status) and (ev.level == "error" or ev.code in FAIL_CODES):
                        raise LinkError(f"{format_origin(link.origin)}: {ev.code}")
                playing = session.state == "playing"
            if not in_hub:
                link.flush()                      # acks, ping replies
        except LinkError as e:
            failure = e
        else:
            failure = None
        if passed:                                # once per read, also before a failure
            machine.media_seen(now)
        # also on a failure: media delivered before it goes to the players now, not at the
        # next successful read (which may be seconds away, or never come)
        src.flush_burst()
        if failure is not None and self.link is link:
            self.log.warn(f"edge {src.key}: pull from {format_origin(link.origin)} failed: {failure}")
            self.machine.link_failed(str(failure), self.clock())

    def _deliver(self, t, timestamp, payload, now, in_hub):
        """One message to the source, if the machine says so (video resumes at a keyframe)."""
        machine = self.machine
        facts = media_frame.quick_facts(t, payload)       # the facts, read once here
        frame = None
        if facts is None:
            frame = media_frame.parse(t, payload)
            facts = ((frame.is_keyframe, frame.is_sequence_header)
                     if frame is not None else (False, False))    # data
        video = t == MSG_VIDEO
        if machine.media(now, video, video and facts[0], video and facts[1]):
            if machine.actions and not in_hub:   # Resumed: timeline first
                self._perform(machine.take_actions())
            self.source.on_media(t, timestamp, payload, frame, facts)

    def _resumed(self, action):
        self.source.on_upstream_switch()
        self.log.trace(f"edge {self.source.key}: media from {format_origin(action.origin)}, "
                       f"gap {action.gap * 1000:.0f}ms, failovers {self.machine.picker.failovers}")

    def _close_link(self):
        link, self.link = self.link, None
        if link is not None:
            link.close()

    def _kick_players(self, reason, status):
        players, self.players = list(self.players), set()
        for conn in players:
            conn.kick(reason, status)

    def _release_source(self):
        src = self.source
        if src.edge is self:
            src.edge = None
        if src.publisher is self:
            src.on_unpublish(self)
        else:
            self.server.sources.maybe_remove(src)

    # ------------------------------------------------------------ status (API)
    def describe(self):
        info = self.machine.describe()
        info["since"] = time.time() - (self.clock() - self.machine.since)
        return info
