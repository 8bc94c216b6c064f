"""Codec facts from sequence headers (sans-IO), for the HTTP API and stats.

Rules (this module owns them):
- Input is an RTMP/FLV message payload that holds a sequence header (lib.media.frame finds the
  codec and the record): video avc1/hvc1 (legacy codec id 7/12 or Enhanced RTMP), av01, vp09;
  audio AAC (legacy or Enhanced mp4a), Opus (OpusHead). `video_record_info(codec, record)` /
  `audio_record_info(codec, record)` take the record itself. Output is a `VideoInfo` /
  `AudioInfo`, or None when the payload is not a sequence header of a codec named here.
- HEVC: profile/level from the hvcC, width/height from its SPS (ITU-T H.265 7.3.2.2:
  profile_tier_level with sub-layers, conformance window in chroma units). AV1: profile/level
  from the av1C, max_frame_width/height from the sequence header OBU in its configOBUs (AV1
  spec 5.5), 0 when absent. VP9: profile/level from the vpcC (no size in it: 0). Opus: channel
  count and input sample rate of the OpusHead.
- Never raises on peer bytes: a truncated or malformed SPS keeps what could be read (codec,
  profile and level from the configuration record; width/height 0).
- H.264 SPS (ITU-T H.264 7.3.2.1.1): emulation-prevention bytes removed, exp-Golomb fields, the
  high-profile fields (chroma format, bit depths, scaling lists skipped by walking their deltas),
  both picture order count types, interlaced (frame_mbs_only_flag 0) heights, and frame cropping
  in chroma units (CropUnitX/Y from the chroma format and field coding).
- AAC AudioSpecificConfig (ISO 14496-3 1.6.2.1): the escape for object types >= 31, the explicit
  24-bit sampling frequency, channel configuration 7 meaning 8 channels. The sample rate is the
  core rate of the config (an HE-AAC stream reports its core rate).
- Names follow SRS: codecs "H264"/"HEVC"/"AV1"/"VP9"/"AAC"/"Opus"/"MP3" (`display_name` gives
  "H.264"/"H.265"... for people); HEVC profiles Main/Main10/MainStill/RExt; AV1 Main/High/
  Professional; VP9 "0".."3"; AVC profiles Baseline/Main/Extended/High/High10/
  High422/High444 else "Other"; levels "1", "1b", "1.1" ... "6.2" else "Other"; AAC objects
  Main/LC/SSR/HE/HEv2 else "Other".
"""
import re
import struct
from typing import NamedTuple

from lib.media import frame as media_frame
from lib.media import hevc


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
    f = media_frame.parse_video(payload)
    if not f.is_sequence_header:
        return None
    return video_record_info(f.codec, f.data(payload))


def video_record_info(codec, record):
    """VideoInfo from a configuration record of `codec` (a FourCC), or None."""
    if codec == "avc1":
        return avc_info(record)
    if codec == "hvc1":
        return hevc_info(record)
    if codec == "av01":
        return av1_info(record)
    if codec == "vp09":
        return vp9_info(record)
    return None


HEVC_PROFILES = {1: "Main", 2: "Main10", 3: "MainStill", 4: "RExt"}


def hevc_info(record):
    """VideoInfo from an hvcC; width/height from its first SPS when it parses."""
    try:
        config = hevc.HevcConfig(record)
    except hevc.HevcError:
        return VideoInfo("HEVC", "Other", "Other", 0, 0)
    width = height = 0
    sps = config.arrays.get(hevc.NAL_SPS)
    if sps:
        try:
            width, height = parse_hevc_sps(sps[0])
        except ValueError:
            pass
    level = config.level_idc / 30
    return VideoInfo("HEVC", HEVC_PROFILES.get(config.profile_idc, "Other"),
                     f"{level:g}" if config.level_idc else "Other", width, height)


