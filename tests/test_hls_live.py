"""HLS sink tests: in-process (gevent, real Source and SourceRegistry, real files) for queueing,
atomic writes, slow-disk drops, dispose and republish; black-box with `python srsedge.py` and
ffmpeg publishing, checking the playlist and segments on disk."""
import os
import subprocess
import threading
import time
import types

import gevent
import m3u8
import pytest

from lib.config import parse_text
from lib.media import flv
from lib.server.hls import sink as hls_sink
from lib.server.hls.sink import HlsPlugin, HlsSink
from lib.server.process.log import Logger
from lib.server.core.source import SourceRegistry
from tests.conftest import need_tool, wait_for

KEY = "__defaultVhost__/live/livestream"


class Harness:
    """A registry with the HLS plugin, as the server wires it, without sockets."""

    def __init__(self, tmp_path, extra="", **hls):
        self.dir = tmp_path / "hls"
        self.log_path = tmp_path / "srs.log"
        hls = {"hls_path": self.dir, "hls_fragment": 2, "hls_window": 10, **hls}
        directives = " ".join(f"{k} {v};" for k, v in hls.items())
        text = (f"srs_log_tank file; srs_log_file {self.log_path}; {extra}\n"
                f"vhost __defaultVhost__ {{ hls {{ enabled on; {directives} }} }}")
        self.config = parse_text(text)
        self.server = types.SimpleNamespace(
            config=self.config, logger=Logger("file", "trace", str(self.log_path)))
        self.plugin = HlsPlugin(self.server)
        self.registry = SourceRegistry(on_create=self.plugin.on_source_created)

    def source(self, vhost="__defaultVhost__", app="live", stream="livestream"):
        return self.registry.fetch_or_create(f"{vhost}/{app}/{stream}", vhost, app, stream,
                                             self.config.vhost(vhost))

    def publish(self, media, start=0, until=None, yield_every=50):
        src = self.source()
        owner = object()
        src.on_publish(owner)
        for i, (tag_type, ts, payload) in enumerate(flv.iter_tags(media)):
            if ts < start:
                continue
            if until is not None and ts >= until:
                break
            src.on_media(tag_type, ts, payload)
            if yield_every and i % yield_every == 0:
                gevent.sleep(0)
        return src, owner

    def settle(self, timeout=10):
        """Wait until every sink's worker is idle."""
        deadline = time.time() + timeout
        while time.time() < deadline:
            if all(s._worker is None and not s.queue for s in self.plugin.sinks.values()):
                return
            gevent.sleep(0.02)
        raise AssertionError("HLS worker still busy")

    def playlist(self):
        return m3u8.load(str(self.dir / "live" / "livestream.m3u8"))

    def files(self):
        d = self.dir / "live"
        return sorted(os.listdir(d)) if d.exists() else []

    def log_text(self):
        return self.log_path.read_text()


@pytest.fixture(scope="module")
def media(media_file):
    return media_file.read_bytes()


def test_sink_attached_only_to_hls_origin_vhosts(tmp_path):
    h = Harness(tmp_path, extra="vhost edge.test { cluster { mode remote; origin 127.0.0.1:1; } "
                                "hls { enabled on; } } vhost off.test { hls { enabled off; } }")
    src = h.source()
    assert [type(s) for s in src.sinks] == [HlsSink]
    assert h.source(vhost="edge.test").sinks == []
    assert h.source(vhost="off.test").sinks == []


def test_sink_writes_segments_and_playlist_atomically(tmp_path, media):
    need_tool("ffprobe")
    h = Harness(tmp_path)
    src, owner = h.publish(media)
    src.on_unpublish(owner)
    h.settle()
    pl = h.playlist()
    assert [s.duration for s in pl.segments] == [2.0] * 5
    assert h.files() == sorted([f"livestream-{n}.ts" for n in range(1, 6)] + ["livestream.m3u8"])
    assert not [f for f in h.files() if f.endswith(".tmp")]
    out = subprocess.run(["ffprobe", "-v", "error", "-show_entries", "stream=codec_name",
                          "-of", "csv=p=0", str(h.dir / "live" / "livestream-3.ts")],
                         capture_output=True, text=True, timeout=30)
    assert out.stderr == "" and set(out.stdout.split()) == {"aac", "h264"}
    assert "publish, playlist" in h.log_text()
    # the registry dropped the source; the plugin keeps the sink for a republish (dispose 0)
    assert h.registry.get(KEY) is None and KEY in h.plugin.sinks


