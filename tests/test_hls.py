"""Tests for lib/media/hls.py: real FLVs (ffmpeg) segmented to disk and checked with ffprobe and
the m3u8 package; cutting rules, window, names, republish, codec change and dispose on synthetic
streams."""
import dataclasses
import json
import os
import re
import struct
import subprocess

import m3u8
import pytest

from lib.config import parse_text
from lib.media import flv
from lib.media.hls import HlsError, Segmenter
from tests.conftest import need_tool
from tests.test_ts import AAC_SH, aac_frame, avc_frame, avc_sh, demux, packets

NOW = 1700000000.0            # 2023-11-14 22:13:20 UTC
BASE = parse_text("vhost __defaultVhost__ { hls { enabled on; } }").vhost("x").hls


def conf(**kw):
    kw.setdefault("hls_fragment", 2.0)
    kw.setdefault("hls_window", 10.0)
    return dataclasses.replace(BASE, **kw)


class Disk:
    """Applies segmenter actions under a directory, as the sink does."""

    def __init__(self, root):
        self.root = str(root)
        self.log = []             # every action, in order (bytes replaced by their size)
        self.warnings = []

    def apply(self, actions):
        for action in actions:
            if action[0] == "warn":
                self.warnings.append(action[1])
                continue
            path = os.path.join(self.root, action[1])
            if action[0] == "write":
                os.makedirs(os.path.dirname(path), exist_ok=True)
                with open(path, "wb") as f:
                    f.write(action[2])
                self.log.append(("write", action[1], len(action[2])))
            else:
                assert action[0] == "delete"
                if os.path.exists(path):
                    os.unlink(path)
                self.log.append(("delete", action[1]))

    def path(self, rel):
        return os.path.join(self.root, rel)

    def playlist(self, rel="live/livestream.m3u8"):
        return m3u8.load(self.path(rel))


def feed_flv(seg, disk, data, offset=0, until=None):
    for tag_type, ts, payload in flv.iter_tags(data):
        if until is not None and ts >= until:
            break
        key = tag_type == flv.TAG_VIDEO and flv.is_video_keyframe(payload)
        disk.apply(seg.feed(tag_type, ts + offset, payload, key, NOW))


def segment_file(tmp_path, media, seg_conf, **feed):
    seg = Segmenter(seg_conf, "__defaultVhost__", "live", "livestream")
    disk = Disk(tmp_path / "hls")
    disk.apply(seg.on_publish())
    feed_flv(seg, disk, media, **feed)
    disk.apply(seg.on_unpublish())
    return seg, disk


def probe(path):
    """-> (sorted codec names, duration) of one segment, and decode errors (ffmpeg -v error)."""
    out = subprocess.run(["ffprobe", "-v", "error", "-show_entries",
                          "stream=codec_name:format=duration", "-of", "json", path],
                         capture_output=True, text=True, timeout=30)
    assert out.stderr == "", out.stderr
    info = json.loads(out.stdout)
    dec = subprocess.run(["ffmpeg", "-v", "error", "-i", path, "-f", "null", "-"],
                         capture_output=True, text=True, timeout=30)
    assert dec.returncode == 0 and dec.stderr == "", dec.stderr
    return sorted(x["codec_name"] for x in info["streams"]), float(info["format"]["duration"])


@pytest.fixture(scope="module")
def media(media_file):
    return media_file.read_bytes()


@pytest.fixture(scope="module")
def media_variants(media_file):
    out = {}
    for name, flag in (("audio", "-vn"), ("video", "-an")):
        path = media_file.parent / f"{name}-only.flv"
        if not path.exists():
            subprocess.run(["ffmpeg", "-v", "error", "-y", "-i", str(media_file), flag,
                            "-c", "copy", str(path)], check=True, timeout=60)
        out[name] = path.read_bytes()
    return out


