"""HLS at the origin: a Source sink feeding lib.media.hls.Segmenter, files written off the hot path.

Rules:
- HlsPlugin(server).on_source_created attaches the stream's HlsSink to sources of vhosts with
  hls.enabled that are not edges. A sink (with its segmenter: window, sequence numbers) lives
  in the plugin by stream key and outlives its Source, so a republish continues the playlist
  with a discontinuity.
- Memory is bounded whatever names clients publish (publishing is open by default): a sink
  that is idle (no source, not publishing, its queue written, no dispose pending) is parked;
  at most MAX_IDLE_SINKS are parked, the oldest parked one is forgotten first. A disposed idle
  sink is forgotten at once. A forgotten stream's next sequence number is remembered in an LRU
  of MAX_REMEMBERED names; a name pushed out of it raises `seq_floor` to its number, and a
  stream with no remembered number starts at `seq_floor`. So a segment name is never reused
  for a stream while the process lives (the nginx tier caches .ts for a year), with no
  assumption on clocks or files: a stream starts at 0, as in SRS, until > MAX_REMEMBERED names
  were forgotten. (Reading numbers back from the files on disk would not do: hls_dispose
  deletes them while caches still hold them.)
- on_publish / on_message / on_unpublish only append to a queue (on_message is the fan-out hot
  path). ONE ticker greenlet in the plugin drains the queues of all active sinks (publishing,
  or with queued items) every WORKER_TICK (at once for publish/unpublish/dispose/drop markers)
  and feeds their segmenters inline: no greenlet, timer or switch per stream per tick. A list of
  actions with IO is handed to that sink's own worker greenlet (`_worker`), spawned for it, which
  runs the actions in the IO thread (below) and then goes on with the rest of the batch itself;
  the ticker skips a sink while its worker lives, so its messages are handled in order. The IO
  of all sinks runs in ONE thread of the plugin's own pool (as SRS writes from its one thread):
  the streams of an origin cut their segments at the same moments (one encoder, or keyframes
  aligned), and ten threads creating and renaming files in one directory at once cost 20% more
  CPU (ext4's directory lock and inode allocator) than the same work in a row. So a stuck disk
  delays the HLS of every stream (each sink's queue then drops, below), never the fan-out. Writes are atomic (lib/server/core/files.py:
  temp file in the same directory, then os.replace; a failed write removes its temp file),
  deletes ignore missing files.
- A failed write (a full disk) stops that list of actions; the segmenter is told
  (`Segmenter.write_failed`) and keeps the playlist valid: the old segments stay listed until
  new ones land, the next segment that lands follows a discontinuity. Failures are logged as
  lib/media/write_failures.py says (one line a minute per stream, with the free space; one
  line when writes work again) and counted for the API (`describe()`, the stream's `hls`).
  Nothing is retried: each cut writes afresh, so HLS recovers by itself when space returns.
- The queue is bounded (MAX_QUEUE_BYTES of payload). Past it the queued media is dropped
  (markers and sequence headers are kept), one line is logged, and the segmenter closes its
  segment and restarts at the next keyframe with a discontinuity: a slow disk never stalls the
  RTMP fan-out nor grows memory without bound.
- hls_dispose seconds after an unpublish (0 = never, as SRS) the window's segments and the
  playlist are deleted, unless the stream was published again meanwhile.
- The vhost's hls section is read at each publish (reload applies to the next publish).
- Warnings and failed deletes are logged once per distinct text per publish; HLS goes on
  (hls_on_error continue).
"""
import os
import time
from collections import OrderedDict

import gevent
from gevent.event import Event
from gevent.threadpool import ThreadPool

from lib.media.hls import Segmenter
from lib.media.write_failures import WriteFailures
from lib.rtmp.errors import ProtocolError
from lib.server.core.files import free_bytes, remove_quietly, write_atomically

WORKER_TICK = 0.1           # seconds between queue drains while publishing
MAX_QUEUE_BYTES = 32 << 20  # media payload bytes queued before dropping
YIELD_EVERY = 200           # messages processed between cooperative yields
MAX_IDLE_SINKS = 64         # idle sinks kept for a republish that continues the playlist
MAX_REMEMBERED = 4096       # forgotten streams whose next segment number is remembered


class _Marker:
    __slots__ = ("kind", "gen", "count", "size")

    def __init__(self, kind, gen=0, count=0, size=0):
        self.kind, self.gen, self.count, self.size = kind, gen, count, size


