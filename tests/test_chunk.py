"""Tests for lib/rtmp/chunk.py: byte vectors, every-split feeding, round trips, errors.

Every test runs on the pure-Python reader (the reference) and, when it is built, on the C
accelerator (lib/rtmp/_chunkc.c): the `implementation` fixture swaps the module's names
(reader, message, encoder).
"""

import struct

import pytest
from hypothesis import given, settings, strategies as st

from lib.rtmp import chunk
from lib.rtmp.chunk import ChunkReader, ChunkWriter, Message, encode_message
from lib.rtmp.errors import ChunkError, ProtocolError

try:
    from lib.rtmp import _chunkc
except ImportError:             # not built (no compiler): only the reference runs
    _chunkc = None

IMPLEMENTATIONS = {"python": (chunk.PureChunkReader, chunk.PureMessage, chunk.pure_encode_message)}
if _chunkc is not None:
    IMPLEMENTATIONS["c"] = (_chunkc.ChunkReader, _chunkc.Message, _chunkc.encode_message)


@pytest.fixture(autouse=True, params=sorted(IMPLEMENTATIONS))
def implementation(request):
    global ChunkReader, Message, encode_message
    ChunkReader, Message, encode_message = IMPLEMENTATIONS[request.param]
    yield request.param


def fmt0(csid_byte, ts, length, type_id, stream_id):
    """A fmt 0 chunk header (basic header given as raw bytes)."""
    return (csid_byte + ts.to_bytes(3, "big") + length.to_bytes(3, "big") + bytes([type_id])
            + stream_id.to_bytes(4, "little"))


def read_all(data, **kw):
    return ChunkReader(**kw).feed(data)


def read_split(data, sizes=1, **kw):
    """Feed `data` in pieces of `sizes` bytes; return all messages."""
    reader = ChunkReader(**kw)
    out = []
    for i in range(0, len(data), sizes):
        out += reader.feed(data[i:i + sizes])
    return out


def read_every_split(data, **kw):
    """Check that every two-piece and the one-byte-at-a-time split give the same messages."""
    whole = read_all(data, **kw)
    for cut in range(len(data) + 1):
        reader = ChunkReader(**kw)
        assert reader.feed(data[:cut]) + reader.feed(data[cut:]) == whole, cut
        assert reader.bytes_received == len(data)
    assert read_split(data, 1, **kw) == whole
    return whole


def set_chunk_size(csid, n):
    return encode_message(csid, 1, 0, 0, struct.pack(">I", n), 128)


# --- Message ---------------------------------------------------------------------------------

def test_message_eq_repr():
    a = Message(3, 20, 0, 5, b"x" * 40)
    assert a == Message(3, 20, 0, 5, b"x" * 40)
    assert a != Message(3, 20, 1, 5, b"x" * 40)
    assert a != "x"
    assert "csid=3" in repr(a) and "[40]" in repr(a)
    with pytest.raises(AttributeError):
        a.other = 1


# --- basic headers ---------------------------------------------------------------------------

@pytest.mark.parametrize("csid, basic", [
    (2, b"\x02"), (63, b"\x3f"), (64, b"\x00\x00"), (319, b"\x00\xff"),
    (320, b"\x01\x00\x01"), (65599, b"\x01\xff\xff"), (1000, b"\x01" + (936).to_bytes(2, "little")),
])
def test_basic_header_forms(csid, basic):
    data = fmt0(basic, 7, 3, 8, 1) + b"abc"
    assert encode_message(csid, 8, 1, 7, b"abc", 128) == data
    assert read_every_split(data) == [Message(csid, 8, 1, 7, b"abc")]
    # continuation chunks use the fmt 3 form of the same basic header
    cont = bytes([basic[0] | 0xC0]) + basic[1:]
    data = fmt0(basic, 7, 5, 8, 1) + b"abc" + cont + b"de"
    assert encode_message(csid, 8, 1, 7, b"abcde", 3) == data
    assert read_every_split(data, chunk_size=3) == [Message(csid, 8, 1, 7, b"abcde")]