# ---------------------------------------------------------------- real media
def test_av_segments_decode_and_playlist(tmp_path, media):
    need_tool("ffprobe")
    seg, disk = segment_file(tmp_path, media, conf())
    pl = disk.playlist()
    assert pl.version == 3 and pl.target_duration == 2      # ceil(max(2, 1.0 * 2)), SRS 7
    assert [s.uri for s in pl.segments] == [f"livestream-{n}.ts" for n in range(1, 6)]
    assert pl.media_sequence == 1
    assert [s.duration for s in pl.segments] == [2.0] * 5
    assert sum(s.duration for s in pl.segments) <= 10
    assert not os.path.exists(disk.path("live/livestream-0.ts"))         # cleaned up
    assert ("delete", "live/livestream-0.ts") in disk.log
    for s in pl.segments:
        path = disk.path("live/" + s.uri)
        codecs, duration = probe(path)
        assert codecs == ["aac", "h264"]
        assert abs(duration - s.duration) < 0.1
        data = open(path, "rb").read()
        out = demux(data)                                   # cc and CRC checked there
        first_video = out["pes"][0x100][0][0]
        assert first_video.rai and first_video.pcr is not None
        assert packets(data)[0].pid == 0 and packets(data)[1].pid == 0x1001
    # each segment is written before the playlist that names it; deletes come after
    writes = [a for a in disk.log if a[0] == "write"]
    assert writes[0][1] == "live/livestream-0.ts" and writes[1][1] == "live/livestream.m3u8"
    first_delete = disk.log.index(("delete", "live/livestream-0.ts"))
    assert disk.log[first_delete - 1][1] == "live/livestream.m3u8"
    assert disk.warnings == []


def test_audio_only_cut_by_aof_ratio(tmp_path, media_variants):
    need_tool("ffprobe")
    seg, disk = segment_file(tmp_path, media_variants["audio"], conf(hls_window=20.0))
    pl = disk.playlist()
    durations = [s.duration for s in pl.segments]
    assert len(durations) == 3
    for d in durations[:-1]:
        assert 4.2 <= d < 4.25                              # hls_aof_ratio 2.1 * hls_fragment 2
    for s in pl.segments:
        codecs, duration = probe(disk.path("live/" + s.uri))
        assert codecs == ["aac"] and abs(duration - s.duration) < 0.1
        first, _ = demux(open(disk.path("live/" + s.uri), "rb").read())["pes"][0x101][0]
        assert first.pcr is not None                        # PCR on the audio PID


def test_video_only(tmp_path, media_variants):
    need_tool("ffprobe")
    seg, disk = segment_file(tmp_path, media_variants["video"], conf(hls_window=20.0))
    pl = disk.playlist()
    assert [s.duration for s in pl.segments] == [2.0] * 6
    for s in pl.segments:
        codecs, duration = probe(disk.path("live/" + s.uri))
        assert codecs == ["h264"] and abs(duration - 2.0) < 0.1


def test_republish_adds_discontinuity(tmp_path, media):
    need_tool("ffprobe")
    seg = Segmenter(conf(hls_window=30.0), "__defaultVhost__", "live", "livestream")
    disk = Disk(tmp_path)
    disk.apply(seg.on_publish())
    feed_flv(seg, disk, media, until=6000)
    disk.apply(seg.on_unpublish())
    assert [s.duration for s in disk.playlist().segments] == [2.0, 2.0, 2.0]
    disk.apply(seg.on_publish())
    feed_flv(seg, disk, media, until=4000)                  # timestamps start again at 0
    disk.apply(seg.on_unpublish())
    pl = disk.playlist()
    assert [s.discontinuity for s in pl.segments] == [False] * 3 + [True, False]
    assert [s.uri for s in pl.segments] == [f"livestream-{n}.ts" for n in range(5)]
    text = open(disk.path("live/livestream.m3u8")).read()
    assert "#EXT-X-DISCONTINUITY\n#EXTINF:2.000,\nlivestream-3.ts\n" in text
    codecs, _ = probe(disk.path("live/livestream-3.ts"))
    assert codecs == ["aac", "h264"]