def test_republish_before_dispose_continues_with_discontinuity(tmp_path, media):
    h = Harness(tmp_path, hls_dispose=2)
    src, owner = h.publish(media, until=4000)
    src.on_unpublish(owner)
    t0 = time.time()
    h.settle()
    gevent.sleep(1.0)
    src, owner = h.publish(media, until=4000)          # a new Source, the same sink
    src.on_unpublish(owner)
    h.settle()
    pl = h.playlist()
    assert [s.discontinuity for s in pl.segments] == [False, False, True, False]
    assert [s.uri for s in pl.segments] == [f"livestream-{n}.ts" for n in range(4)]
    gevent.sleep(t0 + 2.5 - time.time())               # the first dispose was cancelled
    assert "livestream.m3u8" in h.files()
    deadline = time.time() + 3                          # then disposed, 2 s after the last
    while h.files() and time.time() < deadline:
        gevent.sleep(0.05)
    assert h.files() == []
    assert KEY not in h.plugin.sinks and h.plugin.next_seq[KEY] == 4
    # a later publish goes on numbering (cached names are never reused)
    src, owner = h.publish(media, until=2100)
    src.on_unpublish(owner)
    h.settle()
    assert [s.uri for s in h.playlist().segments] == ["livestream-4.ts", "livestream-5.ts"]


def test_dispose_zero_keeps_files(tmp_path, media):
    h = Harness(tmp_path)
    src, owner = h.publish(media, until=4000)
    src.on_unpublish(owner)
    h.settle()
    gevent.sleep(0.3)
    assert "livestream.m3u8" in h.files()


def test_slow_disk_drops_and_restarts_with_discontinuity(tmp_path, media, monkeypatch):
    need_tool("ffprobe")
    gate = threading.Event()
    real = hls_sink.apply_actions

    def slow_apply(root, actions):
        gate.wait(10)
        return real(root, actions)
    monkeypatch.setattr(hls_sink, "apply_actions", slow_apply)
    h = Harness(tmp_path, hls_window=30)
    src, owner = h.publish(media, until=2100)          # first cut: the worker blocks writing
    sink = src.sinks[0]
    sink.max_queue_bytes = 100_000
    gevent.sleep(0.3)
    for tag_type, ts, payload in flv.iter_tags(media):  # 2.1 s .. 7 s with no disk: overflow
        if 2100 <= ts < 7000:
            src.on_media(tag_type, ts, payload)
    assert sink.dropped > 0
    sink.max_queue_bytes = hls_sink.MAX_QUEUE_BYTES     # the disk is back
    gate.set()
    for tag_type, ts, payload in flv.iter_tags(media):
        if ts >= 7000:
            src.on_media(tag_type, ts, payload)
            gevent.sleep(0)
    src.on_unpublish(owner)
    h.settle()
    assert "disk too slow" in h.log_text()
    pl = h.playlist()
    after = [s for s in pl.segments if s.discontinuity]
    assert len(after) == 1
    out = subprocess.run(["ffmpeg", "-v", "error", "-i", str(h.dir / "live" / after[0].uri),
                          "-f", "null", "-"], capture_output=True, text=True, timeout=30)
    assert out.returncode == 0 and out.stderr == ""


def test_write_errors_are_logged_once(tmp_path, media):
    h = Harness(tmp_path)
    h.dir.mkdir()
    (h.dir / "live").write_text("a file where the directory should be")
    src, owner = h.publish(media, until=6000)
    src.on_unpublish(owner)
    h.settle()
    lines = [x for x in h.log_text().splitlines() if f"hls {KEY}: write" in x]
    assert len(lines) == 1, h.log_text()
    assert h.plugin.sinks[KEY].describe()["write_errors"] == 3     # one per segment cut


