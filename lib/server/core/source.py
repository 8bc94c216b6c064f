"""Live sources and their consumers: the fan-out hot path.

Rules:
- One Source per stream key (vhost/app/stream) in a SourceRegistry that the server passes in.
- A media message is encoded at most once per kind (RTMP chunks for the vhost's chunk size on
  stream 1, FLV tag), and only for the kinds some consumer reads, into bytes appended to the
  source's shared log; every consumer sends the same bytes.
  Per message there is no per-consumer work at all: a consumer is a cursor into the shared log.
- A single flusher greenlet per source wakes at most every `mw_latency` ms, and (as SRS's
  `mw_msgs`) once more than `mw_msgs` messages are new (or the first of them waited
  MW_MSGS_WAIT); for each consumer it slices the shared log from its cursor and sends it with
  one non-blocking `sendmsg`. mw_msgs is 8 by default, 0 with min_latency (each message at once). A consumer
  whose socket is full becomes `blocked`; its own writer greenlet finishes the backlog while the
  flusher skips it. A slow consumer never slows the others.
- The shared log keeps what the slowest consumer has not taken yet, at most about
  `queue_length` seconds (a consumer that keeps up is at the end after each flush, so a stream
  whose players keep up holds only what arrived since the last flush, plus the GOP cache). A
  slow consumer (its socket filled up) that falls further behind is moved to the newest keyframe and gets metadata and sequence headers
  again before it (shed, not buffered; counted, and logged once by its connection): memory is
  bounded whatever players do. A consumer that keeps up is never shed, whatever the media rate.
  A message that leaves the log drops its encoded bytes (`forget_bytes`), so the GOP cache
  holds each payload once, not twice; a player starting from the GOP gets them made again.
- Data messages (onMetaData, onCuePoint...) sit on the timeline at the newest media time; only
  onMetaData replaces the cached metadata.
- New consumers start from metadata, sequence headers, then the GOP cache.
- Timestamps are corrected once at the source (time_jitter) so they stay monotonic across
  publishers and upstream switches. Each player sees them minus its own base (the GOP it
  started at; 0 with time_jitter off). The shared RTMP bytes do not depend on the base: audio
  and video are fmt 1 deltas on their chunk stream's chain (lib/rtmp/timebase.py), so a player
  in step sends the log slice itself; only its first message per chunk stream (attach, shed,
  resume, private bytes) and the rare fmt 0 messages (data, a step back) are built for it
  (`bytes_from`, `in_step`). FLV tags carry absolute timestamps: per distinct base per flush.
- The per-message media path (`on_media` for audio and video once media flows: jitter, the
  SharedMessage, the chunk stream chain, the GOP cache, the shared log) runs in C when
  lib/server/core/_sourcec.c is built and SRSEDGE_PURE_PYTHON is unset (`IMPLEMENTATION`):
  `Source` then has the C `SourceCore` as a base and uses its Jitter, GopCache and
  SharedMessage. `PySource` and the Py* classes are the reference; tests/test_source_accel.py
  holds the C path to them message by message.
"""
import os
import time
from contextlib import contextmanager

import gevent
from gevent.event import Event

from lib.media import flv
from lib.media import frame as media_frame
from lib.media.frame import quick_facts
from lib.media.gop import GopCache as PyGopCache
from lib.media.jitter import Jitter as PyJitter
from lib.rtmp.chunk import encode_delta_message, encode_message
from lib.rtmp.message import CSID_AUDIO, CSID_DATA, CSID_VIDEO, MSG_AMF0_DATA, MSG_AUDIO, MSG_VIDEO
from lib.rtmp.session import ON_METADATA, STREAM_ID
from lib.names import new_id
from lib.rtmp.timebase import IN_STEP, PlayerTimebase, rebase_all, rtmp_for_player
from lib.server.core.consumer import IOV_MAX, MEDIA_CSIDS, advance

_UNPARSED = object()       # SharedMessage._frame before anyone asked for the full facts
_CSID = {MSG_AUDIO: CSID_AUDIO, MSG_VIDEO: CSID_VIDEO, MSG_AMF0_DATA: CSID_DATA}
TRIM_SLACK_MS = 1000       # trim the shared log once it holds this much more than queue_length
MAX_LOG = 50000            # and never more messages than this
MIN_BURST_INTERVAL = 0.03  # an edge forwards upstream bursts at once, at most this often
MW_MSGS_WAIT = 0.35        # fewer than mw_msgs new messages are held at most this long