# ---------------------------------------------------------------- synthetic streams
IDR = b"\x65" + b"\x88" * 60
SLICE = b"\x41" + b"\x9a" * 30


def synth(seg, disk, start, end, key_every=None, audio=True, video=True, now=NOW):
    """Video every 40 ms (keyframe at `start` and every key_every ms), AAC every 23 ms."""
    events = []
    if video:
        events += [(t, flv.TAG_VIDEO) for t in range(start, end, 40)]
    if audio:
        events += [(t, flv.TAG_AUDIO) for t in range(start, end, 23)]
    for t, kind in sorted(events, key=lambda e: (e[0], -e[1])):
        if kind == flv.TAG_VIDEO:
            key = t == start or (key_every is not None and (t - start) % key_every == 0)
            payload = avc_frame([IDR if key else SLICE], key=key)
            disk.apply(seg.feed(kind, t, payload, key, now))
        else:
            disk.apply(seg.feed(kind, t, aac_frame(b"\x21\x10" * 20), False, now))


def new_synth(tmp_path, audio=True, video=True, vhost="__defaultVhost__", stream="livestream",
              **kw):
    seg = Segmenter(conf(**kw), vhost, "live", stream)
    disk = Disk(tmp_path)
    disk.apply(seg.on_publish())
    if video:
        disk.apply(seg.feed(flv.TAG_VIDEO, 0, avc_sh(), True, NOW))
    if audio:
        disk.apply(seg.feed(flv.TAG_AUDIO, 0, AAC_SH, False, NOW))
    return seg, disk


def durations(seg):
    return [s.duration_ms for s in seg.window]


def test_playlist_text(tmp_path):
    seg, disk = new_synth(tmp_path)
    synth(seg, disk, 0, 2040, key_every=2000)
    assert seg.playlist().decode() == (
        "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-MEDIA-SEQUENCE:0\n#EXT-X-TARGETDURATION:2\n"
        "#EXTINF:2.000,\nlivestream-0.ts\n")


def test_long_gop_cut_by_audio_then_hard_cut(tmp_path):
    """Keyframes every 10 s, fragment 2: audio cuts at aof 2 * 2 s; the next segment does not
    begin with a keyframe, so it is cut at td 1.5 * 2 s; the keyframe at 10 s cuts again.
    (Ratios given: SRS 7's defaults are td 1.0 and aof 2.1.)"""
    seg, disk = new_synth(tmp_path, hls_window=60.0, hls_td_ratio=1.5, hls_aof_ratio=2.0)
    synth(seg, disk, 0, 12000, key_every=10000)
    d = durations(seg)
    assert 4000 <= d[0] < 4040 and 3000 <= d[1] < 3040 and d[2] <= 3000
    assert sum(d[:3]) == 10000                              # the keyframe at 10 s starts seg 3
    assert disk.playlist().target_duration == 5


def test_wait_keyframe_off_cuts_at_any_frame(tmp_path):
    seg, disk = new_synth(tmp_path, audio=False, hls_wait_keyframe=False, hls_window=60.0)
    synth(seg, disk, 0, 9000, audio=False)
    assert durations(seg) == [2000, 2000, 2000, 2000]


def test_stream_without_keyframes(tmp_path):
    """No keyframe at all: HLS starts after td*fragment of waiting, then cuts at td*fragment."""
    seg, disk = new_synth(tmp_path, audio=False, hls_window=60.0)
    for t in range(0, 16000, 40):
        disk.apply(seg.feed(flv.TAG_VIDEO, t, avc_frame([SLICE], key=False), False, NOW))
    assert durations(seg) == [2000] * 6                     # td 1.0 * fragment 2
    assert seg.window[0].path == "live/livestream-0.ts"


