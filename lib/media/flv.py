"""FLV tag inspection and FLV byte building (sans-IO).

Rules: inspection is lib.media.frame's (it never raises on short or odd payloads: an empty or
unknown payload is "not a keyframe, not a sequence header"; Enhanced RTMP sequence starts of
any codec are sequence headers). Building returns bytes; the caller shares them among all
players. Reading a live FLV stream (an edge pulling over HTTP-FLV) is FlvTagReader's: bytes
in, complete tags out, whatever the split; it holds at most one incomplete tag (< 16 MiB, the
24-bit size) and raises FlvError on bytes that are not FLV.
"""
import struct

from lib.media import frame

TAG_AUDIO = 8
TAG_VIDEO = 9
TAG_SCRIPT = 18

CODEC_AVC = 7
CODEC_HEVC = 12
SOUND_AAC = 10


# Thin wrappers over lib.media.frame (the one parser of media facts); new code reads the facts
# the shared message carries (msg.frame, msg.is_keyframe, msg.is_sequence_header) instead.
def is_video_keyframe(payload):
    return frame.parse_video(payload).is_keyframe


def is_video_sequence_header(payload):
    return frame.parse_video(payload).is_sequence_header


def is_audio_sequence_header(payload):
    return frame.parse_audio(payload).is_sequence_header


def video_codec(payload):
    """The legacy FLV video codec id (7 AVC); an Enhanced RTMP header (bit 0x80) has none."""
    return payload[0] & 0x0F if payload else 0


def audio_codec(payload):
    """The FLV sound format (10 AAC); 9 is Enhanced RTMP's ExHeader."""
    return payload[0] >> 4 if payload else 0


def file_header(has_audio=True, has_video=True):
    """FLV file header plus the first PreviousTagSize0."""
    flags = (4 if has_audio else 0) | (1 if has_video else 0)
    return b"FLV\x01" + bytes([flags]) + b"\x00\x00\x00\x09" + b"\x00\x00\x00\x00"


_TAG_HEAD = struct.Struct(">B3sI3s")  # type, size(24), ts low24 | ts ext<<24 packed below


def tag(tag_type, timestamp, payload):
    """One FLV tag followed by its PreviousTagSize."""
    size = len(payload)
    ts = timestamp & 0xFFFFFFFF
    head = bytes((tag_type, (size >> 16) & 0xFF, (size >> 8) & 0xFF, size & 0xFF,
                  (ts >> 16) & 0xFF, (ts >> 8) & 0xFF, ts & 0xFF, (ts >> 24) & 0xFF, 0, 0, 0))
    return b"".join((head, payload, struct.pack(">I", size + 11)))


def iter_tags(data):
    """Yield (tag_type, timestamp, payload) from FLV file bytes (header included). For tests."""
    if data[:3] != b"FLV":
        raise ValueError("not an FLV file")
    pos = struct.unpack_from(">I", data, 5)[0] + 4
    while pos + 11 <= len(data):
        tag_type = data[pos]
        size = int.from_bytes(data[pos + 1:pos + 4], "big")
        ts = int.from_bytes(data[pos + 4:pos + 7], "big") | (data[pos + 7] << 24)
        if pos + 11 + size > len(data):
            return
        yield tag_type, ts, bytes(data[pos + 11:pos + 11 + size])
        pos += 11 + size + 4


class FlvError(ValueError):
    """Bytes that are not an FLV stream (a bad header, an encrypted or unknown tag type)."""


_HEADER_SIZE = 9            # "FLV", version, flags, DataOffset(4)
_TAG_HEADER = 11
_KNOWN_TAGS = (TAG_AUDIO, TAG_VIDEO, TAG_SCRIPT)


class FlvTagReader:
    """A sans-IO FLV stream reader: `feed(bytes)` returns the (tag_type, timestamp, payload)
    tuples completed by those bytes (timestamps with their extension byte: 32 bits)."""

    def __init__(self):
        self._buf = bytearray()
        self._skip = None           # bytes before the first tag, once the header is read

    @property
    def buffered(self):
        return len(self._buf)

    def feed(self, data):
        buf = self._buf
        buf += data
        pos = 0
        if self._skip is None:
            if len(buf) < _HEADER_SIZE:
                if bytes(buf[:3]) != b"FLV"[:len(buf)]:
                    raise FlvError("not an FLV stream")
                return []
            if buf[:3] != b"FLV":
                raise FlvError("not an FLV stream")
            offset = int.from_bytes(buf[5:9], "big")
            if offset < _HEADER_SIZE:
                raise FlvError(f"bad FLV header size {offset}")
            self._skip = offset + 4                 # the header, then PreviousTagSize0
        if self._skip:
            pos = min(self._skip, len(buf))
            self._skip -= pos
            if self._skip:
                del buf[:pos]
                return []
        tags = []
        end = len(buf)
        while end - pos >= _TAG_HEADER:
            tag_type = buf[pos]
            if tag_type not in _KNOWN_TAGS:
                raise FlvError(f"encrypted or unknown FLV tag type {tag_type:#x}")
            size = int.from_bytes(buf[pos + 1:pos + 4], "big")
            total = _TAG_HEADER + size + 4          # header, payload, PreviousTagSize
            if end - pos < total:
                break
            ts = int.from_bytes(buf[pos + 4:pos + 7], "big") | (buf[pos + 7] << 24)
            start = pos + _TAG_HEADER
            tags.append((tag_type, ts, bytes(buf[start:start + size])))
            pos += total
        del buf[:pos]
        return tags
