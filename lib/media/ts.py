"""MPEG-TS muxer for H.264/H.265 + AAC (sans-IO: codec data in, 188-byte packets out).

Rules:
- PIDs as SRS: PAT 0, PMT 0x1001, video 0x100 (stream type 0x1b H.264, 0x24 H.265 as SRS 6;
  PES stream id 0xe0), audio 0x101 (stream type 0x0f, PES stream id 0xc0). `header()` returns PAT + PMT for the streams
  whose sequence header was seen; PAT/PMT sections end with the MPEG-2 CRC32.
- Timestamps: FLV ms -> 90 kHz. DTS = timestamp, PTS = DTS + composition time (signed 24-bit in
  the AVC video tag); both are written PTS_OFFSET (0.7 s) after the PCR so a decoder has room to
  buffer, and wrap at 33 bits. DTS is left out of the PES header when it equals PTS.
- PCR on the first packet of every video PES (every audio PES when there is no video), so it
  repeats within about 100 ms. random_access_indicator on keyframes (on audio when audio-only).
- AVC/HEVC: length-prefixed NALUs become Annex-B; each access unit starts with an AUD (AVC type
  9, HEVC type 35; any AUD in the input is dropped); the parameter sets of the configuration
  record (AVC SPS/PPS; HEVC VPS/SPS/PPS) go before the first IDR (HEVC: IRAP, types 16-23)
  slice unless the access unit carries its own.
- The Segmenter drives the muxer with media facts (lib.media.frame): configure(kind, codec,
  record), video(ts, cts, key, data), audio(ts, data). mux_video/mux_audio take whole FLV
  payloads (parsed with lib.media.frame) for callers without facts.
- AAC: each raw frame gets a 7-byte ADTS header built from the AudioSpecificConfig. Frames are
  merged into one PES while they are contiguous and span less than AUDIO_PES_MAX_MS;
  `flush()` returns what is pending (call it before closing a segment).
- Each PID has its own 4-bit continuity counter, kept across segments. The last packet of a PES
  is filled up with adaptation-field stuffing (0xff).
- Packetizing (a PES into 188-byte packets) is the hot path of HLS and HTTP-TS: the full
  packets between the first and the last are made in bulk (headers from a table by continuity
  counter, payloads cut by one struct call), or by the optional C accelerator
  lib/media/_tsc.c when built (scripts/build_accel.py) and SRSEDGE_PURE_PYTHON is unset;
  `IMPLEMENTATION` says which. `_packetize` is the reference (tests/test_ts_accel.py);
  tests/test_hls_golden.py pins the bytes of whole segments.
- Frames of a kind whose sequence header has not been seen, end-of-sequence, and payloads of
  other codecs give b"". Malformed sequence headers or frames raise TsError (a
  ProtocolError); the muxer stays usable.
"""
import functools
import os
import struct

from lib.media import frame as media_frame
from lib.media import hevc
from lib.rtmp.errors import ProtocolError


def _select():
    """The C packetizer (lib/media/_tsc.c) when built and not SRSEDGE_PURE_PYTHON, else None."""
    if os.environ.get("SRSEDGE_PURE_PYTHON"):
        return None
    try:
        from lib.media import _tsc
    except ImportError:
        return None
    return _tsc


_tsc = _select()
IMPLEMENTATION = "c" if _tsc is not None else "python"

PACKET_SIZE = 188
PID_PAT = 0x0000
PID_PMT = 0x1001
PID_VIDEO = 0x100
PID_AUDIO = 0x101
STREAM_TYPE_H264 = 0x1B
STREAM_TYPE_H265 = 0x24
STREAM_TYPE_AAC = 0x0F
SID_VIDEO = 0xE0
SID_AUDIO = 0xC0
PTS_OFFSET = 63000          # 0.7 s at 90 kHz between PCR and PTS/DTS
PTS_MASK = (1 << 33) - 1
AUDIO_PES_MAX_MS = 90       # merged AAC frames per PES span less than this

