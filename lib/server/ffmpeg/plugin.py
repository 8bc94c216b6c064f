"""Transcode, exec and ingest at the origin: which processes run when (SRS's encoder, ng_exec
and ingester).

Rules:
- Edge vhosts never transcode, exec or ingest (SRS); nor do workers 1..N-1 (they are edges).
- transcode: at each publish, every enabled `transcode` block whose scope is empty, the app or
  app/stream (SRS's vhost, app and stream scopes, in that order), and every enabled engine in
  it, runs one ffmpeg reading this stream from this server
  (rtmp://127.0.0.1:PORT/app?vhost=VHOST/stream) and publishing the engine's `output` with
  [vhost] [port] [app] [stream] [param] [engine] and the time variables expanded. They stop at
  unpublish. A published stream that is the output of a running engine is not transcoded again
  (SRS's loop check, here by stream key rather than URL text; an output counts as ours when its
  host is loopback/localhost/0.0.0.0 and its port one of our RTMP ports): no infinite chains.
- exec: at each publish, one process per `exec.publish` line, words expanded with [vhost]
  [port] [app] [stream] [tcUrl] [swfUrl] [pageUrl] (the publisher's connect) [param] [url] and
  the time variables; stopped at unpublish. Not run for an app or stream name that could move
  a path (`..`).
- Every expanded word (exec argv, transcode/ingest output) is expanded once and checked on its
  final text (lib.server.ffmpeg.command `expand_all`): a line or engine where a client's name
  would move a path or become an option (a stream named `-f`) is not run, with one warn line.
- ingest: at server start (and for ingests added by a reload), one ffmpeg per engine of each
  enabled `ingest` (-re -i input.url; a disabled engine or one without vcodec/acodec copies, as
  SRS); output variables [vhost] [port] and time. A reload stops ingests that were removed or
  changed. At server stop everything is stopped.
- Every process is a Supervised (restarted with capped backoff, stderr to the log with the
  publisher's context id) in `server.processes`, which the API and metrics read.
- Caps (lib.cluster.child_cap): a transcode engine or exec line is only started when the
  global `max_processes` (0: 4 per core, at least 8) and its vhost's `max_processes` leave
  room; else it is refused (counted, logged once a minute per cap). Ingests always start (the
  operator's config) but take their slots. A reload applies the new caps to later spawns.
"""
import os
import time

from lib.media.variables import UnsafeExpansion, unsafe
from lib.names import DEFAULT_VHOST
from lib.rtmp.errors import ProtocolError
from lib.rtmp.url import discover, parse_rtmp_url
from lib.server.ffmpeg.command import (copy_argv, engine_argv, expand_all, local_url,
                                       stream_values)
from lib.server.ffmpeg.process import ProcessRegistry, Supervised


LOCAL_HOSTS = frozenset({"127.0.0.1", "localhost", "::1", "0.0.0.0"})


def scopes(app, stream):
    return ("", app, f"{app}/{stream}")


