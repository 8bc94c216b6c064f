"""Fragmented MP4 muxer for HLS (sans-IO: codec data in, init segment and media segments out).

Rules (this module owns them):
- `configure(kind, codec, record)` takes a sequence header's configuration record as Enhanced RTMP
  carries it: avc1 -> avcC, hvc1 -> hvcC, av01 -> av1C, vp09 -> vpcC (the FLV record already holds
  the FullBox version/flags), mp4a -> AudioSpecificConfig (in esds), Opus -> the OpusHead
  identification header (little-endian, rewritten as a big-endian dOps box). Other codecs
  (fLaC, ac-3, ec-3, .mp3, legacy ones) raise Fmp4Error: the caller skips that kind with a warning.
- `init_segment()`: ftyp + moov (mvhd, one trak per configured kind: video track 1 at 90 kHz,
  audio track 2 at its sample rate (Opus: 48 kHz), empty sample tables, mvex/trex). Width and
  height come from the sequence header (lib.media.codec_info), 0 when it does not say.
- `video(ts, cts, key, data)` / `audio(ts, data)` buffer one sample (FLV ms timestamps; AV1
  temporal delimiter OBUs are dropped, as ISO/IEC 23091 AV1-in-ISOBMFF asks); `flush()` returns
  one moof + mdat with every buffered sample (b"" when none): mfhd with a sequence number that
  goes on across publishes (`carry_over`), per track tfhd (default-base-is-moof), tfdt (version 1,
  the first sample's decode time) and trun (version 1: duration, size, flags, signed composition
  offset per sample). A sample's duration is the next sample's DTS minus its own; the last one
  repeats the previous duration (or a codec default: 1 frame at 30 fps, 1024 AAC / 960 Opus
  samples). Keyframes are sync samples; audio samples are all sync samples.
- `header()` is b"" (an fMP4 media segment needs nothing before its first moof).
"""
import struct

from lib.media import codec_info
from lib.rtmp.errors import ProtocolError

VIDEO_CODECS = ("avc1", "hvc1", "av01", "vp09")
AUDIO_CODECS = ("mp4a", "Opus")
VIDEO_TRACK, AUDIO_TRACK = 1, 2
VIDEO_TIMESCALE = 90000
_CONFIG_BOX = {"avc1": b"avcC", "hvc1": b"hvcC", "av01": b"av1C"}
_SYNC = 0x02000000                    # sample_depends_on 2 (I-frame)
_NON_SYNC = 0x01010000                # sample_depends_on 1, sample_is_non_sync_sample
_MATRIX = struct.pack(">9I", 0x10000, 0, 0, 0, 0x10000, 0, 0, 0, 0x40000000)
_OBU_TEMPORAL_DELIMITER = b"\x12\x00"


class Fmp4Error(ProtocolError):
    """A configuration record fMP4 cannot carry."""


def box(kind, *parts):
    data = b"".join(parts)
    return struct.pack(">I4s", 8 + len(data), kind) + data


def full_box(kind, version, flags, *parts):
    return box(kind, struct.pack(">I", (version << 24) | flags), *parts)


def _descriptor(tag, body):
    size = len(body)
    return bytes((tag, 0x80 | (size >> 21) & 0x7F, 0x80 | (size >> 14) & 0x7F,
                  0x80 | (size >> 7) & 0x7F, size & 0x7F)) + body


class _Track:
    __slots__ = ("track_id", "codec", "record", "timescale", "entry", "samples",
                 "last_duration", "default_duration", "width", "height", "channels")

    def __init__(self, track_id, codec, record, timescale, default_duration):
        self.track_id, self.codec, self.record = track_id, codec, bytes(record)
        self.timescale, self.default_duration = timescale, default_duration
        self.samples = []             # (dts, cts, size, flags, data)
        self.last_duration = 0
        self.width = self.height = 0
        self.channels = 2
        self.entry = b""


