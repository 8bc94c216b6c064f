"""lib.media.codec_info: H.264 SPS and AAC AudioSpecificConfig parsing.

Real sequence headers come from FLVs that ffmpeg/libx264 writes (profiles, odd sizes that need
frame cropping, 4:2:2/4:4:4, interlaced); hand vectors are built bit by bit from the H.264 and
ISO 14496-3 syntax tables to reach what libx264 never writes (POC type 1, scaling lists, separate
colour planes, escapes).
"""
import subprocess

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lib.media import flv
from lib.media.codec_info import (AudioInfo, VideoInfo, audio_info, avc_level_name, parse_sps,
                                  unescape_rbsp, video_info)
from tests.conftest import need_tool


# ------------------------------------------------------------------ helpers
class BitWriter:
    def __init__(self):
        self.bits = []

    def u(self, n, value):
        self.bits += [(value >> (n - 1 - i)) & 1 for i in range(n)]
        return self

    def ue(self, value):
        value += 1
        n = value.bit_length()
        return self.u(n - 1, 0).u(n, value)

    def se(self, value):
        return self.ue(2 * value - 1 if value > 0 else -2 * value)

    def bytes(self, trailing=True):
        bits = self.bits + ([1] if trailing else [])
        bits += [0] * (-len(bits) % 8)
        return bytes(int("".join(map(str, bits[i:i + 8])), 2) for i in range(0, len(bits), 8))


def escape(rbsp):
    """Insert emulation-prevention bytes (the inverse of unescape_rbsp)."""
    out, zeros = bytearray(), 0
    for b in rbsp:
        if zeros >= 2 and b <= 3:
            out.append(3)
            zeros = 0
        out.append(b)
        zeros = zeros + 1 if b == 0 else 0
    return bytes(out)


def sps(profile, level, body, flags=0):
    return escape(bytes([0x67, profile, flags, level]) + body.bytes())


def avc_payload(sps_nal, fourcc=None):
    record = bytes([1, sps_nal[1], sps_nal[2], sps_nal[3], 0xFF, 0xE1])
    record += len(sps_nal).to_bytes(2, "big") + sps_nal + b"\x01\x00\x04\x68\xce\x3c\x80"
    if fourcc:
        return bytes([0x90]) + fourcc + record
    return b"\x17\x00\x00\x00\x00" + record


def tail(w, width_mbs, height_units, frame_mbs_only=1, crop=None):
    """From max_num_ref_frames to the end of an SPS."""
    w.ue(1).u(1, 0).ue(width_mbs - 1).ue(height_units - 1).u(1, frame_mbs_only)
    if not frame_mbs_only:
        w.u(1, 0)                              # mb_adaptive_frame_field_flag
    w.u(1, 1)                                  # direct_8x8_inference_flag
    if crop:
        w.u(1, 1)
        for v in crop:
            w.ue(v)
    else:
        w.u(1, 0)
    return w.u(1, 0)                           # vui_parameters_present_flag


def sequence_headers(path):
    video = audio = None
    for tag_type, _, payload in flv.iter_tags(path.read_bytes()):
        if tag_type == flv.TAG_VIDEO and flv.is_video_sequence_header(payload):
            video = payload
        elif tag_type == flv.TAG_AUDIO and flv.is_audio_sequence_header(payload):
            audio = payload
    return video, audio


# ------------------------------------------------------------------ real headers (ffmpeg)
@pytest.mark.parametrize("profile,pix_fmt,size,extra,expected", [
    ("baseline", "yuv420p", "176x144", [], "Baseline"),
    ("main", "yuv420p", "330x250", [], "Main"),          # 21x16 MBs, cropped to 330x250
    ("high", "yuv420p", "1920x1080", [], "High"),        # the classic 1088 -> 1080 crop
    ("high", "yuv420p", "320x240", ["-flags", "+ildct+ilme"], "High"),   # field coding
    ("high422", "yuv422p", "330x250", [], "High422"),
    ("high444", "yuv444p", "330x250", [], "High444"),
])
def test_sps_from_libx264(tmp_path, profile, pix_fmt, size, extra, expected):
    need_tool("ffmpeg")
    out = tmp_path / "v.flv"
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", f"testsrc2=size={size}:rate=25",
                    "-frames:v", "2", "-c:v", "libx264", "-profile:v", profile, "-pix_fmt", pix_fmt,
                    *extra, "-f", "flv", str(out)], check=True, timeout=60)
    level = int(subprocess.run(["ffprobe", "-v", "error", "-show_entries", "stream=level", "-of",
                                "csv=p=0", str(out)], capture_output=True, text=True).stdout)
    video, _ = sequence_headers(out)
    width, height = map(int, size.split("x"))
    level_name = f"{level // 10}.{level % 10}".removesuffix(".0")
    assert video_info(video) == VideoInfo("H264", expected, level_name, width, height)