class PySharedMessage:
    """One media message, encoded at most once per kind for every consumer.

    `timestamp` is the message's place on the source's timeline (what shedding and trimming
    compare); the bytes carry `wire_ts` (the same, except onMetaData, sent at 0). The RTMP
    chunks and the FLV tag are made on first use (`rtmp`, `flv`), once: a stream nobody plays
    over RTMP never encodes chunks, one without HTTP-FLV players never builds tags. The media
    facts too: keyframe and sequence header are known at once, the full `frame`
    (lib/media/frame.py) is parsed when a sink first reads it (HLS, DVR), or given by the caller."""
    __slots__ = ("type_id", "timestamp", "payload", "is_keyframe", "is_sequence_header",
                 "wire_ts", "chunk_size", "csid", "chain", "delta", "_frame", "_rtmp", "_flv")

    def __init__(self, type_id, timestamp, payload, chunk_size, wire_ts=None, frame=None,
                 facts=None):
        self.type_id = type_id
        self.csid = _CSID.get(type_id, CSID_DATA)
        self.chain = -1                # place on its chunk stream's chain (Source.on_media)
        self.delta = -1                # >= 0: the RTMP bytes start with fmt 1 and this delta
        self.timestamp = timestamp
        self.payload = payload
        self.wire_ts = timestamp if wire_ts is None else wire_ts
        self.chunk_size = chunk_size
        self._rtmp = self._flv = None
        if frame is None:
            if facts is None:
                facts = quick_facts(type_id, payload)
            if facts is not None:
                self.is_keyframe, self.is_sequence_header = facts
                self._frame = _UNPARSED
                return
            frame = media_frame.parse(type_id, payload)    # media facts, once (None: data)
        self._frame = frame
        self.is_keyframe = type_id == MSG_VIDEO and frame.is_keyframe
        self.is_sequence_header = frame is not None and frame.is_sequence_header

    @property
    def frame(self):
        frame = self._frame
        if frame is _UNPARSED:
            frame = self._frame = media_frame.parse(self.type_id, self.payload)
        return frame

    @property
    def rtmp(self):
        data = self._rtmp
        if data is None:
            if self.delta >= 0:
                data = self._rtmp = encode_delta_message(self.csid, self.type_id, self.delta,
                                                         self.payload, self.chunk_size)
            else:
                data = self._rtmp = encode_message(self.csid, self.type_id, STREAM_ID,
                                                   self.wire_ts, self.payload, self.chunk_size)
        return data

    @property
    def flv(self):
        data = self._flv
        if data is None:
            data = self._flv = flv.tag(self.type_id, self.wire_ts, self.payload)
        return data

    def bytes_for(self, kind):
        return self.rtmp if kind == "rtmp" else self.flv

    def forget_bytes(self):
        """Drop the encoded bytes (the source does once the message left the shared log: a
        GOP cache then holds each payload once, not twice); made again if asked."""
        self._rtmp = self._flv = None


def py_forget_bytes(msgs, stop):
    """msgs[:stop]: forget their encoded bytes (`SharedMessage.forget_bytes`)."""
    for m in msgs[:stop]:
        m.forget_bytes()


