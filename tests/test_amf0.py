"""AMF0: hand-written byte vectors from the AMF0 spec, round trips, truncation, hostile input."""

import struct

import pytest
from hypothesis import given, settings, strategies as st

from lib.rtmp import amf0
from lib.rtmp.amf0 import UNDEFINED, AmfDate, EcmaArray, TypedObject
from lib.rtmp.errors import AmfError, ProtocolError

ONE = bytes.fromhex("3ff0000000000000")  # 1.0 as a big-endian double
TWO = bytes.fromhex("4000000000000000")  # 2.0
END = b"\x00\x00\x09"

CONNECT_VALUES = (
    "connect",
    1.0,
    {
        "app": "live",
        "type": "nonprivate",
        "flashVer": "FMLE/3.0 (compatible; Lavf58.76.100)",
        "tcUrl": "rtmp://127.0.0.1:1935/live",
    },
)
CONNECT_BYTES = (
    b"\x02\x00\x07connect"
    + b"\x00" + ONE
    + b"\x03"
    + b"\x00\x03app" + b"\x02\x00\x04live"
    + b"\x00\x04type" + b"\x02\x00\x0anonprivate"
    + b"\x00\x08flashVer" + b"\x02\x00\x24FMLE/3.0 (compatible; Lavf58.76.100)"
    + b"\x00\x05tcUrl" + b"\x02\x00\x1artmp://127.0.0.1:1935/live"
    + END
)

# (python value, its AMF0 encoding): both directions hold.
VECTORS = [
    (1.0, b"\x00" + ONE),
    (0.0, b"\x00" + bytes(8)),
    (-2.5, b"\x00" + bytes.fromhex("c004000000000000")),
    (True, b"\x01\x01"),
    (False, b"\x01\x00"),
    ("", b"\x02\x00\x00"),
    ("abc", b"\x02\x00\x03abc"),
    ("\u00e9", b"\x02\x00\x02\xc3\xa9"),
    ({}, b"\x03" + END),
    ({"a": 1.0}, b"\x03\x00\x01a\x00" + ONE + END),
    (None, b"\x05"),
    (UNDEFINED, b"\x06"),
    (EcmaArray(), b"\x08\x00\x00\x00\x00" + END),
    (EcmaArray(a=None, b=True), b"\x08\x00\x00\x00\x02\x00\x01a\x05\x00\x01b\x01\x01" + END),
    ([], b"\x0a\x00\x00\x00\x00"),
    ([1.0, "x"], b"\x0a\x00\x00\x00\x02\x00" + ONE + b"\x02\x00\x01x"),
    (AmfDate(0.0, 0), b"\x0b" + bytes(8) + b"\x00\x00"),
    (AmfDate(1000.0, -60), b"\x0b" + bytes.fromhex("408f400000000000") + b"\xff\xc4"),
    (TypedObject("Foo", x=2.0), b"\x10\x00\x03Foo\x00\x01x\x00" + TWO + END),
    ({"o": {"l": [None]}}, b"\x03\x00\x01o\x03\x00\x01l\x0a\x00\x00\x00\x01\x05" + END + END),
]

# Encodings we only decode: (bytes, expected value).
DECODE_ONLY = [
    (b"\x01\x07", True),  # any non-zero boolean byte is true
    (b"\x0c\x00\x00\x00\x02hi", "hi"),  # long string holding a short one
    (b"\x0d", UNDEFINED),  # unsupported
    (b"\x0f\x00\x00\x00\x04<a/>", "<a/>"),  # xml document
    (b"\x08\x00\x00\x00\x05\x00\x01a\x00" + ONE + END, EcmaArray(a=1.0)),  # count too high
    (b"\x08\x00\x00\x00\x00\x00\x01a\x05\x00\x01b\x05" + END, EcmaArray(a=None, b=None)),
    (b"\x03\x00\x00\x05" + END, {"": None}),  # an empty key is a property, not the end
    # AVM+ switch: one AMF3 value
    (b"\x11\x00", UNDEFINED),
    (b"\x11\x01", None),
    (b"\x11\x02", False),
    (b"\x11\x03", True),
    (b"\x11\x04\x05", 5.0),
    (b"\x11\x04\x7f", 127.0),
    (b"\x11\x04\x81\x00", 128.0),
    (b"\x11\x04\xff\xff\xff\xff", -1.0),  # 29-bit two's complement
    (b"\x11\x04\xbf\xff\xff\xff", float((1 << 28) - 1)),
    (b"\x11\x04\xc0\x80\x80\x00", float(-(1 << 28))),
    (b"\x11\x05" + ONE, 1.0),
    (b"\x11\x06\x07abc", "abc"),  # header (3 << 1) | 1
    (b"\x11\x06\x01", ""),
]