def test_real_stream_header(media_file):
    """The suite's shared test stream: 320x240 ultrafast (constrained baseline), AAC mono."""
    video, audio = sequence_headers(media_file)
    info = video_info(video)
    assert (info.codec, info.profile, info.width, info.height) == ("H264", "Baseline", 320, 240)
    assert audio_info(audio) == AudioInfo("AAC", 44100, 1, "LC")


@pytest.mark.parametrize("rate,channels", [(44100, 2), (48000, 1), (22050, 6), (8000, 2)])
def test_asc_from_ffmpeg_aac(tmp_path, rate, channels):
    need_tool("ffmpeg")
    out = tmp_path / "a.flv"
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", f"sine=sample_rate={rate}",
                    "-t", "0.2", "-ac", str(channels), "-c:a", "aac", "-f", "flv", str(out)],
                   check=True, timeout=60)
    _, audio = sequence_headers(out)
    assert audio_info(audio) == AudioInfo("AAC", rate, channels, "LC")


# ------------------------------------------------------------------ hand vectors
def test_baseline_poc_type_2_no_cropping():
    w = BitWriter().ue(0).ue(0).ue(2)                       # sps id, frame num, poc type 2
    nal = sps(66, 30, tail(w, 40, 30))
    assert parse_sps(nal)[3:] == (640, 480)
    assert video_info(avc_payload(nal)) == VideoInfo("H264", "Baseline", "3", 640, 480)


def test_main_poc_type_1_and_cropping():
    w = BitWriter().ue(0).ue(4).ue(1)                       # poc type 1
    w.u(1, 0).se(-3).se(5).ue(2).se(7).se(-11)              # offsets and a 2-entry cycle
    nal = sps(77, 41, tail(w, 120, 68, crop=(0, 0, 0, 4)))
    assert video_info(avc_payload(nal)) == VideoInfo("H264", "Main", "4.1", 1920, 1080)


def test_high_with_scaling_lists():
    w = BitWriter().ue(0).ue(1)                             # sps id, chroma_format_idc 4:2:0
    w.ue(0).ue(0).u(1, 0).u(1, 1)                           # 8-bit, scaling matrix present
    for i in range(8):
        w.u(1, i in (0, 6))                                 # lists 0 (4x4) and 6 (8x8) present
        if i == 0:
            for delta in [3, -2] + [0] * 14:
                w.se(delta)
        if i == 6:
            w.se(-8)                                        # nextScale 0: rest of the list is implied
    w.ue(0).ue(0).ue(0)                                     # frame num, poc type 0, poc lsb
    nal = sps(100, 31, tail(w, 80, 45, crop=(1, 2, 0, 3)))
    assert video_info(avc_payload(nal)) == VideoInfo("H264", "High", "3.1", 1280 - 6, 720 - 6)


def test_high444_separate_colour_planes_crop_in_luma_samples():
    # 4:4:4 with separate colour planes, 10-bit, no scaling matrix
    w = BitWriter().ue(0).ue(3).u(1, 1).ue(2).ue(2).u(1, 0).u(1, 0)
    w.ue(0).ue(2)
    nal = sps(244, 40, tail(w, 20, 15, crop=(1, 2, 3, 4)))
    assert video_info(avc_payload(nal)) == VideoInfo("H264", "High444", "4", 320 - 3, 240 - 7)


def test_interlaced_height_and_crop_units():
    w = BitWriter().ue(0).ue(0).ue(2)
    nal = sps(77, 30, tail(w, 45, 18, frame_mbs_only=0, crop=(0, 0, 0, 2)))  # 18*2*16 = 576
    assert parse_sps(nal)[3:] == (720, 576 - 8)             # crop unit y = 2 * 2 for fields


def test_emulation_prevention():
    assert unescape_rbsp(b"\x00\x00\x03\x01") == b"\x00\x00\x01"
    assert unescape_rbsp(b"\x00\x00\x03\x00\x00\x03") == b"\x00\x00\x00\x00"
    assert unescape_rbsp(b"\x00\x00\x03\x03") == b"\x00\x00\x03"
    w = BitWriter().ue(63).ue(0).ue(2)                      # level 0 + a long code: 00 00 02...
    raw = bytes([0x67, 66, 0, 0]) + tail(w, 22, 18).bytes()
    nal = escape(raw)
    assert nal != raw
    assert parse_sps(nal)[3:] == (352, 288)


