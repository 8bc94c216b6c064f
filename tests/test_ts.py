"""Tests for lib/media/ts.py: packet layout, PSI CRC (checked by an independent CRC), continuity
counters, PTS/DTS/PCR vectors, ADTS bits, Annex-B with AUD/SPS/PPS, stuffing, errors.

The small TS demuxer here (`demux`) is written from the spec, independently of the muxer; the
HLS tests reuse it.
"""
import struct

import pytest
from hypothesis import given, settings, strategies as st

from lib.media import ts as tsm
from lib.media.ts import TsError, TsMuxer
from lib.rtmp.errors import ProtocolError

SPS = bytes.fromhex("6742c01e8c8d40a0fd00f088")
PPS = bytes.fromhex("68ce3c80")


# ---------------------------------------------------------------- independent helpers
def crc_bitwise(data):
    """CRC-32/MPEG-2, bit by bit."""
    crc = 0xFFFFFFFF
    for byte in data:
        for bit in range(7, -1, -1):
            top = (crc >> 31) ^ ((byte >> bit) & 1)
            crc = (crc << 1) & 0xFFFFFFFF
            if top:
                crc ^= 0x04C11DB7
    return crc


def read_ts_field(b):
    """Decode a 5-byte PTS/DTS field -> (prefix, value), checking the marker bits."""
    assert b[0] & 1 and b[2] & 1 and b[4] & 1, "marker bits"
    value = ((b[0] >> 1) & 7) << 30 | b[1] << 22 | (b[2] >> 1) << 15 | b[3] << 7 | b[4] >> 1
    return b[0] >> 4, value


class Packet:
    def __init__(self, raw):
        assert len(raw) == 188 and raw[0] == 0x47
        self.raw = raw
        self.pusi = bool(raw[1] & 0x40)
        self.pid = (raw[1] & 0x1F) << 8 | raw[2]
        self.afc = (raw[3] >> 4) & 3
        self.cc = raw[3] & 0x0F
        pos = 4
        self.af = b""
        self.rai = False
        self.pcr = None
        if self.afc & 2:
            length = raw[4]
            self.af = raw[5:5 + length]
            pos = 5 + length
            if length:
                flags = self.af[0]
                self.rai = bool(flags & 0x40)
                if flags & 0x10:
                    p = self.af[1:7]
                    self.pcr = (p[0] << 25 | p[1] << 17 | p[2] << 9 | p[3] << 1 | p[4] >> 7)
                    assert p[4] & 0x7E == 0x7E
        assert pos <= 188
        self.payload = raw[pos:] if self.afc & 1 else b""


def packets(data):
    assert len(data) % 188 == 0, len(data)
    return [Packet(data[i:i + 188]) for i in range(0, len(data), 188)]


def parse_pes(pes):
    """-> (stream_id, pts, dts, es_bytes)."""
    assert pes[:3] == b"\x00\x00\x01"
    stream_id = pes[3]
    length = struct.unpack(">H", pes[4:6])[0]
    assert pes[6] & 0xC0 == 0x80
    flags = pes[7]
    header_len = pes[8]
    pts = dts = None
    if flags & 0x80:
        prefix, pts = read_ts_field(pes[9:14])
        assert prefix == (3 if flags & 0x40 else 2)
        dts = pts
    if flags & 0x40:
        prefix, dts = read_ts_field(pes[14:19])
        assert prefix == 1
    es = pes[9 + header_len:]
    if length:
        assert length == len(pes) - 6
    return stream_id, pts, dts, es