def apply_actions(root, actions):
    """Run segmenter IO actions under `root` (in a worker thread), in order, up to the first
    write that fails. Returns (failure, notes): failure is None or (the action's path, error
    text, free bytes); notes are the texts of deletes that failed."""
    notes = []
    for action in actions:
        path = os.path.join(root, action[1])
        if action[0] == "write":
            try:
                write_atomically(path, action[2])
            except OSError as e:
                return (action[1], f"write {path}: {e.strerror or e}", free_bytes(path)), notes
        elif action[0] == "delete":
            note = remove_quietly(path)
            if note is not None:
                notes.append(f"hls: {note}")
    return None, notes


def _keep_on_drop(item):
    if isinstance(item, _Marker):
        return True
    return item.is_sequence_header


class HlsSink:
    max_queue_bytes = MAX_QUEUE_BYTES

    def __init__(self, plugin, key, vhost, app, stream):
        self.plugin = plugin
        self.server = plugin.server
        self.key = key
        self.vhost, self.app, self.stream = vhost, app, stream
        self.log = self.server.logger.context()
        self.sources = set()        # the sources this sink is attached to
        self.publishing = False
        self.gen = 0                # publish generation (stale dispose timers are ignored)
        self.queue = []
        self.queued_bytes = 0
        self.segmenter = None
        self.hls_path = None
        self.disposed = False
        self.dropped = 0            # media messages dropped for a slow disk
        self._worker = None         # the greenlet running this sink's IO (then its batch's rest)
        self._dispose_timer = None
        self._logged = set()
        self.failures = WriteFailures(f"hls {key}")

    # ------------------------------------------------------------ sink contract (inline)
    def on_publish(self, source):
        if getattr(source.publisher, "relay", False):
            return                  # an origin relay (docs/cluster.md): the owner cuts HLS
        self.publishing = True
        self.gen += 1
        if self._dispose_timer is not None:
            self._dispose_timer.kill(block=False)
            self._dispose_timer = None
        self._push(_Marker("publish"))

    def on_message(self, msg):
        if self.publishing:
            self.queue.append(msg)
            self.queued_bytes += len(msg.payload)
            if self.queued_bytes > self.max_queue_bytes:
                self._drop()

    def on_unpublish(self, source):
        if not self.publishing:
            return
        self.publishing = False
        self._push(_Marker("unpublish", self.gen))

    def on_source_removed(self, source):
        self.sources.discard(source)
        self._maybe_idle()

    def _maybe_idle(self):
        """Tell the plugin once nothing holds this sink any more (parked, or forgotten)."""
        timer = self._dispose_timer
        if (not self.sources and not self.publishing and self._worker is None and not self.queue
                and (timer is None or timer.dead)):
            self.plugin.idle(self)

    # ------------------------------------------------------------ queue
    def _push(self, marker):
        self.queue.append(marker)
        self.plugin.schedule(self, now=True)

    def _drop(self):
        kept = [item for item in self.queue if _keep_on_drop(item)]
        count = len(self.queue) - len(kept)
        last = kept[-1] if kept else None
        if last is not None and last.kind == "drop":    # still stalled: one drop, one line
            last.count += count
            last.size += self.queued_bytes
        else:
            kept.append(_Marker("drop", count=count, size=self.queued_bytes))
        self.queue = kept
        self.queued_bytes = 0
        self.dropped += count

    def tick(self):
        """The plugin's ticker: handle what is queued (never called while `_worker` lives)."""
        batch, self.queue = self.queue, []
        self.queued_bytes = 0
        if batch:
            self._process(batch, 0)

    def _process(self, batch, start):
        """Feed `batch[start:]`; at the first list of actions with IO, hand that list and the
        rest of the batch to a worker greenlet (or, in the worker, run the IO and go on)."""
        now = time.time()
        seg = self.segmenter
        for i in range(start, len(batch)):
            item = batch[i]
            try:
                if type(item) is _Marker:
                    actions = self._on_marker(item)
                    seg = self.segmenter
                elif seg is not None:
                    actions = seg.feed(item.type_id, item.timestamp, item.payload,
                                       item.is_keyframe, now, item.frame)
                else:
                    continue
                if actions:
                    io = self._io_actions(actions)
                    if io:
                        if self._worker is None:
                            self._worker = gevent.spawn(self._work, io, batch, i + 1)
                            return
                        self._apply(io)
                        now = time.time()
            except Exception as e:  # a bug must not stop HLS for good: say it once, go on
                self._log_once(f"hls {self.key}: internal error: {e!r}")
            if i % YIELD_EVERY == YIELD_EVERY - 1:
                gevent.sleep(0)
                seg = self.segmenter

    def _work(self, io, batch, start):
        try:
            try:
                self._apply(io)
            except Exception as e:
                self._log_once(f"hls {self.key}: internal error: {e!r}")
            self._process(batch, start)
        finally:
            self._worker = None
        if not self.publishing and not self.queue:
            self._maybe_idle()

    def _on_marker(self, marker):
        kind = marker.kind
        if kind == "publish":
            return self._start()
        if self.segmenter is None:
            return []
        if kind == "unpublish":
            actions = self.segmenter.on_unpublish()
            self._schedule_dispose(marker.gen)
            return actions
        if kind == "drop":
            self.log.warn(f"hls {self.key}: disk too slow, dropped {marker.count} messages "
                          f"({marker.size >> 10} KiB queued); next segment starts at a keyframe "
                          f"with a discontinuity")
            return self.segmenter.discontinuity()
        if kind == "dispose" and marker.gen == self.gen and not self.publishing:
            self.log.trace(f"hls {self.key}: dispose {self.hls_path}/{self.segmenter.m3u8_path}")
            self.disposed = True
            actions = self.segmenter.dispose()
            if not self.sources:
                self.plugin.forget(self)
            return actions
        return []

    def _start(self):
        """A publish: (re)read the vhost's hls config and tell the segmenter."""
        self._logged.clear()
        self.disposed = False
        conf = self.server.config.vhost(self.vhost)
        if conf is None or conf.is_edge or not conf.hls.enabled:
            self.segmenter = None
            return []
        hls = conf.hls
        seg = self.segmenter
        if seg is None or hls.hls_path != self.hls_path or \
                hls.hls_m3u8_file != seg.conf.hls_m3u8_file:
            rehomed = None if seg is not None else self.plugin.cluster_seq(conf, self.key)
            start = seg.next_seq if seg is not None else self.plugin.start_seq(self.key)
            if rehomed is not None and rehomed > start:
                start = rehomed             # continue another origin's playlist (docs/cluster.md)
            try:
                seg = Segmenter(hls, self.vhost, self.app, self.stream, start_seq=start,
                                utc=self.server.config.utc_time)
            except ProtocolError as e:
                self.log.warn(f"hls {self.key}: disabled: {e}")
                self.segmenter = None
                return []
            if rehomed is not None:
                seg.discontinuity()         # a new encoder connection, another origin's timeline
            self.segmenter, self.hls_path = seg, hls.hls_path
        seg.conf = hls
        self.log.trace(f"hls {self.key}: publish, playlist {self.hls_path}/{seg.m3u8_path}")
        return seg.on_publish()

    def _schedule_dispose(self, gen):
        seconds = self.segmenter.conf.hls_dispose
        if seconds > 0 and gen == self.gen and not self.publishing:
            if self._dispose_timer is not None:
                self._dispose_timer.kill(block=False)
            self._dispose_timer = gevent.spawn_later(seconds, self._push,
                                                     _Marker("dispose", gen))

    def _io_actions(self, actions):
        """Log the warnings of `actions` (once each); the rest (writes, deletes) in order."""
        io = []
        for action in actions:
            if action[0] == "warn":
                self._log_once(action[1])
            else:
                io.append(action)
        return io

    def _apply(self, io):
        """Run IO actions in the plugin's IO thread (blocks this greenlet: the sink's worker)."""
        pool = self.plugin.io_pool()
        while io:
            failure, notes = pool.spawn(apply_actions, self.hls_path, io).get()
            for note in notes:
                self._log_once(note)
            if failure is None:
                if any(action[0] == "write" for action in io):
                    self._say(self.failures.succeeded(time.monotonic()), self.log.trace)
                return
            path, error, free = failure
            self._say(self.failures.failed(time.monotonic(), error, free), self.log.warn)
            io = self.segmenter.write_failed(path)

    @staticmethod
    def _say(line, level):
        if line is not None:
            level(line)

    def describe(self):
        """The stream's `hls` in the API."""
        return {"playlist": self.segmenter.m3u8_path if self.segmenter else None,
                "dropped": self.dropped, **self.failures.describe()}

    def _log_once(self, text):
        if text not in self._logged:
            if len(self._logged) > 100:         # bounded, whatever the texts
                self._logged.clear()
            self._logged.add(text)
            self.log.warn(text)


