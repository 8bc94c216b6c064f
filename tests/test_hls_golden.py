"""Byte identity of HLS output: fixed streams through the sans-IO segmenter (and the HTTP-TS
muxer) give exactly the files recorded in tests/data/hls_golden.json (segment and playlist
bytes, names, order, deletes). The digests were recorded from the code before the muxer was
optimised (issue 22); a change of any output byte, duration or sequence number fails here.

The streams are made here from a seeded PRNG (no binary in the repo): H.264 with B-frame
composition times, SEI, in-band parameter sets and AUDs, frame sizes over every TS packet
boundary; AAC with gaps; HEVC (Enhanced RTMP); audio only; a 33-bit PTS wrap; a republish
with a new codec configuration. The bench media file (bench/procs.py media_file()) is checked
too when it is the recorded one (its sha256), else that case is skipped.

Re-recording (only for an intended output change, say why in the commit):
    .venv/bin/python -m tests.test_hls_golden --record
"""
import dataclasses
import hashlib
import json
import os
import random
import struct
import sys

import pytest

from lib.config import parse_text
from lib.media import flv
from lib.media.hls import Segmenter
from lib.media import ts
from lib.media.ts import TsMuxer

GOLDEN = os.path.join(os.path.dirname(__file__), "data", "hls_golden.json")
BENCH_FLV = "/tmp/srsedge-bench-cache/bench-1mbps-30s.flv"
CONF = parse_text("vhost __defaultVhost__ { hls { enabled on; hls_fragment 2; } }") \
    .vhost("__defaultVhost__").hls
NOW = 1700000000.0

SPS = bytes.fromhex("6742c01e8c8d40a0fd00f088")
PPS = bytes.fromhex("68ce3c80")
SPS2 = bytes.fromhex("6764001facd9405005bb0110")
VPS = b"\x40\x01" + b"\x0c" * 6
HEVC_SPS = b"\x42\x01" + b"\x01" * 8
HEVC_PPS = b"\x44\x01" + b"\xc1"


def avc_sh(sps=SPS, pps=PPS):
    record = bytes([1, sps[1], sps[2], sps[3], 0xFF, 0xE1]) + \
        struct.pack(">H", len(sps)) + sps + b"\x01" + struct.pack(">H", len(pps)) + pps
    return b"\x17\x00\x00\x00\x00" + record


def hvcc():
    head = bytes([1, 0x01]) + b"\x60\x00\x00\x00" + bytes(6) + bytes([93]) + b"\xf0\x00" + \
        b"\xfc\xfd\xf8\xf8" + b"\x00\x00" + bytes([0x0F])
    arrays = b"".join(bytes([0x80 | kind]) + b"\x00\x01" + struct.pack(">H", len(nal)) + nal
                      for kind, nal in ((32, VPS), (33, HEVC_SPS), (34, HEVC_PPS)))
    return head + b"\x03" + arrays


AAC_SH = b"\xaf\x00\x12\x10"          # AAC LC, 44.1 kHz, stereo


def _size(rng, key):
    r = rng.random()
    if r < 0.08:
        return rng.randint(1, 400)                       # tiny frames: one packet, stuffing
    if r < 0.16:
        return 184 * rng.randint(1, 40) + rng.randint(-3, 3)   # around packet boundaries
    return rng.randint(8000, 60000) if key else rng.randint(400, 20000)


def _nalus(rng, key, hevc, sps=SPS):
    """The NALUs of one access unit."""
    n = _size(rng, key)
    if hevc:
        kind = 19 if key else 1
        slice_ = bytes([kind << 1, 1]) + rng.randbytes(max(0, n - 2))
        nalus = [slice_]
        if rng.random() < 0.2:
            nalus.insert(0, b"\x4e\x01" + rng.randbytes(rng.randint(1, 30)))   # prefix SEI
        if key and rng.random() < 0.3:
            nalus[:0] = [VPS, HEVC_SPS, HEVC_PPS]
        return nalus
    slice_ = bytes([0x65 if key else 0x41]) + rng.randbytes(max(0, n - 1))
    nalus = [slice_]
    if rng.random() < 0.3:
        nalus.insert(0, b"\x06" + rng.randbytes(rng.randint(1, 60)))           # SEI
    if rng.random() < 0.1:
        nalus.insert(0, b"\x09\xf0")                                          # an AUD of its own
    if key and rng.random() < 0.3:
        nalus[:0] = [sps, PPS]                                                # in-band SPS/PPS
    if rng.random() < 0.05:
        nalus.append(bytes([0x41]) + rng.randbytes(rng.randint(1, 3000)))     # a second slice
    return nalus


def _video_payload(nalus, key, cts, hevc):
    body = b"".join(len(n).to_bytes(4, "big") + n for n in nalus)
    if hevc:
        return bytes([0x91 if key else 0xA1]) + b"hvc1" + cts.to_bytes(3, "big", signed=True) + body
    return bytes([0x17 if key else 0x27, 1]) + cts.to_bytes(3, "big", signed=True) + body