NAL_IDR = 5
NAL_SPS = 7
NAL_PPS = 8
NAL_AUD = 9
START_CODE = b"\x00\x00\x00\x01"
AUD = START_CODE + b"\x09\xf0"          # primary_pic_type 7: any slice type
HEVC_AUD = START_CODE + b"\x46\x01\x50"  # type 35, pic_type 2: any slice type
VIDEO_CODECS = ("avc1", "hvc1")
AUDIO_CODECS = ("mp4a",)

AAC_SAMPLE_RATES = (96000, 88200, 64000, 48000, 44100, 32000, 24000, 22050, 16000, 12000,
                    11025, 8000, 7350)


class TsError(ProtocolError):
    """A malformed AVC/AAC payload or sequence header."""


# ------------------------------------------------------------------ CRC32 (MPEG-2)
def _crc_table():
    table = []
    for i in range(256):
        crc = i << 24
        for _ in range(8):
            crc = ((crc << 1) ^ 0x04C11DB7) if crc & 0x80000000 else (crc << 1)
        table.append(crc & 0xFFFFFFFF)
    return table


_CRC_TABLE = _crc_table()


def crc32_mpeg2(data):
    """CRC-32/MPEG-2: polynomial 0x04c11db7, init 0xffffffff, no reflection, no final xor."""
    crc = 0xFFFFFFFF
    for b in data:
        crc = ((crc << 8) & 0xFFFFFFFF) ^ _CRC_TABLE[(crc >> 24) ^ b]
    return crc


# ------------------------------------------------------------------ field encoders
def encode_pts(prefix, value):
    """A 33-bit PTS/DTS in the 5-byte PES layout; `prefix` is 0b0010 (PTS only), 0b0011 (PTS of
    PTS+DTS) or 0b0001 (DTS)."""
    return _pts_bits(prefix, value).to_bytes(5, "big")


def _pts_bits(prefix, value):
    """encode_pts as a 40-bit integer: prefix(4) v[32:30] 1 v[29:15] 1 v[14:0] 1."""
    v = value & PTS_MASK
    return ((prefix << 36) | ((v >> 30) << 33) | (((v >> 15) & 0x7FFF) << 17)
            | ((v & 0x7FFF) << 1) | 0x100010001)


def encode_pcr(base):
    """PCR: 33-bit base, 6 reserved bits, 9-bit extension 0."""
    v = base & PTS_MASK
    return bytes((v >> 25 & 0xFF, v >> 17 & 0xFF, v >> 9 & 0xFF, v >> 1 & 0xFF,
                  ((v & 1) << 7) | 0x7E, 0))


def adts_header(object_type, sampling_index, channels, raw_size):
    """The 7-byte ADTS header (MPEG-4, no CRC) of one raw AAC frame."""
    length = raw_size + 7
    if length > 0x1FFF:
        raise TsError(f"AAC frame of {raw_size} bytes is too large for ADTS")
    profile = object_type - 1
    return bytes((
        0xFF, 0xF1,
        (profile << 6) | (sampling_index << 2) | (channels >> 2),
        ((channels & 3) << 6) | (length >> 11),
        (length >> 3) & 0xFF,
        ((length & 7) << 5) | 0x1F,
        0xFC,
    ))


# ------------------------------------------------------------------ codec configs
class AvcConfig:
    """What the muxer needs from an AVCDecoderConfigurationRecord."""
    __slots__ = ("nal_length_size", "sps", "pps")
    stream_type = STREAM_TYPE_H264
    aud = AUD
    # NAL unit types for the muxer's loop: type = (first byte >> shift) & mask
    type_shift, type_mask, aud_type, sps_type, pps_type = 0, 0x1F, NAL_AUD, NAL_SPS, NAL_PPS
    random_access = (NAL_IDR, NAL_IDR)

    @staticmethod
    def nal_type(nal):
        return nal[0] & 0x1F

    @staticmethod
    def is_random_access(nal_type):
        return nal_type == NAL_IDR

    @staticmethod
    def is_aud(nal_type):
        return nal_type == NAL_AUD

    def has_parameter_sets(self, types):
        return NAL_SPS in types and NAL_PPS in types

    def parameter_sets(self):
        return self.sps + self.pps

    def __init__(self, record):
        """`record` is the configuration record (the FLV payload after its 5-byte header)."""
        try:
            if len(record) < 7:
                raise TsError("AVC sequence header too short")
            self.nal_length_size = (record[4] & 0x03) + 1
            if self.nal_length_size == 3:
                raise TsError("AVC NAL length size 3 is not allowed")
            self.sps, pos = _param_sets(record, 6, record[5] & 0x1F, "SPS")
            self.pps, pos = _param_sets(record, pos + 1, record[pos], "PPS")
        except IndexError:
            raise TsError("AVC sequence header truncated") from None