def test_writer_csid_out_of_range():
    for csid in (0, 1, 65600):
        with pytest.raises(ValueError):
            encode_message(csid, 8, 1, 0, b"", 128)


# --- message header formats and timestamps ---------------------------------------------------

def test_fmt0_stream_id_little_endian():
    data = b"\x04" + bytes.fromhex("000010 000002 09 01020304") + b"hi"
    assert read_all(data) == [Message(4, 9, 0x04030201, 16, b"hi")]


def test_fmt1_fmt2_fmt3_timestamps():
    data = (fmt0(b"\x06", 1000, 2, 9, 1) + b"aa"
            + b"\x46" + bytes.fromhex("000021 000003 08") + b"bbb"     # fmt 1: delta 33, new len/type
            + b"\x86" + bytes.fromhex("000014") + b"ccc"              # fmt 2: delta 20
            + b"\xc6" + b"ddd"                                         # fmt 3 new message: +20
            + b"\xc6" + b"eee")
    assert read_every_split(data) == [
        Message(6, 9, 1, 1000, b"aa"), Message(6, 8, 1, 1033, b"bbb"),
        Message(6, 8, 1, 1053, b"ccc"), Message(6, 8, 1, 1073, b"ddd"),
        Message(6, 8, 1, 1093, b"eee"),
    ]


def test_fmt3_new_message_after_fmt0_adds_its_timestamp():
    # As ffmpeg and SRS: after fmt 0, the "delta" is the fmt 0 timestamp field.
    data = fmt0(b"\x03", 40, 1, 20, 0) + b"a" + b"\xc3" + b"b" + b"\xc3" + b"c"
    assert read_every_split(data) == [
        Message(3, 20, 0, 40, b"a"), Message(3, 20, 0, 80, b"b"), Message(3, 20, 0, 120, b"c")]


def test_fmt3_continuation_keeps_timestamp():
    data = (fmt0(b"\x05", 10, 5, 8, 1) + b"ab" + b"\xc5" + b"cd" + b"\xc5" + b"e"
            + b"\x85" + bytes.fromhex("000005") + b"fg" + b"\xc5" + b"hi" + b"\xc5" + b"j")
    assert read_every_split(data, chunk_size=2) == [
        Message(5, 8, 1, 10, b"abcde"), Message(5, 8, 1, 15, b"fghij")]


def test_interleaved_chunk_streams():
    data = (fmt0(b"\x06", 0, 4, 9, 1) + b"vv" + fmt0(b"\x07", 0, 3, 8, 1) + b"aa"
            + b"\xc6" + b"VV" + b"\xc7" + b"A")
    assert read_every_split(data, chunk_size=2) == [
        Message(6, 9, 1, 0, b"vvVV"), Message(7, 8, 1, 0, b"aaA")]


def test_timestamp_wraps():
    data = (fmt0(b"\x06", 0xFFFFFF, 1, 9, 1) + (0xFFFFFFF0).to_bytes(4, "big") + b"a"
            + b"\x86" + bytes.fromhex("000020") + b"b")
    assert read_every_split(data) == [Message(6, 9, 1, 0xFFFFFFF0, b"a"), Message(6, 9, 1, 0x10, b"b")]


def test_zero_length_messages_are_dropped_but_move_the_timestamp():
    """As SRS (recv_message ignores empty messages). Issue 20 point 10: 1-byte fmt 3 chunks
    of an empty message made one message per byte for the layers above."""
    data = (fmt0(b"\x03", 5, 0, 20, 0) + b"\xc3" + fmt0(b"\x04", 1, 1, 20, 0) + b"x"
            + fmt0(b"\x05", 0, 0, 1, 0) + fmt0(b"\x05", 0, 0, 2, 0)    # empty controls: ignored
            + b"\xc3" * 1000 + fmt0(b"\x03", 7, 1, 8, 1) + b"y")
    assert read_every_split(data) == [Message(4, 20, 0, 1, b"x"), Message(3, 8, 1, 7, b"y")]
    # the timestamp moved with every empty message: 5, 10, ... then fmt 3 after fmt 2 (delta 0)
    data = fmt0(b"\x03", 5, 0, 8, 1) + b"\xc3" * 3 + bytes.fromhex("43 000028 000001 08") + b"z"
    assert read_every_split(data) == [Message(3, 8, 1, 5 * 4 + 40, b"z")]


