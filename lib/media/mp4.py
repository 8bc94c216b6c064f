"""A sans-IO MP4 (ISO BMFF) muxer for DVR: H.264 + AAC from FLV payloads, moov at the end.

Rules:
- `Mp4Muxer()`: `header() -> bytes` (ftyp and an mdat header with a 64-bit size to patch),
  `write(type_id, timestamp, payload) -> bytes` (the sample's bytes appended to mdat, b"" for
  sequence headers and anything not muxed), `finish() -> (tail, patches)`: the moov box to append
  and [(offset, bytes)] to write over the file (the mdat size). The caller owns the file; this
  module only counts bytes.
- Timestamps are FLV milliseconds; both tracks use timescale 1000. A sample's duration is the
  delta to the next sample's dts; the last sample repeats the previous delta.
- Video: AVC only (FLV codec 7); the first sequence header's AVCDecoderConfigurationRecord is
  the avcC, frames are stored as they come (4-byte NAL lengths), composition time from the FLV
  header goes to ctts, keyframes to stss. Audio: AAC only; the first AudioSpecificConfig is the
  esds. Other codecs and later sequence-header changes are ignored (and counted in `skipped`).
- Each sample is its own chunk (stsc has one entry); chunk offsets are co64.
"""
import struct
import sys
from array import array

from lib.media import flv
from lib.media.codec_info import parse_audio_specific_config, parse_sps

TIMESCALE = 1000
MDAT_HEADER = 16          # size=1, "mdat", 64-bit largesize
VIDEO_TRACK, AUDIO_TRACK = 1, 2


def box(kind, *parts):
    body = b"".join(parts)
    return struct.pack(">I4s", 8 + len(body), kind) + body


def full_box(kind, version, flags, *parts):
    return box(kind, struct.pack(">I", (version << 24) | flags), *parts)


class _Track:
    def __init__(self, track_id):
        self.track_id = track_id
        self.config = None        # avcC record or AudioSpecificConfig bytes
        # compact arrays: a long recording keeps a few bytes per sample, not Python ints
        self.dts = array("q")     # ms
        self.cts = array("i")     # composition offsets (video)
        self.sizes = array("I")
        self.offsets = array("Q")
        self.keys = array("I")    # 1-based sample numbers of sync samples (video)

    def durations(self):
        dts = self.dts
        deltas = array("I", (max(0, b - a) for a, b in zip(dts, dts[1:])))
        deltas.append(deltas[-1] if deltas else 0)
        return deltas

    def duration(self):
        return sum(self.durations()) if self.dts else 0


