"""lib.media.frame: media facts of legacy and Enhanced RTMP audio/video payloads.

The payloads are written byte by byte from the Enhanced RTMP v2 spec (veovera/enhanced-rtmp:
ExVideoTagHeader, ExAudioTagHeader, ModEx, Multitrack) and the legacy FLV spec; real ffmpeg
output is covered by tests/test_codecs_e2e.py. Every prefix of every sample, and random bytes,
must parse without raising. The source keeps Enhanced RTMP sequence starts as its headers.
"""
from hypothesis import given
from hypothesis import strategies as st

from lib.media import flv
from lib.media import frame as F
from lib.rtmp.chunk import ChunkReader
from lib.server.core.consumer import Consumer
from lib.server.core.source import SourceRegistry
from tests.test_source import drain, pair, vhost_conf


def video(first, *parts):
    return bytes([first]) + b"".join(parts)


def facts(f):
    return (f.codec, f.frame_type, f.packet, f.cts, f.offset, f.end)


# ------------------------------------------------------------------ legacy video
def test_legacy_avc_sequence_header_frames_and_negative_cts():
    sh = video(0x17, b"\x00\x00\x00\x00", b"\x01\x64\x00\x1f")
    f = F.parse_video(sh)
    assert facts(f) == ("avc1", 1, F.SEQUENCE_START, 0, 5, 9)
    assert f.is_sequence_header and not f.is_keyframe and not f.enhanced
    f = F.parse_video(video(0x27, b"\x01\xff\xff\xd8", b"nalu"))
    assert facts(f) == ("avc1", 2, F.CODED_FRAMES, -40, 5, 9) and not f.is_keyframe
    f = F.parse_video(video(0x17, b"\x01\x00\x00\x50", b"idr"))
    assert f.is_keyframe and f.cts == 80 and f.name == "H.264"
    assert F.parse_video(video(0x17, b"\x02\x00\x00\x00")).is_sequence_end


def test_legacy_hevc_and_other_codecs():
    f = F.parse_video(video(0x1C, b"\x01\x00\x00\x00", b"x"))
    assert (f.codec, f.name, f.is_keyframe) == ("hvc1", "H.265", True)
    f = F.parse_video(video(0x22, b"h263 data"))              # Sorenson H.263 inter frame
    assert facts(f) == ("h263", 2, F.CODED_FRAMES, 0, 1, 10)
    assert F.parse_video(video(0x14, b"vp6")).is_keyframe


# ------------------------------------------------------------------ enhanced video
def test_enhanced_coded_frames_carry_cts_only_for_avc_and_hevc():
    f = F.parse_video(video(0x91, b"hvc1", b"\x00\x00\x50", b"data"))   # key, CodedFrames
    assert facts(f) == ("hvc1", 1, F.CODED_FRAMES, 80, 8, 12) and f.is_keyframe and f.enhanced
    f = F.parse_video(video(0xA3, b"hvc1", b"data"))                    # inter, CodedFramesX
    assert facts(f) == ("hvc1", 2, F.CODED_FRAMES_X, 0, 5, 9) and not f.is_keyframe
    f = F.parse_video(video(0x91, b"av01", b"\x12\x00obus"))            # AV1: no CTS field
    assert facts(f) == ("av01", 1, F.CODED_FRAMES, 0, 5, 11) and f.name == "AV1"
    f = F.parse_video(video(0x93, b"hvc1", b"k"))
    assert f.is_keyframe and f.is_coded_frame
    assert F.parse_video(video(0xA1, b"vp09", b"f")).name == "VP9"


def test_enhanced_sequence_start_end_metadata_and_commands():
    f = F.parse_video(video(0x90, b"av01", b"\x81\x00\x0c\x00"))
    assert facts(f) == ("av01", 1, F.SEQUENCE_START, 0, 5, 9) and f.is_sequence_header
    f = F.parse_video(video(0x92, b"hvc1"))
    assert f.is_sequence_end and not f.is_keyframe and not f.is_sequence_header
    f = F.parse_video(video(0xD4, b"hvc1", b"\x02\x00\x09colorInfo"))   # info frame + Metadata
    assert (f.frame_type, f.packet, f.is_keyframe) == (5, F.METADATA, False)
    f = F.parse_video(video(0xD0, b"\x00"))                             # command frame
    assert (f.packet, f.codec, f.is_keyframe) == (F.COMMAND, "", False)
    f = F.parse_video(video(0x95, b"avc1", b"mpeg2ts descriptor"))
    assert f.packet == F.MPEG2TS_SEQUENCE_START and not f.is_sequence_header


