"""Codec facts from sequence headers (sans-IO), for the HTTP API and stats.

Rules (this module owns them):
- Input is an RTMP/FLV message payload that holds a sequence header: an AVC (or HEVC) video
  sequence header, legacy (codec id 7/12) or enhanced RTMP (fourcc avc1/hvc1), or an AAC audio
  sequence header. Output is a `VideoInfo` / `AudioInfo`, or None when the payload is not a
  sequence header of a codec named here.
- Never raises on peer bytes: a truncated or malformed SPS keeps what could be read (codec,
  profile and level from the configuration record; width/height 0).
- H.264 SPS (ITU-T H.264 7.3.2.1.1): emulation-prevention bytes removed, exp-Golomb fields, the
  high-profile fields (chroma format, bit depths, scaling lists skipped by walking their deltas),
  both picture order count types, interlaced (frame_mbs_only_flag 0) heights, and frame cropping
  in chroma units (CropUnitX/Y from the chroma format and field coding).
- AAC AudioSpecificConfig (ISO 14496-3 1.6.2.1): the escape for object types >= 31, the explicit
  24-bit sampling frequency, channel configuration 7 meaning 8 channels. The sample rate is the
  core rate of the config (an HE-AAC stream reports its core rate).
- Names follow SRS: codecs "H264"/"HEVC"/"AAC"; AVC profiles Baseline/Main/Extended/High/High10/
  High422/High444 else "Other"; levels "1", "1b", "1.1" ... "6.2" else "Other"; AAC objects
  Main/LC/SSR/HE/HEv2 else "Other".
"""
import re
from typing import NamedTuple


class VideoInfo(NamedTuple):
    codec: str
    profile: str
    level: str
    width: int
    height: int


class AudioInfo(NamedTuple):
    codec: str
    sample_rate: int
    channels: int
    profile: str


AVC_PROFILES = {66: "Baseline", 77: "Main", 88: "Extended", 100: "High", 110: "High10",
                122: "High422", 244: "High444"}
# profiles whose SPS carries chroma_format_idc, bit depths and scaling matrices
_HIGH_PROFILES = frozenset({100, 110, 122, 244, 44, 83, 86, 118, 128, 138, 139, 134, 135})
_LEVELS = frozenset({10, 11, 12, 13, 20, 21, 22, 30, 31, 32, 40, 41, 42, 50, 51, 52, 60, 61, 62})

AAC_OBJECTS = {1: "Main", 2: "LC", 3: "SSR", 5: "HE", 29: "HEv2"}
AAC_SAMPLE_RATES = (96000, 88200, 64000, 48000, 44100, 32000, 24000, 22050, 16000, 12000,
                    11025, 8000, 7350)
_FLV_AVC, _FLV_HEVC, _FLV_AAC = 7, 12, 10
_EMULATION = re.compile(b"\x00\x00\x03")


class _Bits:
    """MSB-first bit reader; reading past the end raises ValueError."""

    def __init__(self, data):
        self.value = int.from_bytes(data, "big")
        self.left = len(data) * 8

    def u(self, n):
        if n > self.left:
            raise ValueError("truncated")
        self.left -= n
        return (self.value >> self.left) & ((1 << n) - 1)

    def ue(self):
        zeros = 0
        while self.u(1) == 0:
            zeros += 1
            if zeros > 31:
                raise ValueError("exp-Golomb code too long")
        return (1 << zeros) - 1 + self.u(zeros)

    def se(self):
        k = self.ue()
        return (k + 1) // 2 if k & 1 else -(k // 2)


def unescape_rbsp(nal):
    """NAL unit payload without its emulation-prevention bytes (00 00 03 -> 00 00)."""
    return _EMULATION.sub(b"\x00\x00", bytes(nal))


def avc_profile_name(profile_idc):
    return AVC_PROFILES.get(profile_idc, "Other")


def avc_level_name(level_idc, constraint_set3=False, profile_idc=0):
    if level_idc == 9 or (level_idc == 11 and constraint_set3 and profile_idc in (66, 77, 88)):
        return "1b"
    if level_idc not in _LEVELS:
        return "Other"
    major, minor = divmod(level_idc, 10)
    return f"{major}.{minor}" if minor else str(major)


def _skip_scaling_list(bits, size):
    """Read past a scaling_list(): deltas until the list ends or a next scale of 0 makes the
    rest implied (only the deltas are in the bitstream)."""
    scale = 8
    for _ in range(size):
        scale = (scale + bits.se()) % 256
        if scale == 0:
            return