def demux(data):
    """TS bytes -> {"pat": ..., "pmt": ..., "pes": {pid: [(first Packet, pes bytes)]}}, checking
    sync bytes, continuity counters and PSI CRCs."""
    out = {"pat": None, "pmt": None, "pes": {}}
    last_cc = {}
    open_pes = {}
    for pkt in packets(data):
        if pkt.pid in last_cc and pkt.afc & 1:
            assert pkt.cc == (last_cc[pkt.pid] + 1) & 15, f"cc jump on pid {pkt.pid}"
        last_cc[pkt.pid] = pkt.cc
        if pkt.pid in (0, 0x1001):
            assert pkt.pusi
            pointer = pkt.payload[0]
            section = pkt.payload[1 + pointer:]
            length = ((section[1] & 0x0F) << 8) | section[2]
            section = section[:3 + length]
            assert crc_bitwise(section) == 0, "PSI CRC"
            out["pat" if pkt.pid == 0 else "pmt"] = section
            continue
        if pkt.pusi:
            open_pes[pkt.pid] = [pkt, bytearray()]
            out["pes"].setdefault(pkt.pid, []).append(open_pes[pkt.pid])
        open_pes[pkt.pid][1] += pkt.payload
    for items in out["pes"].values():
        items[:] = [(first, bytes(body)) for first, body in items]
    return out


def pmt_streams(section):
    pcr_pid = struct.unpack(">H", section[8:10])[0] & 0x1FFF
    info_len = struct.unpack(">H", section[10:12])[0] & 0x0FFF
    pos = 12 + info_len
    streams = []
    while pos < len(section) - 4:
        pid, es_len = struct.unpack(">HH", section[pos + 1:pos + 5])
        streams.append((section[pos], pid & 0x1FFF))
        pos += 5 + (es_len & 0x0FFF)
    return pcr_pid, streams


def avc_sh(sps=SPS, pps=PPS, nal_len=4):
    record = bytes([1, sps[1], sps[2], sps[3], 0xFC | (nal_len - 1), 0xE1]) + \
        struct.pack(">H", len(sps)) + sps + b"\x01" + struct.pack(">H", len(pps)) + pps
    return b"\x17\x00\x00\x00\x00" + record


def avc_frame(nalus, key=True, cts=0, nal_len=4):
    body = b"".join(len(n).to_bytes(nal_len, "big") + n for n in nalus)
    return bytes([0x17 if key else 0x27, 1]) + cts.to_bytes(3, "big", signed=True) + body


AAC_SH = b"\xaf\x00\x12\x10"          # AAC LC, 44.1 kHz, stereo


def aac_frame(raw):
    return b"\xaf\x01" + raw


def split_annexb(es):
    """Annex-B bytes -> list of NALUs (4- or 3-byte start codes)."""
    parts = es.split(b"\x00\x00\x01")
    assert parts[0] in (b"", b"\x00")
    return [p[:-1] if p.endswith(b"\x00") and i < len(parts) - 1 else p
            for i, p in enumerate(parts[1:], 1)]


def muxer(video=True, audio=True):
    m = TsMuxer()
    if video:
        m.on_video_sequence_header(avc_sh())
    if audio:
        m.on_audio_sequence_header(AAC_SH)
    return m


# ---------------------------------------------------------------- CRC and PSI
def test_crc32_mpeg2_vectors():
    assert tsm.crc32_mpeg2(b"123456789") == 0x0376E6E7
    assert tsm.crc32_mpeg2(b"") == 0xFFFFFFFF
    for data in (b"\x00", b"\xff" * 7, bytes(range(256))):
        assert tsm.crc32_mpeg2(data) == crc_bitwise(data)


@pytest.mark.parametrize("video,audio,pcr_pid,streams", [
    (True, True, 0x100, [(0x1B, 0x100), (0x0F, 0x101)]),
    (False, True, 0x101, [(0x0F, 0x101)]),
    (True, False, 0x100, [(0x1B, 0x100)]),
])
def test_pat_pmt(video, audio, pcr_pid, streams):
    data = muxer(video, audio).header()
    pkts = packets(data)
    assert [p.pid for p in pkts] == [0, 0x1001]
    assert all(p.pusi and p.afc == 1 for p in pkts)
    out = demux(data)
    pat = out["pat"]
    assert pat[0] == 0 and pat[1] & 0x80                       # table 0, section syntax
    assert struct.unpack(">HH", pat[8:12]) == (1, 0xE000 | 0x1001)
    pmt = out["pmt"]
    assert pmt[0] == 2 and struct.unpack(">H", pmt[3:5])[0] == 1
    assert pmt_streams(pmt) == (pcr_pid, streams)
    # the whole packet after the section is 0xff stuffing
    assert set(pkts[0].payload[1 + len(pat):]) == {0xFF}