def test_fresh_fmt1_is_accepted_like_srs():
    # librtmp's first ping: fmt 1 on a fresh chunk stream (stream id 0, timestamp from 0).
    data = b"\x42" + bytes.fromhex("000000 000006 04") + bytes.fromhex("0006 00000d0f")
    assert read_every_split(data) == [Message(2, 4, 0, 0, bytes.fromhex("000600000d0f"))]


# --- extended timestamp ----------------------------------------------------------------------

def test_extended_timestamp_first_and_continuation_chunks():
    ts = 0x01020304
    data = encode_message(6, 9, 1, ts, b"abcdef", 2)
    ext = ts.to_bytes(4, "big")
    assert data == (fmt0(b"\x06", 0xFFFFFF, 6, 9, 1) + ext + b"ab"
                    + b"\xc6" + ext + b"cd" + b"\xc6" + ext + b"ef")
    assert read_every_split(data, chunk_size=2) == [Message(6, 9, 1, ts, b"abcdef")]


def test_extended_timestamp_boundary():
    assert encode_message(3, 8, 1, 0xFFFFFE, b"", 128)[1:4] == b"\xff\xff\xfe"
    data = encode_message(3, 8, 1, 0xFFFFFF, b"x", 128)
    assert data == fmt0(b"\x03", 0xFFFFFF, 1, 8, 1) + b"\x00\xff\xff\xff" + b"x"
    assert read_all(data) == [Message(3, 8, 1, 0xFFFFFF, b"x")]


def test_omitted_continuation_extended_timestamp():
    # Some writers (old librtmp) do not repeat the extended timestamp on fmt 3 chunks.
    ts = 0x01000000
    data = (fmt0(b"\x06", 0xFFFFFF, 6, 9, 1) + ts.to_bytes(4, "big") + b"abcd"
            + b"\xc6" + b"efgh"[:2])
    more = fmt0(b"\x03", 0, 1, 20, 0) + b"z"
    assert read_every_split(data + more, chunk_size=4) == [
        Message(6, 9, 1, ts, b"abcdef"), Message(3, 20, 0, 0, b"z")]
    # a 2-byte last chunk waits for 4 bytes before deciding (even at the very end)
    assert read_all(data, chunk_size=4) == []


def test_continuation_payload_equal_to_extended_timestamp_is_consumed():
    # The documented SRS ambiguity: payload starting with the ext value is taken as the ext.
    ts = 0x01000000
    data = (fmt0(b"\x06", 0xFFFFFF, 8, 9, 1) + ts.to_bytes(4, "big") + b"abcd"
            + b"\xc6" + ts.to_bytes(4, "big") + b"efgh")
    assert read_all(data, chunk_size=4) == [Message(6, 9, 1, ts, b"abcdefgh")]


def test_extended_delta_fmt2_then_fmt3_new_message():
    delta = 0x01000000
    data = (fmt0(b"\x06", 100, 1, 9, 1) + b"a"
            + b"\x86\xff\xff\xff" + delta.to_bytes(4, "big") + b"b"
            + b"\xc6" + delta.to_bytes(4, "big") + b"c")   # fmt 3 new message: ext is the delta
    assert read_every_split(data) == [
        Message(6, 9, 1, 100, b"a"), Message(6, 9, 1, 100 + delta, b"b"),
        Message(6, 9, 1, 100 + 2 * delta, b"c")]