def parse_sps(nal):
    """(profile_idc, constraint_flags, level_idc, width, height) from an SPS NAL unit (header
    byte included). Raises ValueError when it is not a complete SPS."""
    data = unescape_rbsp(nal)
    if len(data) < 4 or data[0] & 0x1F != 7:
        raise ValueError("not an SPS NAL unit")
    profile, flags, level = data[1], data[2], data[3]
    bits = _Bits(data[4:])
    bits.ue()                                   # seq_parameter_set_id
    chroma_format = 1
    separate_planes = 0
    if profile in _HIGH_PROFILES:
        chroma_format = bits.ue()
        if chroma_format == 3:
            separate_planes = bits.u(1)
        bits.ue()                               # bit_depth_luma_minus8
        bits.ue()                               # bit_depth_chroma_minus8
        bits.u(1)                               # qpprime_y_zero_transform_bypass_flag
        if bits.u(1):                           # seq_scaling_matrix_present_flag
            for i in range(8 if chroma_format != 3 else 12):
                if bits.u(1):
                    _skip_scaling_list(bits, 16 if i < 6 else 64)
    bits.ue()                                   # log2_max_frame_num_minus4
    poc_type = bits.ue()
    if poc_type == 0:
        bits.ue()                               # log2_max_pic_order_cnt_lsb_minus4
    elif poc_type == 1:
        bits.u(1)                               # delta_pic_order_always_zero_flag
        bits.se()                               # offset_for_non_ref_pic
        bits.se()                               # offset_for_top_to_bottom_field
        for _ in range(bits.ue()):              # num_ref_frames_in_pic_order_cnt_cycle
            bits.se()
    bits.ue()                                   # max_num_ref_frames
    bits.u(1)                                   # gaps_in_frame_num_value_allowed_flag
    width_mbs = bits.ue() + 1
    height_map_units = bits.ue() + 1
    frame_mbs_only = bits.u(1)
    if not frame_mbs_only:
        bits.u(1)                               # mb_adaptive_frame_field_flag
    bits.u(1)                                   # direct_8x8_inference_flag
    width = width_mbs * 16
    height = (2 - frame_mbs_only) * height_map_units * 16
    if bits.u(1):                               # frame_cropping_flag
        left, right, top, bottom = bits.ue(), bits.ue(), bits.ue(), bits.ue()
        chroma_array_type = 0 if separate_planes else chroma_format
        if chroma_array_type == 0:
            unit_x, unit_y = 1, 2 - frame_mbs_only
        else:
            sub_w = 1 if chroma_array_type == 3 else 2
            sub_h = 2 if chroma_array_type == 1 else 1
            unit_x, unit_y = sub_w, sub_h * (2 - frame_mbs_only)
        width -= unit_x * (left + right)
        height -= unit_y * (top + bottom)
    return profile, flags, level, max(0, width), max(0, height)


def avc_info(record):
    """VideoInfo from an AVCDecoderConfigurationRecord, or None if it is too short."""
    if len(record) < 6:
        return None
    profile, flags, level = record[1], record[2], record[3]
    width = height = 0
    if record[5] & 0x1F and len(record) >= 8:
        size = int.from_bytes(record[6:8], "big")
        try:
            profile, flags, level, width, height = parse_sps(record[8:8 + size])
        except ValueError:
            pass                                # keep the record's profile and level
    return VideoInfo("H264", avc_profile_name(profile),
                     avc_level_name(level, bool(flags & 0x10), profile), width, height)


def video_info(payload):
    """VideoInfo from a video sequence header message payload, or None."""
    if len(payload) < 2:
        return None
    first = payload[0]
    if first & 0x80:                            # enhanced RTMP: 4-byte fourcc, no cts
        if first & 0x0F != 0 or len(payload) < 5:
            return None
        fourcc, record = bytes(payload[1:5]), payload[5:]
        codec = {b"avc1": _FLV_AVC, b"hvc1": _FLV_HEVC}.get(fourcc)
    else:
        if payload[1] != 0:
            return None
        codec, record = first & 0x0F, payload[5:]
    if codec == _FLV_AVC:
        return avc_info(record)
    if codec == _FLV_HEVC:
        return VideoInfo("HEVC", "Other", "Other", 0, 0)
    return None


def parse_audio_specific_config(data):
    """(object_type, sample_rate, channels) from an AAC AudioSpecificConfig. Raises ValueError."""
    bits = _Bits(bytes(data[:8]))
    aot = bits.u(5)
    if aot == 31:
        aot = 32 + bits.u(6)
    index = bits.u(4)
    if index == 15:
        rate = bits.u(24)
    elif index < len(AAC_SAMPLE_RATES):
        rate = AAC_SAMPLE_RATES[index]
    else:
        raise ValueError(f"reserved sampling frequency index {index}")
    config = bits.u(4)
    return aot, rate, 8 if config == 7 else config


def audio_info(payload):
    """AudioInfo from an AAC sequence header message payload, or None."""
    if len(payload) < 3 or payload[0] >> 4 != _FLV_AAC or payload[1] != 0:
        return None
    try:
        aot, rate, channels = parse_audio_specific_config(payload[2:])
    except ValueError:
        return AudioInfo("AAC", 0, 0, "Other")
    return AudioInfo("AAC", rate, channels, AAC_OBJECTS.get(aot, "Other"))


__all__ = ["VideoInfo", "AudioInfo", "video_info", "audio_info", "avc_info", "parse_sps",
           "parse_audio_specific_config", "unescape_rbsp", "avc_profile_name", "avc_level_name"]
