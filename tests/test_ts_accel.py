"""The C TS packetizer (lib/media/_tsc.c) against the pure-Python reference
(TsMuxer._packetize): random PES heads and parts (bytes, memoryviews, empty ones) of every
size around packet boundaries, with and without PCR / random access, every continuity counter.
Same bytes, same continuity counter after. Skipped when the accelerator is not built."""
import pytest
from hypothesis import given, settings, strategies as st

from lib.media import ts
from lib.media.ts import PACKET_SIZE, TsMuxer

_tsc = pytest.importorskip("lib.media._tsc")


def reference(pid, cc, pcr, rai, head, parts):
    m = TsMuxer()
    m.cc[pid] = cc
    out = m._packetize(pid, head + b"".join(bytes(p) for p in parts), pcr, rai)
    return out, m.cc[pid]


def accel(pid, cc, pcr, rai, head, parts):
    out = _tsc.packets(pid, cc, ts._adaptation(pcr, rai), head, parts)
    return out, (cc + len(out) // PACKET_SIZE) & 0x0F


sizes = st.one_of(st.integers(0, 400), st.integers(0, 20).map(lambda k: 184 * k),
                  st.integers(1, 20).map(lambda k: 184 * k - 8), st.integers(0, 5000))


@st.composite
def pes_input(draw):
    pid = draw(st.sampled_from([0x100, 0x101, 0x1FFF, 0]))
    cc = draw(st.integers(0, 15))
    pcr = draw(st.one_of(st.none(), st.integers(0, (1 << 40))))
    rai = draw(st.booleans())
    head = draw(st.binary(max_size=19))
    parts = []
    for size in draw(st.lists(sizes, max_size=40)):
        data = bytes((i * 7 + size) & 0xFF for i in range(size))
        parts.append(memoryview(b"xx" + data)[2:] if draw(st.booleans()) else data)
    return pid, cc, pcr, rai, head, parts


@settings(max_examples=400, deadline=None)
@given(pes_input())
def test_same_packets_as_reference(args):
    assert accel(*args) == reference(*args)


@pytest.mark.parametrize("total", [0, 1, 175, 176, 177, 183, 184, 185, 368, 369, 10000])
@pytest.mark.parametrize("pcr,rai", [(None, False), (None, True), (90000, False), (5, True)])
def test_boundaries(total, pcr, rai):
    args = (0x100, 15, pcr, rai, b"\x00\x00\x01\xe0", [b"\xaa" * total])
    assert accel(*args) == reference(*args)


def test_bad_arguments():
    with pytest.raises(ValueError):
        _tsc.packets(0x2000, 0, b"", b"", [])
    with pytest.raises(ValueError):
        _tsc.packets(0x100, 16, b"", b"", [])
    with pytest.raises(ValueError):
        _tsc.packets(0x100, 0, b"\x00" * 183, b"", [])
    with pytest.raises(TypeError):
        _tsc.packets(0x100, 0, b"", b"", (b"x",))
    with pytest.raises(TypeError):
        _tsc.packets(0x100, 0, b"", b"", [b"x", 5])