def strict_repr(value):
    """repr tells dict from EcmaArray, -0.0 from 0.0 and keeps TypedObject class names."""
    return repr(value)


@pytest.mark.parametrize("value, data", VECTORS)
def test_vector_encode(value, data):
    assert amf0.encode(value) == data


@pytest.mark.parametrize("value, data", VECTORS)
def test_vector_decode(value, data):
    decoded, pos = amf0.decode(data)
    assert pos == len(data)
    assert strict_repr(decoded) == strict_repr(value)


@pytest.mark.parametrize("data, value", DECODE_ONLY)
def test_decode_only(data, value):
    assert amf0.decode(data) == (value, len(data))
    assert type(amf0.decode(data)[0]) is type(value)


def test_connect_command_bytes_and_round_trip():
    assert amf0.encode(*CONNECT_VALUES) == CONNECT_BYTES
    assert amf0.decode_all(CONNECT_BYTES) == list(CONNECT_VALUES)


def test_decode_at_position():
    data = b"\x05" + b"\x02\x00\x01x" + b"\x01\x01"
    assert amf0.decode(data, 1) == ("x", 5)
    assert amf0.decode(data, 5) == (True, 7)
    assert amf0.decode_values(data, 1) == ["x", True]
    assert amf0.decode_all(b"") == []


def test_encode_python_mapping():
    assert amf0.encode(True) == b"\x01\x01"  # bool before int
    assert amf0.encode(1) == b"\x00" + ONE
    assert amf0.encode((1, 2)) == b"\x0a\x00\x00\x00\x02\x00" + ONE + b"\x00" + TWO
    assert amf0.encode() == b""


def test_long_string_threshold():
    at_limit = "\u00e9" * 32767 + "a"  # 65535 bytes of UTF-8
    over = "\u00e9" * 32768  # 65536 bytes
    assert amf0.encode(at_limit)[:3] == b"\x02\xff\xff"
    assert amf0.encode(over)[:5] == b"\x0c\x00\x01\x00\x00"
    assert amf0.decode(amf0.encode(over))[0] == over
    assert amf0.decode(amf0.encode(at_limit))[0] == at_limit


def test_encode_rejects_unknown_types_and_keys():
    with pytest.raises(TypeError):
        amf0.encode(object())
    with pytest.raises(TypeError):
        amf0.encode({1: "x"})
    with pytest.raises(ValueError):
        amf0.encode({"k" * 65536: 1})


def test_value_types():
    assert amf0.Undefined() is UNDEFINED
    assert not UNDEFINED
    assert TypedObject("A", x=1) != TypedObject("B", x=1)
    assert TypedObject("A", x=1) == TypedObject("A", x=1)
    assert TypedObject("A").class_name == "A"
    assert AmfDate(5, 1) == AmfDate(5.0, 1) and AmfDate(5, 1) != AmfDate(5, 2)
    assert hash(AmfDate(5, 1)) == hash(AmfDate(5.0, 1))
    assert "Foo" in repr(TypedObject("Foo"))


# ---------------------------------------------------------------- references