def test_window_and_cleanup(tmp_path):
    seg, disk = new_synth(tmp_path, hls_window=7.0)
    synth(seg, disk, 0, 30040, key_every=2000)
    assert [s.seq for s in seg.window] == [12, 13, 14]      # 3 * 2 s fit 7 s
    deleted = [a[1] for a in disk.log if a[0] == "delete"]
    assert deleted == [f"live/livestream-{n}.ts" for n in range(12)]
    assert sorted(os.listdir(tmp_path / "live")) == \
        ["livestream-12.ts", "livestream-13.ts", "livestream-14.ts", "livestream.m3u8"]
    assert disk.playlist().media_sequence == 12

    seg, disk = new_synth(tmp_path / "keep", hls_window=7.0, hls_cleanup=False)
    synth(seg, disk, 0, 30040, key_every=2000)
    assert len(seg.window) == 3 and not [a for a in disk.log if a[0] == "delete"]
    assert len(os.listdir(tmp_path / "keep" / "live")) == 16


def test_codec_change_cuts_with_discontinuity(tmp_path):
    seg, disk = new_synth(tmp_path)
    synth(seg, disk, 0, 1000, key_every=2000)
    disk.apply(seg.feed(flv.TAG_VIDEO, 1000, avc_sh(), True, NOW))     # same: nothing happens
    assert seg.window == []
    disk.apply(seg.feed(flv.TAG_VIDEO, 1000, avc_sh(pps=b"\x68\xee\x3c\x81"), True, NOW))
    assert len(seg.window) == 1 and 990 <= seg.window[0].duration_ms <= 1000
    synth(seg, disk, 1000, 3040, key_every=2000)
    pl = disk.playlist()
    assert [s.discontinuity for s in pl.segments] == [False, True]


def test_stream_kind_appearing_later_cuts(tmp_path):
    seg, disk = new_synth(tmp_path, audio=False)
    synth(seg, disk, 0, 1000, audio=False, key_every=1000)
    disk.apply(seg.feed(flv.TAG_AUDIO, 1000, AAC_SH, False, NOW))
    assert len(seg.window) == 1
    synth(seg, disk, 1000, 3040, key_every=1000)
    data = open(disk.path("live/livestream-1.ts"), "rb").read()
    assert set(demux(data)["pes"]) == {0x100, 0x101}
    assert seg.window[1].discontinuity


def test_names_and_entry_prefix(tmp_path):
    seg, disk = new_synth(
        tmp_path, hls_m3u8_file="[vhost]/[app]/[stream].m3u8",
        hls_ts_file="[vhost]/[app]/[stream]/[2006][01][02]-[15][04][05]-[999]/[timestamp]-[seq].ts")
    seg.utc = True
    synth(seg, disk, 0, 2040, key_every=2000, now=NOW + 0.25)
    assert seg.m3u8_path == "__defaultVhost__/live/livestream.m3u8"
    assert seg.window[0].path == \
        "__defaultVhost__/live/livestream/20231114-221320-250/1700000000250-0.ts"
    assert seg.window[0].uri == "livestream/20231114-221320-250/1700000000250-0.ts"

    cdn = "http://cdn.example.com/hls"
    for prefix, uri in ((cdn + "/", cdn + "/livestream-0.ts"),
                        (cdn, cdn + "/live/livestream-0.ts")):
        seg, disk = new_synth(tmp_path / "p", hls_entry_prefix=prefix)
        synth(seg, disk, 0, 2040, key_every=2000)
        assert seg.window[0].uri == uri

    seg, disk = new_synth(tmp_path / "flat", hls_m3u8_file="[stream].m3u8",
                          hls_ts_file="ts/[stream]-[seq].ts")
    synth(seg, disk, 0, 2040, key_every=2000)
    assert seg.window[0].uri == "ts/livestream-0.ts"


@pytest.mark.parametrize("stream", ["../../etc/passwd", "..", "/abs"])
def test_names_cannot_leave_hls_path(stream):
    with pytest.raises(HlsError):
        Segmenter(conf(hls_m3u8_file="[stream].m3u8" if stream != ".." else "[stream]"),
                  "v", "live", stream)


