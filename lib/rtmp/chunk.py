"""RTMP chunk stream: a sans-IO reader (bytes -> messages) and writer (message -> bytes).

Rules (this module owns the chunk layer):
- Reader: `feed(data)` returns complete messages only. A chunk is consumed only once all of its
  bytes (headers, extended timestamp, payload) are buffered, so any split of the byte stream
  gives the same messages. Anything a peer sends raises ChunkError, never another exception;
  after an error the reader is unusable (the connection closes).
- Timestamps are 32-bit and wrap. fmt 0 sets the absolute timestamp; fmt 1/2 add their delta; a
  fmt 3 chunk that starts a new message adds the last delta (after fmt 0 that is its absolute
  timestamp field, as SRS and ffmpeg do); fmt 3 continuation chunks keep the timestamp.
- Extended timestamp (field 0xFFFFFF): read after the message header. On fmt 3 continuation
  chunks it is optional, as in SRS: the next 4 bytes are consumed only if they equal the
  message's extended timestamp (decided once 4 bytes are buffered). A fmt 3 chunk starting a
  new message always carries it (SRS), and its value is the delta.
- A chunk stream must start with fmt 0, except that fmt 1 is accepted (stream id 0, timestamp
  from 0), because librtmp sends its first ping that way (SRS accepts it too).
- fmt 0 on a chunk stream with a partial message, or fmt 1 changing its length, is an error (SRS).
- Memory a peer can make us hold is bounded: one message at most `max_message_size` bytes, and
  the partial messages of all chunk streams together (up to 65599 of them, open before any
  connect) at most `max_partial_bytes` (default: the largest message, so no message a peer may
  send is refused). Past it: ChunkError. Unparsed bytes are at most one chunk.
- Set Chunk Size (type 1) and Abort (type 2) are applied by the reader as soon as they are
  parsed; they are still returned.
- An empty message (length 0) is never returned, nor applied (as SRS's recv_message, which
  ignores them): it carries nothing, and a peer could otherwise make one message per byte
  (1-byte fmt 3 chunks) for the layers above to handle (issue 20 point 10). Its header still
  moves the chunk stream's timestamp.
- `ChunkReader`, `Message` and `encode_message` are the C accelerator's (lib/rtmp/_chunkc.c, built by
  scripts/build_accel.py) when it is built and SRSEDGE_PURE_PYTHON is unset; otherwise the
  pure-Python `PureChunkReader`/`PureMessage`/`pure_encode_message` below, which stay the
  reference the C one is
  tested against (tests/test_chunk.py runs on both). `IMPLEMENTATION` says which ("c"/"python").
- Writer: fmt 0 header on the first chunk, fmt 3 on the rest, and the extended timestamp after
  every chunk header when the timestamp is >= 0xFFFFFF. `encode_delta_message` starts with a
  fmt 1 header instead (a timestamp delta < 0xFFFFFF, so never an extended field): its bytes
  depend only on the previous message of the chunk stream, so one encoding is shared by every
  player that received that message (lib/rtmp/timebase.py says when a player gets them).
"""

import os
import struct
from functools import lru_cache

from lib.rtmp.errors import ChunkError

__all__ = ["Message", "ChunkReader", "ChunkWriter", "encode_message", "encode_delta_message",
           "IMPLEMENTATION"]

# Same values as lib.rtmp.message's public constants; kept here so the chunk layer stands alone.
_MSG_SET_CHUNK_SIZE = 1
_MSG_ABORT = 2
EXTENDED = 0xFFFFFF
MASK32 = 0xFFFFFFFF

_U32BE = struct.Struct(">I")
_U32LE = struct.Struct("<I")
_U24BE = struct.Struct(">BH")  # a 24-bit big-endian field as (high byte, low 16 bits)
_TS_LEN_TYPE = struct.Struct(">BHBHB")  # timestamp(3) length(3) type(1): fmt 1, start of fmt 0
_MESSAGE_HEADER_SIZE = (11, 7, 3, 0)


