"""The C media path of a source (lib/server/core/_sourcec.c) against the Python reference
(PySource, PySharedMessage, lib.media.jitter.Jitter, lib.media.gop.GopCache), on inputs neither
was written for: random timestamps (steps, jumps, wraps, going back), every first two bytes of
audio and video payloads, data messages, the edge's facts and frames, publishes, upstream
switches, jitter and GOP settings changed on the fly, consumers and log kinds coming and going,
sinks, trims. After every step both must agree on every field, every message in the log and
the GOP cache, and every byte they encode. Skipped when the accelerator is not built."""
import random
from types import SimpleNamespace

import pytest

from lib.media import frame as media_frame
from lib.media.gop import GopCache as PyGopCache
from lib.media.jitter import Jitter as PyJitter
from lib.rtmp.session import ON_METADATA
from lib.server.core import source as source_mod

_sourcec = pytest.importorskip("lib.server.core._sourcec")
pytestmark = pytest.mark.skipif(source_mod.IMPLEMENTATION != "c",
                                reason="SRSEDGE_PURE_PYTHON: the C path is off")

SEEDS = range(12)
JITTER_FIELDS = ("mode", "last_in", "last_out", "max_out", "started", "offset", "position")
MESSAGE_FIELDS = ("type_id", "timestamp", "wire_ts", "csid", "chain", "delta", "is_keyframe",
                  "is_sequence_header", "payload", "chunk_size")
SOURCE_FIELDS = ("base", "end", "last_key_seq", "last_abs_seq", "chain_last", "_chain_ts",
                 "last_seq", "video_frames", "bytes_in", "has_media", "burst_fed",
                 "_flushed_end", "total_base")


def random_timestamp(rng, last):
    roll = rng.random()
    if roll < 0.6:
        return (last + rng.randint(0, 60)) & 0xFFFFFFFF
    if roll < 0.7:
        return (last - rng.randint(0, 300)) & 0xFFFFFFFF          # back a little, or a lot
    if roll < 0.8:
        return rng.choice([0, 0xFFFFFFFF, 0xFFFFFF, 0x1000000, 0x7FFFFFFF, 0x80000000])
    if roll < 0.9:
        return (last + rng.randint(251, 100000)) & 0xFFFFFFFF     # a jump
    return rng.randint(0, 0xFFFFFFFF)


def random_payload(rng, type_id):
    n = rng.choice([0, 1, 2, 3, 5, 20, rng.randint(0, 300), rng.randint(1000, 9000)])
    body = bytearray(rng.getrandbits(8) for _ in range(min(n, 64))) + bytes(max(0, n - 64))
    if n and rng.random() < 0.7:                                   # legacy headers, often
        if type_id == 9:
            body[0] = rng.choice([0x17, 0x27, 0x1C, 0x2C, 0x12, 0x22, 0x97, 0x30, 0x1F])
        elif type_id == 8:
            body[0] = rng.choice([0xAF, 0xAE, 0x2F, 0x9F, 0xA0])
        if n > 1:
            body[1] = rng.choice([0, 1, 2, 3, 255])
    return bytes(body)


def fields(obj, names):
    return {name: getattr(obj, name) for name in names}


def message_facts(m):
    return fields(m, MESSAGE_FIELDS)


def frame_facts(frame):
    if frame is None:
        return None
    names = [n for cls in type(frame).__mro__ for n in getattr(cls, "__slots__", ())]
    return {n: getattr(frame, n, None) for n in names}


# ------------------------------------------------------------------ Jitter and GopCache


@pytest.mark.parametrize("seed", SEEDS)
def test_jitter_gives_what_the_reference_gives(seed):
    rng = random.Random(seed)
    mode = rng.choice(["full", "zero", "off"])
    py, c = PyJitter(mode), _sourcec.Jitter(mode)
    assert fields(c, JITTER_FIELDS) == fields(py, JITTER_FIELDS)
    last = rng.randint(0, 0xFFFFFFFF)
    for step in range(3000):
        roll = rng.random()
        if roll < 0.02:
            py.restart()
            c.restart()
        elif roll < 0.03:
            mode = rng.choice(["full", "zero", "off", "other"])
            py.mode = c.mode = mode
        else:
            last = random_timestamp(rng, last)
            assert c.correct(last) == py.correct(last), (seed, step)
        assert fields(c, JITTER_FIELDS) == fields(py, JITTER_FIELDS), (seed, step)