def test_psi_continuity_counters_advance_per_segment():
    m = muxer()
    ccs = [[p.cc for p in packets(m.header())] for _ in range(20)]
    assert [c[0] for c in ccs] == [i & 15 for i in range(20)]
    assert [c[1] for c in ccs] == [i & 15 for i in range(20)]


# ---------------------------------------------------------------- field vectors
@pytest.mark.parametrize("prefix,value,expected", [
    (2, 0, "2100010001"),
    (2, 90000, "210005bf21"),
    (3, 63000, "310003ec31"),
    (1, (1 << 33) - 1, "1fffffffff"),
    (2, 1 << 32, "2900010001"),
])
def test_pts_vectors(prefix, value, expected):
    assert tsm.encode_pts(prefix, value).hex() == expected
    assert read_ts_field(tsm.encode_pts(prefix, value)) == (prefix, value)


@given(st.integers(0, (1 << 33) - 1))
def test_pts_round_trip(value):
    assert read_ts_field(tsm.encode_pts(2, value)) == (2, value)


def test_pcr_vector():
    assert tsm.encode_pcr(0).hex() == "000000007e00"
    assert tsm.encode_pcr(1).hex() == "00000000fe00"
    assert tsm.encode_pcr((1 << 33) - 1).hex() == "fffffffffe00"


def test_adts_header_bits():
    h = tsm.adts_header(2, 4, 2, 100)
    assert h.hex() == "fff150800d7ffc"
    bits = int.from_bytes(h, "big")

    def field(start, size):
        return (bits >> (56 - start - size)) & ((1 << size) - 1)
    assert field(0, 12) == 0xFFF                # syncword
    assert field(12, 1) == 0                    # MPEG-4
    assert field(13, 2) == 0                    # layer
    assert field(15, 1) == 1                    # no CRC
    assert field(16, 2) == 1                    # profile = object type - 1 (LC)
    assert field(18, 4) == 4                    # 44100
    assert field(23, 3) == 2                    # stereo
    assert field(30, 13) == 107                 # frame length incl. header
    assert field(43, 11) == 0x7FF               # VBR buffer fullness
    assert field(54, 2) == 0                    # one raw data block
    with pytest.raises(TsError):
        tsm.adts_header(2, 4, 2, 8185)


