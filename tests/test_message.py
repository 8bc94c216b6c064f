"""RTMP message helpers: control payloads vs hand-written bytes, commands, data, aggregates."""

import pytest
from hypothesis import given, strategies as st

from lib.rtmp import amf0, message as m
from lib.rtmp.errors import CommandError, ProtocolError

ONE = bytes.fromhex("3ff0000000000000")
TWO = bytes.fromhex("4000000000000000")


def test_constants():
    assert (m.MSG_SET_CHUNK_SIZE, m.MSG_ABORT, m.MSG_ACK, m.MSG_USER_CONTROL) == (1, 2, 3, 4)
    assert (m.MSG_WINDOW_ACK_SIZE, m.MSG_SET_PEER_BANDWIDTH) == (5, 6)
    assert (m.MSG_AUDIO, m.MSG_VIDEO) == (8, 9)
    assert (m.MSG_AMF3_DATA, m.MSG_AMF3_SHARED_OBJECT, m.MSG_AMF3_COMMAND) == (15, 16, 17)
    assert (m.MSG_AMF0_DATA, m.MSG_AMF0_SHARED_OBJECT, m.MSG_AMF0_COMMAND) == (18, 19, 20)
    assert m.MSG_AGGREGATE == 22
    assert (m.UC_STREAM_BEGIN, m.UC_STREAM_EOF, m.UC_STREAM_DRY) == (0, 1, 2)
    assert m.UC_SET_BUFFER_LENGTH == 3
    assert (m.UC_STREAM_IS_RECORDED, m.UC_PING_REQUEST, m.UC_PING_RESPONSE) == (4, 6, 7)
    assert (m.CSID_CONTROL, m.CSID_COMMAND, m.CSID_STREAM_COMMAND) == (2, 3, 5)
    assert (m.CSID_DATA, m.CSID_VIDEO, m.CSID_AUDIO) == (5, 6, 7)
    assert (m.LIMIT_HARD, m.LIMIT_SOFT, m.LIMIT_DYNAMIC) == (0, 1, 2)


# ---------------------------------------------------------------- protocol control


@pytest.mark.parametrize("payload, data", [
    (m.set_chunk_size(4096), b"\x00\x00\x10\x00"),
    (m.set_chunk_size(0x7FFFFFFF), b"\x7f\xff\xff\xff"),
    (m.abort(3), b"\x00\x00\x00\x03"),
    (m.ack(0x12345678), b"\x12\x34\x56\x78"),
    (m.ack((1 << 32) + 5), b"\x00\x00\x00\x05"),
    (m.window_ack_size(2500000), b"\x00\x26\x25\xa0"),
    (m.set_peer_bandwidth(2500000, m.LIMIT_DYNAMIC), b"\x00\x26\x25\xa0\x02"),
    (m.user_control(m.UC_STREAM_BEGIN, 1), b"\x00\x00\x00\x00\x00\x01"),
    (m.user_control(m.UC_SET_BUFFER_LENGTH, 1, 3000), b"\x00\x03\x00\x00\x00\x01\x00\x00\x0b\xb8"),
    (m.user_control(m.UC_PING_RESPONSE, 0xFFFFFFFF), b"\x00\x07\xff\xff\xff\xff"),
])
def test_control_builders(payload, data):
    assert payload == data


@pytest.mark.parametrize("build, arg", [
    (m.set_chunk_size, 0),
    (m.set_chunk_size, 0x80000000),
    (m.window_ack_size, -1),
    (m.abort, 1 << 32),
])
def test_control_builders_reject_out_of_range(build, arg):
    with pytest.raises(ValueError):
        build(arg)


def test_parse_u32():
    assert m.parse_u32(b"\x00\x00\x10\x00") == 4096
    assert m.parse_u32(memoryview(b"\x00\x00\x00\x07\xff")) == 7
    with pytest.raises(CommandError):
        m.parse_u32(b"\x00\x00\x10")


