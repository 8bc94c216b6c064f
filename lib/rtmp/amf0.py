"""AMF0 encoder and decoder (sans-IO, standard library only).

Rules:
- Python mapping: bool <-> boolean (checked before int), int/float -> number (always decoded as
  float), str <-> string (long string when the UTF-8 exceeds 65535 bytes), None <-> null,
  UNDEFINED <-> undefined, dict <-> object, EcmaArray <-> ecma array, list/tuple -> strict array
  (decoded as list), AmfDate <-> date, TypedObject <-> typed object. XML documents decode as str;
  "unsupported" (0x0D) decodes as UNDEFINED; movieclip and recordset are rejected.
- Ecma array counts are advisory: properties are read until the object end (00 00 09), as SRS
  and ffmpeg do.
- References (0x07) resolve to an earlier complex value (object, ecma array, strict array, typed
  object, numbered in the order they start) of the same decode call. A reference to a value still
  being decoded (a cycle) is rejected, and the nodes that references add are capped
  (MAX_REF_NODES), so a small message cannot expand into a huge structure.
- AVM+ (0x11) decodes one basic AMF3 value: undefined, null, false, true, integer, double and
  string (with its string reference table, shared by one decode call); anything else is rejected.
  AMF3 integers decode as float, like every other number.
- Nesting deeper than MAX_DEPTH containers is rejected. Every decoding failure, truncation
  included, raises AmfError naming what was being read; no other exception escapes.
- Encoding never emits references; unsupported Python types raise TypeError.
"""

import struct

from lib.rtmp.errors import AmfError

MAX_DEPTH = 64
MAX_REF_NODES = 1 << 16

NUMBER = 0x00
BOOLEAN = 0x01
STRING = 0x02
OBJECT = 0x03
MOVIECLIP = 0x04
NULL = 0x05
UNDEFINED_MARKER = 0x06
REFERENCE = 0x07
ECMA_ARRAY = 0x08
OBJECT_END = 0x09
STRICT_ARRAY = 0x0A
DATE = 0x0B
LONG_STRING = 0x0C
UNSUPPORTED = 0x0D
RECORDSET = 0x0E
XML_DOCUMENT = 0x0F
TYPED_OBJECT = 0x10
AVMPLUS = 0x11

_END = b"\x00\x00\x09"
_U16 = struct.Struct(">H")
_U32 = struct.Struct(">I")
_DOUBLE = struct.Struct(">d")
_DATE = struct.Struct(">dh")


class Undefined:
    """The AMF undefined value; use the singleton UNDEFINED."""

    __slots__ = ()
    _instance = None

    def __new__(cls):
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self):
        return "UNDEFINED"

    def __bool__(self):
        return False


UNDEFINED = Undefined()


class EcmaArray(dict):
    """An associative array; encodes as an AMF0 ecma array instead of an object."""

    def __repr__(self):
        return f"EcmaArray({dict.__repr__(self)})"


