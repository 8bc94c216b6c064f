"""RTMP message-level helpers (sans-IO): type and id constants, protocol control payload
builders and parsers, command and data messages (AMF0, and AMF3 types 17/15 which carry one
leading byte then AMF0), and aggregate message splitting.

Builders return payload bytes only; chunking is lib/rtmp/chunk.py's job. Anything a peer can
make these parsers raise is a ProtocolError (CommandError here, AmfError from amf0).
"""

import struct

from lib.rtmp import amf0
from lib.rtmp.errors import CommandError

MSG_SET_CHUNK_SIZE = 1
MSG_ABORT = 2
MSG_ACK = 3
MSG_USER_CONTROL = 4
MSG_WINDOW_ACK_SIZE = 5
MSG_SET_PEER_BANDWIDTH = 6
MSG_AUDIO = 8
MSG_VIDEO = 9
MSG_AMF3_DATA = 15
MSG_AMF3_SHARED_OBJECT = 16
MSG_AMF3_COMMAND = 17
MSG_AMF0_DATA = 18
MSG_AMF0_SHARED_OBJECT = 19
MSG_AMF0_COMMAND = 20
MSG_AGGREGATE = 22

UC_STREAM_BEGIN = 0
UC_STREAM_EOF = 1
UC_STREAM_DRY = 2
UC_SET_BUFFER_LENGTH = 3
UC_STREAM_IS_RECORDED = 4
UC_PING_REQUEST = 6
UC_PING_RESPONSE = 7

CSID_CONTROL = 2
CSID_COMMAND = 3
CSID_STREAM_COMMAND = 5
CSID_DATA = 5
CSID_VIDEO = 6
CSID_AUDIO = 7

LIMIT_HARD = 0
LIMIT_SOFT = 1
LIMIT_DYNAMIC = 2

_U32 = struct.Struct(">I")
_U16 = struct.Struct(">H")
_U32_U8 = struct.Struct(">IB")
_U32_MOD = 1 << 32

# How many u32 values follow each known user control event; unknown events take what is there.
_UC_VALUE_COUNTS = {
    UC_STREAM_BEGIN: 1,
    UC_STREAM_EOF: 1,
    UC_STREAM_DRY: 1,
    UC_SET_BUFFER_LENGTH: 2,
    UC_STREAM_IS_RECORDED: 1,
    UC_PING_REQUEST: 1,
    UC_PING_RESPONSE: 1,
}


# ---------------------------------------------------------------- protocol control


def _u32(value, what):
    if not 0 <= value < _U32_MOD:
        raise ValueError(f"{what} {value} does not fit in 32 bits")
    return _U32.pack(value)


def set_chunk_size(size):
    if not 1 <= size <= 0x7FFFFFFF:
        raise ValueError(f"chunk size {size} out of range 1..2^31-1")
    return _U32.pack(size)


def abort(csid):
    return _u32(csid, "chunk stream id")


def ack(sequence):
    return _U32.pack(sequence % _U32_MOD)


def window_ack_size(size):
    return _u32(size, "window ack size")


def set_peer_bandwidth(size, limit_type):
    _u32(size, "peer bandwidth")
    return _U32_U8.pack(size, limit_type)


def user_control(event, *values):
    return _U16.pack(event) + b"".join(_u32(v, "user control value") for v in values)


def parse_u32(payload):
    if len(payload) < 4:
        raise CommandError(f"control message too short: {len(payload)} bytes, need 4")
    return _U32.unpack_from(payload, 0)[0]