@pytest.mark.parametrize("seed", SEEDS)
def test_gop_cache_keeps_what_the_reference_keeps(seed):
    rng = random.Random(seed)
    enabled, max_frames = rng.random() < 0.9, rng.choice([0, 1, 5, 30, 2500])
    py, c = PyGopCache(enabled, max_frames), _sourcec.GopCache(enabled, max_frames)
    names = ("enabled", "max_frames", "audio_since_video", "has_keyframe")
    for step in range(3000):
        roll = rng.random()
        if roll < 0.01:
            py.clear()
            c.clear()
        elif roll < 0.02:
            py.enabled = c.enabled = rng.random() < 0.8
        elif roll < 0.03:
            py.max_frames = c.max_frames = rng.choice([0, 3, 40])
        else:
            is_video = rng.random() < 0.3
            is_key = is_video and rng.random() < 0.1
            py.add(step, is_video, is_key)
            c.add(step, is_video, is_key)
        assert c.items == py.items, (seed, step)
        assert fields(c, names) == {k: bool(v) if k == "enabled" else v
                                    for k, v in fields(py, names).items()}, (seed, step)


# ------------------------------------------------------------------ SharedMessage


@pytest.mark.parametrize("seed", SEEDS)
def test_shared_message_has_the_reference_facts_and_bytes(seed):
    rng = random.Random(seed)
    for step in range(600):
        type_id = rng.choice([8, 9, 9, 18, 20, 1])
        payload = random_payload(rng, type_id)
        ts = rng.choice([0, rng.randint(0, 0xFFFFFF), rng.randint(0, 2**40)])
        chunk_size = rng.choice([1, 7, 128, 4096, 60000])
        wire_ts = rng.choice([None, 0, ts, rng.randint(0, 2**33)])
        how = rng.choice(["quick", "facts", "frame"]) if type_id in (8, 9) else "quick"
        extra = ()
        if how == "facts":
            extra = (None, media_frame.quick_facts(type_id, payload) or (True, False))
        elif how == "frame":
            extra = (media_frame.parse(type_id, payload),)
        py = source_mod.PySharedMessage(type_id, ts, payload, chunk_size, wire_ts, *extra)
        c = _sourcec.SharedMessage(type_id, ts, payload, chunk_size, wire_ts, *extra)
        if rng.random() < 0.5:
            py.delta = c.delta = rng.randint(0, 0xFFFFFE)
        where = (seed, step, type_id, payload[:4], how)
        assert message_facts(c) == message_facts(py), where
        assert frame_facts(c.frame) == frame_facts(py.frame), where
        assert c.rtmp == py.rtmp and c.bytes_for("rtmp") is c.rtmp, where
        assert c.flv == py.flv and c.bytes_for("flv") is c.flv, where


def test_a_shared_message_encodes_each_kind_once_and_only_when_asked():
    m = _sourcec.SharedMessage(9, 40, b"\x17\x01\x00\x00\x00" + bytes(300), 128)
    assert m._rtmp is None and m._flv is None
    assert m.rtmp is m.rtmp and m._flv is None
    assert m.flv is m.bytes_for("flv") and m._rtmp is m.rtmp


# ------------------------------------------------------------------ Source.on_media


class RecordingSink:
    def __init__(self):
        self.seen = []

    def on_publish(self, source):
        self.seen.append("publish")

    def on_message(self, msg):
        self.seen.append(message_facts(msg))

    def on_unpublish(self, source):
        self.seen.append("unpublish")


def conf(rng):
    play = SimpleNamespace(queue_length=rng.choice([1, 30]), mw_latency=350,
                           mw_msgs=rng.choice([0, 8]), time_jitter=rng.choice(["full", "zero", "off"]),
                           gop_cache=rng.random() < 0.9, gop_cache_max_frames=rng.choice([0, 7, 2500]))
    return SimpleNamespace(play=play, chunk_size=rng.choice([128, 4096, 60000]))


def snapshot(src, sink):
    out = fields(src, SOURCE_FIELDS)
    out["jitter"] = fields(src.jitter, JITTER_FIELDS)
    out["gop"] = [(message_facts(m), m._rtmp is None, m._flv is None) for m in src.gop.items]
    out["msgs"] = [message_facts(m) for m in src.msgs]
    out["logs"] = {k: list(v) for k, v in src.logs.items()}
    out["totals"] = {k: list(v) for k, v in src.totals.items()}
    out["headers"] = [None if m is None else message_facts(m)
                      for m in (src.metadata, src.video_sh, src.audio_sh)]
    out["wake"] = src._wake.is_set()
    out["sink"] = list(sink.seen)
    return out