class TypedObject(dict):
    """An object with a class name (AMF0 typed object)."""

    def __init__(self, class_name, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.class_name = class_name

    def __eq__(self, other):
        if isinstance(other, TypedObject) and other.class_name != self.class_name:
            return False
        return dict.__eq__(self, other)

    def __ne__(self, other):
        return not self == other

    __hash__ = None

    def __repr__(self):
        return f"TypedObject({self.class_name!r}, {dict.__repr__(self)})"


class AmfDate:
    """An AMF0 date: milliseconds since the epoch (float) and a timezone in minutes (int)."""

    __slots__ = ("ms", "tz")

    def __init__(self, ms, tz=0):
        self.ms = float(ms)
        self.tz = int(tz)

    def __eq__(self, other):
        if not isinstance(other, AmfDate):
            return NotImplemented
        return self.ms == other.ms and self.tz == other.tz

    def __hash__(self):
        return hash((self.ms, self.tz))

    def __repr__(self):
        return f"AmfDate({self.ms!r}, {self.tz!r})"


# ---------------------------------------------------------------- encoding


def encode(*values):
    """Encode values one after another as AMF0 bytes."""
    out = []
    for value in values:
        _encode_value(value, out, 0)
    return b"".join(out)


def _encode_value(value, out, depth):
    kind = type(value)
    encoder = _ENCODERS.get(kind)
    if encoder is None:
        encoder = _encoder_for_subclass(value)
    encoder(value, out, depth)


def _encoder_for_subclass(value):
    # Order matters: bool is an int, and the dict subclasses are dicts.
    for base, encoder in _SUBCLASS_ENCODERS:
        if isinstance(value, base):
            return encoder
    raise TypeError(f"cannot encode {type(value).__name__} as AMF0")


def _encode_number(value, out, depth):
    out.append(b"\x00" + _DOUBLE.pack(value))


def _encode_bool(value, out, depth):
    out.append(b"\x01\x01" if value else b"\x01\x00")


def _encode_str(value, out, depth):
    raw = value.encode("utf-8")
    if len(raw) <= 0xFFFF:
        out.append(b"\x02" + _U16.pack(len(raw)))
    else:
        out.append(b"\x0c" + _U32.pack(len(raw)))
    out.append(raw)


def _encode_null(value, out, depth):
    out.append(b"\x05")


def _encode_undefined(value, out, depth):
    out.append(b"\x06")


def _encode_date(value, out, depth):
    out.append(b"\x0b" + _DATE.pack(value.ms, value.tz))


def _encode_key(key, out):
    if not isinstance(key, str):
        raise TypeError(f"AMF0 object keys must be str, not {type(key).__name__}")
    raw = key.encode("utf-8")
    if len(raw) > 0xFFFF:
        raise ValueError("AMF0 object key longer than 65535 bytes")
    out.append(_U16.pack(len(raw)))
    out.append(raw)


def _encode_properties(mapping, out, depth):
    if depth >= MAX_DEPTH:
        raise AmfError(f"cannot encode: nesting deeper than {MAX_DEPTH}")
    for key, item in mapping.items():
        _encode_key(key, out)
        _encode_value(item, out, depth + 1)
    out.append(_END)


def _encode_object(value, out, depth):
    out.append(b"\x03")
    _encode_properties(value, out, depth)


def _encode_ecma_array(value, out, depth):
    out.append(b"\x08" + _U32.pack(len(value)))
    _encode_properties(value, out, depth)


def _encode_typed_object(value, out, depth):
    out.append(b"\x10")
    _encode_key(value.class_name, out)
    _encode_properties(value, out, depth)


def _encode_strict_array(value, out, depth):
    if depth >= MAX_DEPTH:
        raise AmfError(f"cannot encode: nesting deeper than {MAX_DEPTH}")
    out.append(b"\x0a" + _U32.pack(len(value)))
    for item in value:
        _encode_value(item, out, depth + 1)


_ENCODERS = {
    float: _encode_number,
    int: _encode_number,
    bool: _encode_bool,
    str: _encode_str,
    type(None): _encode_null,
    Undefined: _encode_undefined,
    dict: _encode_object,
    EcmaArray: _encode_ecma_array,
    TypedObject: _encode_typed_object,
    list: _encode_strict_array,
    tuple: _encode_strict_array,
    AmfDate: _encode_date,
}

_SUBCLASS_ENCODERS = (
    (bool, _encode_bool),
    (int, _encode_number),
    (float, _encode_number),
    (str, _encode_str),
    (TypedObject, _encode_typed_object),
    (EcmaArray, _encode_ecma_array),
    (dict, _encode_object),
    (list, _encode_strict_array),
    (tuple, _encode_strict_array),
)


# ---------------------------------------------------------------- decoding


def decode(data, pos=0):
    """Decode one AMF0 value at pos; return (value, position after it)."""
    return _guarded(_Decoder(data).value, pos)


def decode_all(data):
    """Decode every AMF0 value in data (sharing one reference table) into a list."""
    return decode_values(data, 0)


def decode_values(data, pos=0):
    """Decode every AMF0 value from pos to the end into a list (one reference table)."""
    return _guarded(_Decoder(data).values, pos)[0]


def _guarded(method, pos):
    try:
        return method(pos, 0)
    except AmfError:
        raise
    except (IndexError, struct.error, UnicodeDecodeError, RecursionError, ValueError) as e:
        # A safety net: the decoder checks lengths itself, so this means a bug or a deep stack.
        raise AmfError(f"malformed AMF0 data at offset {pos}: {e!r}") from e


class _Decoder:
    def __init__(self, data):
        self.data = bytes(data)
        self.refs = []  # complex values in the order they started
        self.open_refs = set()  # indexes of complex values still being decoded
        self.ref_nodes = 0  # nodes that references added
        self.amf3_strings = []

    # -- primitives

    def need(self, pos, size, what):
        if pos + size > len(self.data):
            raise AmfError(f"truncated AMF0 data reading {what} at offset {pos}")

    def u8(self, pos, what):
        self.need(pos, 1, what)
        return self.data[pos], pos + 1

    def u16(self, pos, what):
        self.need(pos, 2, what)
        return _U16.unpack_from(self.data, pos)[0], pos + 2

    def u32(self, pos, what):
        self.need(pos, 4, what)
        return _U32.unpack_from(self.data, pos)[0], pos + 4

    def double(self, pos, what):
        self.need(pos, 8, what)
        return _DOUBLE.unpack_from(self.data, pos)[0], pos + 8

    def utf8(self, pos, size, what):
        self.need(pos, size, what)
        raw = self.data[pos:pos + size]
        try:
            return raw.decode("utf-8"), pos + size
        except UnicodeDecodeError as e:
            raise AmfError(f"invalid UTF-8 in {what} at offset {pos}") from e

    def short_string(self, pos, what):
        size, pos = self.u16(pos, f"{what} length")
        return self.utf8(pos, size, what)

    def long_string(self, pos, what):
        size, pos = self.u32(pos, f"{what} length")
        return self.utf8(pos, size, what)

    # -- values

    def values(self, pos, depth):
        result = []
        while pos < len(self.data):
            value, pos = self.value(pos, depth)
            result.append(value)
        return result, pos

    def value(self, pos, depth):
        marker, pos = self.u8(pos, "marker")
        reader = _READERS.get(marker)
        if reader is None:
            raise AmfError(f"unsupported AMF0 marker 0x{marker:02x} at offset {pos - 1}")
        return reader(self, pos, depth)

    def number(self, pos, depth):
        return self.double(pos, "number")

    def boolean(self, pos, depth):
        flag, pos = self.u8(pos, "boolean")
        return flag != 0, pos

    def string(self, pos, depth):
        return self.short_string(pos, "string")

    def long_str(self, pos, depth):
        return self.long_string(pos, "long string")

    def xml(self, pos, depth):
        return self.long_string(pos, "xml document")

    def null(self, pos, depth):
        return None, pos

    def undefined(self, pos, depth):
        return UNDEFINED, pos

    def date(self, pos, depth):
        self.need(pos, 10, "date")
        ms, tz = _DATE.unpack_from(self.data, pos)
        return AmfDate(ms, tz), pos + 10

    def object_end(self, pos, depth):
        raise AmfError(f"unexpected object end marker at offset {pos - 1}")

    # -- complex values

    def enter(self, container, depth, what):
        if depth >= MAX_DEPTH:
            raise AmfError(f"AMF0 nesting deeper than {MAX_DEPTH} reading {what}")
        self.refs.append(container)
        index = len(self.refs) - 1
        self.open_refs.add(index)
        return index

    def properties(self, mapping, pos, depth, what):
        index = self.enter(mapping, depth, what)
        while True:
            if self.data[pos:pos + 3] == _END:
                self.open_refs.discard(index)
                return mapping, pos + 3
            key, pos = self.short_string(pos, f"{what} key")
            mapping[key], pos = self.value(pos, depth + 1)

    def object(self, pos, depth):
        return self.properties({}, pos, depth, "object")

    def ecma_array(self, pos, depth):
        _count, pos = self.u32(pos, "ecma array count")  # advisory only
        return self.properties(EcmaArray(), pos, depth, "ecma array")

    def typed_object(self, pos, depth):
        class_name, pos = self.short_string(pos, "typed object class name")
        return self.properties(TypedObject(class_name), pos, depth, "typed object")

    def strict_array(self, pos, depth):
        count, pos = self.u32(pos, "strict array count")
        self.need(pos, count, "strict array items")  # each item takes at least one byte
        items = []
        index = self.enter(items, depth, "strict array")
        for _ in range(count):
            item, pos = self.value(pos, depth + 1)
            items.append(item)
        self.open_refs.discard(index)
        return items, pos

    def reference(self, pos, depth):
        index, pos = self.u16(pos, "reference")
        if index >= len(self.refs):
            raise AmfError(f"AMF0 reference {index} to an unknown value at offset {pos - 2}")
        if index in self.open_refs:
            raise AmfError(f"AMF0 reference {index} to a value still being decoded")
        target = self.refs[index]
        budget = MAX_REF_NODES - self.ref_nodes
        nodes, height = _measure(target, budget)
        if depth + height > MAX_DEPTH:
            raise AmfError(f"AMF0 nesting deeper than {MAX_DEPTH} through reference {index}")
        self.ref_nodes += nodes
        return target, pos

    # -- AVM+ (one AMF3 value)

    def avmplus(self, pos, depth):
        marker, pos = self.u8(pos, "AMF3 marker")
        if marker in _AMF3_CONSTANTS:
            return _AMF3_CONSTANTS[marker], pos
        if marker == 0x04:
            value, pos = self.u29(pos, "AMF3 integer")
            if value >= 1 << 28:
                value -= 1 << 29
            return float(value), pos
        if marker == 0x05:
            return self.double(pos, "AMF3 double")
        if marker == 0x06:
            return self.amf3_string(pos)
        raise AmfError(f"unsupported AMF3 marker 0x{marker:02x} at offset {pos - 1}")

    def u29(self, pos, what):
        value = 0
        for _ in range(3):
            byte, pos = self.u8(pos, what)
            value = (value << 7) | (byte & 0x7F)
            if byte < 0x80:
                return value, pos
        byte, pos = self.u8(pos, what)
        return (value << 8) | byte, pos

    def amf3_string(self, pos):
        header, pos = self.u29(pos, "AMF3 string header")
        if header & 1 == 0:
            index = header >> 1
            if index >= len(self.amf3_strings):
                raise AmfError(f"AMF3 string reference {index} to an unknown string")
            return self.amf3_strings[index], pos
        text, pos = self.utf8(pos, header >> 1, "AMF3 string")
        if text:
            self.amf3_strings.append(text)
        return text, pos


def _measure(value, budget):
    """Return (nodes, height) of a decoded value; AmfError when nodes exceed budget."""
    if isinstance(value, dict):
        children = value.values()
    elif isinstance(value, list):
        children = value
    else:
        return 1, 0
    nodes, height = 1, 0
    for child in children:
        child_nodes, child_height = _measure(child, budget - nodes)
        nodes += child_nodes
        height = max(height, child_height)
        if nodes > budget:
            raise AmfError(f"AMF0 references expand to more than {MAX_REF_NODES} nodes")
    return nodes, height + 1


def _reject(what):
    def reader(decoder, pos, depth):
        raise AmfError(f"unsupported AMF0 {what} at offset {pos - 1}")
    return reader


_AMF3_CONSTANTS = {0x00: UNDEFINED, 0x01: None, 0x02: False, 0x03: True}

_READERS = {
    NUMBER: _Decoder.number,
    BOOLEAN: _Decoder.boolean,
    STRING: _Decoder.string,
    OBJECT: _Decoder.object,
    MOVIECLIP: _reject("movieclip"),
    NULL: _Decoder.null,
    UNDEFINED_MARKER: _Decoder.undefined,
    REFERENCE: _Decoder.reference,
    ECMA_ARRAY: _Decoder.ecma_array,
    OBJECT_END: _Decoder.object_end,
    STRICT_ARRAY: _Decoder.strict_array,
    DATE: _Decoder.date,
    LONG_STRING: _Decoder.long_str,
    UNSUPPORTED: _Decoder.undefined,
    RECORDSET: _reject("recordset"),
    XML_DOCUMENT: _Decoder.xml,
    TYPED_OBJECT: _Decoder.typed_object,
    AVMPLUS: _Decoder.avmplus,
}