def write_bits(fields):
    value, count = 0, 0
    for v, n in fields:
        value, count = value << n | v, count + n
    pad = -count % 8
    return (value << pad).to_bytes((count + pad) // 8, "big")


def test_audio_specific_config_variants():
    c = tsm.AacConfig(bytes.fromhex("1210"))
    assert (c.object_type, c.sampling_index, c.channels) == (2, 4, 2)
    c = tsm.AacConfig(bytes.fromhex("1190"))             # LC 48 kHz stereo
    assert (c.object_type, c.sampling_index, c.channels) == (2, 3, 2)
    # explicit HE-AAC: object 5, core 22.05 kHz, stereo, extension 44.1 kHz, core LC
    he = write_bits([(5, 5), (7, 4), (2, 4), (4, 4), (2, 5)])
    c = tsm.AacConfig(he)
    assert (c.object_type, c.sampling_index, c.channels) == (2, 7, 2)
    # explicit frequency that has an index
    c = tsm.AacConfig(write_bits([(2, 5), (15, 4), (44100, 24), (1, 4)]))
    assert (c.object_type, c.sampling_index, c.channels) == (2, 4, 1)
    for bad in (b"", b"\x12", write_bits([(31, 5), (10, 6), (4, 4), (2, 4)]),
                write_bits([(2, 5), (15, 4), (12345, 24), (2, 4)]),
                write_bits([(2, 5), (13, 4), (2, 4)])):
        with pytest.raises(TsError):
            tsm.AacConfig(bad)


# ---------------------------------------------------------------- video
def test_keyframe_annexb_aud_sps_pps_pcr_rai():
    m = muxer()
    sei = b"\x06\x05\x01\xaa\x80"
    idr = b"\x65" + bytes(range(200)) * 3
    data = m.mux_video(1000, avc_frame([b"\x09\xf0", sei, idr], key=True, cts=80))
    pes = demux(data)["pes"][0x100]
    assert len(pes) == 1
    first, body = pes[0]
    assert first.rai and first.pcr == 1000 * 90
    sid, pts, dts, es = parse_pes(body)
    assert sid == 0xE0
    assert dts == 1000 * 90 + tsm.PTS_OFFSET and pts == 1080 * 90 + tsm.PTS_OFFSET
    assert es.startswith(b"\x00\x00\x00\x01\x09\xf0")
    assert split_annexb(es) == [b"\x09\xf0", sei, SPS, PPS, idr]


def test_inter_frame_no_params_no_rai_and_pts_only():
    m = muxer()
    slice_ = b"\x41" + b"\x11" * 50
    data = m.mux_video(40, avc_frame([slice_], key=False))
    first, body = demux(data)["pes"][0x100][0]
    assert not first.rai and first.pcr == 40 * 90
    sid, pts, dts, es = parse_pes(body)
    assert pts == dts == 40 * 90 + tsm.PTS_OFFSET
    assert body[7] == 0x80                                     # PTS only
    assert split_annexb(es) == [b"\x09\xf0", slice_]


def test_negative_composition_time_and_keyframe_with_own_params():
    m = muxer()
    own_sps = SPS[:-1] + b"\x99"
    idr = b"\x65\x88\x84"
    data = m.mux_video(2000, avc_frame([own_sps, PPS, idr], cts=-40))
    sid, pts, dts, es = parse_pes(demux(data)["pes"][0x100][0][1])
    assert pts == 1960 * 90 + tsm.PTS_OFFSET and dts == 2000 * 90 + tsm.PTS_OFFSET
    assert split_annexb(es) == [b"\x09\xf0", own_sps, PPS, idr]      # not inserted twice


def test_two_byte_nal_lengths():
    m = TsMuxer()
    m.on_video_sequence_header(avc_sh(nal_len=2))
    idr = b"\x65" + b"\x01" * 10
    data = m.mux_video(0, avc_frame([idr], nal_len=2))
    es = parse_pes(demux(data)["pes"][0x100][0][1])[3]
    assert split_annexb(es) == [b"\x09\xf0", SPS, PPS, idr]


@settings(max_examples=150, deadline=None)
@given(st.integers(1, 1200))
def test_every_pes_size_packs_into_whole_packets(size):
    """Every size lands in 188-byte packets with stuffing only in the last one."""
    m = muxer()
    slice_ = b"\x41" + bytes([size & 0xFF]) * (size - 1)
    data = m.mux_video(5, avc_frame([slice_], key=False))
    pkts = packets(data)
    for p in pkts[1:-1]:
        assert p.afc == 1                                      # payload only in the middle
    es = parse_pes(demux(data)["pes"][0x100][0][1])[3]
    assert split_annexb(es) == [b"\x09\xf0", slice_]
    last = pkts[-1]
    if len(pkts) > 1 and last.afc == 3:
        assert last.af == b"" or set(last.af[1:]) <= {0xFF}


def test_continuity_counters_per_pid_wrap():
    m = muxer()
    data = m.header()
    for i in range(40):
        data += m.mux_video(i * 40, avc_frame([b"\x41" + b"\x22" * 400], key=False))
        data += m.mux_audio(i * 23, aac_frame(b"\x21" * 30))
    data += m.flush()
    out = demux(data)                  # asserts cc steps by one on every pid
    assert len(out["pes"][0x100]) == 40 and out["pes"][0x101]


def test_video_skips_and_errors():
    m = TsMuxer()
    assert m.mux_video(0, avc_frame([b"\x65\x00"])) == b""              # no sequence header yet
    assert m.mux_video(0, b"\x1c\x01\x00\x00\x00\x00") == b""           # HEVC: not ours
    assert m.mux_video(0, avc_sh()) == b"" and m.has_video              # routed to config
    assert m.mux_video(0, b"\x17\x02\x00\x00\x00") == b""               # end of sequence
    assert m.mux_video(0, b"\x17\x01") == b""                           # too short
    head = b"\x17\x01\x00\x00\x00"
    for bad in (head + b"\x00\x00\x00\x09\x65",        # NALU length past the end
                head + b"\x00\x00",                        # truncated length
                head + b"\x00\x00\x00\x00"):             # zero length
        with pytest.raises(TsError):
            m.mux_video(0, bad)
    for bad in (b"\x17\x00\x00\x00\x00\x01", avc_sh()[:-2], avc_sh(nal_len=3)):
        with pytest.raises(ProtocolError):
            m.mux_video(0, bad)
    with pytest.raises(TsError):
        m.on_video_sequence_header(b"\x27\x01\x00\x00\x00")
    assert m.mux_video(0, avc_frame([b"\x65\x00"]))                  # still usable


# ---------------------------------------------------------------- audio
def test_audio_frames_merge_into_one_pes_with_adts():
    m = muxer()
    frames = [bytes([i]) * (20 + i) for i in range(4)]
    out = b""
    for i, raw in enumerate(frames):                                    # 0, 23, 46, 69 ms
        out += m.mux_audio(1000 + i * 23, aac_frame(raw))
    assert out == b""                                                   # still pending
    out = m.mux_audio(1092, aac_frame(b"\x55" * 9))                     # span reaches 90 ms
    pes = demux(out)["pes"][0x101]
    assert len(pes) == 1
    first, body = pes[0]
    assert first.pcr is None and not first.rai                          # video carries PCR
    sid, pts, dts, es = parse_pes(body)
    assert sid == 0xC0 and pts == dts == 1000 * 90 + tsm.PTS_OFFSET
    got, pos = [], 0
    while pos < len(es):
        assert es[pos:pos + 2] == b"\xff\xf1"
        length = ((es[pos + 3] & 3) << 11) | (es[pos + 4] << 3) | (es[pos + 5] >> 5)
        got.append(es[pos + 7:pos + length])
        pos += length
    assert got == frames
    tail = demux(m.flush())["pes"][0x101][0][1]
    assert parse_pes(tail)[1] == 1092 * 90 + tsm.PTS_OFFSET and m.flush() == b""


def test_audio_gap_or_backwards_flushes():
    m = muxer()
    assert m.mux_audio(0, aac_frame(b"\x01" * 10)) == b""
    assert m.mux_audio(500, aac_frame(b"\x02" * 10))                   # gap: flush the first
    assert m.mux_audio(400, aac_frame(b"\x03" * 10))                   # backwards: flush


def test_audio_only_carries_pcr_and_rai():
    m = muxer(video=False)
    m.mux_audio(0, aac_frame(b"\x01" * 10))
    first, body = demux(m.flush())["pes"][0x101][0]
    assert first.pcr == 0 and first.rai


def test_audio_skips_and_errors():
    m = TsMuxer()
    assert m.mux_audio(0, aac_frame(b"\x01")) == b""                   # no config yet
    assert m.mux_audio(0, b"\x2f\x01\x02") == b""                      # MP3: not ours
    assert m.mux_audio(0, AAC_SH) == b"" and m.has_audio
    assert m.mux_audio(0, b"\xaf\x01") == b"" and m.flush() == b""     # empty frame
    with pytest.raises(TsError):
        m.mux_audio(0, aac_frame(b"\x00" * 9000))
    with pytest.raises(TsError):
        m.on_audio_sequence_header(b"\xaf\x00\xf8")
    assert m.aac is not None                                           # old config kept
    with pytest.raises(TsError):
        m.on_audio_sequence_header(b"\x2f\x00\x12\x10")


# ---------------------------------------------------------------- HEVC (stream type 0x24)
VPS = b"\x40\x01" + b"\x0c" * 6
HEVC_SPS = b"\x42\x01" + b"\x01" * 8
HEVC_PPS = b"\x44\x01" + b"\xc1"
HEVC_AUD = b"\x00\x00\x00\x01\x46\x01\x50"


def hvcc(nal_len=4):
    """An HEVCDecoderConfigurationRecord (ISO/IEC 14496-15 8.3.3.1.2), field by field."""
    head = bytes([1, 0x01]) + b"\x60\x00\x00\x00" + bytes(6) + bytes([93]) + b"\xf0\x00" + \
        b"\xfc\xfd\xf8\xf8" + b"\x00\x00" + bytes([0x0C | (nal_len - 1)])
    arrays = b"".join(bytes([0x80 | kind]) + b"\x00\x01" + struct.pack(">H", len(nal)) + nal
                      for kind, nal in ((32, VPS), (33, HEVC_SPS), (34, HEVC_PPS)))
    return head + b"\x03" + arrays


def hevc_frame(nalus, key=True, cts=0, packet=1):
    """An Enhanced RTMP hvc1 CodedFrames (SI24 cts) or CodedFramesX (packet 3) payload."""
    body = b"".join(len(n).to_bytes(4, "big") + n for n in nalus)
    first = (0x90 if key else 0xA0) | packet
    return bytes([first]) + b"hvc1" + (cts.to_bytes(3, "big", signed=True) if packet == 1
                                       else b"") + body


def test_hevc_stream_type_aud_and_parameter_sets_before_irap():
    m = TsMuxer()
    m.mux_video(0, b"\x90hvc1" + hvcc())
    _, streams = pmt_streams(demux(m.header())["pmt"])
    assert streams == [(0x24, 0x100)]
    idr = b"\x26\x01" + b"\xaf" * 20                       # IDR_W_RADL (19)
    data = demux(m.mux_video(1000, hevc_frame([idr], cts=40)))
    first, pes = data["pes"][0x100][0]
    body = pes[9 + pes[8]:]
    sc = b"\x00\x00\x00\x01"
    assert body == HEVC_AUD + sc + VPS + sc + HEVC_SPS + sc + HEVC_PPS + sc + idr
    assert first.rai
    trail = b"\x02\x01" + b"\x11" * 10                     # TRAIL_R (1), CodedFramesX
    body = demux(m.mux_video(1040, hevc_frame([trail], key=False, packet=3)))["pes"][0x100][0][1]
    assert body.endswith(HEVC_AUD + sc + trail)
    own = demux(m.mux_video(1080, hevc_frame([b"\x46\x01\x50", VPS, HEVC_SPS, HEVC_PPS, idr])))
    body = own["pes"][0x100][0][1]
    assert body.count(VPS) == 1 and body.count(b"\x46\x01") == 1   # no second set, one AUD


def test_legacy_hevc_codec_id_12():
    m = TsMuxer()
    m.mux_video(0, b"\x1c\x00\x00\x00\x00" + hvcc())
    assert m.has_video
    cra = b"\x2a\x01" + b"\x55" * 8                        # CRA (21): an IRAP picture
    body = demux(m.mux_video(0, b"\x1c\x01\x00\x00\x00" + struct.pack(">I", len(cra)) + cra))
    assert VPS in body["pes"][0x100][0][1]


def test_codecs_ts_cannot_carry_are_skipped():
    m = TsMuxer()
    assert m.mux_video(0, b"\x90av01\x81\x00\x0c\x00") == b"" and not m.has_video
    assert m.mux_audio(0, b"\x90OpusOpusHead\x01\x01\x38\x01\x80\xbb\x00\x00\x00\x00\x00") == b""
    assert not m.has_audio
    with pytest.raises(TsError):
        m.configure("video", "av01", b"\x81\x00\x0c\x00")