def parse_user_control(payload):
    """Return (event, tuple of u32 values) of a user control message payload."""
    if len(payload) < 2:
        raise CommandError(f"user control message too short: {len(payload)} bytes")
    event = _U16.unpack_from(payload, 0)[0]
    count = _UC_VALUE_COUNTS.get(event, (len(payload) - 2) // 4)
    if len(payload) < 2 + 4 * count:
        raise CommandError(f"user control event {event} too short: {len(payload)} bytes")
    return event, struct.unpack_from(f">{count}I", payload, 2)


# ---------------------------------------------------------------- commands and data


class Command:
    """A command message: name, transaction id, command object, further arguments."""

    __slots__ = ("name", "tid", "obj", "args")

    def __init__(self, name, tid=0.0, obj=None, args=None):
        self.name = name
        self.tid = tid
        self.obj = obj
        self.args = list(args) if args is not None else []

    def __eq__(self, other):
        if not isinstance(other, Command):
            return NotImplemented
        return (self.name, self.tid, self.obj, self.args) == (
            other.name, other.tid, other.obj, other.args)

    __hash__ = None

    def __repr__(self):
        return f"Command({self.name!r}, {self.tid!r}, {self.obj!r}, {self.args!r})"


def _amf0_start(type_id, amf0_type, amf3_type, payload, what):
    """Offset of the AMF0 values in a message of type amf0_type or amf3_type."""
    if type_id == amf0_type:
        return 0
    if type_id == amf3_type:
        if not payload:
            raise CommandError(f"empty AMF3 {what} message")
        return 1  # one leading byte (0x00 in practice), then AMF0
    raise CommandError(f"message type {type_id} is not a {what} message")


def parse_command(type_id, payload):
    """Parse a command message (type 20 AMF0 or 17 AMF3) into a Command."""
    start = _amf0_start(type_id, MSG_AMF0_COMMAND, MSG_AMF3_COMMAND, payload, "command")
    values = amf0.decode_values(payload, start)
    if not values or not isinstance(values[0], str):
        raise CommandError(f"command message does not start with a name: {values[:1]!r}")
    name = values[0]
    tid = values[1] if len(values) > 1 else None   # None: the peer sent no transaction id
    if tid is not None and not isinstance(tid, float):
        raise CommandError(f"command {name!r} has a non-number transaction id {tid!r}")
    obj = values[2] if len(values) > 2 else None
    return Command(name, tid, obj, values[3:])


def encode_command(name, tid, obj, *args):
    """AMF0 command message payload."""
    return amf0.encode(name, float(tid) if tid is not None else 0.0, obj, *args)


def parse_data(type_id, payload):
    """Values of a data message (type 18 AMF0 or 15 AMF3)."""
    start = _amf0_start(type_id, MSG_AMF0_DATA, MSG_AMF3_DATA, payload, "data")
    return amf0.decode_values(payload, start)


# ---------------------------------------------------------------- aggregate


_TAG_HEADER_SIZE = 11
_BACK_POINTER_SIZE = 4


def _tag_timestamp(data, pos):
    """Timestamp of the FLV tag at pos: 24 low bits, then the upper 8 bits (SRS masks bit 31)."""
    low24 = int.from_bytes(data[pos + 4:pos + 7], "big")
    return (data[pos + 7] << 24 | low24) & 0x7FFFFFFF


MAX_AGGREGATE_TAGS = 256   # tags in one aggregate (issue 20 point 10): real ones hold a few frames


def split_aggregate(timestamp, payload, max_tags=MAX_AGGREGATE_TAGS):
    """Split an aggregate message body (FLV tags) into [(type_id, timestamp, payload)].

    Timestamps are rebased as SRS does: the first tag gets the aggregate's timestamp and the
    others keep their offsets from the first. More than `max_tags` tags is an error (unlike
    SRS): 16 MB of 16-byte tags would be a million messages to handle at once.
    """
    payload = bytes(payload)
    messages = []
    delta = None
    pos = 0
    while pos < len(payload):
        if len(messages) == max_tags:
            raise CommandError(f"aggregate message of more than {max_tags} tags")
        if pos + _TAG_HEADER_SIZE > len(payload):
            raise CommandError(f"aggregate message: truncated tag header at offset {pos}")
        type_id = payload[pos]
        size = int.from_bytes(payload[pos + 1:pos + 4], "big")
        tag_time = _tag_timestamp(payload, pos)
        if delta is None:
            delta = timestamp - tag_time
        body = pos + _TAG_HEADER_SIZE
        end = body + size + _BACK_POINTER_SIZE
        if end > len(payload):
            raise CommandError(f"aggregate message: tag at offset {pos} needs {end} bytes, "
                               f"have {len(payload)}")
        messages.append((type_id, (tag_time + delta) % _U32_MOD, payload[body:body + size]))
        pos = end
    return messages