def parse_hevc_sps(nal):
    """(width, height) after the conformance window, from an HEVC SPS NAL unit (2-byte header
    included). Raises ValueError when it is not a complete SPS."""
    data = unescape_rbsp(nal)
    if len(data) < 3 or hevc.nal_type(data) != hevc.NAL_SPS:
        raise ValueError("not an HEVC SPS NAL unit")
    bits = _Bits(data[2:])
    bits.u(4)                                   # sps_video_parameter_set_id
    sub_layers = bits.u(3)                      # sps_max_sub_layers_minus1
    bits.u(1)                                   # sps_temporal_id_nesting_flag
    bits.u(32), bits.u(32), bits.u(32)          # general profile_tier_level: 96 bits
    present = [(bits.u(1), bits.u(1)) for _ in range(sub_layers)]
    if sub_layers:
        bits.u(2 * (8 - sub_layers))            # reserved_zero_2bits
    for profile_present, level_present in present:
        if profile_present:
            bits.u(32), bits.u(32), bits.u(24)  # 88 bits
        if level_present:
            bits.u(8)
    bits.ue()                                   # sps_seq_parameter_set_id
    chroma = bits.ue()
    if chroma == 3:
        bits.u(1)                               # separate_colour_plane_flag
    width, height = bits.ue(), bits.ue()
    if bits.u(1):                               # conformance_window_flag
        left, right, top, bottom = bits.ue(), bits.ue(), bits.ue(), bits.ue()
        sub_w = 2 if chroma in (1, 2) else 1
        sub_h = 2 if chroma == 1 else 1
        width -= sub_w * (left + right)
        height -= sub_h * (top + bottom)
    return max(0, width), max(0, height)


AV1_PROFILES = {0: "Main", 1: "High", 2: "Professional"}


def av1_info(record):
    """VideoInfo from an av1C (AV1CodecConfigurationRecord); the size from the sequence header
    OBU in its configOBUs when there is one."""
    if len(record) < 4 or record[0] != 0x81:
        return None
    profile, level_idx = record[1] >> 5, record[1] & 0x1F
    level = f"{2 + (level_idx >> 2)}.{level_idx & 3}" if level_idx < 24 else "Other"
    width = height = 0
    try:
        width, height = parse_av1_sequence_header(record[4:])
    except ValueError:
        pass
    return VideoInfo("AV1", AV1_PROFILES.get(profile, "Other"), level, width, height)


def parse_av1_sequence_header(obus):
    """(max_frame_width, max_frame_height) of the first sequence header OBU in `obus` (low
    overhead bitstream format). Raises ValueError when there is none or it is cut short."""
    pos = 0
    while pos < len(obus):
        header = obus[pos]
        obu_type = (header >> 3) & 0x0F
        pos += 2 if header & 0x04 else 1        # obu_extension_flag
        if not header & 0x02:                   # no obu_size: the OBU runs to the end
            size = len(obus) - pos
        else:
            size = shift = 0
            for _ in range(8):                  # leb128
                byte = obus[pos]
                pos += 1
                size |= (byte & 0x7F) << shift
                shift += 7
                if not byte & 0x80:
                    break
        if obu_type == 1:
            return _av1_size(_Bits(bytes(obus[pos:pos + size])))
        pos += size
    raise ValueError("no AV1 sequence header OBU")