class Mp4Muxer:
    def __init__(self):
        self.video = _Track(VIDEO_TRACK)
        self.audio = _Track(AUDIO_TRACK)
        self.offset = 0           # bytes produced so far
        self.mdat_at = 0
        self.width = self.height = 0
        self.sample_rate, self.channels = 44100, 2
        self.skipped = 0

    # ------------------------------------------------------------------ streaming
    def header(self):
        ftyp = box(b"ftyp", b"isom", struct.pack(">I", 512), b"isomiso2avc1mp41")
        self.mdat_at = len(ftyp)
        data = ftyp + struct.pack(">I4sQ", 1, b"mdat", MDAT_HEADER)
        self.offset = len(data)
        return data

    def write(self, type_id, timestamp, payload):
        if type_id == flv.TAG_VIDEO:
            return self._video(timestamp, payload)
        if type_id == flv.TAG_AUDIO:
            return self._audio(timestamp, payload)
        return b""

    def _video(self, ts, payload):
        if len(payload) < 5 or payload[0] & 0x80 or flv.video_codec(payload) != flv.CODEC_AVC:
            self.skipped += 1
            return b""
        track = self.video
        if payload[1] == 0:                       # sequence header
            if track.config is None:
                track.config = bytes(payload[5:])
                self._read_sps(track.config)
            return b""
        if payload[1] != 1 or track.config is None:
            return b""
        cts = int.from_bytes(payload[2:5], "big")
        if cts & 0x800000:
            cts -= 1 << 24
        track.cts.append(cts)
        if flv.is_video_keyframe(payload):
            track.keys.append(len(track.dts) + 1)
        return self._sample(track, ts, payload[5:])

    def _audio(self, ts, payload):
        if len(payload) < 2 or flv.audio_codec(payload) != flv.SOUND_AAC:
            self.skipped += 1
            return b""
        track = self.audio
        if payload[1] == 0:
            if track.config is None:
                track.config = bytes(payload[2:])
                try:
                    _, self.sample_rate, self.channels = parse_audio_specific_config(track.config)
                except ValueError:
                    pass
            return b""
        if track.config is None:
            return b""
        return self._sample(track, ts, payload[2:])

    def _sample(self, track, ts, data):
        if track.dts and ts < track.dts[-1]:
            ts = track.dts[-1]                    # keep dts monotonic
        track.dts.append(ts)
        track.sizes.append(len(data))
        track.offsets.append(self.offset)
        self.offset += len(data)
        return bytes(data)

    def _read_sps(self, record):
        if len(record) >= 8 and record[5] & 0x1F:
            size = int.from_bytes(record[6:8], "big")
            try:
                _, _, _, self.width, self.height = parse_sps(record[8:8 + size])
            except (ValueError, IndexError):
                pass

    def finish(self):
        """(moov bytes to append, [(file offset, bytes)] patches)."""
        mdat_size = self.offset - self.mdat_at
        patches = [(self.mdat_at + 8, struct.pack(">Q", mdat_size))]
        return self.moov(), patches

    # ------------------------------------------------------------------ boxes
    def tracks(self):
        return [t for t in (self.video, self.audio) if t.config is not None and t.dts]

    def duration(self):
        return max((t.duration() for t in self.tracks()), default=0)

    def moov(self):
        tracks = self.tracks()
        mvhd = full_box(b"mvhd", 0, 0, struct.pack(">IIII", 0, 0, TIMESCALE, self.duration()),
                        struct.pack(">IH10x", 0x00010000, 0x0100), _MATRIX, bytes(24),
                        struct.pack(">I", AUDIO_TRACK + 1))
        return box(b"moov", mvhd, *(self._trak(t) for t in tracks))

    def _trak(self, t):
        is_video = t is self.video
        duration = t.duration()
        w, h = (self.width, self.height) if is_video else (0, 0)
        tkhd = full_box(b"tkhd", 0, 3, struct.pack(">IIIII", 0, 0, t.track_id, 0, duration),
                        bytes(8), struct.pack(">hhH2x", 0, 0, 0 if is_video else 0x0100),
                        _MATRIX, struct.pack(">II", w << 16, h << 16))
        mdhd = full_box(b"mdhd", 0, 0, struct.pack(">IIII", 0, 0, TIMESCALE, duration),
                        struct.pack(">HH", 0x55C4, 0))   # language "und"
        kind, name = (b"vide", b"VideoHandler") if is_video else (b"soun", b"SoundHandler")
        hdlr = full_box(b"hdlr", 0, 0, struct.pack(">I4s12x", 0, kind), name + b"\x00")
        media_header = full_box(b"vmhd", 0, 1, bytes(8)) if is_video else \
            full_box(b"smhd", 0, 0, bytes(4))
        dinf = box(b"dinf", full_box(b"dref", 0, 0, struct.pack(">I", 1),
                                     full_box(b"url ", 0, 1)))
        minf = box(b"minf", media_header, dinf, self._stbl(t, is_video))
        return box(b"trak", tkhd, box(b"mdia", mdhd, hdlr, minf))

    def _stbl(self, t, is_video):
        entry = self._avc1(t) if is_video else self._mp4a(t)
        stsd = full_box(b"stsd", 0, 0, struct.pack(">I", 1), entry)
        stts = full_box(b"stts", 0, 0, *_runs(t.durations()))
        boxes = [stsd, stts]
        if is_video and any(t.cts):
            version = 1 if min(t.cts) < 0 else 0      # signed offsets need version 1
            boxes.append(full_box(b"ctts", version, 0, *_runs(t.cts, signed=True)))
        if is_video:
            boxes.append(full_box(b"stss", 0, 0, struct.pack(">I", len(t.keys)),
                                  _be("I", t.keys)))
        n = len(t.sizes)
        boxes.append(full_box(b"stsc", 0, 0, struct.pack(">IIII", 1, 1, 1, 1)))
        boxes.append(full_box(b"stsz", 0, 0, struct.pack(">II", 0, n), _be("I", t.sizes)))
        boxes.append(full_box(b"co64", 0, 0, struct.pack(">I", n), _be("Q", t.offsets)))
        return box(b"stbl", *boxes)

    def _avc1(self, t):
        return box(b"avc1", bytes(6), struct.pack(">H", 1), bytes(16),
                   struct.pack(">HHIIIH", self.width, self.height, 0x00480000, 0x00480000, 0, 1),
                   bytes(32), struct.pack(">Hh", 0x18, -1), box(b"avcC", t.config))

    def _mp4a(self, t):
        return box(b"mp4a", bytes(6), struct.pack(">H", 1), bytes(8),
                   struct.pack(">HHHHI", self.channels, 16, 0, 0,
                               (self.sample_rate & 0xFFFF) << 16),
                   _esds(t.config))


_MATRIX = struct.pack(">9I", 0x00010000, 0, 0, 0, 0x00010000, 0, 0, 0, 0x40000000)


def _descriptor(tag, body):
    size = len(body)
    return bytes((tag, 0x80 | (size >> 21) & 0x7F, 0x80 | (size >> 14) & 0x7F,
                  0x80 | (size >> 7) & 0x7F, size & 0x7F)) + body


def _esds(asc):
    dsi = _descriptor(0x05, asc)
    dcd = _descriptor(0x04, struct.pack(">BBI", 0x40, 0x15, 0)[:2] + bytes(3) +
                      struct.pack(">II", 0, 0) + dsi)
    es = _descriptor(0x03, struct.pack(">HB", VIDEO_TRACK + 1, 0) + dcd +
                     _descriptor(0x06, b"\x02"))
    return full_box(b"esds", 0, 0, es)


def _be(code, values):
    """Big-endian bytes of unsigned 32-bit ("I") or 64-bit ("Q") integers."""
    out = array(code, values)
    if sys.byteorder == "little":
        out.byteswap()
    return out.tobytes()


def _runs(values, signed=False):
    """stts/ctts body: entry count then (count, value) runs."""
    runs = []
    for v in values:
        if runs and runs[-1][1] == v:
            runs[-1][0] += 1
        else:
            runs.append([1, v])
    fmt = ">Ii" if signed else ">II"
    return [struct.pack(">I", len(runs))] + [struct.pack(fmt, c, v) for c, v in runs]


def iter_boxes(data, pos=0, end=None):
    """Yield (kind, body_start, box_end) of the boxes in data[pos:end]. For tests and tools."""
    end = len(data) if end is None else end
    while pos + 8 <= end:
        size, kind = struct.unpack_from(">I4s", data, pos)
        head = 8
        if size == 1:
            size = struct.unpack_from(">Q", data, pos + 8)[0]
            head = 16
        elif size == 0:
            size = end - pos
        if size < head or pos + size > end:
            raise ValueError(f"bad box {kind!r} at {pos}")
        yield kind, pos + head, pos + size
        pos += size
