"""Sans-IO DVR: the MP4 muxer's box structure, SRS's path variables, session/segment plans."""
import os
import struct
import time

import pytest

from lib.config import parse_text
from lib.media import flv
from lib.media.dvr import DvrPlan, build_path
from lib.media.mp4 import Mp4Muxer, iter_boxes
from lib.rtmp import amf0

# Sequence headers taken from an ffmpeg-made 320x180 H.264 / 44.1 kHz mono AAC FLV.
VIDEO_SH = bytes.fromhex("17000000000142c00dffe100176742c00dda05067e7c0440000003004000000c83c5"
                         "0aa801000468ce3c80")
AUDIO_SH = bytes.fromhex("af00120856e500")
META = b"\x02\x00\x0aonMetaData\x08\x00\x00\x00\x00\x00\x00\x09"


def video(key, cts=0, size=100):
    return bytes([0x17 if key else 0x27, 1]) + cts.to_bytes(3, "big") + b"\x00" * size


def audio(size=20):
    return b"\xaf\x01" + b"\x11" * size


def stream(seconds, gop_ms=2000, fps=25, with_audio=True):
    """(type, ts, payload, is_keyframe) of a synthetic A/V stream, sequence headers first."""
    out = [(flv.TAG_SCRIPT, 0, META, False), (flv.TAG_VIDEO, 0, VIDEO_SH, True),
           (flv.TAG_AUDIO, 0, AUDIO_SH, False)]
    frame = 1000 // fps
    t_audio = 0
    for ts in range(0, seconds * 1000, frame):
        key = ts % gop_ms == 0
        out.append((flv.TAG_VIDEO, ts, video(key, cts=frame if not key else 0), key))
        while with_audio and t_audio <= ts:
            out.append((flv.TAG_AUDIO, t_audio, audio(), False))
            t_audio += 23
    return out


def boxes(data, pos=0, end=None):
    return {kind: (start, stop) for kind, start, stop in iter_boxes(data, pos, end)}


def child(data, path):
    start, stop = 0, len(data)
    for kind in path:
        start, stop = boxes(data, start, stop)[kind]
        if kind == b"stsd":
            start += 8
        elif kind in (b"avc1",):
            start += 78
        elif kind == b"mp4a":
            start += 28
    return start, stop


def mux(items):
    m = Mp4Muxer()
    data = bytearray(m.header())
    for t, ts, p, _ in items:
        data += m.write(t, ts, p)
    tail, patches = m.finish()
    data += tail
    for offset, patch in patches:
        data[offset:offset + len(patch)] = patch
    return bytes(data), m


# ------------------------------------------------------------------------------------ MP4
def test_mp4_top_level_boxes_and_mdat_size():
    data, m = mux(stream(4))
    top = list(iter_boxes(data))
    assert [k for k, _, _ in top] == [b"ftyp", b"mdat", b"moov"]
    assert data[8:12] == b"isom"
    _, body, end = top[1]
    video_bytes = sum(m.video.sizes) + sum(m.audio.sizes)
    assert end - body == video_bytes          # patched 64-bit size covers exactly the samples


def test_mp4_tracks_sample_tables():
    items = stream(4)
    data, m = mux(items)
    traks = [(s, e) for k, s, e in iter_boxes(data, *boxes(data)[b"moov"]) if k == b"trak"]
    assert len(traks) == 2
    n_video = sum(1 for t, _, p, _ in items if t == flv.TAG_VIDEO and p[1] == 1)
    n_audio = sum(1 for t, _, p, _ in items if t == flv.TAG_AUDIO and p[1] == 1)
    for (start, end), n, handler in ((traks[0], n_video, b"vide"), (traks[1], n_audio, b"soun")):
        trak = data[start:end]
        hs, _ = child(trak, [b"mdia", b"hdlr"])
        assert trak[hs + 8:hs + 12] == handler
        ss, _ = child(trak, [b"mdia", b"minf", b"stbl", b"stsz"])
        assert struct.unpack_from(">II", trak, ss + 4) == (0, n)
        cs, _ = child(trak, [b"mdia", b"minf", b"stbl", b"co64"])
        assert struct.unpack_from(">I", trak, cs + 4)[0] == n
        first_offset = struct.unpack_from(">Q", trak, cs + 8)[0]
        assert data[first_offset:first_offset + 4] == (b"\x00" * 4 if handler == b"vide"
                                                       else b"\x11" * 4)
    video = data[traks[0][0]:traks[0][1]]
    ks, _ = child(video, [b"mdia", b"minf", b"stbl", b"stss"])
    assert struct.unpack_from(">III", video, ks + 4) == (2, 1, 51)   # keyframes at 0 s and 2 s
    cs, _ = child(video, [b"mdia", b"minf", b"stbl", b"stsd", b"avc1", b"avcC"])
    assert video[cs:cs + 4] == VIDEO_SH[5:9]
    ts, _ = child(video, [b"tkhd"])
    assert struct.unpack_from(">II", video, ts + 76) == (320 << 16, 180 << 16)
    audio_trak = data[traks[1][0]:traks[1][1]]
    es, ee = child(audio_trak, [b"mdia", b"minf", b"stbl", b"stsd", b"mp4a", b"esds"])
    assert AUDIO_SH[2:] in audio_trak[es:ee]