def _param_sets(record, pos, count, what):
    sets = []
    for _ in range(count):
        size = int.from_bytes(record[pos:pos + 2], "big")
        data = bytes(record[pos + 2:pos + 2 + size])
        if len(data) != size or size == 0:
            raise TsError(f"AVC sequence header: {what} truncated")
        sets.append(data)
        pos += 2 + size
    return sets, pos


class HevcConfig(hevc.HevcConfig):
    """What the muxer needs from an hvcC (the parsing is lib.media.hevc's)."""
    __slots__ = ()
    stream_type = STREAM_TYPE_H265
    aud = HEVC_AUD
    nal_type = staticmethod(hevc.nal_type)
    type_shift, type_mask, aud_type, sps_type, pps_type = 1, 0x3F, hevc.NAL_AUD, hevc.NAL_SPS, \
        hevc.NAL_PPS
    random_access = (hevc.IRAP_FIRST, hevc.IRAP_LAST)

    def __init__(self, record):
        try:
            super().__init__(record)
        except hevc.HevcError as e:
            raise TsError(str(e)) from None

    @staticmethod
    def is_random_access(nal_type):
        return hevc.IRAP_FIRST <= nal_type <= hevc.IRAP_LAST

    @staticmethod
    def is_aud(nal_type):
        return nal_type == hevc.NAL_AUD

    def has_parameter_sets(self, types):
        return hevc.NAL_SPS in types and hevc.NAL_PPS in types


_VIDEO_CONFIGS = {"avc1": AvcConfig, "hvc1": HevcConfig}


class AacConfig:
    """What ADTS needs from an AudioSpecificConfig."""
    __slots__ = ("object_type", "sampling_index", "channels", "adts")

    def __init__(self, asc):
        bits = _Bits(asc)
        try:
            object_type = bits.object_type()
            index = bits.sampling_index()
            channels = bits.read(4)
            if object_type in (5, 29):      # explicit SBR/PS: the core config follows
                bits.sampling_index()       # the extension (output) rate
                object_type = bits.object_type()
        except IndexError:
            raise TsError("AAC sequence header truncated") from None
        if not 1 <= object_type <= 4:
            raise TsError(f"AAC object type {object_type} cannot be carried in ADTS")
        if channels > 7:
            raise TsError(f"AAC channel configuration {channels} is not valid")
        self.object_type, self.sampling_index, self.channels = object_type, index, channels
        # adts_header as a 56-bit integer without its frame length (bits 13..25)
        self.adts = int.from_bytes(adts_header(object_type, index, channels, 0), "big") \
            & ~(0x1FFF << 13)


class _Bits:
    def __init__(self, data):
        self.data, self.pos = data, 0

    def read(self, n):
        value = 0
        for _ in range(n):
            byte = self.data[self.pos >> 3]
            value = (value << 1) | ((byte >> (7 - (self.pos & 7))) & 1)
            self.pos += 1
        return value

    def object_type(self):
        value = self.read(5)
        return 32 + self.read(6) if value == 31 else value

    def sampling_index(self):
        index = self.read(4)
        if index == 15:                     # explicit frequency: ADTS needs an index
            rate = self.read(24)
            if rate not in AAC_SAMPLE_RATES:
                raise TsError(f"AAC sample rate {rate} cannot be carried in ADTS")
            index = AAC_SAMPLE_RATES.index(rate)
        if index >= len(AAC_SAMPLE_RATES):
            raise TsError(f"AAC sampling frequency index {index} is not valid")
        return index