def test_dispose_deletes_window_and_playlist(tmp_path):
    seg, disk = new_synth(tmp_path, hls_cleanup=False, hls_window=4.0)
    synth(seg, disk, 0, 8040, key_every=2000)
    disk.apply(seg.on_unpublish())
    on_disk = set(os.listdir(tmp_path / "live"))
    assert len(on_disk) == 6                                # 5 segments (no cleanup) + m3u8
    in_window = {os.path.basename(s.path) for s in seg.window}
    assert 0 < len(in_window) < 5
    disk.apply(seg.dispose())
    assert set(os.listdir(tmp_path / "live")) == on_disk - in_window - {"livestream.m3u8"}
    assert seg.window == []
    # a later publish goes on numbering, with a fresh playlist (no discontinuity needed)
    disk.apply(seg.on_publish())
    disk.apply(seg.feed(flv.TAG_VIDEO, 0, avc_sh(), True, NOW))
    synth(seg, disk, 0, 2040, key_every=2000, audio=False)
    assert [(s.seq, s.discontinuity) for s in seg.window] == [(5, False)]


def test_unpublish_duration_adds_last_frame_interval(tmp_path):
    seg, disk = new_synth(tmp_path)
    synth(seg, disk, 0, 1000, key_every=2000)             # last video frame at 960 ms
    disk.apply(seg.on_unpublish())
    assert durations(seg) == [1000]
    assert seg.on_unpublish() == [] and durations(seg) == [1000]


def test_bad_payloads_warn_once_and_go_on(tmp_path):
    seg, disk = new_synth(tmp_path)
    synth(seg, disk, 0, 1000, key_every=2000)
    bad = b"\x27\x01\x00\x00\x00\x00\x00\x00\x30\x41"
    for t in (1000, 1040):
        disk.apply(seg.feed(flv.TAG_VIDEO, t, bad, False, NOW))
    synth(seg, disk, 1080, 2080, key_every=920)
    assert len(disk.warnings) == 1 and "does not fit" in disk.warnings[0]
    assert durations(seg) == [2000]


def test_unsupported_codecs_skipped_with_one_warning(tmp_path):
    seg, disk = new_synth(tmp_path, video=False)
    vp9 = b"\x91vp09\x82\x49\x83\x42\x00"                   # Enhanced RTMP VP9 coded frame
    for t in range(0, 4800, 40):
        disk.apply(seg.feed(flv.TAG_VIDEO, t, vp9, t == 0, NOW))
    synth(seg, disk, 0, 4800, video=False)
    assert len(disk.warnings) == 1 and "codec VP9 cannot be carried in HLS MPEG-TS" \
        in disk.warnings[0]
    assert [s.seq for s in seg.window] == [0]               # audio-only HLS (cut at 4 s)
    assert set(demux(open(disk.path("live/livestream-0.ts"), "rb").read())["pes"]) == {0x101}


def test_vcodec_vn_leaves_video_out(tmp_path):
    seg, disk = new_synth(tmp_path, hls_vcodec="vn")
    synth(seg, disk, 0, 4300, key_every=2000)               # audio only: cut at 2.1 * 2 s
    data = open(disk.path("live/livestream-0.ts"), "rb").read()
    assert set(demux(data)["pes"]) == {0x101}


# ---------------------------------------------------------------- fMP4 (hls_use_fmp4)
def boxes(data):
    """Top-level ISO BMFF boxes: [(type, body)], checking that the sizes tile the data."""
    out, pos = [], 0
    while pos < len(data):
        size, kind = struct.unpack_from(">I4s", data, pos)
        assert size >= 8 and pos + size <= len(data), (kind, size)
        out.append((kind.decode(), data[pos + 8:pos + size]))
        pos += size
    return out