def test_mp4_durations_and_ctts():
    data, m = mux(stream(6))
    assert abs(m.duration() - 6000) <= 40
    mvhd_start, _ = boxes(data, *boxes(data)[b"moov"])[b"mvhd"]
    timescale, duration = struct.unpack_from(">II", data, mvhd_start + 12)
    assert timescale == 1000 and abs(duration - 6000) <= 40
    assert b"ctts" in data                     # B-frame style composition offsets kept


def test_mp4_skips_other_codecs_and_needs_sequence_header():
    m = Mp4Muxer()
    m.header()
    assert m.write(flv.TAG_VIDEO, 0, video(True)) == b""          # no sequence header yet
    assert m.write(flv.TAG_AUDIO, 0, b"\x2f\xff\xfb") == b""       # MP3: not muxed
    assert m.skipped == 1
    moov, _ = m.finish()
    assert list(k for k, _, _ in iter_boxes(moov)) == [b"moov"]


# ------------------------------------------------------------------------------------ paths
def test_build_path_variables():
    now = time.mktime((2026, 3, 4, 5, 6, 7, 0, 0, -1)) + 0.089
    path = build_path("/d/[vhost]/[app]/[stream]/[2006]/[01]/[02]/[15].[04].[05].[999].flv",
                      "v", "live", "s", now)
    assert path == "/d/v/live/s/2026/03/04/05.06.07.089.flv"
    assert build_path("/d/[stream].[timestamp].mp4", "v", "a", "s", 12.5) == "/d/s.12500.mp4"
    assert build_path("./objs", "v", "a", "s", 1.0) == "./objs/s.1000.flv"   # a directory


# ------------------------------------------------------------------------------------ plans
def dvr_conf(**kw):
    body = " ".join(f"{k} {v};" for k, v in kw.items())
    return parse_text(f"vhost __defaultVhost__ {{ dvr {{ enabled on; {body} }} }}").vhost("x").dvr


def run(plan, items, now=100.0):
    actions = plan.on_publish(now)
    for t, ts, p, key in items:
        actions += plan.feed(t, ts, p, key, now)
    return actions + plan.on_unpublish()


def test_session_plan_one_file_per_publish():
    plan = DvrPlan(dvr_conf(dvr_path="/r/[stream].flv"), "v", "live", "s")
    actions = run(plan, stream(5))
    kinds = [a[0] for a in actions]
    assert kinds.count("open") == 1 and kinds.count("close") == 1
    assert actions[0] == ("open", "/r/s.flv")
    data = bytearray(b"".join(a[1] for a in actions if a[0] == "write"))
    for offset, patch in actions[-1][2]:
        data[offset:offset + len(patch)] = patch
    tags = list(flv.iter_tags(bytes(data)))
    assert tags[0][0] == flv.TAG_SCRIPT and tags[1][2] == VIDEO_SH
    assert abs(actions[-1][3] - 5000) <= 60
    name, meta = amf0.decode_all(tags[0][2])      # SRS patches onMetaData at close
    assert name == "onMetaData" and abs(meta["duration"] - 5.0) <= 0.06
    assert meta["filesize"] == len(data)


