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
    assert [tb.out(t, 1506040) for t in (1506000, 1506040, 0, 1505000)] == [0, 40, 0, 0]
    assert timebase.PlayerTimebase("off", 1506000).out(1506040, 1506040) == 1506040


def test_rebase_all_keeps_payloads_and_maps_timestamps():
    tb = timebase.PlayerTimebase("full", 5000)
    big = bytes(300)
    rtmp = [encode_message(6, 9, 1, ts, big, 128) for ts in (5000, 5040, 0x1000000 + 5000)]
    rtmp.append(encode_message(5, 18, 1, 0, b"meta", 128))   # onMetaData's 0 stays 0
    out = b"".join(bytes(b) for b in timebase.rebase_all(rtmp, "rtmp", tb, 128, 0x1000000 + 5000))
    reader = ChunkReader(128)
    msgs = reader.feed(out)
    assert [m.timestamp for m in msgs] == [0, 40, 0x1000000, 0]
    assert [m.payload for m in msgs] == [big, big, big, b"meta"]
    tags = [flv.tag(9, ts, b"x") for ts in (5000, 5040)]
    data = flv.file_header() + b"".join(bytes(b) for b in timebase.rebase_all(tags, "flv", tb, 0, 5040))
    assert [ts for _, ts, _ in flv.iter_tags(data)] == [0, 40]
    assert timebase.flv_timestamp(tags[1]) == 5040


WRAP = 1 << 32


def player_view(timeline, base, kind="rtmp"):
    """What a player attached at `base` decodes for messages at `timeline` (the source's
    unbounded timestamps; the bytes carry their low 32 bits), rebased as the source does."""
    tb = timebase.PlayerTimebase("full", base)
    newest = max(timeline)
    if kind == "rtmp":
        bufs = [encode_message(6, 9, 1, ts, b"frame", 128) for ts in timeline]
        out = b"".join(bytes(b) for b in timebase.rebase_all(bufs, kind, tb, 128, newest))
        return [m.timestamp for m in ChunkReader(128).feed(out)]
    bufs = [flv.tag(9, ts, b"frame") for ts in timeline]
    data = flv.file_header() + b"".join(bytes(b) for b in timebase.rebase_all(bufs, kind, tb, 0, newest))
    return [ts for _, ts, _ in flv.iter_tags(data)]


@pytest.mark.parametrize("kind", ["rtmp", "flv"])
def test_players_keep_their_timeline_across_the_source_wrap(kind):
    """Issue 20 point 11: a source older than 2^32 ms (49.7 days). Before the fix, a player whose
    base was set before the wrap got 0 for every frame after it (the wire timestamp is 32-bit,
    the base was not)."""
    timeline = [WRAP - 2000 + 40 * i for i in range(171)]        # crosses 2^32 at frame 50
    base = WRAP - 1000
    want = [max(0, ts - base) for ts in timeline]
    assert player_view(timeline, base, kind) == want
    # a player that attached after the wrap (base past 2^32) sees its own start at 0
    late = WRAP + 3000
    assert player_view(timeline, late, kind) == [max(0, ts - late) for ts in timeline]


def test_a_player_connected_longer_than_49_days_wraps_like_any_rtmp_peer():
    base = 5000
    timeline = [base + WRAP - 80 + 40 * i for i in range(5)]
    assert player_view(timeline, base) == [(ts - base) % WRAP for ts in timeline]


def test_metadata_at_zero_stays_zero_after_the_wrap():
    tb = timebase.PlayerTimebase("full", WRAP + 7000)
    bufs = [encode_message(5, 18, 1, 0, b"meta", 128), encode_message(6, 9, 1, WRAP + 7040, b"v", 128)]
    out = b"".join(bytes(b) for b in timebase.rebase_all(bufs, "rtmp", tb, 128, WRAP + 7040))
    assert [m.timestamp for m in ChunkReader(128).feed(out)] == [0, 40]
    tags = [flv.tag(18, 0, b"meta"), flv.tag(9, WRAP + 7040, b"v")]
    data = flv.file_header() + b"".join(bytes(b) for b in timebase.rebase_all(tags, "flv", tb, 0, WRAP + 7040))
    assert [ts for _, ts, _ in flv.iter_tags(data)] == [0, 40]