# ---------------------------------------------------------------- black box
HLS_CONF = """
listen {port};
srs_log_tank console;
vhost __defaultVhost__ {
    hls {
        enabled on;
        hls_path {dir}/hls;
        hls_fragment 2;
        hls_window 10;
        hls_dispose 2;
    }
}
"""


def test_live_server_writes_hls(server_factory, publisher_factory, media_file):
    need_tool("ffprobe")
    srv = server_factory(HLS_CONF)
    m3u8_path = srv.dir / "hls" / "live" / "livestream.m3u8"
    pub = publisher_factory(srv.url(), media_file)

    def enough():
        try:
            pl = m3u8.load(str(m3u8_path))
        except (OSError, ValueError):
            return None
        return pl if len(pl.segments) >= 3 else None
    pl = wait_for(enough, timeout=20, interval=0.3)
    assert pl, srv.log_text()
    assert pl.target_duration == 2           # ceil(max(2, hls_td_ratio 1.0 * 2)), SRS 7 defaults
    for seg in pl.segments:
        assert 1.9 <= seg.duration <= 2.1
        path = str(srv.dir / "hls" / "live" / seg.uri)
        out = subprocess.run(["ffprobe", "-v", "error", "-show_entries", "stream=codec_name",
                              "-of", "csv=p=0", path], capture_output=True, text=True, timeout=30)
        assert out.stderr == "" and set(out.stdout.split()) == {"aac", "h264"}
    read = subprocess.run(["ffmpeg", "-v", "error", "-live_start_index", "0", "-i", str(m3u8_path),
                           "-t", "5", "-f", "null", "-"], capture_output=True, text=True,
                          timeout=40)
    assert read.returncode == 0 and read.stderr == "", read.stderr
    assert pub.alive()
    pub.stop()
    assert wait_for(lambda: not m3u8_path.exists(), timeout=10), srv.log_text()
    assert not [f for f in os.listdir(m3u8_path.parent) if f.endswith(".ts")]
    assert wait_for(lambda: "dispose" in srv.log_text(), 15)


def test_one_ticker_drains_every_stream(tmp_path, media, monkeypatch):
    """Many publishing streams share the plugin's one ticker greenlet: between cuts no sink has
    a greenlet of its own, and each stream's playlist comes out as with a single stream; a
    sink whose tick raises is logged and the others go on."""
    h = Harness(tmp_path)
    names = [f"s{i}" for i in range(6)]
    sources = []
    for name in names:
        src = h.source(stream=name)
        owner = object()
        src.on_publish(owner)
        sources.append((src, owner))
    gevent.sleep(0.3)                       # publish markers handled
    assert h.plugin._ticker is not None
    assert all(s._worker is None for s in h.plugin.sinks.values())
    broken = h.plugin.sinks[f"__defaultVhost__/live/{names[-1]}"]
    monkeypatch.setattr(broken, "tick", lambda: 1 / 0)
    for i, (tag_type, ts, payload) in enumerate(flv.iter_tags(media)):
        if ts >= 4000:
            break
        for src, _ in sources:
            src.on_media(tag_type, ts, payload)
        if i % 50 == 0:
            gevent.sleep(0)
    gevent.sleep(0.3)
    assert sum(s._worker is not None for s in h.plugin.sinks.values()) <= 1
    monkeypatch.undo()
    for src, owner in sources:
        src.on_unpublish(owner)
    h.settle()
    for name in names:
        pl = m3u8.load(str(h.dir / "live" / f"{name}.m3u8"))
        assert [s.duration for s in pl.segments] == [2.0, 2.0], name
    assert "internal error: ZeroDivisionError" in h.log_text()
    for _ in range(50):                     # the ticker ends once no sink is active
        if h.plugin._ticker is None:
            break
        gevent.sleep(0.05)
    assert h.plugin._ticker is None and not h.plugin.active