@pytest.mark.parametrize("wait_keyframe", ["on", "off"])
def test_segment_plan_cuts_after_duration(wait_keyframe):
    plan = DvrPlan(dvr_conf(dvr_plan="segment", dvr_duration=3, dvr_wait_keyframe=wait_keyframe,
                            dvr_path="/r/[stream].flv"), "v", "live", "s")
    actions = run(plan, stream(10))
    closes = [a[3] for a in actions if a[0] == "close"]
    files, current = [], None
    for a in actions:
        if a[0] == "open":
            current = bytearray()
            files.append(current)
        elif a[0] == "write":
            current += a[1]
    if wait_keyframe == "on":                  # cuts at the keyframes at 4 s and 8 s
        assert [round(d / 1000) for d in closes] == [4, 4, 2]
        for data in files:
            tags = [t for t in flv.iter_tags(bytes(data)) if t[0] == flv.TAG_VIDEO]
            assert tags[0][2] == VIDEO_SH and flv.is_video_keyframe(tags[1][2])
            assert tags[1][1] == 0                          # each file restarts at 0
    else:
        assert len(closes) == 4 and all(abs(d - 3000) <= 60 for d in closes[:3])
    for data in files[1:]:                     # every segment starts with its headers
        tags = list(flv.iter_tags(bytes(data)))
        assert [t[0] for t in tags[:3]] == [flv.TAG_SCRIPT, flv.TAG_VIDEO, flv.TAG_AUDIO]


def test_plan_waits_for_keyframe_and_mp4_by_extension():
    plan = DvrPlan(dvr_conf(dvr_path="/r/[stream].mp4"), "v", "live", "s")
    items = [i for i in stream(4) if not (i[0] == flv.TAG_VIDEO and i[1] == 0 and i[2][1] == 1)]
    actions = run(plan, items)                 # the first keyframe is missing: wait for 2 s
    assert actions[0] == ("open", "/r/s.mp4")
    tail, patches = actions[-1][1], actions[-1][2]
    assert tail[4:8] == b"moov" and patches


# ----------------------------------------------------------------------------- server helpers
def test_dvr_apply_filter_and_unique_names(tmp_path):
    from lib.server.core.files import open_new
    from lib.server.dvr.sink import applies
    assert applies(dvr_conf(), "live", "s")
    only = dvr_conf(dvr_apply="live/a other/b")
    assert applies(only, "live", "a") and applies(only, "other", "b")
    assert not applies(only, "live", "b")
    path = tmp_path / "s.flv"
    name, f = open_new(str(path))
    f.close()
    assert name == str(path) and os.path.exists(name + ".tmp")
    path.write_bytes(b"x")
    (tmp_path / "s-1.flv.tmp").write_bytes(b"x")
    name, f = open_new(str(path))
    f.close()
    assert name == str(tmp_path / "s-2.flv")


def test_on_dvr_body_has_srs_fields_in_order():
    from lib.server.core.hooks import HookContext, build_body
    ctx = HookContext(client_id="c1", ip="1.2.3.4", vhost="__defaultVhost__", app="live",
                      stream="s", param="?k=v", tc_url="rtmp://h/live", server_id="vid-1",
                      service_id="svc", stream_id="sid", cwd="/srv", file="./rec/s.flv")
    body = build_body("on_dvr", ctx)
    assert list(body) == ["server_id", "service_id", "action", "client_id", "ip", "vhost", "app",
                          "tcUrl", "stream", "param", "cwd", "file", "stream_url", "stream_id"]
    assert body["action"] == "on_dvr" and body["file"] == "./rec/s.flv"
    assert body["cwd"] == "/srv" and body["stream_url"] == "/live/s"


@pytest.mark.parametrize("app,stream", [("live", ".."), ("../../etc", "s"), ("live/../..", "s"),
                                        ("/abs", "s"), ("live", ".")])
def test_names_that_would_leave_dvr_path_are_refused(app, stream):
    from lib.media.dvr import DvrPathError
    with pytest.raises(DvrPathError):
        build_path("/rec/[app]/[stream].flv", "v", app, stream, 1.0)
    plan = DvrPlan(dvr_conf(dvr_path="/rec/[app]/[stream].flv"), "v", app, stream)
    with pytest.raises(DvrPathError):
        plan.on_publish(1.0)
    assert build_path("/rec/[app]/[stream].flv", "v", "a/b", "s..x", 1.0) == "/rec/a/b/s..x.flv"
