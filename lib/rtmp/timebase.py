"""Per-player timestamps over shared encodings (issues 10 point 5, 22 point 3; sans-IO).

SRS (`play { time_jitter full; }`, the default) corrects timestamps per consumer, so every player
starts near 0 whatever the stream's age. srsedge encodes each message once and every player
sends the same bytes, so those bytes must not depend on the player's base:
- RTMP (issue 22 point 3): an audio/video message is encoded with a fmt 1 header carrying the
  timestamp DELTA from the previous message on its chunk stream (lib/rtmp/chunk.py
  encode_delta_message; each chunk stream, video 6 and audio 7, is its own chain, numbered by
  the source: `chain`, `delta`). A peer that received that previous message with timestamp
  `prev - base` decodes `ts - base`: the bytes are the same for every player in step, whatever
  its base and the stream's age (no extended field: a delta < 0xFFFFFF). A player that is not in
  step on a chunk stream (its first message there after attach, a shed, a resume or private
  bytes; after a message whose timestamp it got clamped to 0) gets that message with a fmt 0
  header of its own (its timestamp, stream id 1) followed by the shared rest
  (`rtmp_for_player`), after which it is in step again. When its own timestamp is extended
  (>= 0xFFFFFF) and the message has continuation chunks, those must repeat the 4-byte field
  (ffmpeg, librtmp and SRS read them so), so that one message is encoded afresh for it. A
  message that cannot be a delta (the first of a chain, a step back, a delta >= 0xFFFFFF, data
  messages such as onMetaData at 0) is encoded with fmt 0 and its absolute timestamp, and a
  player whose base is not 0 gets it as [its own prefix, the shared rest] (`rtmp_prefix`; a
  full copy when the old or new timestamp is extended, `rtmp_rebase`): rare, per message.
- FLV tag (lib/media/flv.py tag): a tag has only an absolute timestamp (bytes 4..6 low 24 bits,
  7 high 8 bits), so a player with a base sends [its own 8 bytes, the shared rest] per tag
  (`flv_prefix`; `rebase_all`); Source.flush_all builds them once per distinct base per flush.

`PlayerTimebase` is the per-player rule: base = the timestamp of the position the player starts
at (the GOP cache start), then out = ts - base, never below 0; time_jitter `off` keeps the
source's timestamps (base 0). The source's jitter correction already makes timestamps
monotonic, so SRS's per-consumer `full` correction reduces to this subtraction.

Wrap (issue 20 point 11): the source's timeline (lib/media/jitter.py) is unbounded, the bytes
carry its low 32 bits. So a message's place is recovered from its 32-bit wire timestamp and
the source's newest timestamp (`newest`): the latest time <= newest with those low bits (a log
holds seconds of media, never 49.7 days). The base stays unbounded; what a player sees is
masked to 32 bits by the encoders here, so a player connected longer than 2^32 ms wraps like
any RTMP peer. A data message at wire timestamp 0 (onMetaData, sent at 0) keeps 0.
"""

from lib.rtmp.chunk import encode_message

EXTENDED = 0xFFFFFF
_MASK32 = 0xFFFFFFFF
_DATA_TYPES = (15, 18)         # AMF3 / AMF0 data (onMetaData)


def _basic_header_size(first_byte):
    """Bytes of a chunk basic header from its first byte (csid 0 -> 2 bytes, 1 -> 3)."""
    low = first_byte & 0x3F
    return 2 if low == 0 else 3 if low == 1 else 1


def rtmp_split(encoded):
    """Where the type-0 timestamp field of `encoded` ends: the prefix is encoded[:n] (basic
    header + 3-byte timestamp), the shared rest encoded[n:]."""
    if encoded[0] >> 6 != 0:
        raise ValueError("not a type-0 chunk header")
    return _basic_header_size(encoded[0]) + 3


def rtmp_timestamp(encoded):
    """The timestamp a type-0 encoded message carries (extended one included)."""
    b = _basic_header_size(encoded[0])
    ts = int.from_bytes(encoded[b:b + 3], "big")
    if ts == EXTENDED:
        ts = int.from_bytes(encoded[b + 11:b + 15], "big")
    return ts


def needs_copy(encoded, new_ts):
    """True when `rtmp_prefix` cannot do it: the old or new timestamp is extended."""
    b = _basic_header_size(encoded[0])
    return encoded[b:b + 3] == b"\xff\xff\xff" or (new_ts & _MASK32) >= EXTENDED


def rtmp_prefix(encoded, new_ts):
    """The per-player prefix replacing encoded[:rtmp_split(encoded)] for `new_ts` (< 0xFFFFFF,
    original not extended: check `needs_copy` first)."""
    b = _basic_header_size(encoded[0])
    return bytes(encoded[:b]) + (new_ts & _MASK32).to_bytes(3, "big")


def rtmp_rebase(encoded, new_ts, chunk_size):
    """A full copy of a type-0 encoded message (fmt 3 continuation chunks of `chunk_size`) with
    `new_ts`: handles extended timestamps appearing or going away."""
    b = _basic_header_size(encoded[0])
    first = bytes(encoded[:b])
    header = bytes(encoded[b + 3:b + 11])          # length, type, stream id
    old_ext = encoded[b:b + 3] == b"\xff\xff\xff"
    pos = b + 11 + (4 if old_ext else 0)
    length = int.from_bytes(header[0:3], "big")
    cont = bytes([0xC0 | (encoded[0] & 0x3F)]) + first[1:]
    skip = len(cont) + (4 if old_ext else 0)
    payload = bytearray()
    while len(payload) < length:
        take = min(chunk_size, length - len(payload))
        payload += encoded[pos:pos + take]
        pos += take
        if len(payload) < length:
            pos += skip
    ts = new_ts & _MASK32
    ext = ts >= EXTENDED
    ts_field = (EXTENDED if ext else ts).to_bytes(3, "big")
    ext_bytes = ts.to_bytes(4, "big") if ext else b""
    out = [first + ts_field + header + ext_bytes + payload[:chunk_size]]
    for i in range(chunk_size, length, chunk_size):
        out.append(cont + ext_bytes + payload[i:i + chunk_size])
    return b"".join(out)