class ProcessPlugin:
    def __init__(self, server):
        self.server = server
        server.processes = ProcessRegistry(self._global_cap())
        self.by_stream = {}         # source key -> [Supervised] (transcode + exec)
        self.outputs = {}           # stream key produced by a transcoder -> its Supervised
        self.ingests = {}           # (vhost, ingest name) -> (Ingest, [Supervised])

    # ------------------------------------------------------------ helpers
    def _port(self):
        ports = self.server.rtmp_ports
        if ports:
            return ports[0]
        return self.server.config.listen[0][1]

    def _origin_vhost(self, name):
        if self.server.config_transform is not None:
            return None             # worker 1..N-1: an edge of worker 0
        conf = self.server.config.vhost(name)
        return None if conf is None or conf.is_edge else conf

    def _stream_key(self, url):
        """The stream key an RTMP output URL publishes to on this server (a loopback or
        wildcard host and one of our RTMP ports), or None (another server, or not RTMP)."""
        try:
            tc_url, stream = parse_rtmp_url(url)
            req = discover(tc_url, stream)
        except ProtocolError:
            return None
        ports = set(self.server.rtmp_ports) | {port for _, port in self.server.config.listen}
        if req.schema != "rtmp" or req.host not in LOCAL_HOSTS or req.port not in ports:
            return None
        conf = self.server.config.vhost(req.vhost)
        return f"{conf.name if conf else req.vhost}/{req.app}/{req.stream}"

    def _expanded(self, what, words, values, log):
        """`words` with the variables expanded and checked (see header), or None (logged)."""
        now, utc = time.time(), self.server.config.utc_time
        try:
            return [expand_all(w, values, now, utc) for w in words]
        except UnsafeExpansion as e:
            log.warn(f"{what}: not run: {e}")
            return None

    def _global_cap(self):
        return self.server.config.max_processes or max(8, 4 * (os.cpu_count() or 1))

    def _spawn(self, kind, name, argv, log, force=False, **info):
        """A started Supervised, or None when a cap refuses it."""
        conf = self.server.config.vhost(info["vhost"])
        admitted, line = self.server.processes.cap.admit(
            info["vhost"], conf.max_processes if conf else 0, time.time(), force)
        if line:
            log.warn(line)
        if not admitted:
            return None
        proc = Supervised(self.server.processes, kind, name, argv, log, **info)
        return proc.start()

    # ------------------------------------------------------------ publish / unpublish
    def on_publish_started(self, conn, source):
        conf = self._origin_vhost(source.vhost)
        if conf is None:
            return
        log = self.server.logger.context(getattr(conn, "cid", None))
        req = getattr(conn, "req", None)
        param = (req.param or "") if req is not None else ""
        procs = self._transcode(conf, source, param, log)
        procs += self._exec(conf, source, conn, log)
        if procs:
            self.by_stream[source.key] = procs

    def on_publish_stopped(self, conn, source):
        for proc in self.by_stream.pop(source.key, []):
            proc.stop()
            out = proc.info.get("output_key")
            if out is not None and self.outputs.get(out) is proc:
                del self.outputs[out]

    def _transcode(self, conf, source, param, log):
        blocks = [t for scope in scopes(source.app, source.stream) for t in conf.transcode
                  if t.scope == scope and t.enabled]
        if not blocks:
            return []
        owner = self.outputs.get(source.key)
        if owner is not None:
            log.trace(f"transcode: {source.key} is the output of {owner.name}; not transcoded "
                      f"again (loop)")
            return []
        port = self._port()
        procs = []
        for t in blocks:
            for engine in t.engines:
                if not engine.enabled:
                    continue
                values = stream_values(source.vhost, port, source.app, source.stream, param,
                                       engine.name)
                name = f"{source.key}/{engine.name or 'engine'}"
                output = self._expanded(f"transcode {name}", [engine.output], values, log)
                if output is None:
                    continue
                output = output[0]
                input_url = local_url(port, source.vhost, source.app, source.stream)
                argv = engine_argv(t.ffmpeg, engine, input_url, output)
                out_key = self._stream_key(output)
                proc = self._spawn("transcode", name, argv, log, vhost=source.vhost, app=source.app,
                                   stream=source.stream, engine=engine.name, output=output,
                                   output_key=out_key)
                if proc is None:
                    continue
                if out_key is not None:
                    self.outputs[out_key] = proc
                procs.append(proc)
        return procs

    def _exec(self, conf, source, conn, log):
        if not conf.exec.enabled or not conf.exec.publish:
            return []
        if unsafe(source.app) or unsafe(source.stream):
            log.warn(f"exec: not run for {source.key}: app or stream name with '..' or '/'")
            return []
        port = self._port()
        req = getattr(conn, "req", None)
        param = (req.param or "") if req is not None else ""
        swf_url = (getattr(conn, "connect_object", None) or {}).get("swfUrl")
        values = {**stream_values(source.vhost, port, source.app, source.stream, param),
                  "tcUrl": req.tc_url if req is not None else "",
                  "swfUrl": swf_url if isinstance(swf_url, str) else "",
                  "pageUrl": getattr(conn, "page_url", "") or "",
                  "url": local_url(port, source.vhost, source.app, source.stream, param)}
        procs = []
        for i, words in enumerate(conf.exec.publish):
            argv = self._expanded(f"exec {source.key}#{i}", words, values, log)
            if argv is not None:
                procs.append(self._spawn("exec", f"{source.key}#{i}", argv, log,
                                         vhost=source.vhost, app=source.app,
                                         stream=source.stream))
        return [p for p in procs if p is not None]

    # ------------------------------------------------------------ ingest
    def on_server_start(self):
        self._sync_ingests()

    def on_reload(self, old, new):
        self.server.processes.cap.limit = self._global_cap()
        self._sync_ingests()

    def on_server_stop(self):
        for procs in list(self.by_stream.values()):
            for proc in procs:
                proc.stop()
        self.by_stream.clear()
        self.outputs.clear()
        for _, procs in self.ingests.values():
            for proc in procs:
                proc.stop()
        self.ingests.clear()

    def _sync_ingests(self):
        wanted = {}
        for name, vhost in self.server.config.vhosts.items():
            if self._origin_vhost(name) is None or not vhost.enabled:
                continue
            for i, ingest in enumerate(vhost.ingest):
                if ingest.enabled:
                    wanted[(name, ingest.name or f"#{i}")] = ingest
        for key, (ingest, procs) in list(self.ingests.items()):
            if wanted.get(key) != ingest:
                for proc in procs:
                    proc.stop()
                del self.ingests[key]
        for key, ingest in wanted.items():
            if key not in self.ingests:
                self.ingests[key] = (ingest, self._start_ingest(key[0], key[1], ingest))

    def _start_ingest(self, vhost, name, ingest):
        port = self._port()
        log = self.server.logger.context()
        values = {"vhost": vhost, "port": port}
        procs = []
        for i, engine in enumerate(ingest.engines):
            label = f"{vhost}/{name}" + (f"/{engine.name or i}" if len(ingest.engines) > 1 else "")
            output = self._expanded(f"ingest {label}", [engine.output], values, log)
            if output is None:
                continue
            output = output[0].replace(f"vhost={DEFAULT_VHOST}", "").replace("?&", "?") \
                .replace("?/", "/").rstrip("?")
            build = engine_argv if engine.enabled and engine.vcodec and engine.acodec \
                else copy_argv
            argv = build(ingest.ffmpeg, engine, ingest.input_url, output, ["-re"])
            procs.append(self._spawn("ingest", label, argv, log, force=True,
                                     vhost=vhost, ingest=name, output=output,
                                     output_key=self._stream_key(output)))
        log.trace(f"ingest {vhost}/{name}: {ingest.input_type} {ingest.input_url}, "
                  f"{len(procs)} ffmpeg")
        return procs