def test_fmp4_segments_decode_and_playlist(tmp_path, media):
    need_tool("ffprobe")
    seg, disk = segment_file(tmp_path, media, conf(hls_use_fmp4=True, hls_window=60.0))
    text = open(disk.path("live/livestream.m3u8")).read()
    assert text.startswith("#EXTM3U\n#EXT-X-VERSION:7\n")
    assert text.count('#EXT-X-MAP:URI="livestream/init.mp4"') == 1
    pl = disk.playlist()
    assert [s.uri for s in pl.segments] == [f"livestream-{i}.m4s" for i in range(6)]
    init = open(disk.path("live/livestream/init.mp4"), "rb").read()
    assert [k for k, _ in boxes(init)] == ["ftyp", "moov"]
    frames = 0
    for i, s in enumerate(pl.segments):
        body = open(disk.path(f"live/{s.uri}"), "rb").read()
        assert [k for k, _ in boxes(body)] == ["moof", "mdat"]
        joined = tmp_path / f"joined-{i}.mp4"
        joined.write_bytes(init + body)
        codecs, _ = probe(str(joined))          # decodes without an error line
        assert codecs == ["aac", "h264"]
        out = subprocess.run(["ffmpeg", "-v", "error", "-i", str(joined), "-map", "0:v",
                              "-f", "null", "-", "-progress", "pipe:1"],
                             capture_output=True, text=True, timeout=30)
        count = int(re.findall(r"^frame=(\d+)", out.stdout, re.M)[-1])
        assert count == round(s.duration * 25)  # the playlist's duration is what is inside
        frames += count
    assert frames == 12 * 25                 # every frame of the 12 s, 25 fps source


def test_fmp4_codec_change_gets_a_new_init_and_old_ones_are_cleaned(tmp_path):
    seg, disk = new_synth(tmp_path, hls_use_fmp4=True, hls_window=4.0)
    synth(seg, disk, 0, 2040, key_every=2000)
    disk.apply(seg.feed(flv.TAG_VIDEO, 2040, avc_sh(pps=b"\x68\xee\x3c\x81"), True, NOW))
    synth(seg, disk, 2040, 4080, key_every=2000)
    text = seg.playlist().decode()
    assert text.count("#EXT-X-MAP:") == 2
    assert '#EXT-X-MAP:URI="livestream/init.mp4"' in text
    assert '#EXT-X-MAP:URI="livestream/init-2.mp4"' in text     # named after its first segment
    assert os.path.exists(disk.path("live/livestream/init.mp4"))
    synth(seg, disk, 4080, 12120, key_every=2000)           # the old init leaves the window
    assert "livestream/init.mp4\"" not in seg.playlist().decode()
    assert not os.path.exists(disk.path("live/livestream/init.mp4"))
    assert os.path.exists(disk.path("live/livestream/init-2.mp4"))
    disk.apply(seg.on_unpublish())
    disk.apply(seg.dispose())
    assert not os.path.exists(disk.path("live/livestream/init-2.mp4"))
    assert not os.path.exists(disk.path("live/livestream.m3u8"))


def test_fmp4_skips_codecs_it_cannot_carry_with_one_warning(tmp_path):
    seg, disk = new_synth(tmp_path, video=False, hls_use_fmp4=True)
    for t in range(0, 400, 20):
        disk.apply(seg.feed(flv.TAG_AUDIO, t, b"\x91fLaC\xff\xf8", False, NOW))
    assert disk.warnings == ["hls live/livestream.m3u8: audio codec FLAC cannot be carried in "
                             "HLS fMP4, audio skipped"]


def test_switching_to_fmp4_at_a_publish_starts_a_clean_playlist(tmp_path):
    seg, disk = new_synth(tmp_path)
    synth(seg, disk, 0, 4040, key_every=2000)
    disk.apply(seg.on_unpublish())
    seg.conf = conf(hls_use_fmp4=True)                      # a reload, then a new publish
    disk.apply(seg.on_publish())
    assert not os.path.exists(disk.path("live/livestream-0.ts"))
    disk.apply(seg.feed(flv.TAG_VIDEO, 0, avc_sh(), True, NOW))
    disk.apply(seg.feed(flv.TAG_AUDIO, 0, AAC_SH, False, NOW))
    synth(seg, disk, 0, 2040, key_every=2000)
    text = seg.playlist().decode()
    assert "#EXT-X-VERSION:7" in text and ".ts" not in text and "livestream-3.m4s" in text
