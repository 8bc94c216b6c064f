"""DVR at the origin: a Source sink feeding lib.media.dvr.DvrPlan, files written off the hot path.

Rules:
- DvrPlugin(server).on_source_created attaches a DvrSink to sources of vhosts with dvr.enabled
  that are not edges (an edge never records, as SRS). At each publish the sink re-reads the
  vhost's dvr section (a reload applies to the next publish; on_reload gives existing sources a
  sink when DVR was just enabled) and records only when dvr_apply is
  `all` or lists `app/stream` (SRS's srs_config_apply_filter).
- on_publish / on_message / on_unpublish only append to a queue (on_message is the fan-out hot
  path). One worker greenlet per recording sink drains it every WORKER_TICK, feeds the plan and
  runs the file actions in gevent's threadpool (DvrFile).
- The queue is bounded (MAX_QUEUE_BYTES of payload). Past it the queued media is dropped
  (markers and sequence headers kept), one line is logged, and video resumes at the next
  keyframe in the same file: a slow disk never stalls the fan-out nor grows memory.
- Files are written as `<path>.tmp` and renamed to `<path>` when closed (SRS), so a file with the
  final name is always complete. A name is never reused: when `<path>` or `<path>.tmp` already
  exists (an earlier run, a crash) the file becomes `<name>-1.<ext>`, `-2`... The temp file is
  opened with O_EXCL, and the final name never replaces a file (lib/server/core/files.py).
- After each close the vhost's on_dvr hooks are called (a notification, in its own greenlet)
  with SRS's body: the publisher's client_id/ip/tcUrl/param, cwd and file.
- At server stop (SIGTERM, SIGQUIT) recordings are closed and renamed before the process exits;
  only a crash leaves a `.tmp`.
- A failed write, open or close (a full disk) removes the partial file (its `.tmp`; a file that
  cannot be finished holds space the next one needs) and tells the plan, which starts a new
  file at a keyframe once DvrPlan.RETRY_AFTER has passed (lib/media/dvr.py): the recording
  resumes by itself when space returns, in a new file with its own on_dvr. SRS instead ends
  the recording until the next publish (keeping the partial file). Failures are logged as
  lib/media/write_failures.py says (one line a minute per stream, with the free space; one
  line when writes work again) and counted for the API (`describe()`).
"""
import os
import time
import weakref

import gevent
from gevent.event import Event

from lib.media.dvr import DvrPathError, DvrPlan
from lib.media.write_failures import WriteFailures
from lib.server.core.files import finish_new, free_bytes, open_new, remove_quietly
from lib.server.core.hooks import HookContext

WORKER_TICK = 0.2           # seconds between queue drains while recording
MAX_QUEUE_BYTES = 32 << 20  # media payload bytes queued before dropping
YIELD_EVERY = 200


def applies(dvr, app, stream):
    """SRS's dvr_apply filter: `all`, or a list of app/stream names."""
    return not dvr.dvr_apply or dvr.dvr_apply == ["all"] or f"{app}/{stream}" in dvr.dvr_apply


class DvrFile:
    """One file being recorded; its methods run in a worker thread."""

    def __init__(self):
        self.f = None
        self.path = None            # final name

    def run(self, actions):
        """Returns (closed: [(final path, duration ms)], failures: [(error text, free bytes)]).
        After a failure the actions up to the next "open" are skipped (the file is gone)."""
        closed, failures = [], []
        for action in actions:
            kind = action[0]
            if kind != "open" and self.f is None:
                continue
            try:
                if kind == "open":
                    self._discard()
                    self.path = None        # a failed open names the path it tried
                    self.path, self.f = open_new(action[1])
                elif kind == "write":
                    self.f.write(action[1])
                elif kind == "close":
                    closed.append((self._close(action[1], action[2]), action[3]))
            except OSError as e:
                path = self.path or action[1]
                failures.append((f"{kind} {path}: {e.strerror or e}", free_bytes(path)))
                self._discard()
        return closed, failures

    def _close(self, tail, patches):
        f, self.f = self.f, None
        try:
            with f:
                f.write(tail)
                for offset, data in patches:
                    f.seek(offset)
                    f.write(data)
            return finish_new(self.path)
        except BaseException:
            remove_quietly(self.path + ".tmp")
            raise

    def _discard(self):
        """Drop the file being written, and its partial `.tmp`."""
        f, self.f = self.f, None
        if f is not None:
            try:
                f.close()
            except OSError:
                pass
            remove_quietly(self.path + ".tmp")