@pytest.mark.parametrize("data, parsed", [
    (b"\x00\x00\x00\x00\x00\x01", (m.UC_STREAM_BEGIN, (1,))),
    (b"\x00\x01\x00\x00\x00\x02", (m.UC_STREAM_EOF, (2,))),
    (b"\x00\x03\x00\x00\x00\x01\x00\x00\x0b\xb8", (m.UC_SET_BUFFER_LENGTH, (1, 3000))),
    (b"\x00\x06\x00\xbc\x61\x4e", (m.UC_PING_REQUEST, (12345678,))),
    (b"\x00\x07\x00\xbc\x61\x4e\x00", (m.UC_PING_RESPONSE, (12345678,))),  # extra byte ignored
    (b"\x00\x1a\x00\x00\x00\x09", (0x1A, (9,))),  # unknown event: whole u32s present
    (b"\x00\x1f", (0x1F, ())),
])
def test_parse_user_control(data, parsed):
    assert m.parse_user_control(data) == parsed


@pytest.mark.parametrize("data", [
    b"", b"\x00", b"\x00\x06\x00\x00\x00", b"\x00\x03\x00\x00\x00\x01\x00\x00\x0b",
])
def test_parse_user_control_short(data):
    with pytest.raises(CommandError):
        m.parse_user_control(data)


def test_user_control_round_trip():
    for event, values in [(m.UC_STREAM_DRY, (4,)), (m.UC_SET_BUFFER_LENGTH, (0, 1))]:
        assert m.parse_user_control(m.user_control(event, *values)) == (event, values)


# ---------------------------------------------------------------- commands


CONNECT_OBJ = {
    "app": "live",
    "type": "nonprivate",
    "flashVer": "FMLE/3.0 (compatible; Lavf58.76.100)",
    "tcUrl": "rtmp://127.0.0.1:1935/live",
}


def test_encode_command_bytes():
    assert m.encode_command("createStream", 2, None) == (
        b"\x02\x00\x0ccreateStream" + b"\x00" + TWO + b"\x05")
    assert m.encode_command("publish", 5, None, "livestream", "live") == (
        b"\x02\x00\x07publish\x00" + bytes.fromhex("4014000000000000") + b"\x05"
        + b"\x02\x00\x0alivestream" + b"\x02\x00\x04live")


def test_parse_connect_amf0():
    cmd = m.parse_command(m.MSG_AMF0_COMMAND, m.encode_command("connect", 1, CONNECT_OBJ))
    assert (cmd.name, cmd.tid, cmd.obj, cmd.args) == ("connect", 1.0, CONNECT_OBJ, [])
    assert cmd == m.Command("connect", 1.0, CONNECT_OBJ, [])
    assert "connect" in repr(cmd)


@pytest.mark.parametrize("first", [b"\x00", b"\x7f"])
def test_parse_command_amf3_skips_one_byte(first):
    payload = first + m.encode_command("play", 4, None, "stream", -2000.0)
    cmd = m.parse_command(m.MSG_AMF3_COMMAND, payload)
    assert cmd == m.Command("play", 4.0, None, ["stream", -2000.0])


def test_parse_command_defaults():
    bare = m.parse_command(m.MSG_AMF0_COMMAND, amf0.encode("onBWDone"))
    assert bare == m.Command("onBWDone", None)  # no transaction id
    assert m.parse_command(m.MSG_AMF0_COMMAND, amf0.encode("x", 3)).obj is None


@pytest.mark.parametrize("type_id, payload", [
    (m.MSG_AMF0_COMMAND, b""),  # no name
    (m.MSG_AMF3_COMMAND, b""),
    (m.MSG_AMF3_COMMAND, b"\x00"),
    (m.MSG_AMF0_COMMAND, amf0.encode(1.0, 2.0)),  # name not a string
    (m.MSG_AMF0_COMMAND, amf0.encode("connect", "1")),  # tid not a number
    (m.MSG_AMF0_DATA, amf0.encode("connect", 1.0)),  # not a command type
])
def test_parse_command_rejects(type_id, payload):
    with pytest.raises(CommandError):
        m.parse_command(type_id, payload)


def test_parse_command_bad_amf_is_protocol_error():
    with pytest.raises(ProtocolError):
        m.parse_command(m.MSG_AMF0_COMMAND, b"\x02\x00\x07conn")


def test_parse_data():
    meta = amf0.EcmaArray(width=1280.0, height=720.0)
    payload = amf0.encode("@setDataFrame", "onMetaData", meta)
    assert m.parse_data(m.MSG_AMF0_DATA, payload) == ["@setDataFrame", "onMetaData", meta]
    assert m.parse_data(m.MSG_AMF3_DATA, b"\x00" + payload) == ["@setDataFrame", "onMetaData", meta]
    assert m.parse_data(m.MSG_AMF0_DATA, b"") == []
    for type_id, bad in [(m.MSG_AMF3_DATA, b""), (m.MSG_AMF0_COMMAND, payload)]:
        with pytest.raises(CommandError):
            m.parse_data(type_id, bad)


