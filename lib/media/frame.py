"""Media facts of one RTMP/FLV audio or video message, parsed once at ingest (sans-IO).

Rules (this module owns them):
- `parse_video(payload)` / `parse_audio(payload)` return a `Frame`: codec (a FourCC string; the
  legacy ids map to their FourCC: AVC 7 -> "avc1", HEVC 12 (the pre-2023 Chinese extension) ->
  "hvc1", AAC 10 -> "mp4a", MP3 2/14 -> ".mp3"), frame type, packet type, composition time and
  where the codec data starts and ends in the payload. Nothing downstream peeks at bytes again.
- Legacy video: UB4 frameType | UB4 codecId; AVC/HEVC then UI8 AVCPacketType (0 sequence header,
  1 NALUs, 2 end of sequence) and SI24 composition time (a payload cut short keeps its packet
  type and has empty data). Other legacy codecs (H.263, VP6...) are
  coded frames with the data after the first byte.
- Enhanced RTMP (veovera enhanced-rtmp v2), video: UB1 isExHeader | UB3 frameType | UB4
  packetType. ModEx (7) packets carry modifier data (UI8 size-1, 255 -> UI16 size-1), then
  UB4 modExType | UB4 packetType; they are skipped. frameType 5 (command frame) with a packet type
  other than Metadata is a one-byte command without media. Multitrack (6): UB4 multitrackType |
  UB4 packetType, then the FourCC unless ManyTracksManyCodecs, then per track [FourCC] UI8 trackId
  [UI24 size unless OneTrack]. Only the FIRST track is described (codec, data bounds): players
  over RTMP/HTTP-FLV get the whole message; HLS uses the first track's data. CodedFrames (1) of
  avc1/hvc1 carry an SI24 composition time, CodedFramesX (3) and every other codec none.
- Enhanced audio: UB4 soundFormat 9 (ExHeader) | UB4 packetType (0 SequenceStart, 1 CodedFrames,
  2 SequenceEnd, 4 MultichannelConfig, 5 Multitrack, 7 ModEx), then the FourCC ("Opus", "fLaC",
  "ac-3", "ec-3", "mp4a", ".mp3") with the same multitrack/ModEx layout as video.
- Legacy audio: UB4 soundFormat | UB2 rate | UB1 size | UB1 type; AAC then UI8 AACPacketType
  (0 sequence header, 1 raw). Every other legacy format is coded frames after the first byte.
- Never raises on peer bytes: a truncated or unknown payload is a Frame with packet OTHER (not a
  keyframe, not a sequence header), which downstream treats as opaque media.
"""

# packet kinds (the enhanced numbering; legacy AVC/AAC packet types map onto it)
SEQUENCE_START = 0
CODED_FRAMES = 1
SEQUENCE_END = 2
CODED_FRAMES_X = 3
METADATA = 4
MPEG2TS_SEQUENCE_START = 5
MULTITRACK = 6
MOD_EX = 7
MULTICHANNEL_CONFIG = 4        # audio's packet type 4
AUDIO_MULTITRACK = 5           # audio's packet type 5
COMMAND = 16                   # a video command frame (no media)
OTHER = 17                     # truncated, reserved or unknown

# video frame types
KEY_FRAME = 1
INTER_FRAME = 2
DISPOSABLE_INTER_FRAME = 3
GENERATED_KEY_FRAME = 4
COMMAND_FRAME = 5

# multitrack types
ONE_TRACK = 0
MANY_TRACKS = 1
MANY_TRACKS_MANY_CODECS = 2

LEGACY_VIDEO = {2: "h263", 3: "scr1", 4: "vp6f", 5: "vp6a", 6: "scr2", 7: "avc1", 12: "hvc1"}
LEGACY_AUDIO = {0: "lpcm", 1: "adpcm", 2: ".mp3", 3: "lpcm", 4: "nellymoser", 5: "nellymoser",
                6: "nellymoser", 7: "alaw", 8: "ulaw", 10: "mp4a", 11: "speex", 14: ".mp3",
                15: "device"}