def test_mod_ex_prefixes_are_skipped():
    # ModEx: UI8 size-1 (2 -> 3 bytes of TimestampOffsetNano), UB4 modExType 0 | UB4 CodedFrames
    p = video(0x97, b"\x02", b"\x00\x01\x02", b"\x01", b"av01", b"obu")
    assert facts(F.parse_video(p)) == ("av01", 1, F.CODED_FRAMES, 0, 10, 13)
    # two ModEx in a row; the second has a 16-bit size (UI8 255 then UI16 size-1 = 299)
    big = bytes(300)
    p = video(0x97, b"\x00", b"\x00", b"\x07", b"\xff", (299).to_bytes(2, "big"), big, b"\x03",
              b"hvc1", b"x")
    f = F.parse_video(p)
    assert (f.codec, f.packet, f.offset, f.end) == ("hvc1", F.CODED_FRAMES_X, len(p) - 1, len(p))
    assert F.parse_audio(b"\x97\x00\x00\x01Opus\xfc").packet == F.CODED_FRAMES


def test_multitrack_describes_the_first_track():
    # OneTrack: UB4 multitrackType 0 | UB4 CodedFrames, FourCC, trackId, then the body (CTS...)
    p = video(0x96, b"\x01", b"hvc1", b"\x00", b"\x00\x00\x28", b"nal")
    f = F.parse_video(p)
    assert facts(f) == ("hvc1", 1, F.CODED_FRAMES, 40, 10, 13) and f.multitrack
    assert f.is_keyframe
    # ManyTracks: shared FourCC, per track trackId + UI24 size
    p = video(0x96, b"\x13", b"av01", b"\x00", b"\x00\x00\x02", b"AA", b"\x01",
              b"\x00\x00\x03", b"BBB")
    f = F.parse_video(p)
    assert (f.codec, f.packet, bytes(f.data(p))) == ("av01", F.CODED_FRAMES_X, b"AA")
    # ManyTracksManyCodecs: FourCC per track
    p = video(0x96, b"\x20", b"vp09", b"\x00", b"\x00\x00\x01", b"V", b"av01", b"\x01",
              b"\x00\x00\x01", b"A")
    f = F.parse_video(p)
    assert (f.codec, f.packet, bytes(f.data(p))) == ("vp09", F.SEQUENCE_START, b"V")
    # audio multitrack (packet type 5)
    p = b"\x95" + b"\x11" + b"Opus" + b"\x00" + b"\x00\x00\x02" + b"o1" + b"\x01\x00\x00\x01o"
    f = F.parse_audio(p)
    assert (f.codec, f.packet, bytes(f.data(p)), f.multitrack) == ("Opus", 1, b"o1", True)


# ------------------------------------------------------------------ audio
def test_legacy_audio():
    f = F.parse_audio(b"\xaf\x00\x12\x10")
    assert facts(f) == ("mp4a", 0, F.SEQUENCE_START, 0, 2, 4) and f.name == "AAC"
    f = F.parse_audio(b"\xaf\x01raw")
    assert f.is_coded_frame and not f.is_keyframe and f.offset == 2
    f = F.parse_audio(b"\x2fmp3frame")
    assert (f.codec, f.name, f.packet, f.offset) == (".mp3", "MP3", F.CODED_FRAMES, 1)
    assert F.parse_audio(b"\xe2mp3").codec == ".mp3"                  # MP3 8 kHz
    assert F.parse_audio(b"\x72alaw").codec == "alaw"


def test_enhanced_audio():
    f = F.parse_audio(b"\x90OpusOpusHead\x01\x02")
    assert facts(f) == ("Opus", 0, F.SEQUENCE_START, 0, 5, 15) and f.is_sequence_header
    assert F.parse_audio(b"\x91fLaCframe").name == "FLAC"
    assert F.parse_audio(b"\x91ac-3x").name == "AC-3"
    assert F.parse_audio(b"\x91ec-3x").name == "E-AC-3"
    assert F.parse_audio(b"\x91.mp3x").name == "MP3"
    f = F.parse_audio(b"\x91mp4araw")
    assert (f.codec, f.offset, f.cts) == ("mp4a", 5, 0)
    assert F.parse_audio(b"\x92Opus").is_sequence_end
    f = F.parse_audio(b"\x94Opus\x00\x02")                             # MultichannelConfig
    assert f.packet == F.MULTICHANNEL_CONFIG and not f.is_sequence_header
    assert not f.is_coded_frame