class PureMessage:
    """One RTMP message. `payload` is bytes."""

    __slots__ = ("csid", "type_id", "stream_id", "timestamp", "payload")

    def __init__(self, csid, type_id, stream_id, timestamp, payload):
        self.csid = csid
        self.type_id = type_id
        self.stream_id = stream_id
        self.timestamp = timestamp
        self.payload = payload

    def __repr__(self):
        payload = self.payload[:16]
        more = "..." if len(self.payload) > 16 else ""
        return (f"Message(csid={self.csid}, type_id={self.type_id}, stream_id={self.stream_id}, "
                f"timestamp={self.timestamp}, payload={bytes(payload)!r}{more} [{len(self.payload)}])")

    def __eq__(self, other):
        if not isinstance(other, PureMessage):
            return NotImplemented
        return (self.csid == other.csid and self.type_id == other.type_id
                and self.stream_id == other.stream_id and self.timestamp == other.timestamp
                and self.payload == other.payload)

    __hash__ = None


class _ChunkStream:
    """Reader state of one chunk stream id: the last header and the partial message."""

    __slots__ = ("timestamp", "delta", "ext", "length", "type_id", "stream_id", "parts", "received")

    def __init__(self):
        self.timestamp = 0
        self.delta = 0
        self.ext = -1  # extended timestamp of the last header, -1 when it had none
        self.length = 0
        self.type_id = 0
        self.stream_id = 0
        self.parts = None  # payload pieces of the partial message, None between messages
        self.received = 0