CODEC_NAMES = {"avc1": "H.264", "hvc1": "H.265", "av01": "AV1", "vp09": "VP9", "vp08": "VP8",
               "h263": "H.263", "vp6f": "VP6", "vp6a": "VP6A", "mp4a": "AAC", "Opus": "Opus",
               ".mp3": "MP3", "fLaC": "FLAC", "ac-3": "AC-3", "ec-3": "E-AC-3"}
_CTS_CODECS = frozenset({"avc1", "hvc1"})
_EX_AUDIO = 9


class Frame:
    """The facts of one audio/video message. `offset:end` is the codec data (the configuration
    record for a sequence start, the coded frame(s) otherwise) of the first track."""
    __slots__ = ("codec", "enhanced", "frame_type", "packet", "cts", "offset", "end",
                 "multitrack", "is_keyframe", "is_sequence_header")

    def __init__(self, codec, enhanced, frame_type, packet, cts, offset, end, multitrack=False):
        self.codec = codec
        self.enhanced = enhanced
        self.frame_type = frame_type
        self.packet = packet
        self.cts = cts
        self.offset = offset
        self.end = end
        self.multitrack = multitrack
        self.is_sequence_header = packet == SEQUENCE_START
        self.is_keyframe = frame_type == KEY_FRAME and packet in (CODED_FRAMES, CODED_FRAMES_X)

    @property
    def is_coded_frame(self):
        return self.packet in (CODED_FRAMES, CODED_FRAMES_X)

    @property
    def is_sequence_end(self):
        return self.packet == SEQUENCE_END

    @property
    def name(self):
        """Display name of the codec ("H.265", "Opus"), or the FourCC itself."""
        return CODEC_NAMES.get(self.codec, self.codec)

    def data(self, payload):
        return memoryview(payload)[self.offset:self.end]

    def __repr__(self):
        return (f"<Frame {self.codec} type={self.frame_type} packet={self.packet} cts={self.cts}"
                f" data={self.offset}:{self.end}{' multitrack' if self.multitrack else ''}>")


def _opaque(codec, enhanced, frame_type, end):
    return Frame(codec, enhanced, frame_type, OTHER, 0, end, end)


def parse_video(payload):
    n = len(payload)
    if n == 0:
        return _opaque("", False, 0, 0)
    first = payload[0]
    if not first & 0x80:
        frame_type, codec_id = first >> 4, first & 0x0F
        codec = LEGACY_VIDEO.get(codec_id, f"video{codec_id}")
        if codec_id not in (7, 12):
            packet = COMMAND if frame_type == COMMAND_FRAME else CODED_FRAMES
            return Frame(codec, False, frame_type, packet, 0, 1, n)
        if n < 2 or payload[1] > 2:
            return _opaque(codec, False, frame_type, n)
        packet = payload[1]                   # a short packet keeps its type, data is empty
        cts = int.from_bytes(payload[2:5], "big", signed=True) if packet == 1 and n >= 5 else 0
        return Frame(codec, False, frame_type, packet, cts, min(5, n), n)
    frame_type = (first >> 4) & 0x07
    packet, pos = _skip_mod_ex(payload, first & 0x0F, 1)
    if packet is None:
        return _opaque("", True, frame_type, n)
    if frame_type == COMMAND_FRAME and packet != METADATA:
        return Frame("", True, frame_type, COMMAND, 0, n, n)
    return _enhanced_body(payload, packet, pos, frame_type, MULTITRACK, True)


