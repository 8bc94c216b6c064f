"""What happens once an RTMP client's play/publish stream is known, before it is served
(SRS 7's SrsRtmpConn::stream_service_cycle, check_vhost, playing/publishing), and its play limit.

Rules (this module owns them):
- Order: refer `all` (pageUrl), then on_connect ONCE per connection with the stream and its query
  merged into `param` (SRS 7 calls on_connect here, not at connect: so a token in the stream
  query, as every edge sends it, reaches on_connect), then (in the connection) security, the
  source, refer `play`/`publish`, on_play/on_publish.
- A refused refer or on_connect answers the pending play/publish with an error onStatus and
  closes only this connection (one log line, via Reject).
- Trusted links (another worker of this server) skip refer and hooks.
- Play duration (`play` command's 3rd argument, in ms as SRS reads it; <= 0: unlimited): SRS
  sums the timestamp increases of the messages it sends the player, starting from the first one
  (GOP cache included), and ends the play once the sum reaches the duration. PlayLimit does
  the same from the source's messages; the connection is then closed (as SRS).
"""
import gevent

from lib.rtmp.message import MSG_AUDIO, MSG_VIDEO
from lib.server.core import refer
from lib.server.core.errors import Reject

_REJECT_CODES = {"play": "NetStream.Play.StreamNotFound", "publish": "NetStream.Publish.BadName"}


def _refuse(conn, action, reason, source=None):
    conn.session.reject(_REJECT_CODES[action], reason)
    conn._flush_session()
    if source is not None:
        conn.server.sources.maybe_remove(source)
    raise Reject(reason)


def on_stream_known(conn, action):
    """refer `all` then on_connect, for a client about to `action` ("play"/"publish")."""
    if conn.trusted:
        return
    ok, reason = refer.check(conn.vhost_conf.refer, "all", conn.page_url)
    if not ok:
        _refuse(conn, action, reason)
    if conn.on_connect_done:
        return
    conn.on_connect_done = True
    ok, reason = conn.call_hook("on_connect")     # an accepted one owes on_close
    if not ok:
        _refuse(conn, action, f"on_connect rejected: {reason}")


def check_refer(conn, action, source):
    """refer `play` / `publish` (after the source is known, as SRS's playing()/publishing())."""
    if conn.trusted:
        return
    ok, reason = refer.check(conn.vhost_conf.refer, action, conn.page_url)
    if not ok:
        _refuse(conn, action, reason, source)


class PlayLimit:
    """Ends a play after `duration_ms` of media (a per-source sink; see the header)."""

    def __init__(self, conn, source, duration_ms):
        self.conn, self.source, self.limit = conn, source, duration_ms
        self.last = None
        self.total = 0
        self.done = False
        self._timer = None
        for msg in source.gop.items:          # what the player gets first counts too
            self._count(msg.timestamp)
        source.sinks.append(self)
        self._check()

    def _count(self, ts):
        if self.last is None or self.last > ts:
            self.last = ts
        self.total += ts - self.last
        self.last = ts

    def _check(self):
        if not self.done and self.total >= self.limit:
            self.done = True
            # let the source's flusher send what was counted, then end as SRS does
            delay = self.source.mw_latency + 0.05
            self._timer = gevent.spawn_later(delay, self.conn.kick,
                                             f"play duration {self.limit:g}ms reached")

    # sink interface (lib/server/core/source.py)
    def on_publish(self, source):
        pass

    def on_message(self, msg):
        if msg.type_id in (MSG_AUDIO, MSG_VIDEO):
            self._count(msg.timestamp)
            self._check()

    def on_unpublish(self, source):
        pass

    def stop(self):
        if self._timer is not None:
            self._timer.kill(block=False)
        try:
            self.source.sinks.remove(self)
        except ValueError:
            pass


def start_play_limit(conn, source, duration):
    """A PlayLimit when the play command asked for a duration (> 0 ms), else None."""
    if duration is None or duration <= 0:
        return None
    return PlayLimit(conn, source, duration)