def test_level_names():
    assert avc_level_name(9) == "1b"
    assert avc_level_name(11, constraint_set3=True, profile_idc=66) == "1b"
    assert avc_level_name(11, constraint_set3=True, profile_idc=100) == "1.1"
    assert [avc_level_name(n) for n in (10, 13, 20, 31, 42, 52, 62)] == \
        ["1", "1.3", "2", "3.1", "4.2", "5.2", "6.2"]
    assert avc_level_name(0) == avc_level_name(63) == "Other"


def test_other_video_forms():
    high = BitWriter().ue(0).ue(1).ue(0).ue(0).u(1, 0).u(1, 0).ue(0).ue(2)
    nal = sps(100, 40, tail(high, 20, 15))
    assert video_info(avc_payload(nal, fourcc=b"avc1")) == VideoInfo("H264", "High", "4", 320, 240)
    assert video_info(bytes([0x90]) + b"hvc1" + b"\x01" * 30).codec == "HEVC"
    assert video_info(b"\x1c\x00\x00\x00\x00" + b"\x01" * 30).codec == "HEVC"
    assert video_info(b"\x17\x01\x00\x00\x00\x00") is None          # a NALU, not a header
    assert video_info(b"\x12\x00\x00") is None                      # Sorenson H.263
    # a broken SPS keeps the record's profile and level
    broken = avc_payload(b"\x67\x64\x00\x1f\x80")
    assert video_info(broken) == VideoInfo("H264", "High", "3.1", 0, 0)


def test_audio_hand_vectors():
    def asc(w):
        return b"\xaf\x00" + w.bytes(trailing=False)
    assert audio_info(b"\xaf\x00\x12\x10") == AudioInfo("AAC", 44100, 2, "LC")
    he = BitWriter().u(5, 5).u(4, 6).u(4, 2).u(4, 3).u(5, 2)        # HE: core 24 kHz, ext 48 kHz
    assert audio_info(asc(he)) == AudioInfo("AAC", 24000, 2, "HE")
    escaped = BitWriter().u(5, 31).u(6, 10).u(4, 4).u(4, 1)          # object type 42
    assert audio_info(asc(escaped)) == AudioInfo("AAC", 44100, 1, "Other")
    explicit = BitWriter().u(5, 2).u(4, 15).u(24, 12345).u(4, 7)     # explicit rate, 7.1
    assert audio_info(asc(explicit)) == AudioInfo("AAC", 12345, 8, "LC")
    reserved = BitWriter().u(5, 2).u(4, 13).u(4, 2)
    assert audio_info(asc(reserved)) == AudioInfo("AAC", 0, 0, "Other")
    assert audio_info(b"\xaf\x01\x21\x10") is None                  # raw AAC frame
    assert audio_info(b"\x2f\x00\x12\x10") is None                  # MP3


# ------------------------------------------------------------------ never raises
def test_every_truncation_of_real_headers(media_file):
    video, audio = sequence_headers(media_file)
    for n in range(len(video) + 1):
        video_info(video[:n])
    for n in range(len(audio) + 1):
        audio_info(audio[:n])


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=64),
       st.sampled_from([b"\x17\x00\x00\x00\x00\x01\x64\x00\x1f\xff\xe1\x00\x20\x67",
                        b"\x90avc1\x01\x42\x00\x1e\xff\xe1\x00\x10\x67", b"\xaf\x00", b""]))
def test_random_bytes_never_raise(data, prefix):
    video_info(prefix + data)
    audio_info(prefix + data)


# ------------------------------------------------------------------ Enhanced RTMP codecs
def test_vp9_opus_and_av1_records():
    vpcc = bytes([1, 0, 0, 0]) + bytes([1, 31, 0x82, 1, 1, 1, 0, 0])   # vpcC v1: profile 1, 3.1
    assert video_info(b"\x90vp09" + vpcc) == VideoInfo("VP9", "1", "3.1", 0, 0)
    head = b"OpusHead" + bytes([1, 2]) + (312).to_bytes(2, "little") + \
        (44100).to_bytes(4, "little") + bytes(3)
    assert audio_info(b"\x90Opus" + head) == AudioInfo("Opus", 44100, 2, "Other")
    # av1C: marker/version 0x81, seq_profile 1 (High) | seq_level_idx_0 9 (level 4.1), no OBUs
    assert video_info(b"\x90av01" + bytes([0x81, 0x29, 0x0C, 0x00])) == \
        VideoInfo("AV1", "High", "4.1", 0, 0)
    assert video_info(b"\x91av01\x00") is None and audio_info(b"\x91Opus\x00") is None