def parse_audio(payload):
    n = len(payload)
    if n == 0:
        return _opaque("", False, 0, 0)
    sound_format = payload[0] >> 4
    if sound_format != _EX_AUDIO:
        codec = LEGACY_AUDIO.get(sound_format, f"audio{sound_format}")
        if sound_format != 10:
            return Frame(codec, False, 0, CODED_FRAMES, 0, 1, n)
        if n < 2 or payload[1] > 1:
            return _opaque(codec, False, 0, n)
        return Frame(codec, False, 0, payload[1], 0, 2, n)
    packet, pos = _skip_mod_ex(payload, payload[0] & 0x0F, 1)
    if packet is None:
        return _opaque("", True, 0, n)
    return _enhanced_body(payload, packet, pos, 0, AUDIO_MULTITRACK, False)


def _skip_mod_ex(payload, packet, pos):
    """(packet type after any ModEx prefixes, position after them), or (None, 0) if truncated."""
    n = len(payload)
    while packet == MOD_EX:
        if pos >= n:
            return None, 0
        size = payload[pos] + 1
        pos += 1
        if size == 256:
            if pos + 2 > n:
                return None, 0
            size = int.from_bytes(payload[pos:pos + 2], "big") + 1
            pos += 2
        pos += size
        if pos >= n:
            return None, 0
        packet = payload[pos] & 0x0F          # high nibble: the modifier type (ignored)
        pos += 1
    return packet, pos


def _fourcc(payload, pos):
    return bytes(payload[pos:pos + 4]).decode("latin-1")


def _enhanced_body(payload, packet, pos, frame_type, multitrack_packet, video):
    n = len(payload)
    multitrack = packet == multitrack_packet
    end = n
    if multitrack:
        if pos >= n:
            return _opaque("", True, frame_type, n)
        mt_type, packet = payload[pos] >> 4, payload[pos] & 0x0F
        pos += 1
        # the shared FourCC, or with ManyTracksManyCodecs the first track's own: same place
        codec = _fourcc(payload, pos)
        pos += 4
        pos += 1                              # trackId (the first track's)
        if mt_type != ONE_TRACK:
            size = int.from_bytes(payload[pos:pos + 3], "big")
            pos += 3
            end = min(n, pos + size)
    else:
        codec = _fourcc(payload, pos)
        pos += 4
    if pos > n or len(codec) != 4:
        return _opaque(codec if len(codec) == 4 else "", True, frame_type, n)
    cts = 0
    if video and packet == CODED_FRAMES and codec in _CTS_CODECS:
        if pos + 3 > end:
            return _opaque(codec, True, frame_type, n)
        cts = int.from_bytes(payload[pos:pos + 3], "big", signed=True)
        pos += 3
    if packet > MOD_EX or (not video and packet in (3, 6)):
        packet = OTHER
    return Frame(codec, True, frame_type, packet, cts, pos, end, multitrack)


def quick_facts(type_id, payload):
    """(is_keyframe, is_sequence_header) of a legacy audio/video message without building a
    Frame (the ingest hot path; the Frame is parsed later only if someone reads it), or None
    when only a full parse can tell (Enhanced RTMP, empty payloads). Always the same answer as
    `parse` (tests/test_frame.py checks every first two bytes)."""
    n = len(payload)
    if n == 0:
        return None
    first = payload[0]
    if type_id == 9:
        if first & 0x80:
            return None
        codec_id = first & 0x0F
        if codec_id != 7 and codec_id != 12:
            return first >> 4 == KEY_FRAME, False
        if n < 2 or payload[1] > 2:
            return False, False
        packet = payload[1]
        return first >> 4 == KEY_FRAME and packet == CODED_FRAMES, packet == SEQUENCE_START
    if type_id == 8:
        if first >> 4 == _EX_AUDIO:
            return None
        return False, first >> 4 == 10 and n >= 2 and payload[1] == SEQUENCE_START
    return None


def parse(type_id, payload):
    """Facts of an audio (8) or video (9) message; None for any other message type."""
    if type_id == 9:
        return parse_video(payload)
    if type_id == 8:
        return parse_audio(payload)
    return None


__all__ = ["Frame", "parse", "quick_facts", "parse_video", "parse_audio", "CODEC_NAMES"]
