"""bench.pubgen's write patterns (issue 22): the writes each message takes in each mode, with
known sizes, and the bytes of all writes parse back to the same messages; bench.procs'
reader of ffmpeg's -progress blocks."""
from bench.procs import FfmpegTee
from bench.pubgen import Pub
from lib.rtmp.chunk import PureChunkReader


def pub(writes):
    gen = type("Gen", (), {})()
    p = Pub(gen, "rtmp://127.0.0.1:1935/live/s0", 0.0, writes)
    p.stream_id = 1
    return p


MESSAGES = [(4, 8, 0, b"\xaf\x00" + b"a" * 5), (6, 9, 0, b"\x17" + b"v" * 130_000),
            (4, 8, 23, b"\xaf\x01" + b"a" * 200), (6, 9, 40, b"\x27" + b"p" * 3000)]


def writes_of(p):
    return [p.message_writes(csid, t, ts, payload) for csid, t, ts, payload in MESSAGES]


def parse(p, writes):
    reader = PureChunkReader(chunk_size=p.chunk_size_out)
    data = b"".join(b for msg in writes for b in msg)
    return [(m.csid, m.type_id, m.timestamp, bytes(m.payload)) for m in reader.feed(data)]


def test_ffmpeg_writes_header_then_payload():
    p = pub("ffmpeg")
    w = writes_of(p)
    assert [len(x) for x in w[0]] == [12, 7]                 # first on csid 4: fmt 0
    assert [len(x) for x in w[1]] == [12, 60000, 1, 60000, 1, 10001]   # 130001 bytes in 60000 chunks
    assert w[1][2] == b"\xc6"                                # fmt 3 on csid 6
    assert [len(x) for x in w[2]] == [8, 202]                # fmt 1: delta 23
    assert w[2][0] == b"\x44" + (23).to_bytes(3, "big") + (202).to_bytes(3, "big") + b"\x08"
    assert [len(x) for x in w[3]] == [8, 3001]
    assert parse(p, w) == [(c, t, ts, pl) for c, t, ts, pl in MESSAGES]


def test_obs_writes_one_per_chunk():
    p = pub("obs")
    w = writes_of(p)
    assert [len(x) for x in w[0]] == [12 + 7]
    assert [len(x) for x in w[1]] == [12 + 4096] + [1 + 4096] * 30 + [1 + 130_001 - 31 * 4096]
    assert parse(p, w) == [(c, t, ts, pl) for c, t, ts, pl in MESSAGES]


def test_progress_reader_takes_last_complete_block(tmp_path):
    f = tmp_path / "p"
    f.write_text("frame=1\nout_time_us=N/A\nprogress=continue\nframe=9\nout_time_us=2000000\n"
                 "progress=continue\nframe=10\nout_time_us=23")     # the last block is incomplete
    assert FfmpegTee._last(str(f)) == {"frame": "9", "out_time_us": "2000000"}
    assert FfmpegTee._last(str(tmp_path / "none")) == {}