def test_reference_inside_strict_array():
    inner = b"\x03\x00\x01a\x05" + END  # reference index 1 (index 0 is the outer array)
    data = b"\x0a\x00\x00\x00\x02" + inner + b"\x07\x00\x01"
    value = amf0.decode(data)[0]
    assert value == [{"a": None}, {"a": None}]
    assert value[0] is value[1]


def test_reference_across_values_of_one_message():
    data = b"\x08\x00\x00\x00\x00" + END + b"\x0a\x00\x00\x00\x00" + b"\x07\x00\x00\x07\x00\x01"
    first, second, ref0, ref1 = amf0.decode_all(data)
    assert ref0 is first and type(ref0) is EcmaArray
    assert ref1 is second


def test_reference_counts_typed_objects_not_dates():
    data = (b"\x0b" + bytes(10) + b"\x10\x00\x01T" + END + b"\x03" + END
            + b"\x07\x00\x00\x07\x00\x01")
    values = amf0.decode_all(data)
    assert values[3] is values[1] and values[4] is values[2]


@pytest.mark.parametrize("data", [
    b"\x07\x00\x00",  # nothing to refer to
    b"\x03\x00\x01a\x07\x00\x00" + END,  # cycle: the object itself
    b"\x0a\x00\x00\x00\x01\x07\x00\x00",  # cycle: the array itself
    b"\x03" + END + b"\x07\x00\x01",  # index past the table
])
def test_bad_references(data):
    with pytest.raises(AmfError):
        amf0.decode_all(data)


def test_reference_expansion_is_capped():
    # X0 = [], Xk = [ref X(k-1), ref X(k-1)]: 2^k nodes from a few bytes.
    data = b"\x0a\x00\x00\x00\x00"
    for k in range(1, 40):
        data += b"\x0a\x00\x00\x00\x02" + (b"\x07" + struct.pack(">H", k - 1)) * 2
    with pytest.raises(AmfError):
        amf0.decode_all(data)


def test_reference_cannot_exceed_depth():
    deep = b"\x0a\x00\x00\x00\x01" * 40 + b"\x05"  # 40 levels, indexes 0..39
    nested_ref = b"\x0a\x00\x00\x00\x01" * 30 + b"\x07\x00\x00"  # 30 + 40 levels
    with pytest.raises(AmfError):
        amf0.decode_all(deep + nested_ref)
    shallow_ref = b"\x0a\x00\x00\x00\x01" * 24 + b"\x07\x00\x00"  # 24 + 40 = 64 levels
    assert len(amf0.decode_all(deep + shallow_ref)) == 2


# ---------------------------------------------------------------- AMF3 switch


def test_amf3_string_references_within_a_message():
    data = b"\x11\x06\x07abc" + b"\x11\x06\x05xy" + b"\x11\x06\x00" + b"\x11\x06\x02"
    assert amf0.decode_all(data) == ["abc", "xy", "abc", "xy"]


@pytest.mark.parametrize("data", [
    b"\x11\x06\x00",  # string reference with an empty table
    b"\x11\x06\x01" + b"\x11\x06\x00",  # empty strings are not referenceable
    b"\x11\x07", b"\x11\x08", b"\x11\x09", b"\x11\x0a", b"\x11\x0c", b"\x11\xff",
])
def test_amf3_rejects(data):
    with pytest.raises(AmfError):
        amf0.decode_all(data)


# ---------------------------------------------------------------- malformed input


@pytest.mark.parametrize("data", [
    b"\x04", b"\x0e", b"\x09", b"\x12", b"\xff",  # movieclip, recordset, stray end, unknown
    b"\x02\x00\x02\xc3\x28",  # invalid UTF-8 string
    b"\x03\x00\x02\xff\xfe\x05" + END,  # invalid UTF-8 key
    b"\x10\x00\x01\xff" + END,  # invalid UTF-8 class name
    b"\x0a\xff\xff\xff\xff\x05",  # count far beyond the data
])
def test_malformed(data):
    with pytest.raises(AmfError):
        amf0.decode_all(data)


