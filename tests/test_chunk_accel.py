"""The C chunk reader and encoder (lib/rtmp/_chunkc.c) against the pure-Python reference, on streams that
neither was written for: random chunk headers of every format (extended timestamps, fmt 3
starting messages, chunk size changes, aborts, bad values), random bytes, random splits.
After every feed both must agree: the same messages, or the same ChunkError text, and the same
chunk_size, partial_bytes and bytes_received. Skipped when the accelerator is not built."""
import struct

import pytest
from hypothesis import given, settings, strategies as st

from lib.rtmp import chunk
from lib.rtmp.errors import ChunkError

_chunkc = pytest.importorskip("lib.rtmp._chunkc")


def basic_header(fmt, csid):
    if csid < 64:
        return bytes([fmt << 6 | csid])
    if csid < 320:
        return bytes([fmt << 6, csid - 64])
    return bytes([fmt << 6 | 1]) + (csid - 64).to_bytes(2, "little")


@st.composite
def raw_chunk(draw):
    fmt = draw(st.integers(0, 3))
    csid = draw(st.sampled_from([2, 3, 4, 63, 64, 319, 320, 65599]))
    out = basic_header(fmt, csid)
    ts = draw(st.one_of(st.integers(0, 0xFFFFFE), st.just(0xFFFFFF)))
    if fmt < 3:
        out += ts.to_bytes(3, "big")
    if fmt < 2:
        length = draw(st.one_of(st.integers(0, 300), st.just(4)))
        type_id = draw(st.sampled_from([1, 2, 8, 9, 18, 20, 0]))
        out += length.to_bytes(3, "big") + bytes([type_id])
    if fmt == 0:
        out += draw(st.integers(0, 2**32 - 1)).to_bytes(4, "little")
    if (fmt < 3 and ts == 0xFFFFFF) or draw(st.booleans()):
        out += draw(st.integers(0, 2**32 - 1)).to_bytes(4, "big")
    if draw(st.integers(0, 5)) == 0:        # a control payload: chunk size or abort target
        out += struct.pack(">I", draw(st.sampled_from([1, 7, 64, 128, 300, 0, 0x80000000, 3])))
    out += draw(st.binary(max_size=300))
    return out


streams = st.lists(st.one_of(raw_chunk(), st.binary(max_size=40)), max_size=25).map(b"".join)


@st.composite
def valid_streams(draw):
    """Mostly well-formed streams (a model keeps lengths, chunk size and extended timestamps
    consistent), so the readers get deep into their state: messages across chunks and chunk
    streams, fmt 1/2/3 deltas, extended timestamps kept or omitted on continuations, chunk
    size changes and aborts mid-message; now and then a byte of noise."""
    chunk_size, model, out = 128, {}, []
    for _ in range(draw(st.integers(0, 30))):
        op = draw(st.integers(0, 9))
        if op == 0:                                    # set chunk size
            size = draw(st.sampled_from([1, 7, 64, 128, 300, 4096]))
            out.append(basic_header(0, 2) + bytes(3) + (4).to_bytes(3, "big") + b"\x01" + bytes(4)
                       + struct.pack(">I", size))
            chunk_size = size
            continue
        if op == 1 and model:                          # abort a chunk stream
            target = draw(st.sampled_from(sorted(model)))
            out.append(basic_header(0, 2) + bytes(3) + (4).to_bytes(3, "big") + b"\x02" + bytes(4)
                       + struct.pack(">I", target))
            model[target]["left"] = 0
            continue
        if op == 2:
            out.append(draw(st.binary(min_size=1, max_size=3)))   # noise
            continue
        csid = draw(st.sampled_from([3, 4, 64, 320]))
        cs = model.get(csid)
        partial = cs is not None and cs["left"] > 0
        fmts = [0, 1] if cs is None else ([3, 3, 3, 1, 2] if partial else [0, 1, 2, 3])
        fmt = draw(st.sampled_from(fmts))
        ext_ts = draw(st.integers(0, 5)) == 0
        ts = 0xFFFFFF if ext_ts else draw(st.integers(0, 5000))
        head = basic_header(fmt, csid)
        if fmt < 3:
            head += ts.to_bytes(3, "big")
        if fmt < 2:
            length = cs["length"] if partial else draw(st.integers(0, 700))
            head += length.to_bytes(3, "big") + bytes([draw(st.sampled_from([8, 9, 18]))])
        else:
            length = cs["length"]
        if fmt == 0:
            head += (1).to_bytes(4, "little")
        if fmt < 3:
            if ext_ts:
                value = draw(st.integers(0xFFFFFF, 2**32 - 1))
                head += value.to_bytes(4, "big")
            cs = model[csid] = {"length": length, "left": cs["left"] if partial else 0,
                                "ext": value if ext_ts else None}
        elif cs["ext"] is not None:
            kind = draw(st.integers(0, 2))             # same value, a new value, omitted
            if not partial:
                value = cs["ext"] if kind == 0 else draw(st.integers(0xFFFFFF, 2**32 - 1))
                head += value.to_bytes(4, "big")
                cs["ext"] = value
            elif kind == 0:
                head += cs["ext"].to_bytes(4, "big")
        left = cs["left"] if partial else length
        size = min(left, chunk_size)
        out.append(head + draw(st.binary(min_size=size, max_size=size)))
        cs["left"] = left - size
    return b"".join(out)