class HlsPlugin:
    """Attaches HLS sinks to the sources of HLS-enabled origin vhosts; keeps the sinks and the
    next sequence numbers of forgotten streams, both bounded (see the module rules)."""

    def __init__(self, server):
        self.server = server
        self.sinks = {}             # stream key -> HlsSink (live or parked)
        self.parked = OrderedDict()  # stream key -> idle HlsSink, the oldest first
        self.next_seq = OrderedDict()  # stream key -> next segment number of a forgotten sink
        self.seq_floor = 0          # above every number pushed out of next_seq
        self.active = {}            # sinks the ticker drains (publishing or queued), in order
        self._pool = None           # the one IO thread of every sink (see the module rules)
        self._ticker = None
        self._tick_wake = Event()

    def io_pool(self):
        if self._pool is None:
            self._pool = ThreadPool(1)
        return self._pool

    def schedule(self, sink, now=False):
        """`sink` has queued work (a marker: `now`, else at the next tick)."""
        self.active[sink] = None
        if now:
            self._tick_wake.set()
        if self._ticker is None:
            self._ticker = gevent.spawn(self._tick_loop)

    def _tick_loop(self):
        """Every WORKER_TICK (at once when woken): drain every active sink not busy with IO;
        a sink leaves `active` once it is not publishing and has nothing queued."""
        try:
            while self.active:
                self._tick_wake.wait(WORKER_TICK)
                self._tick_wake.clear()
                for sink in list(self.active):
                    if sink._worker is not None:
                        continue
                    try:
                        if sink.queue:
                            sink.tick()
                        if not sink.publishing and not sink.queue and sink._worker is None:
                            self.active.pop(sink, None)
                            sink._maybe_idle()
                    except Exception as e:  # one sink's bug must not stop every stream's HLS
                        sink._log_once(f"hls {sink.key}: internal error: {e!r}")
        finally:
            self._ticker = None

    def on_source_created(self, source):
        conf = self.server.config.vhost(source.vhost)
        if conf is None or conf.is_edge or not conf.hls.enabled:
            return
        sink = self.sinks.get(source.key)
        if sink is None:
            sink = HlsSink(self, source.key, source.vhost, source.app, source.stream)
            self.sinks[source.key] = sink
        self.parked.pop(source.key, None)
        sink.sources.add(source)
        source.sinks.append(sink)
        source.hls = sink

    def start_seq(self, key):
        """The first segment number of a stream that has no sink."""
        return self.next_seq.get(key, self.seq_floor)

    def cluster_seq(self, vhost_conf, key):
        """Where the origin cluster's directory says this stream's playlist went on, or None
        (no directory, never seen there, unreachable)."""
        directory = getattr(self.server, "directory", None)
        return directory.hls_continue_at(vhost_conf, key) if directory is not None else None

    def next_seq_of(self, key):
        """The next segment number of a live stream here, or None (the directory stores it)."""
        sink = self.sinks.get(key)
        return sink.segmenter.next_seq if sink is not None and sink.segmenter else None

    def idle(self, sink):
        """`sink` is idle: forget it if disposed, else park it (the oldest parked goes first)."""
        if self.sinks.get(sink.key) is not sink:
            return
        if sink.disposed:
            self.forget(sink)
            return
        self.parked[sink.key] = sink
        self.parked.move_to_end(sink.key)
        while len(self.parked) > MAX_IDLE_SINKS:
            self.forget(next(iter(self.parked.values())))

    def forget(self, sink):
        if self.sinks.get(sink.key) is not sink:
            return
        del self.sinks[sink.key]
        self.parked.pop(sink.key, None)
        if sink.segmenter is not None:
            self.next_seq[sink.key] = sink.segmenter.next_seq
            self.next_seq.move_to_end(sink.key)
            while len(self.next_seq) > MAX_REMEMBERED:
                _, seq = self.next_seq.popitem(last=False)
                self.seq_floor = max(self.seq_floor, seq)

    def runtime_counts(self):
        """For /api/v1/debug/runtime."""
        return {"hls_sinks": len(self.sinks), "hls_remembered": len(self.next_seq)}