def test_fmt3_new_message_after_extended_fmt0():
    ts = 0x02000000
    data = (fmt0(b"\x06", 0xFFFFFF, 1, 9, 1) + ts.to_bytes(4, "big") + b"a"
            + b"\xc6" + ts.to_bytes(4, "big") + b"b")
    assert read_every_split(data) == [Message(6, 9, 1, ts, b"a"), Message(6, 9, 1, 2 * ts, b"b")]


def test_normal_header_clears_extended_timestamp():
    data = (fmt0(b"\x06", 0xFFFFFF, 1, 9, 1) + (0x01000000).to_bytes(4, "big") + b"a"
            + fmt0(b"\x06", 5, 4, 9, 1) + b"bc" + b"\xc6" + b"de")
    assert read_every_split(data, chunk_size=2) == [
        Message(6, 9, 1, 0x01000000, b"a"), Message(6, 9, 1, 5, b"bcde")]


def test_writer_wraps_timestamp():
    assert encode_message(3, 8, 1, 2**32 + 5, b"", 128) == encode_message(3, 8, 1, 5, b"", 128)


# --- protocol control applied by the reader --------------------------------------------------

def test_set_chunk_size_in_the_middle_changes_parsing():
    big = bytes(range(256)) * 2
    data = (encode_message(6, 9, 1, 0, big, 128) + set_chunk_size(2, 200)
            + encode_message(6, 9, 1, 40, big, 200) + encode_message(7, 8, 1, 41, b"a" * 300, 200)
            + set_chunk_size(2, 1) + encode_message(3, 20, 0, 0, b"xyz", 1))
    got = read_every_split(data)
    assert got == [
        Message(6, 9, 1, 0, big), Message(2, 1, 0, 0, struct.pack(">I", 200)),
        Message(6, 9, 1, 40, big), Message(7, 8, 1, 41, b"a" * 300),
        Message(2, 1, 0, 0, struct.pack(">I", 1)), Message(3, 20, 0, 0, b"xyz")]
    reader = ChunkReader()
    reader.feed(data)
    assert reader.chunk_size == 1


def test_abort_drops_partial_message():
    data = (fmt0(b"\x06", 0, 6, 9, 1) + b"abc"                       # partial (chunk size 3)
            + encode_message(2, 2, 0, 0, struct.pack(">I", 6), 3)
            + fmt0(b"\x06", 9, 2, 9, 1) + b"zz")                     # fmt 0 is fine again
    assert read_every_split(data, chunk_size=3) == [
        Message(2, 2, 0, 0, struct.pack(">I", 6)), Message(6, 9, 1, 9, b"zz")]


def test_abort_unknown_csid_is_harmless():
    data = encode_message(2, 2, 0, 0, struct.pack(">I", 40), 128)
    assert len(read_all(data)) == 1


def test_bytes_received():
    reader = ChunkReader()
    reader.feed(b"\x03\x00")
    reader.feed(b"\x00")
    assert reader.bytes_received == 3


# --- errors ----------------------------------------------------------------------------------

@pytest.mark.parametrize("size", [0, 0x80000000, 0xFFFFFFFF])
def test_bad_chunk_size(size):
    with pytest.raises(ChunkError, match=f"chunk size {size}"):
        read_all(set_chunk_size(2, size))


def test_max_chunk_size_accepted():
    reader = ChunkReader()
    reader.feed(set_chunk_size(2, 0x7FFFFFFF))
    assert reader.chunk_size == 0x7FFFFFFF


@pytest.mark.parametrize("type_id", [1, 2])
def test_short_control_payload(type_id):
    with pytest.raises(ChunkError):
        read_all(encode_message(2, type_id, 0, 0, b"\x00\x01", 128))