class _Marker:
    __slots__ = ("kind", "count")

    def __init__(self, kind, count=0):
        self.kind, self.count = kind, count


class DvrSink:
    max_queue_bytes = MAX_QUEUE_BYTES

    def __init__(self, server, source):
        self.server = server
        self.source = source
        self.key = source.key
        self.log = server.logger.context()
        self.recording = False
        self.queue = []
        self.queued_bytes = 0
        self.plan = None
        self._conf = None           # the vhost's dvr section, read at each publish
        self.file = DvrFile()
        self.ctx = None             # HookContext of the current publish
        self.hooks = []
        self.dropped = 0
        self.files = []             # [(path, duration_ms)] closed during this process' life
        self._worker = None
        self._wake = Event()
        self._logged = set()
        self.failures = WriteFailures(f"dvr {self.key}")

    # ------------------------------------------------------------ sink contract (inline)
    def on_publish(self, source):
        conf = self.server.config.vhost(source.vhost)
        relayed = getattr(source.publisher, "relay", False)     # the owner records it
        self.recording = conf is not None and not conf.is_edge and conf.dvr.enabled and \
            not relayed and applies(conf.dvr, source.app, source.stream)
        if not self.recording:
            return
        self.ctx = self._context(source, conf)
        self.hooks = conf.http_hooks.on_dvr if conf.http_hooks.enabled else []
        self._conf = conf.dvr
        self._push(_Marker("publish"))

    def on_message(self, msg):
        if self.recording:
            self.queue.append(msg)
            self.queued_bytes += len(msg.payload)
            if self.queued_bytes > self.max_queue_bytes:
                self._drop()

    def on_unpublish(self, source):
        if self.recording:
            self.recording = False
            self._push(_Marker("unpublish"))

    # ------------------------------------------------------------ queue
    def _push(self, marker):
        self.queue.append(marker)
        self._wake.set()
        if self._worker is None:
            self._worker = gevent.spawn(self._run)

    def _drop(self):
        kept = [m for m in self.queue if isinstance(m, _Marker) or m.is_sequence_header]
        count = len(self.queue) - len(kept)
        kept.append(_Marker("drop", count))
        self.queue, self.queued_bytes = kept, 0
        self.dropped += count

    def _run(self):
        try:
            while True:
                self._wake.wait(WORKER_TICK)
                self._wake.clear()
                batch, self.queue = self.queue, []
                self.queued_bytes = 0
                if batch:
                    self._process(batch)
                elif not self.recording:
                    break
        finally:
            self._worker = None

    def _process(self, batch):
        actions = []
        now = time.time()
        for i, item in enumerate(batch):
            try:
                if isinstance(item, _Marker):
                    actions += self._on_marker(item, now)
                elif self.plan is not None:
                    actions += self.plan.feed(item.type_id, item.timestamp, item.payload,
                                              item.is_keyframe, now, item.is_sequence_header)
            except Exception as e:  # a bug must not stop DVR for good: say it once, go on
                self._log_once(f"dvr {self.key}: internal error: {e!r}")
            if i % YIELD_EVERY == YIELD_EVERY - 1:
                gevent.sleep(0)
        if actions:
            self._apply(actions, now)

    def _on_marker(self, marker, now):
        if marker.kind == "publish":
            self._logged.clear()
            self.plan = DvrPlan(self._conf, self.source.vhost, self.source.app,
                                self.source.stream, utc=self.server.config.utc_time)
            try:
                return self.plan.on_publish(now)
            except DvrPathError as e:
                self.log.warn(f"dvr {self.key}: not recorded: {e}")
                self.plan = None
                return []
        if self.plan is None:
            return []
        if marker.kind == "unpublish":
            actions, self.plan = self.plan.on_unpublish(), None
            return actions
        if marker.kind == "drop":
            self.log.warn(f"dvr {self.key}: disk too slow, dropped {marker.count} messages; "
                          f"video resumes at the next keyframe")
            self.plan.need_key = True
        return []

    def _apply(self, actions, now):
        pool = gevent.get_hub().threadpool
        closed, failures = pool.spawn(self.file.run, actions).get()
        for error, free in failures:
            line = self.failures.failed(time.monotonic(), error, free)
            if line is not None:
                self.log.warn(line)
        if not failures:
            line = self.failures.succeeded(time.monotonic())
            if line is not None:
                self.log.trace(line)
        if self.plan is not None and self.plan.file is not None and self.file.f is None:
            self.plan.write_failed(now)
        for path, duration in closed:
            self.files.append((path, duration))
            del self.files[:-100]
            self.log.trace(f"dvr {self.key}: closed {path} ({duration / 1000:.1f}s)")
            if self.hooks and self.ctx is not None:
                gevent.spawn(self._on_dvr, path)

    def _on_dvr(self, path):
        ctx = self.ctx
        ctx = HookContext(**{**ctx.__dict__, "file": path})
        ok, reason = self.server.hooks.call("on_dvr", self.hooks, ctx)
        if not ok:
            self.log.warn(f"on_dvr failed (ignored): {reason}")

    def _context(self, source, conf):
        pub = source.publisher
        req = getattr(pub, "req", None)
        return HookContext(
            client_id=getattr(pub, "cid", ""), ip=getattr(pub, "ip", ""),
            vhost=getattr(req, "vhost", source.vhost) if req else source.vhost,
            app=source.app, stream=source.stream,
            param=(getattr(req, "param", "") or "") if req else "",
            tc_url=getattr(req, "tc_url", "") if req else "",
            server_id=self.server.server_id, service_id=self.server.service_id,
            stream_id=source.key, cwd=os.getcwd())

    def _log_once(self, text):
        if text not in self._logged:
            if len(self._logged) > 100:
                self._logged.clear()
            self._logged.add(text)
            self.log.warn(text)

    def describe(self):
        return {"recording": self.recording, "dropped": self.dropped,
                "file": self.file.path if self.file.f is not None else None,
                **self.failures.describe()}


class DvrPlugin:
    """Attaches DVR sinks to the sources of DVR-enabled origin vhosts; at server stop it closes
    the files being recorded (waiting up to STOP_WAIT seconds) so a quit leaves complete files."""

    STOP_WAIT = 5.0

    def __init__(self, server):
        self.server = server
        self.sinks = weakref.WeakSet()

    def on_reload(self, old, new):
        """DVR enabled by a reload: sources that live on (players kept them) get a sink too;
        it records from their next publish."""
        for source in list(self.server.sources.sources.values()):
            if getattr(source, "dvr", None) is None:
                self.on_source_created(source)

    def on_server_stop(self):
        workers = []
        for sink in list(self.sinks):
            if sink.recording:
                sink.on_unpublish(sink.source)
            if sink._worker is not None:
                workers.append(sink._worker)
        if workers:
            gevent.joinall(workers, timeout=self.STOP_WAIT)

    def on_source_created(self, source):
        conf = self.server.config.vhost(source.vhost)
        if conf is None or conf.is_edge or not conf.dvr.enabled:
            return
        sink = DvrSink(self.server, source)
        source.dvr = sink
        source.sinks.append(sink)
        self.sinks.add(sink)
