"""Sans-IO media helpers: jitter, GOP cache, FLV inspection and building."""
from lib.media import flv
from lib.media.gop import PURE_AUDIO_LIMIT, GopCache
from lib.media.jitter import DEFAULT_FRAME_MS, Jitter


def per_track_monotonic(pairs):
    last = {}
    for kind, ts in pairs:
        if ts < last.get(kind, -1):
            return False
        last[kind] = ts
    return True


def test_full_jitter_restarts_after_largest_timestamp():
    j = Jitter("full")
    out = [("v", j.correct(0)), ("a", j.correct(20)), ("v", j.correct(40)), ("a", j.correct(43))]
    assert [t for _, t in out] == [0, 20, 40, 43]
    j.restart()                                    # new publisher starting at 0 again
    out += [("v", j.correct(0)), ("a", j.correct(0)), ("v", j.correct(40))]
    assert out[4][1] == 43 + DEFAULT_FRAME_MS
    assert per_track_monotonic(out)


def test_full_jitter_clamps_big_jumps_both_ways():
    j = Jitter("full")
    seq = [j.correct(t) for t in (1000, 1040, 90000, 90040, 500, 540)]
    assert seq == [0, 40, 50, 90, 100, 140]


def test_zero_and_off():
    z = Jitter("zero")
    assert [z.correct(t) for t in (5000, 5040, 5020, 90000)] == [0, 40, 20, 85000]   # no clamp
    z.restart()              # a republish: the new publisher starts right after the last (issue 20)
    assert [z.correct(t) for t in (100, 140)] == [85000 + DEFAULT_FRAME_MS, 85040 + DEFAULT_FRAME_MS]
    o = Jitter("off")
    assert o.correct(123456) == 123456
    o.restart()
    assert o.correct(7) == 7                       # off: the new publisher's own timestamps


WRAP = 1 << 32


def test_every_mode_follows_a_publisher_across_the_32_bit_wrap():
    """Issue 20 point 11: RTMP timestamps are 32-bit; a publisher running 49.7 days (or starting
    near the top) wraps to 0. The source's timeline goes on (larger than 2^32: the encoders keep
    the low 32 bits), with the publisher's real deltas, in every mode."""
    wire = [(WRAP - 80 + 40 * i) % WRAP for i in range(6)]     # ..., 2^32-40, 0, 40, 80, ...
    full, zero, off = Jitter("full"), Jitter("zero"), Jitter("off")
    assert [full.correct(t) for t in wire] == [0, 40, 80, 120, 160, 200]
    assert [zero.correct(t) for t in wire] == [0, 40, 80, 120, 160, 200]
    assert [off.correct(t) for t in wire] == [WRAP - 80 + 40 * i for i in range(6)]
    assert [t % WRAP for t in (off.last_out, off.max_out)] == [wire[-1], wire[-1]]


def test_gop_cache_keeps_from_last_keyframe():
    g = GopCache()
    for item, is_video, key in [("k1", True, True), ("a", False, False), ("p", True, False),
                                ("k2", True, True), ("a2", False, False)]:
        g.add(item, is_video, key)
    assert g.items == ["k2", "a2"]


def test_gop_cache_pure_audio_and_max_frames_bounded():
    g = GopCache(max_frames=10)
    for i in range(25):
        g.add(i, True, i == 0)
    assert len(g.items) <= 10
    a = GopCache()
    for i in range(PURE_AUDIO_LIMIT * 3):
        a.add(i, False, False)
    assert len(a.items) <= PURE_AUDIO_LIMIT + 1
    off = GopCache(enabled=False)
    off.add(1, True, True)
    assert off.items == []


def test_flv_inspection_never_raises():
    assert flv.is_video_keyframe(b"\x17\x01") and not flv.is_video_keyframe(b"\x27\x01")
    assert flv.is_video_sequence_header(b"\x17\x00") and not flv.is_video_sequence_header(b"\x17")
    assert flv.is_audio_sequence_header(b"\xaf\x00") and not flv.is_audio_sequence_header(b"\xaf\x01")
    for empty in (b"", b"\x00"):
        assert not flv.is_video_keyframe(empty[:0])
        assert not flv.is_video_sequence_header(empty)
        assert not flv.is_audio_sequence_header(empty)


def test_flv_tag_round_trip_with_extended_timestamp():
    data = flv.file_header() + flv.tag(9, 0x01020304, b"\x17\x01abc") + flv.tag(8, 5, b"\xaf\x01")
    assert list(flv.iter_tags(data)) == [(9, 0x01020304, b"\x17\x01abc"), (8, 5, b"\xaf\x01")]