def make_stream(seed, seconds, video=True, audio=True, hevc=False, start=0, gop=50,
                sps=SPS):
    """[(type, ts, payload)] in timestamp order: 25 fps video, 44.1 kHz AAC."""
    rng = random.Random(seed)
    out = []
    if video:
        out.append((flv.TAG_VIDEO, start, b"\x90hvc1" + hvcc() if hevc else avc_sh(sps)))
    if audio:
        out.append((flv.TAG_AUDIO, start, AAC_SH))
    media = []
    if video:
        for i in range(seconds * 25):
            key = i % gop == 0
            cts = (0, 80, 40, 0, 120)[i % 5] if not key else rng.choice((0, 40, 80))
            if rng.random() < 0.02:
                cts = -40                                  # negative composition time
            media.append((start + i * 40, 0, flv.TAG_VIDEO,
                          _video_payload(_nalus(rng, key, hevc, sps), key, cts, hevc)))
    if audio:
        n = 0
        while n * 1024 * 1000 // 44100 < seconds * 1000:
            if rng.random() < 0.01:
                n += rng.randint(1, 8)                     # a gap: the pending PES is flushed
            ts = start + n * 1024 * 1000 // 44100
            media.append((ts, 1, flv.TAG_AUDIO, b"\xaf\x01" + rng.randbytes(rng.randint(1, 700))))
            n += 1
    media.sort(key=lambda m: (m[0], m[1]))
    out += [(t, ts, p) for ts, _, t, p in media]
    return out


def bench_stream():
    with open(BENCH_FLV, "rb") as f:
        return [(t, ts, bytes(p)) for t, ts, p in flv.iter_tags(f.read())]


class Recorder:
    def __init__(self):
        self.lines = []

    def apply(self, actions):
        for a in actions:
            if a[0] == "write":
                self.lines.append(f"write {a[1]} {len(a[2])} {hashlib.sha256(a[2]).hexdigest()}")
            else:
                self.lines.append(f"{a[0]} {a[1]}")


def segment(streams, conf=CONF):
    """Feed each stream (a republish between them) through one Segmenter: the action lines."""
    seg = Segmenter(conf, "__defaultVhost__", "live", "livestream")
    rec = Recorder()
    for tags in streams:
        rec.apply(seg.on_publish())
        for t, ts, payload in tags:
            key = t == flv.TAG_VIDEO and flv.is_video_keyframe(payload)
            rec.apply(seg.feed(t, ts, payload, key, NOW))
        rec.apply(seg.on_unpublish())
    rec.apply(seg.dispose())
    return rec.lines


def http_ts(tags):
    """What HTTP-TS's shared muxer makes of a stream (mux_video/mux_audio, flush at keyframes)."""
    m = TsMuxer()
    h = hashlib.sha256()
    for t, ts, payload in tags:
        if t == flv.TAG_VIDEO:
            if flv.is_video_keyframe(payload):
                h.update(m.flush())
            h.update(m.mux_video(ts, payload))
        else:
            h.update(m.mux_audio(ts, payload))
    h.update(m.flush())
    h.update(m.header())
    return [h.hexdigest()]


CASES = {
    "avc_aac_40s": lambda: segment([make_stream(1, 40)]),
    "avc_aac_wrap": lambda: segment([make_stream(2, 12, start=95_437_000)]),
    "hevc_aac": lambda: segment([make_stream(3, 12, hevc=True)]),
    "audio_only": lambda: segment([make_stream(4, 15, video=False)]),
    "video_only_short_gop": lambda: segment([make_stream(5, 12, audio=False, gop=13)]),
    "republish_new_sps": lambda: segment([make_stream(6, 7), make_stream(7, 7, start=7000,
                                                                        sps=SPS2)]),
    "no_wait_keyframe_1s": lambda: segment(
        [make_stream(8, 9, gop=90)],
        dataclasses.replace(CONF, hls_fragment=1.0, hls_wait_keyframe=False, hls_window=4.0)),
    "http_ts_avc_aac": lambda: http_ts(make_stream(9, 10)),
    "bench_1mbps_30s": lambda: segment([bench_stream()]),
}


def file_sha256(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def load_golden():
    with open(GOLDEN) as f:
        return json.load(f)


@pytest.fixture(params=["python", "c"])
def packetizer(request, monkeypatch):
    """Each case through the pure-Python packetizer and through the C one (when built)."""
    if request.param == "c":
        monkeypatch.setattr(ts, "_tsc", pytest.importorskip("lib.media._tsc"))
    else:
        monkeypatch.setattr(ts, "_tsc", None)
    return request.param


@pytest.mark.parametrize("name", sorted(CASES))
def test_output_bytes_unchanged(name, packetizer):
    golden = load_golden()
    if name == "bench_1mbps_30s":
        if not os.path.exists(BENCH_FLV) or file_sha256(BENCH_FLV) != golden["bench_flv_sha256"]:
            pytest.skip("the recorded bench media file is not here")
    lines = CASES[name]()
    expected = golden["cases"][name]
    assert len(lines) == len(expected)
    for got, want in zip(lines, expected):
        assert got == want


def test_golden_covers_cuts_and_deletes():
    """The recorded cases really exercise cutting, the window and discontinuities."""
    cases = load_golden()["cases"]
    assert sum(line.startswith("write live/livestream-") for line in cases["avc_aac_40s"]) >= 19
    assert any(line.startswith("delete live/livestream-")
               for line in cases["no_wait_keyframe_1s"][:-3])          # the window moved
    playlists = [line for line in cases["republish_new_sps"] if ".m3u8 " in line]
    assert len(set(playlists)) == len(playlists) == 8


def record():
    golden = {"bench_flv_sha256": file_sha256(BENCH_FLV) if os.path.exists(BENCH_FLV) else None,
              "cases": {name: CASES[name]() for name in sorted(CASES)
                        if name != "bench_1mbps_30s" or os.path.exists(BENCH_FLV)}}
    with open(GOLDEN, "w") as f:
        json.dump(golden, f, indent=0, sort_keys=True)
        f.write("\n")
    print(f"recorded {sum(map(len, golden['cases'].values()))} lines in {GOLDEN}")


if __name__ == "__main__":
    if sys.argv[1:] == ["--record"]:
        record()
    else:
        sys.exit("usage: python -m tests.test_hls_golden --record")