# ---------------------------------------------------------------- aggregate


def flv_tag(type_id, timestamp, data, stream_id=0):
    """An FLV tag written field by field, as the FLV spec lays it out."""
    return (bytes([type_id]) + len(data).to_bytes(3, "big")
            + (timestamp & 0xFFFFFF).to_bytes(3, "big") + bytes([timestamp >> 24])
            + stream_id.to_bytes(3, "big") + data + (11 + len(data)).to_bytes(4, "big"))


AGGREGATE = (
    b"\x08\x00\x00\x02\x00\x03\xe8\x00\x00\x00\x00" + b"\xaf\x01" + b"\x00\x00\x00\x0d"
    + b"\x09\x00\x00\x03\x00\x04\x10\x00\x00\x00\x00" + b"\x17\x01\x02" + b"\x00\x00\x00\x0e"
)


def test_split_aggregate_hand_built():
    assert flv_tag(8, 1000, b"\xaf\x01") + flv_tag(9, 1040, b"\x17\x01\x02") == AGGREGATE
    assert m.split_aggregate(5000, AGGREGATE) == [
        (m.MSG_AUDIO, 5000, b"\xaf\x01"),
        (m.MSG_VIDEO, 5040, b"\x17\x01\x02"),
    ]
    assert m.split_aggregate(1000, memoryview(AGGREGATE))[1] == (m.MSG_VIDEO, 1040, b"\x17\x01\x02")


def test_split_aggregate_extended_timestamp_and_rebase_down():
    payload = flv_tag(9, 0x01000010, b"\x27") + flv_tag(8, 0x01000000, b"\xaf")
    assert m.split_aggregate(100, payload) == [(9, 100, b"\x27"), (8, 84, b"\xaf")]


def test_split_aggregate_empty():
    assert m.split_aggregate(7, b"") == []


def test_split_aggregate_truncations():
    for cut in range(1, len(AGGREGATE)):
        if cut == 17:  # a whole first tag
            assert len(m.split_aggregate(0, AGGREGATE[:cut])) == 1
            continue
        with pytest.raises(CommandError):
            m.split_aggregate(0, AGGREGATE[:cut])


def test_split_aggregate_bounds_its_tags():
    """Issue 20 point 10: 16 MB of 16-byte tags would be a million messages handled at once."""
    tags = flv_tag(8, 0, b"\xaf") * m.MAX_AGGREGATE_TAGS
    assert len(m.split_aggregate(0, tags)) == m.MAX_AGGREGATE_TAGS
    with pytest.raises(CommandError, match="more than"):
        m.split_aggregate(0, tags + flv_tag(8, 0, b"\xaf"))


def test_empty_media_in_an_aggregate_never_becomes_an_event():
    from lib.rtmp.chunk import Message
    from lib.rtmp.session import ServerSession
    s = ServerSession()
    s.state = "publishing"
    agg = flv_tag(8, 0, b"") + flv_tag(9, 40, b"") + flv_tag(8, 40, b"\xaf\x01")
    events = s.handle([Message(4, m.MSG_AGGREGATE, 1, 0, agg)])
    assert [(e.type_id, e.timestamp, e.payload) for e in events] == [(8, 40, b"\xaf\x01")]


# ---------------------------------------------------------------- hostile input


@given(st.integers(0, 30), st.binary(max_size=120))
def test_random_payloads_raise_only_protocol_errors(type_id, payload):
    parsers = [
        lambda: m.parse_command(type_id, payload),
        lambda: m.parse_data(type_id, payload),
        lambda: m.parse_user_control(payload),
        lambda: m.parse_u32(payload),
        lambda: m.split_aggregate(type_id, payload),
    ]
    for parse in parsers:
        try:
            parse()
        except ProtocolError:
            pass


@given(st.binary(max_size=120))
def test_random_command_bodies(body):
    prefixes = [(m.MSG_AMF0_COMMAND, b"\x02\x00\x04play"), (m.MSG_AMF3_COMMAND, b"\x00")]
    for type_id, prefix in prefixes:
        try:
            m.parse_command(type_id, prefix + body)
        except ProtocolError:
            pass
