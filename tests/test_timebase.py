"""lib/rtmp/timebase.py: per-player timestamps over shared encodings, checked by decoding the
result with our ChunkReader (a different code path from the one that patches the bytes)."""
import pytest

from lib.media import flv
from lib.rtmp import timebase
from lib.rtmp.chunk import ChunkReader, encode_message


def decode(data, chunk_size):
    reader = ChunkReader(chunk_size)
    msgs = reader.feed(data)
    assert len(msgs) == 1
    return msgs[0]


@pytest.mark.parametrize("csid", [6, 100, 1000])
@pytest.mark.parametrize("size", [10, 128, 129, 1000])
@pytest.mark.parametrize("old,new", [(1506000, 0), (1506040, 40), (5, 3),
                                     (0x1000000, 7), (7, 0x1000000), (0x1000000, 0x1000001)])
def test_rebased_rtmp_decodes_with_the_new_timestamp(csid, size, old, new):
    payload = bytes(range(256)) * (size // 256 + 1)
    payload = payload[:size]
    enc = encode_message(csid, 9, 1, old, payload, 128)
    assert timebase.rtmp_timestamp(enc) == old
    if timebase.needs_copy(enc, new):
        out = timebase.rtmp_rebase(enc, new, 128)
    else:
        n = timebase.rtmp_split(enc)
        out = timebase.rtmp_prefix(enc, new) + enc[n:]
        assert enc[n:] is not None and len(out) == len(enc)
    msg = decode(out, 128)
    assert (msg.timestamp, msg.payload, msg.csid, msg.type_id) == (new, payload, csid, 9)


def test_flv_prefix():
    tag = flv.tag(9, 0x12345678, b"abc")
    out = timebase.flv_prefix(tag, 0x01020304) + tag[8:]
    data = flv.file_header(True, True) + out
    assert list(flv.iter_tags(data)) == [(9, 0x01020304, b"abc")]


def test_player_timebase():
    tb = timebase.PlayerTimebase("full", 1506000)
    assert [tb.out(t) for t in (1506000, 1506040, 0, 1505000)] == [0, 40, 0, 0]
    assert timebase.PlayerTimebase("off", 1506000).out(1506040) == 1506040