def test_oversized_message():
    with pytest.raises(ChunkError, match="exceeds"):
        read_all(fmt0(b"\x06", 0, 1001, 9, 1), max_message_size=1000)
    with pytest.raises(ChunkError, match="exceeds"):
        read_all(fmt0(b"\x06", 0, 10, 9, 1) + b"a" * 10 + b"\x46" + bytes.fromhex("000000 0003e9 09"),
                 max_message_size=1000)
    assert read_all(fmt0(b"\x06", 0, 1000, 9, 1) + b"a" * 1000, max_message_size=1000,
                    chunk_size=4096)[0].payload == b"a" * 1000


@pytest.mark.parametrize("fmt", [2, 3])
def test_never_opened_chunk_stream(fmt):
    with pytest.raises(ChunkError, match=f"fmt {fmt} on chunk stream 9 never opened"):
        read_all(bytes([fmt << 6 | 9]) + b"\x00" * 11)


def test_length_change_mid_message():
    data = fmt0(b"\x06", 0, 200, 9, 1) + b"a" * 128 + b"\x46" + bytes.fromhex("000000 0000c9 09")
    with pytest.raises(ChunkError, match="changed from 200 to 201"):
        read_all(data)
    # same length is accepted
    data = fmt0(b"\x06", 0, 200, 9, 1) + b"a" * 128 + b"\x46" + bytes.fromhex("000000 0000c8 09")
    assert read_all(data + b"b" * 72) == [Message(6, 9, 1, 0, b"a" * 128 + b"b" * 72)]


def test_fmt0_mid_message():
    data = fmt0(b"\x06", 0, 200, 9, 1) + b"a" * 128 + fmt0(b"\x06", 0, 200, 9, 1)
    with pytest.raises(ChunkError, match="partial message"):
        read_all(data)


def test_chunk_error_is_protocol_error():
    assert issubclass(ChunkError, ProtocolError)


# --- writer ----------------------------------------------------------------------------------

def test_chunk_writer_uses_its_chunk_size():
    writer = ChunkWriter()
    assert writer.chunk_size == 128
    payload = bytes(300)
    assert writer.encode(6, 9, 1, 5, payload) == encode_message(6, 9, 1, 5, payload, 128)
    writer.chunk_size = 4096
    assert writer.encode(6, 9, 1, 5, payload) == encode_message(6, 9, 1, 5, payload, 4096)


def test_encode_accepts_bytearray_and_memoryview():
    payload = bytes(range(200))
    want = encode_message(6, 9, 1, 5, payload, 64)
    assert encode_message(6, 9, 1, 5, bytearray(payload), 64) == want
    assert encode_message(6, 9, 1, 5, memoryview(payload), 64) == want
    assert encode_message(6, 9, 1, 5, memoryview(payload), 4096) == encode_message(6, 9, 1, 5, payload, 4096)


def test_exact_multiple_of_chunk_size():
    data = encode_message(3, 8, 1, 0, b"abcd", 2)
    assert data == fmt0(b"\x03", 0, 4, 8, 1) + b"ab\xc3cd"


# --- property tests --------------------------------------------------------------------------

csids = st.one_of(st.integers(2, 70), st.integers(300, 330), st.sampled_from([319, 320, 65599]))
messages = st.builds(
    lambda *fields: Message(*fields), csids, st.integers(3, 255), st.integers(0, 2**32 - 1),
    st.one_of(st.integers(0, 0x1000010), st.integers(0, 2**32 - 1)), st.binary(max_size=600))
items = st.lists(st.one_of(messages, st.integers(1, 700)), max_size=12)


def encode_items(items):
    """Encode messages; an int item is a set chunk size switching the chunk size after it."""
    chunk_size = 128
    data = []
    want = []
    for item in items:
        if isinstance(item, int):
            payload = struct.pack(">I", item)
            data.append(encode_message(2, 1, 0, 0, payload, chunk_size))
            want.append(Message(2, 1, 0, 0, payload))
            chunk_size = item
        else:
            data.append(encode_message(item.csid, item.type_id, item.stream_id, item.timestamp,
                                       item.payload, chunk_size))
            if item.payload:                  # empty messages are dropped
                want.append(item)
    return b"".join(data), want


