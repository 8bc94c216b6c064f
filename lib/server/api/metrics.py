"""Prometheus metrics (`/metrics`), read from the live server at scrape time (docs/api.md)."""
import time

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily

from lib.media.codec_info import audio_json, video_json
from lib.names import VERSION
from lib.server.api.stats import Traffic


class MetricsCollector:
    """Prometheus metrics read from the live server at scrape time (see docs/api.md)."""

    def __init__(self, api):
        self.api = api

    def describe(self):
        return []

    def collect(self):
        server, stats = self.api.server, self.api.stats
        sources = list(server.sources.sources.values())
        yield _gauge("srsedge_info", "srsedge build and identity", {"version": VERSION,
                     "server_id": server.server_id, "service_id": server.service_id}, 1)
        yield _gauge("srsedge_uptime_seconds", "Seconds since the server started", {},
                     time.time() - server.started)
        roles = {"publish": 0, "play": 0, "unknown": 0}
        for conn in list(server.clients.values()):
            role = conn.role
            roles[role] = roles.get(role, 0) + 1
        yield _family(GaugeMetricFamily, "srsedge_connections", "Client connections by role",
                      ("role",), [((role,), n) for role, n in roles.items()])
        yield _gauge("srsedge_streams", "Live sources (streams with a publisher or players)", {},
                     len(sources))
        yield _gauge("srsedge_streams_publishing", "Streams with a publisher (or an edge pull)",
                     {}, sum(1 for s in sources if s.publisher is not None))
        yield _family(CounterMetricFamily, "srsedge_received_bytes",
                      "Media bytes received by all streams", (), [((), stats.total.recv.total)])
        yield _family(CounterMetricFamily, "srsedge_sent_bytes",
                      "Bytes sent to all players", (), [((), stats.total.send.total)])
        labels = ("vhost", "app", "stream")
        rows = [((s.vhost, s.app, s.stream), s, stats.streams.get(s) or Traffic()) for s in sources]
        per_stream = (
            (GaugeMetricFamily, "srsedge_stream_players", "Players of a stream",
             lambda s, t: len(s.consumers)),
            (CounterMetricFamily, "srsedge_stream_received_bytes", "Media bytes a stream received",
             lambda s, t: s.bytes_in),
            (CounterMetricFamily, "srsedge_stream_sent_bytes", "Bytes sent to a stream's players",
             lambda s, t: t.send.total),
            (CounterMetricFamily, "srsedge_stream_dropped_messages",
             "Messages skipped for slow players of a stream", lambda s, t: s.dropped),
        )
        for cls, name, doc, value in per_stream:
            yield _family(cls, name, doc, labels, [(key, value(s, t)) for key, s, t in rows])
        yield from self._upstreams(rows, labels)
        yield from self._processes(server)
        yield _family(GaugeMetricFamily, "srsedge_stream_codec_info",
                      "A stream's codecs from its sequence headers (value 1)",
                      labels + ("kind", "codec", "profile", "size"),
                      [(key + extra, v) for key, s, _ in rows for extra, v in _codecs(s)])
        yield _family(CounterMetricFamily, "srsedge_hook_calls",
                      "HTTP hook calls by action and verdict", ("action", "result"),
                      sorted(stats.hook_calls.items()))
        if server.loop_monitor is not None:
            yield from self._loop(server.loop_monitor.stats)

    @staticmethod
    def _loop(stats):
        busy, lag, gc_pauses = stats.totals()
        for name, doc, h in (
                ("srsedge_loop_busy_seconds", "Event loop iterations by the time their callbacks "
                 "ran (from one poll to the next)", busy),
                ("srsedge_loop_lag_seconds", "How late the event loop's periodic timer fired", lag),
                ("srsedge_loop_gc_seconds", "Cyclic garbage collection pauses", gc_pauses)):
            family = HistogramMetricFamily(name, doc)
            buckets = [(repr(bound), n) for bound, n in h.cumulative()] + [("+Inf", h.count)]
            family.add_metric([], buckets, h.sum)
            yield family
        busy_max, lag_max = stats.recent_max()
        yield _gauge("srsedge_loop_busy_max_seconds", "The longest event loop iteration in the "
                     "last minute", {}, busy_max)
        yield _gauge("srsedge_loop_lag_max_seconds", "The latest the loop's periodic timer fired "
                     "in the last minute", {}, lag_max)
        yield _family(CounterMetricFamily, "srsedge_loop_cpu_wait_seconds",
                      "Seconds the event loop's thread was runnable but waited for a CPU",
                      (), [((), stats.wait_total + stats.current.wait)])

    @staticmethod
    def _processes(server):
        registry = getattr(server, "processes", None)
        procs = registry.describe() if registry is not None else []
        counts = {}
        for p in procs:
            counts[(p["kind"], p["state"])] = counts.get((p["kind"], p["state"]), 0) + 1
        yield _family(GaugeMetricFamily, "srsedge_processes",
                      "Transcode, exec and ingest processes by kind and state",
                      ("kind", "state"), sorted(counts.items()))
        for name, doc, counts in (
                ("srsedge_process_spawns", "Transcode, exec and ingest processes started, "
                 "restarts included", registry.spawns if registry else {}),
                ("srsedge_process_restarts", "Transcode, exec and ingest processes restarted "
                 "after they exited", registry.restarts if registry else {})):
            yield _family(CounterMetricFamily, name, doc, ("kind",),
                          [((kind,), n) for kind, n in sorted(counts.items())])
        if registry is not None:
            cap = registry.cap.describe()
            yield _family(GaugeMetricFamily, "srsedge_process_cap",
                          "max_processes: child processes allowed at once (global)", (),
                          [((), cap["max"])])
            yield _family(CounterMetricFamily, "srsedge_process_refusals",
                          "Transcode/exec processes refused by a max_processes cap, by vhost",
                          ("vhost",), [((v,), row["refused"]) for v, row in cap["vhosts"].items()])

    @staticmethod
    def _upstreams(rows, labels):
        edges = [(key, s.edge.describe()) for key, s, _ in rows if s.edge is not None]
        states = {"connecting": 0, "waiting": 0, "streaming": 0, "backoff": 0, "stopping": 0}
        for _, d in edges:
            states[d["state"]] = states.get(d["state"], 0) + 1
        yield _family(GaugeMetricFamily, "srsedge_upstream_links", "Edge upstream links by state",
                      ("state",), [((state,), n) for state, n in states.items()])
        yield _family(GaugeMetricFamily, "srsedge_upstream_info",
                      "An edge stream's link: its state and the origin in use (value 1)",
                      labels + ("state", "origin"),
                      [(key + (d["state"], d["origin"] or ""), 1) for key, d in edges])
        yield _family(CounterMetricFamily, "srsedge_upstream_failovers",
                      "Origin switches of an edge stream", labels,
                      [(key, d["failovers"]) for key, d in edges])
        yield _family(CounterMetricFamily, "srsedge_upstream_links_opened",
                      "Upstream connections an edge stream opened", labels,
                      [(key, d["links_opened"]) for key, d in edges])


def _codecs(source):
    """((kind, codec display name, profile, "WxH" or ""), 1) per known codec of a source."""
    video = video_json(getattr(source.video_sh, "payload", None))
    audio = audio_json(getattr(source.audio_sh, "payload", None))
    out = []
    if video:
        size = f"{video['width']}x{video['height']}" if video["width"] else ""
        out.append((("video", video["name"], video["profile"], size), 1))
    if audio:
        out.append((("audio", audio["name"], audio["profile"], ""), 1))
    return out


def _family(cls, name, doc, labels, samples):
    family = cls(name, doc, labels=list(labels))
    for label_values, value in samples:
        family.add_metric(list(label_values), value)
    return family


def _gauge(name, doc, labels, value):
    return _family(GaugeMetricFamily, name, doc, tuple(labels), [(tuple(labels.values()), value)])