def _av1_size(bits):
    bits.u(3)                                   # seq_profile
    bits.u(1)                                   # still_picture
    if bits.u(1):                               # reduced_still_picture_header
        bits.u(5)                               # seq_level_idx[0]
    else:
        decoder_model = False
        buffer_delay_length = 0
        if bits.u(1):                           # timing_info_present_flag
            bits.u(32), bits.u(32)              # num_units_in_display_tick, time_scale
            if bits.u(1):                       # equal_picture_interval
                zeros = 0                       # uvlc()
                while not bits.u(1):
                    zeros += 1
                    if zeros >= 32:
                        raise ValueError("uvlc too long")
                bits.u(zeros)
            if bits.u(1):                       # decoder_model_info_present_flag
                decoder_model = True
                buffer_delay_length = bits.u(5) + 1
                bits.u(32)                      # num_units_in_decoding_tick
                bits.u(5), bits.u(5)            # removal/presentation time lengths
        display_delay = bits.u(1)               # initial_display_delay_present_flag
        for _ in range(bits.u(5) + 1):          # operating points
            bits.u(12)                          # operating_point_idc
            if bits.u(5) > 7:                   # seq_level_idx
                bits.u(1)                       # seq_tier
            if decoder_model and bits.u(1):     # decoder_model_present_for_this_op
                bits.u(buffer_delay_length), bits.u(buffer_delay_length), bits.u(1)
            if display_delay and bits.u(1):
                bits.u(4)
    width_bits, height_bits = bits.u(4) + 1, bits.u(4) + 1
    return bits.u(width_bits) + 1, bits.u(height_bits) + 1


def vp9_info(record):
    """VideoInfo from a vpcC (version 1 FullBox payload); VP9 records carry no picture size."""
    if len(record) < 6:
        return None
    profile, level = record[4], record[5]
    return VideoInfo("VP9", str(profile), f"{level / 10:g}" if level else "Other", 0, 0)


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
    """AudioInfo from an audio sequence header message payload, or None."""
    f = media_frame.parse_audio(payload)
    if not f.is_sequence_header:
        return None
    return audio_record_info(f.codec, f.data(payload))


def audio_record_info(codec, record):
    """AudioInfo from a configuration record of `codec` (a FourCC), or None."""
    if codec == "mp4a":
        if not record:
            return None
        try:
            aot, rate, channels = parse_audio_specific_config(record)
        except ValueError:
            return AudioInfo("AAC", 0, 0, "Other")
        return AudioInfo("AAC", rate, channels, AAC_OBJECTS.get(aot, "Other"))
    if codec == "Opus":
        if len(record) < 19 or bytes(record[:8]) != b"OpusHead":
            return AudioInfo("Opus", 0, 0, "Other")
        channels, _, rate = struct.unpack_from("<BHI", record, 9)
        return AudioInfo("Opus", rate, channels, "Other")
    name = _SRS_AUDIO.get(codec)
    return AudioInfo(name, 0, 0, "Other") if name else None


_SRS_AUDIO = {".mp3": "MP3", "fLaC": "FLAC", "ac-3": "AC3", "ec-3": "EAC3"}
DISPLAY_NAMES = {"H264": "H.264", "HEVC": "H.265", "EAC3": "E-AC-3", "AC3": "AC-3"}


def display_name(codec):
    """The name people use for an SRS codec name ("HEVC" -> "H.265")."""
    return DISPLAY_NAMES.get(codec, codec)


def video_json(payload):
    """The HTTP API's `video` object for a video sequence header payload (None if unknown):
    SRS's keys, plus `name`, the codec's display name."""
    info = video_info(payload) if payload is not None else None
    if info is None:
        return None
    return dict(info._asdict(), name=display_name(info.codec))


def audio_json(payload):
    """The HTTP API's `audio` object for an audio sequence header payload (None if unknown)."""
    info = audio_info(payload) if payload is not None else None
    if info is None:
        return None
    return {"codec": info.codec, "sample_rate": info.sample_rate, "channel": info.channels,
            "profile": info.profile, "name": display_name(info.codec)}


__all__ = ["video_json", "audio_json", "VideoInfo", "AudioInfo", "video_info", "audio_info", "avc_info", "parse_sps",
           "video_record_info", "audio_record_info", "hevc_info", "parse_hevc_sps", "av1_info",
           "parse_av1_sequence_header", "vp9_info", "display_name",
           "parse_audio_specific_config", "unescape_rbsp", "avc_profile_name", "avc_level_name"]
