"""HTTP-TS (`http_remux` with a `.ts` mount, as SRS's SrsTsStreamEncoder): live MPEG-TS over HTTP.

Rules (this module owns them):
- One `TsFanout` per source while it has HTTP-TS viewers: a source sink that muxes each message
  ONCE with lib/media/ts.py's TsMuxer and hands the same bytes to every viewer (no per-viewer
  muxing). It is made on the first viewer and removed with the last (no muxing without viewers).
- A new fanout is primed from the source's sequence headers and GOP cache; it keeps the TS bytes
  since the last keyframe, so a viewer starts with PAT/PMT and then a keyframe (SPS/PPS go in
  front of every IDR, see ts.py). Continuity counters run per fanout, so a viewer that joins
  later sees one CC jump at its start (decoders accept it).
- Each viewer has its own writer greenlet and a queue bounded by MAX_QUEUED_BYTES: a viewer that
  falls that far behind is closed (one log line by the caller), never slowing the others. A
  viewer's writer merges everything queued into one send.
- When the source goes away (publisher gone at an origin) the viewers' responses end.
"""
from collections import deque

import gevent
from gevent.event import Event

from lib.media.ts import TsError, TsMuxer
from lib.rtmp.message import MSG_AUDIO, MSG_VIDEO

MAX_QUEUED_BYTES = 16 * 1024 * 1024
MAX_GOP_CHUNKS = 5000      # TS pieces kept for joiners; a longer GOP starts joiners at the next one
CONTENT_TYPE = "video/MP2T"


class TsViewer:
    """One HTTP-TS player's writer: a queue of shared TS bytes and a greenlet sending them."""

    def __init__(self, sock, on_error):
        self.sock = sock
        self.on_error = on_error
        self.queue = deque()
        self.queued = 0
        self.bytes_out = 0
        self.closed = False
        self._wake = Event()
        self._writer = gevent.spawn(self._run)

    def push(self, data):
        if self.closed or not data:
            return
        if self.queued + len(data) > MAX_QUEUED_BYTES:
            self._fail(OSError(f"HTTP-TS viewer more than {MAX_QUEUED_BYTES} bytes behind"))
            return
        self.queue.append(data)
        self.queued += len(data)
        self._wake.set()

    def _run(self):
        try:
            while not self.closed:
                self._wake.wait()
                self._wake.clear()
                if not self.queue:
                    continue
                data = b"".join(self.queue)
                self.queue.clear()
                self.queued = 0
                self.sock.sendall(data)
                self.bytes_out += len(data)
        except OSError as e:
            self._fail(e)

    def _fail(self, err):
        if self.closed:
            return
        self.close()
        if self.on_error is not None:
            self.on_error(err)

    def close(self):
        self.closed = True
        self.queue.clear()
        self._wake.set()


class TsFanout:
    """The source sink that muxes once for all HTTP-TS viewers of a source (see the header)."""

    def __init__(self, source):
        self.source = source
        self.muxer = TsMuxer()
        self.viewers = []
        self.gop = []                 # TS pieces since the last keyframe
        for msg in (source.video_sh, source.audio_sh, *source.gop.items):
            if msg is not None:
                self.on_message(msg)

    def add(self, viewer):
        viewer.push(self.muxer.header() + b"".join(self.gop))
        self.viewers.append(viewer)

    def remove(self, viewer):
        if viewer in self.viewers:
            self.viewers.remove(viewer)

    def _mux(self, msg):
        try:
            if msg.type_id == MSG_VIDEO:
                return self.muxer.mux_video(msg.timestamp, msg.payload)
            if msg.type_id == MSG_AUDIO:
                return self.muxer.mux_audio(msg.timestamp, msg.payload)
        except TsError:
            pass                      # a bad frame is skipped, the stream goes on
        return b""

    # sink interface (lib/server/core/source.py)
    def on_publish(self, source):
        pass

    def on_message(self, msg):
        if msg.is_keyframe or len(self.gop) > MAX_GOP_CHUNKS:
            self.gop = []
            pending = self.muxer.flush()      # audio muxed before the keyframe
            for viewer in self.viewers:
                viewer.push(pending)
        data = self._mux(msg)
        if not data:
            return
        if self.gop or msg.is_keyframe:
            self.gop.append(data)
        for viewer in self.viewers:
            viewer.push(data)

    def on_unpublish(self, source):
        pass

    def on_source_removed(self, source):
        for viewer in list(self.viewers):
            viewer._fail(OSError("stream ended"))
        self.viewers = []


def attach(source, viewer):
    """Start `viewer` on `source`'s shared TS (making the fanout on the first viewer)."""
    fanout = getattr(source, "ts_fanout", None)
    if fanout is None:
        fanout = source.ts_fanout = TsFanout(source)
        source.sinks.append(fanout)
    fanout.add(viewer)


def detach(source, viewer):
    """Stop `viewer`; the fanout goes with the last viewer."""
    viewer.close()
    fanout = getattr(source, "ts_fanout", None)
    if fanout is None:
        return
    fanout.remove(viewer)
    if not fanout.viewers:
        source.ts_fanout = None
        if fanout in source.sinks:
            source.sinks.remove(fanout)