# ------------------------------------------------------------------ robustness
SAMPLES = [
    video(0x17, b"\x00\x00\x00\x00\x01\x64"), video(0x91, b"hvc1", b"\x00\x00\x50", b"d"),
    video(0x97, b"\x00", b"\x00", b"\x01", b"av01", b"o"),
    video(0x96, b"\x13", b"av01", b"\x00", b"\x00\x00\x02", b"AA"),
    video(0x96, b"\x20", b"vp09", b"\x00", b"\x00\x00\x01", b"V"),
    video(0x97, b"\xff", b"\x01\x00", bytes(10)), video(0xD0, b"\x01"),
    b"\x95\x11Opus\x00\x00\x00\x02o1", b"\x90OpusOpusHead", b"\xaf\x00\x12\x10",
]


def test_every_prefix_parses_without_raising():
    for sample in SAMPLES:
        for n in range(len(sample) + 1):
            for parse in (F.parse_video, F.parse_audio):
                f = parse(sample[:n])
                assert 0 <= f.offset <= f.end <= n, (sample[:n], f)
                if n < len(sample) and f.packet != F.OTHER:
                    assert f.end <= n


@given(st.binary(max_size=40))
def test_random_bytes_never_raise(data):
    for parse in (F.parse_video, F.parse_audio):
        f = parse(data)
        assert 0 <= f.offset <= f.end <= len(data)
    assert flv.is_video_keyframe(data) in (True, False)


def test_parse_by_message_type():
    assert F.parse(9, b"\x17\x01\x00\x00\x00").is_keyframe
    assert F.parse(8, b"\xaf\x00\x12\x10").is_sequence_header
    assert F.parse(18, b"\x02\x00\x0aonMetaData") is None


# ------------------------------------------------------------------ facts at the source

def test_enhanced_rtmp_sequence_headers_reach_late_players_after_gop_resets():
    """Enhanced RTMP (AV1 + Opus): the sequence starts are kept as the source's headers (Opus
    used to sink into the GOP cache and be lost at the next keyframe); the first coded video a
    late player gets is a keyframe."""
    reg = SourceRegistry()
    src = reg.fetch_or_create("v/a/s", "v", "a", "s", vhost_conf(queue_length=10))
    src.on_publish(object())
    av1_sh = b"\x90av01\x81\x00\x0c\x00"
    opus_sh = b"\x90OpusOpusHead\x01\x01\x38\x01\x80\xbb\x00\x00\x00\x00\x00"
    src.on_media(9, 0, av1_sh)
    src.on_media(8, 0, opus_sh)
    for i in range(60):                     # key every 25 frames: the GOP cache resets twice
        first = 0x91 if i % 25 == 0 else 0xA1
        src.on_media(9, i * 40, bytes([first]) + b"av01" + bytes([i]) * 50)
        src.on_media(8, i * 40 + 5, b"\x91Opus" + b"o" * 40)
    assert src.video_sh.payload == av1_sh and src.audio_sh.payload == opus_sh
    assert src.video_sh.is_sequence_header and src.video_sh.frame.codec == "av01"
    a, b = pair()
    src.attach(Consumer(a))
    src.flush_all()
    got = drain(b, ChunkReader(60000))
    payloads = [bytes(m.payload) for m in got]
    assert payloads[:2] == [av1_sh, opus_sh]
    first_video = next(p for p in payloads[2:] if p[:5] == b"\xa1av01" or p[:5] == b"\x91av01")
    assert first_video[0] == 0x91 and first_video[5] == 50  # the keyframe of frame 50


def test_quick_facts_agree_with_the_full_parse_for_every_first_two_bytes():
    """The ingest path reads keyframe/sequence header with quick_facts and parses the Frame
    later: both must say the same for any payload quick_facts answers."""
    answered = 0
    for type_id in (8, 9, 18):
        for first in range(256):
            for rest in (b"", b"\x00", b"\x01", b"\x02", b"\x03", b"\xff"):
                for tail in (b"", b"\x00\x00\x10abcd"):
                    payload = bytes([first]) + rest + tail
                    quick = F.quick_facts(type_id, payload)
                    if quick is None:
                        continue
                    answered += 1
                    full = F.parse(type_id, payload)
                    assert quick == (type_id == 9 and full.is_keyframe, full.is_sequence_header), payload
    assert answered > 4000           # legacy audio and video are answered without a parse