@pytest.mark.parametrize("seed", SEEDS[:6])
def test_on_media_does_what_the_reference_does(seed):
    rng = random.Random(seed)
    vhost_conf = conf(rng)
    sides = []
    for cls in (source_mod.PySource, source_mod.Source):
        src = source_mod.SourceRegistry(source_class=cls).fetch_or_create(
            "v/a/s", "v", "a", "s", vhost_conf)
        sink = RecordingSink()
        src.sinks.append(sink)
        sides.append((src, sink))
    assert type(sides[1][0].jitter) is _sourcec.Jitter
    publisher = object()
    last = rng.randint(0, 0xFFFFFFFF)
    for step in range(2000):
        roll = rng.random()
        ops = []
        if roll < 0.01:
            burst = rng.random() < 0.3
            ops.append(lambda s: s.on_publish(publisher, burst_fed=burst))
        elif roll < 0.015:
            ops.append(lambda s: s.on_unpublish(publisher))
        elif roll < 0.02:
            ops.append(lambda s: s.on_upstream_switch())
        elif roll < 0.025:
            new_conf = conf(rng)
            ops.append(lambda s: s.apply_config(new_conf))
        elif roll < 0.04:                      # a consumer comes or goes, with its log kind
            kind = rng.choice(["rtmp", "flv"])
            step_by = rng.choice([1, -1])

            def consumers(s, kind=kind, step_by=step_by):
                if step_by > 0:
                    s.consumers.append(kind)
                    s._count_kind(kind, 1)
                elif kind in s.consumers:
                    s.consumers.remove(kind)
                    s._count_kind(kind, -1)
            ops.append(consumers)
        elif roll < 0.05:
            low = rng.randint(0, 10)
            ops.append(lambda s: s._trim(s.base + min(low, len(s.msgs))))
        elif roll < 0.06:
            ops.append(lambda s: (s._wake.clear(), setattr(s, "_flushed_end", s.end)))
        else:
            type_id = rng.choice([8, 9, 9, 18])
            payload = random_payload(rng, type_id)
            if type_id == 18 and rng.random() < 0.5:
                payload = ON_METADATA + payload
            last = random_timestamp(rng, last)
            how = rng.choice(["plain", "plain", "facts", "frame"]) if type_id != 18 else "plain"
            args = (type_id, last, payload)
            if how == "facts":
                args += (None, media_frame.quick_facts(type_id, payload) or (False, False))
            elif how == "frame":
                args += (media_frame.parse(type_id, payload),)
            ops.append(lambda s: s.on_media(*args))
        for op in ops:
            for src, _sink in sides:
                op(src)
        py, c = (snapshot(src, sink) for src, sink in sides)
        assert c == py, (seed, step)


def test_a_keyword_call_and_the_first_message_take_the_python_path():
    src = source_mod.SourceRegistry().fetch_or_create(
        "v/a/s", "v", "a", "s", conf(random.Random(1)))
    src.on_publish(object())
    src.on_media(9, 0, b"\x17\x00\x00\x00\x00", facts=(False, True))     # Python: first, keywords
    assert src.has_media and src.video_sh is not None and src.video_frames == 1
    src.on_media(9, 40, b"\x17\x01\x00\x00\x00\x01")                      # C
    assert src.video_frames == 2 and src.gop.has_keyframe and src.bytes_in == 11


def test_pure_python_selects_the_reference_source_and_says_so():
    """SRSEDGE_PURE_PYTHON=1 (like an unbuilt accelerator) runs PySource, and -t says which
    media path is in use either way."""
    import os
    import subprocess
    import sys
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    code = ("from lib.server.core import source; "
            "print(source.IMPLEMENTATION, source.Source.__name__, source.Source is source.PySource)")
    for pure, expected, note in ((True, ["python", "PySource", "True"], "media path: Python"),
                                 (False, ["c", "Source", "False"], "media path: C")):
        env = dict(os.environ)
        env.pop("SRSEDGE_PURE_PYTHON", None)
        if pure:
            env["SRSEDGE_PURE_PYTHON"] = "1"
        out = subprocess.run([sys.executable, "-c", code], env=env, cwd=root,
                             capture_output=True, text=True, check=True).stdout
        assert out.split() == expected
        said = subprocess.run([sys.executable, "srsedge.py", "-t", "-c", "conf/srs.conf"],
                              env=env, cwd=root, capture_output=True, text=True)
        assert said.returncode == 0 and note in said.stdout, said.stdout


def test_a_source_with_swapped_parts_takes_the_python_path_and_stays_right():
    src = source_mod.SourceRegistry().fetch_or_create(
        "v/a/s", "v", "a", "s", conf(random.Random(2)))
    src.on_publish(object())
    src.on_media(8, 0, b"\xaf\x01a")                       # media flows (Python: the first)
    src.gop, src.jitter = PyGopCache(), PyJitter("full")   # parts the C path does not know
    src.on_media(9, 0, b"\x17\x01\x00\x00\x00k")
    src.on_media(8, 20, b"\xaf\x01b")
    assert [m.timestamp for m in src.gop.items] == [0, 20] and src.jitter.max_out == 20
    assert src.video_frames == 1 and src.gop.has_keyframe