# ------------------------------------------------------------------ the muxer
class TsMuxer:
    def __init__(self):
        self.avc = None             # AvcConfig/HevcConfig once the video sequence header came
        self._params = []           # its parameter sets as Annex-B parts
        self.aac = None             # AacConfig once the audio sequence header came
        self.cc = {}                # pid -> next continuity counter
        self._audio = []            # pending ADTS frames (bytes parts) of the next audio PES
        self._audio_first = 0       # ms timestamp of the first pending frame
        self._audio_last = 0

    @property
    def has_video(self):
        return self.avc is not None

    @property
    def has_audio(self):
        return self.aac is not None

    def carry_over(self, old):
        """A new publish on the same playlist: continuity counters go on."""
        self.cc = old.cc

    @staticmethod
    def supports(kind, codec):
        return codec in (VIDEO_CODECS if kind == "video" else AUDIO_CODECS)

    # -------------------------------------------------------------- sequence headers
    def configure(self, kind, codec, record):
        """A sequence header's configuration record (avcC/hvcC, AudioSpecificConfig)."""
        if kind == "video":
            if codec not in _VIDEO_CONFIGS:
                raise TsError(f"video codec {codec} cannot be carried in MPEG-TS")
            config = _VIDEO_CONFIGS[codec](record)
            self.avc, self._params = config, [x for ps in config.parameter_sets()
                                              for x in (START_CODE, ps)]
        else:
            if codec != "mp4a":
                raise TsError(f"audio codec {codec} cannot be carried in MPEG-TS")
            self.aac = AacConfig(record)

    def on_video_sequence_header(self, payload):
        f = media_frame.parse_video(payload)
        if not f.is_sequence_header or f.codec not in _VIDEO_CONFIGS:
            raise TsError("not an AVC/HEVC sequence header")
        self.configure("video", f.codec, f.data(payload))

    def on_audio_sequence_header(self, payload):
        f = media_frame.parse_audio(payload)
        if not f.is_sequence_header or f.codec != "mp4a":
            raise TsError("not an AAC sequence header")
        self.configure("audio", f.codec, f.data(payload))

    # -------------------------------------------------------------- PSI
    def header(self):
        """PAT + PMT (two packets), written at the start of each segment."""
        pat = struct.pack(">HH", 1, 0xE000 | PID_PMT)                 # program 1 -> PMT
        streams = b""
        if self.has_video:
            streams += struct.pack(">BHH", self.avc.stream_type, 0xE000 | PID_VIDEO, 0xF000)
        if self.has_audio:
            streams += struct.pack(">BHH", STREAM_TYPE_AAC, 0xE000 | PID_AUDIO, 0xF000)
        pcr_pid = PID_VIDEO if self.has_video or not self.has_audio else PID_AUDIO
        pmt = struct.pack(">HH", 0xE000 | pcr_pid, 0xF000) + streams
        return self._section(PID_PAT, 0x00, 1, pat) + self._section(PID_PMT, 0x02, 1, pmt)

    def _section(self, pid, table_id, table_ext, body):
        length = 5 + len(body) + 4          # after section_length: ext, version, numbers, CRC
        section = struct.pack(">BHHBBB", table_id, 0xB000 | length, table_ext, 0xC1, 0, 0) + body
        section += struct.pack(">I", crc32_mpeg2(section))
        packet = self._ts_header(pid, True, 0x10) + b"\x00" + section   # pointer_field 0
        return packet + b"\xff" * (PACKET_SIZE - len(packet))

    def _ts_header(self, pid, start, afc):
        cc = self.cc.get(pid, 0)
        self.cc[pid] = (cc + 1) & 0x0F
        return bytes((0x47, (0x40 if start else 0) | (pid >> 8), pid & 0xFF, afc | cc))

    # -------------------------------------------------------------- video
    def mux_video(self, ts_ms, payload):
        """TS packets for one FLV video payload (b"" when there is nothing to write)."""
        f = media_frame.parse_video(payload)
        if f.codec not in _VIDEO_CONFIGS:
            return b""
        if f.is_sequence_header:
            self.configure("video", f.codec, f.data(payload))
            return b""
        if not f.is_coded_frame or f.offset >= f.end:
            return b""
        return self.video(ts_ms, f.cts, f.is_keyframe, f.data(payload)) or b""

    def video(self, ts_ms, cts, keyframe, data):
        """TS packets for one coded video frame, or None when there is nothing to write."""
        if self.avc is None:
            return None
        parts = self._annexb(memoryview(data))
        if not parts:
            return None
        dts = ts_ms * 90
        pts = dts + cts * 90
        return self._pes(PID_VIDEO, SID_VIDEO, parts, pts, dts, pcr=dts, rai=keyframe)

    def _annexb(self, data):
        """AUD, then the NALUs with start codes; parameter sets before the first IDR/IRAP if
        the access unit does not carry its own."""
        config = self.avc
        size = config.nal_length_size
        shift, mask = config.type_shift, config.type_mask
        aud_type, sps_type, pps_type = config.aud_type, config.sps_type, config.pps_type
        ra_first, ra_last = config.random_access
        parts = [config.aud]
        have = 0                    # 1: an SPS, 2: a PPS in the access unit
        ra_at = 0                   # where the first random access NALU's parts start
        pos, end = 0, len(data)
        while pos < end:
            if pos + size > end:
                raise TsError("AVC frame: truncated NALU length")
            length = int.from_bytes(data[pos:pos + size], "big")
            pos += size
            if length == 0 or pos + length > end:
                raise TsError(f"AVC frame: NALU length {length} does not fit the frame")
            nal_type = (data[pos] >> shift) & mask
            if nal_type != aud_type:
                if nal_type == sps_type:
                    have |= 1
                elif nal_type == pps_type:
                    have |= 2
                elif not ra_at and ra_first <= nal_type <= ra_last:
                    ra_at = len(parts)
                parts += (START_CODE, data[pos:pos + length])
            pos += length
        if ra_at and have != 3:
            parts[ra_at:ra_at] = self._params
        return parts if len(parts) > 1 else []

    # -------------------------------------------------------------- audio
    def mux_audio(self, ts_ms, payload):
        """Queue one FLV AAC payload; returns the packets of a finished audio PES, or b""."""
        f = media_frame.parse_audio(payload)
        if f.codec != "mp4a":
            return b""                      # not AAC
        if f.is_sequence_header:
            self.configure("audio", f.codec, f.data(payload))
            return b""
        return self.audio(ts_ms, f.data(payload)) if f.is_coded_frame else b""

    def audio(self, ts_ms, raw):
        """Queue one raw AAC frame; returns the packets of a finished audio PES, or b""."""
        if self.aac is None or not raw:
            return b""
        length = len(raw) + 7
        if length > 0x1FFF:
            raise TsError(f"AAC frame of {length - 7} bytes is too large for ADTS")
        adts = (self.aac.adts | (length << 13)).to_bytes(7, "big")
        out = b""
        if self._audio and not (0 <= ts_ms - self._audio_last <= AUDIO_PES_MAX_MS
                                and ts_ms - self._audio_first < AUDIO_PES_MAX_MS):
            out = self.flush()
        if not self._audio:
            self._audio_first = ts_ms
        self._audio_last = ts_ms
        self._audio += (adts, raw)
        return out

    def flush(self):
        """Packets of the pending audio PES (b"" if none)."""
        if not self._audio:
            return b""
        parts, self._audio = self._audio, []
        pts = self._audio_first * 90
        return self._pes(PID_AUDIO, SID_AUDIO, parts, pts, pts,
                         pcr=None if self.has_video else pts, rai=not self.has_video)

    # -------------------------------------------------------------- PES -> packets
    def _pes(self, pid, stream_id, parts, pts, dts, pcr, rai):
        pts += PTS_OFFSET
        dts += PTS_OFFSET
        size = sum(map(len, parts))
        if pts == dts:
            size += 8
            if stream_id == SID_VIDEO or size > 0xFFFF:
                size = 0                    # unbounded: allowed for video in TS
            head = ((((0x1 << 8 | stream_id) << 16 | size) << 24 | 0x808005) << 40
                    | _pts_bits(0b0010, pts)).to_bytes(14, "big")
        else:
            size += 13
            if stream_id == SID_VIDEO or size > 0xFFFF:
                size = 0
            head = ((((0x1 << 8 | stream_id) << 16 | size) << 24 | 0x80C00A) << 80
                    | _pts_bits(0b0011, pts) << 40 | _pts_bits(0b0001, dts)).to_bytes(19, "big")
        if _tsc is not None:
            cc = self.cc.get(pid, 0)
            out = _tsc.packets(pid, cc, _adaptation(pcr, rai), head, parts)
            self.cc[pid] = (cc + len(out) // PACKET_SIZE) & 0x0F
            return out
        return self._packetize(pid, b"".join([head, *parts]), pcr, rai)

    def _packetize(self, pid, pes, pcr, rai):
        """188-byte packets of one PES (bytes): the first with the adaptation field (PCR,
        random access) if any, the last filled up with stuffing. The full packets between
        are made in bulk: their 4-byte headers repeat every 16 packets (the continuity
        counter), their payloads are cut by one struct call."""
        cc = self.cc.get(pid, 0)
        end = len(pes)
        af = _adaptation(pcr, rai)
        room = PACKET_SIZE - 5 - len(af) if af else PACKET_SIZE - 4
        heads = _heads(pid)
        if end <= room:                     # one packet: first and last
            self.cc[pid] = (cc + 1) & 0x0F
            stuffing = room - end
            if af:
                return (heads[32 + cc] + bytes((len(af) + stuffing,)) + af
                        + b"\xff" * stuffing + pes)
            return (heads[32 + cc] if stuffing else heads[48 + cc]) + _STUFFING[stuffing] + pes
        first = heads[32 + cc] + bytes((len(af),)) + af if af else heads[48 + cc]
        full, tail = divmod(end - room, PAYLOAD_SIZE)
        cc += 1
        out = [None] * (2 * full + 2)
        out[0] = first
        out[1] = pes[:room]
        if full:
            k = cc & 0x0F
            out[2::2] = (heads[:16] * ((k + full) // 16 + 1))[k:k + full] if full > 16 - k \
                else heads[k:k + full]
            out[3::2] = _cutter(full).unpack_from(pes, room)
            cc += full
        if tail:
            stuffing = PAYLOAD_SIZE - tail
            out.append(heads[16 + (cc & 0x0F)] + _STUFFING[stuffing])
            out.append(pes[end - tail:])
            cc += 1
        self.cc[pid] = cc & 0x0F
        return b"".join(out)


PAYLOAD_SIZE = PACKET_SIZE - 4


def _adaptation(pcr, rai):
    """The first packet's adaptation field after its length byte: flags, then encode_pcr's
    6 bytes when there is a PCR; b"" when neither."""
    if pcr is None:
        return b"\x40" if rai else b""
    return ((0x50 if rai else 0x10) << 48 | (pcr & PTS_MASK) << 15 | 0x7E00).to_bytes(7, "big")


# the adaptation field of a last packet that has `n` bytes of room left (n = 0: none)
_STUFFING = (b"", b"\x00") + tuple(bytes((n - 1, 0)) + b"\xff" * (n - 2)
                                    for n in range(2, PAYLOAD_SIZE + 1))


@functools.lru_cache(maxsize=64)
def _heads(pid):
    """The 4-byte TS headers of `pid`, by continuity counter: [cc] payload only, [16 + cc]
    adaptation field + payload, [32 + cc] the same with payload_unit_start, [48 + cc] payload
    only with payload_unit_start."""
    return [bytes((0x47, (0x40 if start else 0) | (pid >> 8), pid & 0xFF, afc | cc))
            for start, afc in ((False, 0x10), (False, 0x30), (True, 0x30), (True, 0x10))
            for cc in range(16)]


@functools.lru_cache(maxsize=256)
def _cutter(count):
    """A Struct cutting `count` packet payloads (184 bytes each) out of a PES."""
    return struct.Struct("184s" * count)