def flv_prefix(tag, new_ts):
    """The first 8 bytes of an FLV tag (type, size, timestamp) for `new_ts`; the shared rest is
    tag[8:]."""
    ts = new_ts & _MASK32
    return bytes(tag[:4]) + bytes(((ts >> 16) & 0xFF, (ts >> 8) & 0xFF, ts & 0xFF, ts >> 24))


def flv_timestamp(tag):
    """The timestamp an FLV tag carries."""
    return (tag[7] << 24) | (tag[4] << 16) | (tag[5] << 8) | tag[6]


def rebase_all(bufs, kind, timebase, chunk_size, newest):
    """iovecs for `bufs` (whole encoded messages of `kind` "rtmp" or "flv", as the source's log
    holds them) with every timestamp mapped by `timebase` (`newest`: the source's largest
    timestamp, see the header): a message whose timestamp does not change is kept as is,
    others become [prefix, shared rest] (or a copy, see needs_copy)."""
    out = []
    for buf in bufs:
        if kind == "rtmp":
            ts = rtmp_timestamp(buf)
            if ts == 0 and buf[_basic_header_size(buf[0]) + 6] in _DATA_TYPES:
                out.append(buf)                     # onMetaData's 0
                continue
            new = timebase.out(ts, newest) & _MASK32
            if new == ts:
                out.append(buf)
            elif needs_copy(buf, new):
                out.append(rtmp_rebase(buf, new, chunk_size))
            else:
                n = rtmp_split(buf)
                out += (rtmp_prefix(buf, new), memoryview(buf)[n:])
        else:
            ts = flv_timestamp(buf)
            if ts == 0 and buf[0] & 0x1F in _DATA_TYPES:
                out.append(buf)
                continue
            new = timebase.out(ts, newest) & _MASK32
            if new == ts:
                out.append(buf)
            else:
                out += (flv_prefix(buf, new), memoryview(buf)[8:])
    return out


IN_STEP = -2      # `sync` value: the player received the newest message of that chunk stream


def _fmt0_from_delta(msg, ts, stream_id, chunk_size):
    """iovecs of `msg` (its shared bytes start with a fmt 1 header, see encode_delta_message)
    with a fmt 0 header of the player's own carrying `ts`: [own header, shared rest], or one
    fresh encoding when `ts` is extended and the message has continuation chunks (they must
    then repeat the 4-byte extended timestamp, as ffmpeg, librtmp and SRS read them)."""
    data = msg.rtmp
    b = _basic_header_size(data[0])
    if ts >= EXTENDED:
        if len(msg.payload) > chunk_size:
            return (encode_message(msg.csid, msg.type_id, stream_id, ts, msg.payload, chunk_size),)
        head = b"\xff\xff\xff" + data[b + 3:b + 7] + stream_id.to_bytes(4, "little") + ts.to_bytes(4, "big")
    else:
        head = ts.to_bytes(3, "big") + data[b + 3:b + 7] + stream_id.to_bytes(4, "little")
    return (bytes((data[0] & 0x3F,)) + data[1:b] + head, memoryview(data)[b + 7:])


def rtmp_for_player(msgs, timebase, sync, chunk_size, newest, stream_id):
    """iovecs of `msgs` (the source's SharedMessages, in order) as one player receives them over
    RTMP (see the header: shared bytes wherever they fit, its own fmt 0 header where not).
    `sync` (csid -> the chain number of the last message the player received on that chunk
    stream with its timestamp in step, or IN_STEP) is the player's state; updated here."""
    out = []
    base = timebase.base
    for m in msgs:
        cs = m.csid
        chain = m.chain
        if m.delta >= 0:
            s = sync.get(cs)
            if s == chain - 1 or s == IN_STEP:
                out.append(m.rtmp)
                sync[cs] = chain
                continue
        wire = m.wire_ts & _MASK32
        ts = 0 if wire == 0 and m.type_id in _DATA_TYPES else timebase.out(wire, newest) & _MASK32
        if m.delta >= 0:
            out += _fmt0_from_delta(m, ts, stream_id, chunk_size)
        else:
            data = m.rtmp
            if ts == wire:
                out.append(data)
            elif needs_copy(data, ts):
                out.append(rtmp_rebase(data, ts, chunk_size))
            else:
                out += (rtmp_prefix(data, ts), memoryview(data)[rtmp_split(data):])
        if chain >= 0 and ts == (wire - base) & _MASK32:
            sync[cs] = chain
        else:
            sync.pop(cs, None)
    return out


class PlayerTimebase:
    """One player's timestamp rule (see the header): `base` is the timestamp of the position the
    player starts at (Source.start_bytes' GOP start), given when it attaches."""
    __slots__ = ("base",)

    def __init__(self, mode, start_ts):
        self.base = 0 if mode == "off" else start_ts

    def out(self, ts, newest):
        """The timestamp this player sees (unbounded: encoders keep the low 32 bits) for a
        message whose wire timestamp is `ts` on a source whose largest timestamp is `newest`."""
        place = newest - ((newest - ts) & _MASK32)
        return place - self.base if place > self.base else 0