class PureChunkReader:
    """Incremental chunk stream parser: `feed(data) -> list[Message]`."""

    def __init__(self, chunk_size=128, max_message_size=16 * 1024 * 1024, max_partial_bytes=None):
        self.chunk_size = chunk_size
        self.max_message_size = max_message_size
        self.max_partial_bytes = max_message_size if max_partial_bytes is None else max_partial_bytes
        self.partial_bytes = 0  # payload bytes held in partial messages, all chunk streams
        self.bytes_received = 0
        self._buf = bytearray()
        self._need = 1  # buffered bytes needed before the next chunk can be parsed
        self._streams = {}

    def feed(self, data):
        self.bytes_received += len(data)
        buf = self._buf
        buf += data
        if len(buf) < self._need:
            return []
        out = []
        pos = 0
        with memoryview(buf) as view:
            while True:
                end = self._read_chunk(view, pos, out)
                if end < 0:
                    break
                pos = end
        del buf[:pos]  # cheap: CPython drops a bytearray's head without moving the rest
        return out

    def _read_chunk(self, view, pos, out):
        """Parse one chunk at `pos`, apply it and return the position after it; or, when it is
        not fully buffered, remember how many bytes it needs and return -1 without any change."""
        avail = len(view) - pos
        if avail < 1:
            self._need = 1
            return -1
        b0 = view[pos]
        fmt = b0 >> 6
        csid = b0 & 0x3F
        p = pos + 1
        if csid < 2:
            if csid == 0:
                if avail < 2:
                    self._need = 2
                    return -1
                csid = 64 + view[p]
                p += 1
            else:
                if avail < 3:
                    self._need = 3
                    return -1
                csid = 64 + view[p] + (view[p + 1] << 8)
                p += 2

        cs = self._streams.get(csid)
        if cs is None and fmt >= 2:
            raise ChunkError(f"fmt {fmt} on chunk stream {csid} never opened")
        partial = cs is not None and cs.parts is not None
        end = p + _MESSAGE_HEADER_SIZE[fmt]
        if end > len(view):
            self._need = end - pos
            return -1

        # Parse the headers into locals; state changes only once the whole chunk is buffered.
        if fmt == 0:
            if partial:
                raise ChunkError(f"fmt 0 on chunk stream {csid} with a partial message")
            t_hi, t_lo, l_hi, l_lo, type_id = _TS_LEN_TYPE.unpack_from(view, p)
            stream_id = _U32LE.unpack_from(view, p + 7)[0]
        elif fmt == 1:
            t_hi, t_lo, l_hi, l_lo, type_id = _TS_LEN_TYPE.unpack_from(view, p)
        elif fmt == 2:
            t_hi, t_lo = _U24BE.unpack_from(view, p)
        p = end

        ext = -1
        if fmt < 3:
            ts_field = (t_hi << 16) | t_lo
            if ts_field == EXTENDED:
                end = p + 4
                if end > len(view):
                    self._need = end - pos
                    return -1
                ext = ts_field = _U32BE.unpack_from(view, p)[0]
                p = end
            if fmt < 2:
                length = (l_hi << 16) | l_lo
                if length > self.max_message_size:
                    raise ChunkError(f"message of {length} bytes on chunk stream {csid} "
                                     f"exceeds {self.max_message_size}")
                if partial and length != cs.length:
                    raise ChunkError(f"message length on chunk stream {csid} changed from "
                                     f"{cs.length} to {length} mid-message")
            else:
                length = cs.length
        else:
            length = cs.length
            if cs.ext >= 0:
                end = p + 4
                if end > len(view):
                    self._need = end - pos
                    return -1
                value = _U32BE.unpack_from(view, p)[0]
                if not partial:
                    ext = value
                    p = end
                elif value == cs.ext:
                    p = end

        received = cs.received if partial else 0
        size = length - received
        if size > self.chunk_size:
            size = self.chunk_size
        end = p + size
        if end > len(view):
            self._need = end - pos
            return -1

        # The whole chunk is buffered: apply it.
        self._need = 1
        if cs is None:
            cs = self._streams[csid] = _ChunkStream()
        if fmt < 3:
            cs.ext = ext
            cs.delta = ts_field
            if fmt == 0:
                cs.timestamp = ts_field
                cs.stream_id = stream_id
            elif not partial:
                cs.timestamp = (cs.timestamp + ts_field) & MASK32
            if fmt < 2:
                cs.length = length
                cs.type_id = type_id
        elif not partial:
            if ext >= 0:
                cs.delta = cs.ext = ext
            cs.timestamp = (cs.timestamp + cs.delta) & MASK32

        if length == 0:
            return end  # an empty message is dropped (as SRS); its header still counted above
        if not partial and size == length:
            payload = bytes(view[p:end])
        else:
            if partial:
                cs.parts.append(bytes(view[p:end]))
            else:
                cs.parts = [bytes(view[p:end])]
            received += size
            if received < length:
                cs.received = received
                self.partial_bytes += size
                if self.partial_bytes > self.max_partial_bytes:
                    raise ChunkError(f"{self.partial_bytes} bytes of partial messages on "
                                     f"{sum(s.parts is not None for s in self._streams.values())} "
                                     f"chunk streams exceed {self.max_partial_bytes}")
                return end
            self.partial_bytes -= received - size
            payload = b"".join(cs.parts)
            cs.parts = None
            cs.received = 0

        out.append(PureMessage(csid, cs.type_id, cs.stream_id, cs.timestamp, payload))
        if cs.type_id <= _MSG_ABORT:
            self._apply_control(cs.type_id, payload)
        return end

    def _apply_control(self, type_id, payload):
        if type_id == _MSG_SET_CHUNK_SIZE:
            if len(payload) < 4:
                raise ChunkError(f"set chunk size of {len(payload)} bytes")
            size = _U32BE.unpack_from(payload)[0]
            if size < 1 or size > 0x7FFFFFFF:
                raise ChunkError(f"chunk size {size}")
            self.chunk_size = size
        elif type_id == _MSG_ABORT:
            if len(payload) < 4:
                raise ChunkError(f"abort message of {len(payload)} bytes")
            cs = self._streams.get(_U32BE.unpack_from(payload)[0])
            if cs is not None and cs.parts is not None:
                self.partial_bytes -= cs.received
                cs.parts = None
                cs.received = 0