class _SourceBody:
    """Everything of a Source but the class it is built on (see `Source` and `PySource`)."""
    SharedMessage = Jitter = GopCache = None     # the message, jitter and GOP classes it uses
    forget_bytes = None                          # ... and (msgs, stop) -> None for the log's

    def __init__(self, registry, key, vhost, app, stream, vhost_conf):
        self.registry = registry
        self.key = key
        self.vhost, self.app, self.stream = vhost, app, stream
        play = vhost_conf.play
        self.chunk_size = vhost_conf.chunk_size
        self.queue_ms = max(1000, int(play.queue_length * 1000))
        self.mw_latency = max(0, play.mw_latency) / 1000.0
        self.mw_msgs = getattr(play, "mw_msgs", 0)
        self.jitter = self.Jitter(play.time_jitter)
        self.gop = self.GopCache(play.gop_cache, play.gop_cache_max_frames)
        self.metadata = None
        self.video_sh = None
        self.audio_sh = None
        self.publisher = None          # the object publishing (connection or ingester)
        self.consumers = []
        self.msgs = []                 # shared log of SharedMessage
        self.logs = {"rtmp": [], "flv": []}   # parallel encoded bytes for slicing, kept only
        self.kinds = {}                # for the kinds some consumer reads: kind -> consumers
        self.totals = {"rtmp": [], "flv": []}   # running byte count after each log entry
        self.total_base = {"rtmp": 0, "flv": 0}  # running byte count before msgs[0]
        self.base = 0                  # absolute sequence number of msgs[0]
        self.last_key_seq = -1
        self.chain_last = dict.fromkeys(MEDIA_CSIDS, -1)   # csid -> chain number of its newest
        self._chain_ts = dict.fromkeys(MEDIA_CSIDS)         # message, and that one's timestamp
        self.last_seq = dict.fromkeys(MEDIA_CSIDS, -1)      # csid -> seq of its newest log entry
        self.last_abs_seq = -1         # seq of the newest log entry whose RTMP bytes are fmt 0
        self.created = time.time()
        self.publish_count = 0
        self.bytes_in = 0
        self.dropped = 0               # messages skipped for slow consumers
        self._header_cache = None
        self._last_flush = 0.0
        self._flushed_end = 0          # `end` at the last flush_all
        self._burst = False
        self.burst_fed = False         # the publisher calls flush_burst after every read (an
        # edge ingester): media then never wakes the flusher (it would find the burst sent)
        self._wake = Event()
        self.media_ready = Event()     # set by the first media: HTTP-FLV players wait on it
        self.has_media = False         # ... and the same as a plain flag (the hot path reads it)
        self._flusher = None
        self.edge = None               # set by the edge layer for remote vhosts
        self.pins = 0                  # clients being set up on this source (registry.pinned)
        self.api_id = new_id()         # the API's stream id, given here so hooks and API agree
        self.video_frames = 0          # video messages received: the API's `frames`, as SRS
        self.sinks = []                # per-source consumers of every message (HLS, forward):
        # objects with on_publish(source), on_message(SharedMessage), on_unpublish(source).
        # on_message is called inline on the hot path: it must only queue, never block.

    def apply_config(self, vhost_conf):
        """Reload: play settings take effect for this live source (chunk size does not:
        already-encoded bytes are shared)."""
        play = vhost_conf.play
        self.queue_ms = max(1000, int(play.queue_length * 1000))
        self.mw_latency = max(0, play.mw_latency) / 1000.0
        self.mw_msgs = getattr(play, "mw_msgs", 0)
        self.jitter.mode = play.time_jitter
        self.gop.enabled = play.gop_cache
        self.gop.max_frames = play.gop_cache_max_frames
        if not play.gop_cache:
            self.gop.clear()

    # ------------------------------------------------------------ publishing side
    @property
    def end(self):
        return self.base + len(self.msgs)

    def can_publish(self):
        """Free, or pulled by an origin relay that yields to a local publish (docs/cluster.md)."""
        return self.publisher is None or getattr(self.publisher, "relay", False)

    def on_publish(self, publisher, burst_fed=False):
        """`burst_fed`: the publisher calls flush_burst after each read (an edge ingester)."""
        self.publisher = publisher
        self.burst_fed = bool(burst_fed)
        self.publish_count += 1
        self.jitter.restart()
        for sink in self.sinks:
            sink.on_publish(self)

    def on_upstream_switch(self):
        """The edge moved to another origin: its media continues this source's timeline."""
        self.jitter.restart()
        self.gop.clear()

    def on_unpublish(self, publisher):
        if self.publisher is not publisher:
            return
        self.publisher = None
        self.burst_fed = False
        self.gop.clear()
        self.metadata = self.video_sh = self.audio_sh = None
        self.media_ready.clear()
        self.has_media = False
        for sink in self.sinks:
            sink.on_unpublish(self)
        self.registry.maybe_remove(self)

    def _on_media_py(self, type_id, timestamp, payload, frame=None, facts=None):
        """A message from the publisher (or the edge ingester, which passes the media facts it
        already read: a parsed `frame`, or `facts` from lib.media.frame.quick_facts). This is
        `on_media` in Python; the C one (SourceCore.on_media) calls it for what it leaves."""
        if not self.has_media:
            self.has_media = True
            self.media_ready.set()
        self.bytes_in += len(payload)
        if type_id == MSG_AMF0_DATA:
            # Data sits on the timeline at the newest media time, so it never makes a caught-up
            # player look late. onMetaData goes out at timestamp 0 (ffmpeg's FLV reader takes
            # one with any other timestamp for a subtitle stream) and is the only data that
            # replaces the cached metadata; cue points and text go to players in order.
            ts = self.jitter.max_out
            is_metadata = payload.startswith(ON_METADATA)
            msg = self.SharedMessage(type_id, ts, payload, self.chunk_size,
                                     0 if is_metadata else ts)
            if is_metadata:
                self.metadata = msg
        else:
            msg = self.SharedMessage(type_id, self.jitter.correct(timestamp), payload,
                                     self.chunk_size, None, frame, facts)
            cs = msg.csid              # its chunk stream's chain: fmt 1 with the delta from
            msg.chain = n = self.chain_last[cs] + 1    # the previous message when it fits
            self.chain_last[cs] = n
            prev = self._chain_ts[cs]
            self._chain_ts[cs] = ts = msg.timestamp
            if prev is not None and 0 <= ts - prev < 0xFFFFFF:
                msg.delta = ts - prev
        if type_id == MSG_VIDEO:
            self.video_frames += 1
            if msg.is_sequence_header:
                self.video_sh = msg
            else:
                if msg.is_keyframe:
                    self.last_key_seq = self.base + len(self.msgs)
                self.gop.add(msg, True, msg.is_keyframe)
        elif type_id == MSG_AUDIO:
            if msg.is_sequence_header:
                self.audio_sh = msg
            else:
                self.gop.add(msg, False, False)
        for sink in self.sinks:
            sink.on_message(msg)
        if not self.consumers:
            if self.msgs:
                self._clear_log()
            self.base += 1             # nobody reads the log: new consumers start at the end
            return
        msgs = self.msgs
        seq = self.base + len(msgs)
        if msg.delta < 0:
            self.last_abs_seq = seq
        if msg.chain >= 0:
            self.last_seq[msg.csid] = seq
        msgs.append(msg)
        for kind in self.kinds:
            data = msg.bytes_for(kind)
            self.logs[kind].append(data)
            tot = self.totals[kind]
            tot.append((tot[-1] if tot else self.total_base[kind]) + len(data))
        if not self.burst_fed and not self._wake.is_set():
            new = self.base + len(msgs) - self._flushed_end
            if new == 1 or new > self.mw_msgs:
                self._wake.set()

    def headers(self, ts):
        """Metadata and sequence headers a (re)starting consumer needs first, stamped `ts` (the
        position it starts at) so its timestamps never step back. Shared per position."""
        cached = self._header_cache
        if cached is None or cached[0] != ts or cached[1] != self._header_ids():
            msgs = [m if m.timestamp == ts or m is self.metadata
                    else self.SharedMessage(m.type_id, ts, m.payload, self.chunk_size)
                    for m in (self.metadata, self.video_sh, self.audio_sh) if m is not None]
            cached = self._header_cache = (ts, self._header_ids(), msgs)
        return list(cached[2])

    def _header_ids(self):
        return (id(self.metadata), id(self.video_sh), id(self.audio_sh))

    def start_position(self):
        """The timestamp a (re)starting consumer begins at: the GOP cache's start."""
        items = self.gop.items
        return items[0].timestamp if items else self.jitter.last_out

    def start_messages(self):
        out = self.headers(self.start_position())
        out.extend(self.gop.items)
        return out

    def start_bytes_for(self, consumer):
        """What a consumer (re)starting at `end` (attach, resume after a pause) is sent first, in
        its own timestamps: metadata, sequence headers, the GOP cache. Its chunk streams start
        afresh (its own fmt 0 header first on each)."""
        consumer.reset_sync()
        out = self.player_bytes(consumer, self.start_messages())
        self._settle(consumer)
        return out

    def player_bytes(self, consumer, msgs):
        """`msgs` (SharedMessages in order) as `consumer` receives them: its timestamps are the
        source's minus its `timebase.base` (lib/rtmp/timebase.py). RTMP: the shared bytes
        wherever its chunk streams are in step, its own fmt 0 header where not (updates its
        sync). FLV: the shared tags when base is 0, else [its own 8 bytes, the shared rest]."""
        if consumer.kind == "rtmp":
            return rtmp_for_player(msgs, consumer.timebase, consumer.sync, self.chunk_size,
                                   self.jitter.max_out, STREAM_ID)
        bufs = [m.flv for m in msgs]
        if not consumer.timebase.base:
            return bufs
        return rebase_all(bufs, "flv", consumer.timebase, self.chunk_size, self.jitter.max_out)

    def bytes_from(self, consumer, cursor):
        """The log from `cursor` to `end` for `consumer`, which is then at `end`: the shared
        slice when it fits the consumer as it is (`in_step`), else built for it."""
        i = cursor - self.base
        if consumer.kind == "rtmp" and self.in_step(consumer, cursor):
            return self.logs["rtmp"][i:]
        out = self.player_bytes(consumer, self.msgs[i:])
        self._settle(consumer)
        return out

    def in_step(self, consumer, cursor):
        """True when the shared RTMP bytes from `cursor` on are exactly what `consumer` must
        receive: no fmt 0 message among them (unless its base is 0) and no message on a chunk
        stream it is not in step on."""
        if consumer.timebase.base and cursor <= self.last_abs_seq:
            return False
        last_seq = self.last_seq
        for cs in consumer.unsynced:
            if last_seq[cs] >= cursor:
                return False
        return True

    def _settle(self, consumer):
        """After building a consumer's bytes up to `end`: the chunk streams whose newest
        message it did not receive in step (their next message needs its own fmt 0 header)."""
        sync = consumer.sync
        unsynced = []
        for cs, n in self.chain_last.items():
            s = sync.get(cs)
            if s == n or s == IN_STEP:
                sync[cs] = IN_STEP
            elif n >= 0:
                unsynced.append(cs)
        consumer.unsynced = tuple(unsynced)

    # ------------------------------------------------------------ consumers
    def attach(self, consumer):
        """As SRS's time_jitter full/zero: every player starts near timestamp 0 (its timebase's
        base is where it starts), off: the source's timestamps. One encoding per message stays
        shared: a player with a base sends [its own small header prefix, the shared rest]."""
        self._count_kind(consumer.kind, 1)
        if not self.consumers:
            self._flushed_end = self.end   # nothing before this is anyone's to send
        consumer.cursor = self.end
        consumer.timebase = PlayerTimebase(self.jitter.mode, self.start_position())
        consumer.pending.extend(self.start_bytes_for(consumer))
        self.consumers.append(consumer)
        if self._flusher is None:
            self._flusher = gevent.spawn(self._flush_loop)
        consumer.flush(self)           # first frame now, not after a tick

    def detach(self, consumer):
        try:
            self.consumers.remove(consumer)
        except ValueError:
            return
        self._count_kind(consumer.kind, -1)
        self.registry.maybe_remove(self)

    def _count_kind(self, kind, step):
        """Keep the encoded log of `kind` only while some consumer reads it; a kind that comes
        into use gets the log's messages encoded (once each) so cursors line up."""
        count = self.kinds.get(kind, 0) + step
        if count > 0:
            if kind not in self.kinds:
                log, tot = self.logs[kind], self.totals[kind]
                log[:] = [m.bytes_for(kind) for m in self.msgs]
                total = 0
                tot.clear()
                for data in log:
                    total += len(data)
                    tot.append(total)
                self.total_base[kind] = 0
            self.kinds[kind] = count
        else:
            self.kinds.pop(kind, None)
            self.logs[kind].clear()
            self.totals[kind].clear()

    def stop(self):
        if self._flusher is not None:
            self._flusher.kill(block=False)
            self._flusher = None

    def _flush_loop(self):
        while True:
            self._wake.wait()
            self._wake.clear()
            if self.end == self._flushed_end and not self._burst:
                continue               # flush_burst sent it already (an edge's upstream read)
            interval = MIN_BURST_INTERVAL if self._burst else self.mw_latency
            wait = self._last_flush + interval - time.monotonic()
            if wait > 0:
                gevent.sleep(wait)
            if not self._burst and 0 < self.end - self._flushed_end <= self.mw_msgs:
                self._wake.wait(MW_MSGS_WAIT)      # until more than mw_msgs are new
                self._wake.clear()
            self._burst = False
            self._last_flush = time.monotonic()
            self.flush_all()

    def flush_burst(self):
        """An edge ingester got a burst from its origin (already merged there): send it on now
        instead of waiting for our own mw_latency timer (at most every MIN_BURST_INTERVAL).
        This keeps the latency an edge hop adds small without more writes per player."""
        if not self.consumers:
            return
        if time.monotonic() - self._last_flush >= MIN_BURST_INTERVAL:
            self._burst = False
            self._wake.clear()
            self._last_flush = time.monotonic()
            self.flush_all()
        else:
            self._burst = True
            self._wake.set()

    def flush_all(self):
        """The hot loop: per consumer one list slice and one sendmsg. Anything unusual (private
        bytes, pause, shedding, a huge batch) takes the consumer's slower general path."""
        msgs = self.msgs
        base = self.base
        end = base + len(msgs)
        oldest_ok = msgs[-1].timestamp - self.queue_ms if msgs else 0
        logs = self.logs
        totals = self.totals
        rebased = None                 # (player base, index) -> (iovecs, bytes): FLV, shared
        low = end                      # the oldest entry a consumer may still need
        last_abs = self.last_abs_seq
        self._flushed_end = end
        for c in self.consumers:
            if c.blocked or c.closed:
                if c.blocked and c.cursor < low:
                    low = c.cursor
                continue
            if c.paused and c.cursor < low:
                low = c.cursor
            cursor = c.cursor
            if cursor == end and not c.pending:
                continue
            i = cursor - base
            player_base = c.timebase.base
            kind = c.kind
            if (c.pending or c.paused or i < 0 or cursor > end
                    or end - cursor > (IOV_MAX // 2 if player_base and kind != "rtmp" else IOV_MAX)
                    or (c.lagging and msgs[i].timestamp < oldest_ok)):
                c.flush(self)
                continue
            if kind == "rtmp":
                # the shared bytes, unless this player is not in step with them (in_step)
                if (player_base and cursor <= last_abs) or (c.unsynced
                                                            and not self.in_step(c, cursor)):
                    c.flush(self)
                    continue
            elif player_base:
                # FLV tags carry absolute timestamps: players that started at the same place
                # share their rebased iovecs
                if rebased is None:
                    rebased = {}
                key = (player_base, i)
                got = rebased.get(key)
                if got is None:
                    bufs = rebase_all(logs[kind][i:], kind, c.timebase, self.chunk_size,
                                      self.jitter.max_out)
                    got = rebased[key] = (bufs, sum(map(len, bufs)))
                bufs, size = got
            if kind == "rtmp" or not player_base:
                bufs = logs[kind][i:]
                tot = totals[kind]
                size = tot[-1] - (tot[i - 1] if i else self.total_base[kind])
            c.cursor = end
            sent = c._try_send(bufs)
            if sent is not None and sent != size:
                c._block(advance(bufs, sent))
            elif c.lagging:
                c.lagging = False
        self._trim(low)

    def catch_up(self, consumer):
        """Where a consumer should continue from. Only a slow consumer is shed: one whose socket
        filled up (`lagging`) and that is now more than queue_length behind, or whose place was
        trimmed from the log. A consumer that takes all it is given is never shed, however much
        media arrived between two flushes (a republish storm, an origin's burst)."""
        cursor = consumer.cursor
        if cursor >= self.base and cursor < self.end:
            if not consumer.lagging:
                return cursor
            behind = self.msgs[-1].timestamp - self.msgs[cursor - self.base].timestamp
            if behind <= self.queue_ms:
                return cursor
        elif cursor >= self.end:
            return cursor
        # too far behind (or trimmed away): jump to the newest keyframe with fresh headers
        target = self.last_key_seq if self.last_key_seq >= self.base else self.end
        if target < cursor:
            target = self.end
        self.dropped += target - cursor
        consumer.shed(target - cursor)
        ts = self.msgs[target - self.base].timestamp if target < self.end else self.jitter.last_out
        consumer.reset_sync()          # its chunk streams start afresh at the keyframe
        consumer.pending.extend(self.player_bytes(consumer, self.headers(ts)))
        return target

    def _clear_log(self):
        self.base += len(self.msgs)
        self.forget_bytes(self.msgs, len(self.msgs))
        self.msgs.clear()
        for kind in self.kinds:
            self.logs[kind].clear()
            tot = self.totals[kind]
            if tot:
                self.total_base[kind] = tot[-1]
                tot.clear()

    def _trim(self, low):
        """Drop what no consumer needs: entries before the lowest cursor `low` (a consumer
        that keeps up is at the end after each flush, so memory follows what players actually
        lag, not queue_length of every stream), and anything beyond about queue_length (a
        consumer further behind is shed in catch_up). New players start from the GOP cache."""
        msgs = self.msgs
        if not msgs:
            return
        i = low - self.base
        newest = msgs[-1].timestamp
        if newest - msgs[0].timestamp > self.queue_ms + TRIM_SLACK_MS or len(msgs) >= MAX_LOG:
            last = len(msgs) - 1
            k = 0
            while k < last and (newest - msgs[k].timestamp > self.queue_ms or last - k >= MAX_LOG):
                k += 1
            if k > i:
                i = k
        if i <= 0:
            return
        if i >= len(msgs):
            self._clear_log()
            return
        self.forget_bytes(msgs, i)
        del msgs[:i]
        for kind in self.kinds:
            del self.logs[kind][:i]
            self.total_base[kind] = self.totals[kind][i - 1]
            del self.totals[kind][:i]
        self.base += i


class PySource(_SourceBody):
    """A Source in Python only: the reference of the C path."""
    SharedMessage, Jitter, GopCache = PySharedMessage, PyJitter, PyGopCache
    forget_bytes = staticmethod(py_forget_bytes)
    on_media = _SourceBody._on_media_py


def _accelerator():
    """lib/server/core/_sourcec when built and not SRSEDGE_PURE_PYTHON, else None."""
    if os.environ.get("SRSEDGE_PURE_PYTHON"):
        return None
    try:
        from lib.server.core import _sourcec
    except ImportError:
        return None
    _sourcec.set_references(encode_message, media_frame.parse, STREAM_ID)
    return _sourcec


_C = _accelerator()
if _C is not None:
    class Source(_SourceBody, _C.SourceCore):
        """A live source whose media path (`on_media`) and its fields are C (_sourcec.c)."""
        SharedMessage, Jitter, GopCache = _C.SharedMessage, _C.Jitter, _C.GopCache
        forget_bytes = staticmethod(_C.forget_bytes)

    SharedMessage, IMPLEMENTATION = _C.SharedMessage, "c"
else:
    Source, SharedMessage, IMPLEMENTATION = PySource, PySharedMessage, "python"


class SourceRegistry:
    """All live sources of a server, by stream key. Passed in; never a module global."""

    def __init__(self, on_create=None, source_class=None):
        self.sources = {}
        self.on_create = on_create     # callback(source) when a source is made (attach sinks)
        self.source_class = source_class or Source    # PySource: the reference (tests)

    def get(self, key):
        return self.sources.get(key)

    @contextmanager
    def pinned(self, key, vhost, app, stream, vhost_conf):
        """The source for `key`, kept registered while the block runs (a publisher in its hooks
        or waiting for an origin, a player being set up): it is not removed meanwhile even if
        nobody else uses it, so nothing can publish into or play from an orphan."""
        src = self.fetch_or_create(key, vhost, app, stream, vhost_conf)
        src.pins += 1
        try:
            yield src
        finally:
            src.pins -= 1
            self.maybe_remove(src)

    def fetch_or_create(self, key, vhost, app, stream, vhost_conf):
        src = self.sources.get(key)
        if src is None:
            src = self.source_class(self, key, vhost, app, stream, vhost_conf)
            self.sources[key] = src
            if self.on_create is not None:
                self.on_create(src)
        return src

    def maybe_remove(self, src):
        if src.publisher is None and not src.consumers and src.edge is None and not src.pins:
            if self.sources.get(src.key) is src:
                del self.sources[src.key]
            src.stop()
            for sink in src.sinks:
                close = getattr(sink, "on_source_removed", None)
                if close is not None:
                    close(src)


__all__ = ["Source", "SourceRegistry", "SharedMessage", "PySource", "PySharedMessage",
           "IMPLEMENTATION"]