class Fmp4Muxer:
    def __init__(self):
        self.tracks = {}              # "video"/"audio" -> _Track
        self.sequence = 1             # mfhd sequence number of the next moof

    @property
    def has_video(self):
        return "video" in self.tracks

    @property
    def has_audio(self):
        return "audio" in self.tracks

    @staticmethod
    def supports(kind, codec):
        return codec in (VIDEO_CODECS if kind == "video" else AUDIO_CODECS)

    def carry_over(self, old):
        """A new publish on the same playlist: moof sequence numbers go on."""
        self.sequence = old.sequence

    def header(self):
        return b""

    # -------------------------------------------------------------- configuration
    def configure(self, kind, codec, record):
        record = bytes(record)
        if kind == "video":
            self.tracks["video"] = self._video_track(codec, record)
        else:
            self.tracks["audio"] = self._audio_track(codec, record)

    def _video_track(self, codec, record):
        if codec not in VIDEO_CODECS:
            raise Fmp4Error(f"video codec {codec} cannot be carried in fMP4 here")
        if len(record) < 4:
            raise Fmp4Error(f"{codec} sequence header too short")
        track = _Track(VIDEO_TRACK, codec, record, VIDEO_TIMESCALE, VIDEO_TIMESCALE // 30)
        info = codec_info.video_record_info(codec, record)
        if info is not None:
            track.width, track.height = info.width, info.height
        config = box(b"vpcC", record) if codec == "vp09" else box(_CONFIG_BOX[codec], record)
        track.entry = box(codec.encode(), bytes(6), struct.pack(">H", 1), bytes(16),
                          struct.pack(">HHIIIH", track.width, track.height, 0x480000, 0x480000,
                                      0, 1), bytes(32), struct.pack(">Hh", 0x18, -1), config)
        return track

    def _audio_track(self, codec, record):
        if codec == "mp4a":
            try:
                _, rate, channels = codec_info.parse_audio_specific_config(record)
            except ValueError as e:
                raise Fmp4Error(f"AAC sequence header: {e}") from None
            track = _Track(AUDIO_TRACK, codec, record, rate or 44100, 1024)
            dsi = _descriptor(5, record)
            dcd = _descriptor(4, bytes((0x40, 0x15)) + bytes(11) + dsi)
            config = full_box(b"esds", 0, 0, _descriptor(3, struct.pack(">HB", AUDIO_TRACK, 0)
                                                         + dcd + _descriptor(6, b"\x02")))
        elif codec == "Opus":
            if len(record) < 19 or record[:8] != b"OpusHead":
                raise Fmp4Error("Opus sequence header is not an OpusHead")
            channels, pre_skip, rate, gain, family = struct.unpack_from("<BHIhB", record, 9)
            dops = struct.pack(">BBHIhB", 0, channels, pre_skip, rate, gain, family)
            if family != 0:
                dops += bytes(record[19:21 + channels])   # stream count, coupled, mapping
            track = _Track(AUDIO_TRACK, codec, record, 48000, 960)
            config = box(b"dOps", dops)
        else:
            raise Fmp4Error(f"audio codec {codec} cannot be carried in fMP4 here")
        track.channels = channels or 2
        track.entry = box(codec.encode(), bytes(6), struct.pack(">H", 1), bytes(8),
                          struct.pack(">HHHHI", track.channels, 16, 0, 0,
                                      (track.timescale & 0xFFFF) << 16), config)
        return track

    # -------------------------------------------------------------- init segment
    def init_segment(self):
        traks = b"".join(self._trak(kind, t) for kind, t in sorted(self.tracks.items(),
                                                                   key=lambda kv: kv[1].track_id))
        trexs = b"".join(full_box(b"trex", 0, 0, struct.pack(">5I", t.track_id, 1, 0, 0, 0))
                         for t in self.tracks.values())
        mvhd = full_box(b"mvhd", 0, 0, struct.pack(">IIIIIH", 0, 0, 1000, 0, 0x10000, 0x100),
                        bytes(10), _MATRIX, bytes(24), struct.pack(">I", AUDIO_TRACK + 1))
        ftyp = box(b"ftyp", b"iso6", struct.pack(">I", 0), b"iso6", b"isom", b"mp41", b"dash")
        return ftyp + box(b"moov", mvhd, traks, box(b"mvex", trexs))

    def _trak(self, kind, t):
        video = kind == "video"
        tkhd = full_box(b"tkhd", 0, 3, struct.pack(">IIIII", 0, 0, t.track_id, 0, 0), bytes(8),
                        struct.pack(">hhHH", 0, 0, 0 if video else 0x100, 0), _MATRIX,
                        struct.pack(">II", t.width << 16, t.height << 16))
        mdhd = full_box(b"mdhd", 0, 0, struct.pack(">IIIIHH", 0, 0, t.timescale, 0, 0x55C4, 0))
        handler = b"vide" if video else b"soun"
        hdlr = full_box(b"hdlr", 0, 0, bytes(4), handler, bytes(12),
                        b"VideoHandler\0" if video else b"SoundHandler\0")
        media_header = full_box(b"vmhd", 0, 1, bytes(8)) if video else \
            full_box(b"smhd", 0, 0, bytes(4))
        dinf = box(b"dinf", full_box(b"dref", 0, 0, struct.pack(">I", 1),
                                     full_box(b"url ", 0, 1)))
        stbl = box(b"stbl", full_box(b"stsd", 0, 0, struct.pack(">I", 1), t.entry),
                   full_box(b"stts", 0, 0, bytes(4)), full_box(b"stsc", 0, 0, bytes(4)),
                   full_box(b"stsz", 0, 0, bytes(8)), full_box(b"stco", 0, 0, bytes(4)))
        return box(b"trak", tkhd, box(b"mdia", mdhd, hdlr,
                                      box(b"minf", media_header, dinf, stbl)))

    # -------------------------------------------------------------- samples
    def video(self, ts_ms, cts_ms, keyframe, data):
        track = self.tracks.get("video")
        if track is None or not data:
            return None
        if track.codec == "av01" and bytes(data[:2]) == _OBU_TEMPORAL_DELIMITER:
            data = data[2:]
        track.samples.append((ts_ms * 90, cts_ms * 90, len(data),
                              _SYNC if keyframe else _NON_SYNC, data))
        return b""

    def audio(self, ts_ms, data):
        track = self.tracks.get("audio")
        if track is None or not data:
            return b""
        track.samples.append((ts_ms * track.timescale // 1000, 0, len(data), _SYNC, data))
        return b""

    def flush(self):
        """moof + mdat of the buffered samples (b"" when there are none)."""
        tracks = [t for t in sorted(self.tracks.values(), key=lambda t: t.track_id) if t.samples]
        if not tracks:
            return b""
        moof = self._moof(tracks, [0] * len(tracks))
        offsets, pos = [], len(moof) + 8
        for t in tracks:
            offsets.append(pos)
            pos += sum(s[2] for s in t.samples)
        moof = self._moof(tracks, offsets)
        mdat_parts = [bytes(s[4]) for t in tracks for s in t.samples]
        for t in tracks:
            t.samples = []
        self.sequence += 1
        return moof + box(b"mdat", *mdat_parts)

    def _moof(self, tracks, offsets):
        trafs = []
        for t, offset in zip(tracks, offsets):
            samples = t.samples
            rows = []
            for i, (dts, cts, size, flags, _) in enumerate(samples):
                if i + 1 < len(samples):
                    duration = max(0, samples[i + 1][0] - dts)
                    t.last_duration = duration
                else:
                    duration = t.last_duration or t.default_duration
                rows.append(struct.pack(">IIIi", duration, size, flags, cts))
            trun = full_box(b"trun", 1, 0x000F01, struct.pack(">Ii", len(samples), offset),
                            *rows)
            tfhd = full_box(b"tfhd", 0, 0x020000, struct.pack(">I", t.track_id))
            tfdt = full_box(b"tfdt", 1, 0, struct.pack(">Q", max(0, samples[0][0])))
            trafs.append(box(b"traf", tfhd, tfdt, trun))
        return box(b"moof", full_box(b"mfhd", 0, 0, struct.pack(">I", self.sequence)), *trafs)