def state(reader):
    return reader.chunk_size, reader.partial_bytes, reader.bytes_received


def feed(reader, data):
    try:
        return [(m.csid, m.type_id, m.stream_id, m.timestamp, m.payload) for m in reader.feed(data)]
    except ChunkError as e:
        return ("error", str(e))


def compare(data, cuts, **kw):
    py, c = chunk.PureChunkReader(**kw), _chunkc.ChunkReader(**kw)
    for a, b in zip([0] + cuts, cuts + [len(data)]):
        got_py, got_c = feed(py, data[a:b]), feed(c, data[a:b])
        assert got_c == got_py, (a, b)
        if got_py and got_py[0] == "error":
            return
        assert state(c) == state(py), (a, b)


@settings(max_examples=1500, deadline=None)
@given(streams, st.data())
def test_c_reader_matches_the_reference_on_random_chunks(data, draw):
    cuts = sorted(draw.draw(st.lists(st.integers(0, len(data)), max_size=12)))
    compare(data, cuts, chunk_size=draw.draw(st.sampled_from([1, 16, 128, 4096])),
            max_message_size=draw.draw(st.sampled_from([100, 4096, 1 << 24])),
            max_partial_bytes=draw.draw(st.sampled_from([None, 50, 1000])))


@settings(max_examples=1500, deadline=None)
@given(valid_streams(), st.data())
def test_c_reader_matches_the_reference_on_mostly_valid_streams(data, draw):
    cuts = sorted(draw.draw(st.lists(st.integers(0, len(data)), max_size=12)))
    compare(data, cuts, max_partial_bytes=draw.draw(st.sampled_from([None, 1500])))


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=600), st.integers(1, 200))
def test_c_reader_matches_the_reference_on_random_bytes(data, piece):
    compare(data, list(range(piece, len(data), piece)), chunk_size=16, max_message_size=4096)


def outcome(func, *args):
    try:
        return ("ok", func(*args))
    except Exception as e:       # noqa: BLE001 - the same kind of error is what is compared
        return ("error", type(e))


@settings(max_examples=1500, deadline=None)
@given(st.one_of(st.integers(2, 65599), st.integers(-5, 70000)), st.integers(-2, 300),
       st.one_of(st.integers(0, 2**32 - 1), st.integers(-2**40, 2**40)),
       st.one_of(st.integers(0, 0x1000010), st.integers(-2**70, 2**70),
                 st.sampled_from([0xFFFFFE, 0xFFFFFF, 0x1000000, 2**32 - 1, 2**32, -1])),
       st.one_of(st.binary(max_size=700), st.binary(max_size=700).map(bytearray),
                 st.binary(max_size=700).map(memoryview)),
       st.one_of(st.integers(1, 800), st.integers(-3, 3), st.sampled_from([128, 350, 700])))
def test_c_encoder_gives_the_reference_bytes(csid, type_id, stream_id, timestamp, payload, size):
    want = outcome(chunk.pure_encode_message, csid, type_id, stream_id, timestamp, payload, size)
    assert outcome(_chunkc.encode_message, csid, type_id, stream_id, timestamp, payload, size) == want


def test_c_encoder_at_the_boundaries():
    for ts in (0xFFFFFE, 0xFFFFFF, 0x1000000):
        for csid in (2, 63, 64, 319, 320, 65599):
            for length in (0, 127, 128, 129, 256, 300):
                args = (csid, 9, 1, ts, bytes(i % 251 for i in range(length)), 128)
                assert _chunkc.encode_message(*args) == chunk.pure_encode_message(*args), args


def test_c_encoder_round_trips_a_large_message():
    payload = bytes(range(256)) * 4000
    data = _chunkc.encode_message(6, 9, 1, 0x1234567, payload, 4096)
    assert data == chunk.pure_encode_message(6, 9, 1, 0x1234567, payload, 4096)
    [msg] = chunk.PureChunkReader(4096).feed(data)
    assert (msg.csid, msg.type_id, msg.stream_id, msg.timestamp, msg.payload) == (6, 9, 1, 0x1234567, payload)


def test_the_server_uses_the_accelerator_when_built():
    assert chunk.IMPLEMENTATION == "c" and chunk.ChunkReader is _chunkc.ChunkReader
    assert chunk.encode_message is _chunkc.encode_message


def test_pure_python_is_selected_cleanly_when_asked():
    """SRSEDGE_PURE_PYTHON=1 (and an unbuilt accelerator, which imports the same way) selects
    the reference, and -t says so."""
    import os
    import subprocess
    import sys
    env = dict(os.environ, SRSEDGE_PURE_PYTHON="1")
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    out = subprocess.run([sys.executable, "-c", "from lib.rtmp import chunk; "
                          "print(chunk.IMPLEMENTATION, chunk.ChunkReader.__name__)"],
                         env=env, cwd=root, capture_output=True, text=True, check=True).stdout
    assert out.split() == ["python", "PureChunkReader"]
    said = subprocess.run([sys.executable, "srsedge.py", "-t", "-c", "conf/srs.conf"], env=env,
                          cwd=root, capture_output=True, text=True)
    assert said.returncode == 0 and "RTMP chunk reader: pure Python" in said.stdout
