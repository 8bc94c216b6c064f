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


def test_rebase_all_keeps_payloads_and_maps_timestamps():
    tb = timebase.PlayerTimebase("full", 5000)
    big = bytes(300)
    rtmp = [encode_message(6, 9, 1, ts, big, 128) for ts in (5000, 5040, 0x1000000 + 5000)]
    rtmp.append(encode_message(5, 18, 1, 0, b"meta", 128))   # onMetaData's 0 stays 0
    out = b"".join(bytes(b) for b in timebase.rebase_all(rtmp, "rtmp", tb, 128))
    reader = ChunkReader(128)
    msgs = reader.feed(out)
    assert [m.timestamp for m in msgs] == [0, 40, 0x1000000, 0]
    assert [m.payload for m in msgs] == [big, big, big, b"meta"]
    tags = [flv.tag(9, ts, b"x") for ts in (5000, 5040)]
    data = flv.file_header() + b"".join(bytes(b) for b in timebase.rebase_all(tags, "flv", tb, 0))
    assert [ts for _, ts, _ in flv.iter_tags(data)] == [0, 40]
    assert timebase.flv_timestamp(tags[1]) == 5040