TRUNCATION_SAMPLES = [data for _, data in VECTORS] + [data for data, _ in DECODE_ONLY] + [
    amf0.encode(CONNECT_VALUES[2]),
    amf0.encode([{"a": EcmaArray(b=[1.0, AmfDate(3, 4)])}, TypedObject("C", d="e")]),
    b"\x0a\x00\x00\x00\x02\x03" + END + b"\x07\x00\x01",
]


@pytest.mark.parametrize("data", TRUNCATION_SAMPLES)
def test_every_truncation_raises_amf_error(data):
    for cut in range(len(data)):
        with pytest.raises(AmfError, match="truncated"):
            amf0.decode(data[:cut])


def test_truncation_message_says_what():
    with pytest.raises(AmfError, match="number"):
        amf0.decode(b"\x00\x3f")
    with pytest.raises(AmfError, match="string length"):
        amf0.decode(b"\x02\x00")
    with pytest.raises(AmfError, match="strict array"):
        amf0.decode(b"\x0a\x00\x00\x00\x03\x05")


# ---------------------------------------------------------------- depth


def nested_arrays(levels):
    return b"\x0a\x00\x00\x00\x01" * levels + b"\x05"


def nested_objects(levels):
    return b"\x03\x00\x01k" * levels + b"\x05" + END * levels


@pytest.mark.parametrize("make", [nested_arrays, nested_objects])
def test_depth_cap_on_decode(make):
    assert amf0.decode(make(amf0.MAX_DEPTH))[1] == len(make(amf0.MAX_DEPTH))
    with pytest.raises(AmfError, match="nesting"):
        amf0.decode(make(amf0.MAX_DEPTH + 1))
    with pytest.raises(AmfError):
        amf0.decode(make(100_000))


def test_depth_cap_on_encode():
    value = None
    for _ in range(amf0.MAX_DEPTH):
        value = [value]
    assert amf0.decode(amf0.encode(value))[0] == value
    with pytest.raises(AmfError):
        amf0.encode([value])
    with pytest.raises(AmfError):
        amf0.encode({"k": value})


# ---------------------------------------------------------------- hypothesis

keys = st.text(max_size=8)
scalars = st.one_of(
    st.floats(allow_nan=False),
    st.booleans(),
    st.text(max_size=20),
    st.none(),
    st.just(UNDEFINED),
    st.builds(AmfDate, st.floats(allow_nan=False), st.integers(-32768, 32767)),
)
amf_values = st.recursive(
    scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.dictionaries(keys, children, max_size=4),
        st.dictionaries(keys, children, max_size=4).map(EcmaArray),
        st.builds(TypedObject, st.text(max_size=6), st.dictionaries(keys, children, max_size=4)),
    ),
    max_leaves=20,
)


@given(st.lists(amf_values, max_size=4))
def test_round_trip(values):
    data = amf0.encode(*values)
    assert strict_repr(amf0.decode_all(data)) == strict_repr(values)


@given(st.binary(max_size=200))
def test_random_bytes_raise_only_amf_error(data):
    try:
        amf0.decode_all(data)
    except AmfError:
        pass


@settings(max_examples=300)
@given(amf_values, st.data())
def test_mutated_encodings_raise_only_amf_error(value, data):
    encoded = bytearray(amf0.encode(value))
    for _ in range(data.draw(st.integers(1, 4))):
        where = data.draw(st.integers(0, len(encoded)))
        action = data.draw(st.sampled_from(["flip", "insert", "delete"]))
        byte = data.draw(st.sampled_from([0x00, 0x03, 0x07, 0x08, 0x09, 0x0a, 0x11, 0xff]))
        if action == "insert" or where == len(encoded):
            encoded.insert(where, byte)
        elif action == "flip":
            encoded[where] = byte
        else:
            del encoded[where]
    try:
        amf0.decode_all(bytes(encoded))
    except ProtocolError as e:
        assert isinstance(e, AmfError)