@settings(max_examples=300, deadline=None)
@given(items, st.integers(1, 64))
def test_round_trip(items, piece):
    data, want = encode_items(items)
    assert read_all(data) == want
    assert read_split(data, piece) == want


@settings(max_examples=30, deadline=None)
@given(items, st.data())
def test_round_trip_random_splits(items, draw):
    data, want = encode_items(items)
    cuts = sorted(draw.draw(st.lists(st.integers(0, len(data)), max_size=20)))
    reader = ChunkReader()
    got = []
    for a, b in zip([0] + cuts, cuts + [len(data)]):
        got += reader.feed(data[a:b])
    assert got == want


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=400), st.integers(1, 300))
def test_random_bytes_raise_only_chunk_error(data, piece):
    try:
        read_split(data, piece, chunk_size=16, max_message_size=4096)
    except ChunkError:
        pass


@settings(max_examples=300, deadline=None)
@given(items, st.integers(0, 2000), st.binary(min_size=1, max_size=8))
def test_corrupted_stream_raises_only_chunk_error(items, where, noise):
    data, _ = encode_items(items)
    where = min(where, len(data))
    try:
        read_split(data[:where] + noise + data[where:], 7)
    except ChunkError:
        pass


# --- total held across chunk streams (issue 14, defect 7) ------------------------------------

def partial_on_many_streams(streams, chunk=128, announced=100_000):
    """`streams` chunk streams, each opened with a message of `announced` bytes and given one
    chunk of it: every byte stays held as a partial message."""
    out = bytearray()
    for csid in range(64, 64 + streams):
        out += fmt0(bytes([0, csid - 64]) if csid < 320 else b"\x01" + (csid - 64).to_bytes(2, "little"),
                    0, announced, 9, 1) + bytes(chunk)
    return bytes(out)


def test_total_partial_bytes_capped_across_chunk_streams():
    reader = ChunkReader(max_partial_bytes=10_000)
    assert reader.feed(partial_on_many_streams(78)) == []         # 9984 bytes held
    assert reader.partial_bytes == 78 * 128
    with pytest.raises(ChunkError, match="partial messages .* exceed 10000"):
        reader.feed(fmt0(b"\x06", 0, 2000, 9, 1) + bytes(128))


def test_default_cap_holds_at_most_one_largest_message():
    """65k chunk streams with a partial message each, before any connect: refused once the total
    passes the default cap (the largest message), not after 65k x 16 MiB."""
    reader = ChunkReader()
    reader.feed(set_chunk_size(2, 65536))
    data = partial_on_many_streams(300, chunk=65536, announced=1 << 20)
    with pytest.raises(ChunkError, match="partial messages"):
        for i in range(0, len(data), 65536):
            reader.feed(data[i:i + 65536])
    assert i < 300 * 65536 - 65536                  # refused before all of it was fed
    assert reader.max_partial_bytes == reader.max_message_size == 16 * 1024 * 1024


def test_completed_and_aborted_messages_release_their_bytes():
    reader = ChunkReader(max_partial_bytes=300)
    for _ in range(5):                              # 5 x 250 bytes, one at a time: fine
        msgs = reader.feed(fmt0(b"\x06", 0, 250, 9, 1) + bytes(128) + b"\xc6" + bytes(122))
        assert [len(m.payload) for m in msgs] == [250]
        assert reader.partial_bytes == 0
    reader.feed(fmt0(b"\x07", 0, 250, 9, 1) + bytes(128))
    assert reader.partial_bytes == 128
    reader.feed(encode_message(2, 2, 0, 0, struct.pack(">I", 7), 128))     # abort stream 7
    assert reader.partial_bytes == 0
    reader.feed(fmt0(b"\x08", 0, 250, 9, 1) + bytes(128))
    assert reader.partial_bytes == 128