@lru_cache(maxsize=1024)
def _basic_headers(csid):
    """(fmt 0, fmt 3) basic headers of a chunk stream id."""
    if 2 <= csid <= 63:
        return bytes([csid]), bytes([0xC0 | csid])
    if 64 <= csid <= 319:
        return bytes([0, csid - 64]), bytes([0xC0, csid - 64])
    if 320 <= csid <= 65599:
        rest = (csid - 64).to_bytes(2, "little")
        return b"\x01" + rest, b"\xc1" + rest
    raise ValueError(f"chunk stream id {csid} out of range 2..65599")


def pure_encode_message(csid, type_id, stream_id, timestamp, payload, chunk_size):
    """One message as chunks: fmt 0 header first, fmt 3 headers between chunks."""
    first, cont = _basic_headers(csid)
    timestamp &= MASK32
    length = len(payload)
    if timestamp >= EXTENDED:
        ext = _U32BE.pack(timestamp)
        header = (first + _TS_LEN_TYPE.pack(0xFF, 0xFFFF, length >> 16, length & 0xFFFF, type_id)
                  + _U32LE.pack(stream_id) + ext)
        cont += ext
    else:
        header = (first + _TS_LEN_TYPE.pack(timestamp >> 16, timestamp & 0xFFFF,
                                            length >> 16, length & 0xFFFF, type_id)
                  + _U32LE.pack(stream_id))
    if length <= chunk_size:
        return header + payload
    view = memoryview(payload)
    chunks = [view[i:i + chunk_size] for i in range(chunk_size, length, chunk_size)]
    chunks.insert(0, header + view[:chunk_size])
    return cont.join(chunks)


@lru_cache(maxsize=1024)
def _delta_basic_header(csid):
    """The fmt 1 basic header of a chunk stream id."""
    first = _basic_headers(csid)[0]
    return bytes([0x40 | first[0]]) + first[1:]


def encode_delta_message(csid, type_id, delta, payload, chunk_size):
    """One message as chunks whose first header is fmt 1: a timestamp `delta` (0 <= delta <
    0xFFFFFF) from the previous message on chunk stream `csid`, whose message stream id it
    keeps; fmt 3 headers between chunks. The same bytes suit every peer that received that
    previous message with the same timestamp offset (lib/rtmp/timebase.py)."""
    if not 0 <= delta < EXTENDED:
        raise ValueError(f"delta {delta} out of range 0..0xFFFFFE")
    length = len(payload)
    header = _delta_basic_header(csid) + _TS_LEN_TYPE.pack(delta >> 16, delta & 0xFFFF,
                                                          length >> 16, length & 0xFFFF, type_id)
    if length <= chunk_size:
        return header + payload
    view = memoryview(payload)
    chunks = [view[i:i + chunk_size] for i in range(chunk_size, length, chunk_size)]
    chunks.insert(0, header + view[:chunk_size])
    return _basic_headers(csid)[1].join(chunks)


def _select():
    if not os.environ.get("SRSEDGE_PURE_PYTHON"):
        try:
            from lib.rtmp import _chunkc
        except ImportError:
            pass
        else:
            _chunkc.set_reference(pure_encode_message)
            return _chunkc.ChunkReader, _chunkc.Message, _chunkc.encode_message, "c"
    return PureChunkReader, PureMessage, pure_encode_message, "python"


ChunkReader, Message, encode_message, IMPLEMENTATION = _select()


class ChunkWriter:
    """Encodes messages with the current outgoing chunk size (full headers, no compression)."""

    def __init__(self, chunk_size=128):
        self.chunk_size = chunk_size

    def encode(self, csid, type_id, stream_id, timestamp, payload):
        return encode_message(csid, type_id, stream_id, timestamp, payload, self.chunk_size)
