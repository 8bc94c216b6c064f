"""Self-check of the load generator's chunk-header parser (run by `python -m bench --selftest`).

Rules: a known chunk stream (Set Chunk Size, fmt 0 headers as srsedge sends, fmt 1/2/3 header
compression as nginx-rtmp sends, extended timestamps, multi-chunk messages) is fed whole and
split at random points; the parser must see every video message with its timestamp and length,
apply the chunk size and recognise the keyframe. Returns a list of problems (empty when fine).
"""
import random
import struct

from bench.loadgen import Player
from lib.rtmp.chunk import encode_message

KEYFRAME = b"\x17\x01" + bytes(500)
INTER = b"\x27\x01"


def _fmt_header(fmt, csid, delta=0, length=0, type_id=0):
    basic = bytes([(fmt << 6) | csid])
    ext = b""
    field = delta
    if delta >= 0xFFFFFF:
        field, ext = 0xFFFFFF, struct.pack(">I", delta)
    ts = field.to_bytes(3, "big")
    if fmt == 1:
        return basic + ts + length.to_bytes(3, "big") + bytes([type_id]) + ext
    if fmt == 2:
        return basic + ts + ext
    return basic + ext


def _chunks(header, cont, payload, size):
    parts = [payload[i:i + size] for i in range(0, len(payload), size)] or [b""]
    return header + parts[0] + b"".join(cont + p for p in parts[1:])


def sample_stream():
    """(bytes, expected [(ts, length)] of video messages)."""
    size = 4096
    out = [encode_message(2, 1, 0, 0, struct.pack(">I", size), 128)]
    video = []
    ts = 0
    for i in range(40):                 # srsedge style: fmt 0 on every message
        payload = (KEYFRAME if i % 10 == 0 else INTER) + bytes(random.randrange(0, 9000))
        out.append(encode_message(6, 9, 1, ts, payload, size))
        video.append((ts, len(payload)))
        out.append(encode_message(7, 8, 1, ts, b"\xaf\x01" + bytes(200), size))
        ts += 40
    ts = 0xFFFFF0                       # crossing into extended timestamps
    for _ in range(5):
        payload = INTER + bytes(6000)
        out.append(encode_message(6, 9, 1, ts, payload, size))
        video.append((ts, len(payload)))
        ts += 40
    # nginx-rtmp style on chunk stream 8: fmt 0, then fmt 1, fmt 2 and fmt 3 for new messages
    base = ts + 1000
    payload = INTER + bytes(5000)
    out.append(encode_message(8, 9, 1, base, payload, size))
    video.append((base, len(payload)))
    cont = bytes([0xC0 | 8])
    p1 = INTER + bytes(100)
    out.append(_chunks(_fmt_header(1, 8, 40, len(p1), 9), cont, p1, size))
    video.append((base + 40, len(p1)))
    out.append(_chunks(_fmt_header(2, 8, 33), cont, p1, size))
    video.append((base + 73, len(p1)))
    out.append(_chunks(_fmt_header(3, 8), cont, p1, size))
    video.append((base + 106, len(p1)))
    return b"".join(out), video


class _Gen:
    def on_first_key(self, p):
        pass

    def on_gone(self, p):
        pass


def feed_all(data, cuts):
    p = Player(_Gen(), "rtmp://127.0.0.1:1/live/x", probe=True)
    p.state = "playing"
    pos = 0
    for cut in sorted(cuts) + [len(data)]:
        chunk = bytearray(data[pos:cut])
        p.feed(chunk, len(chunk), 0.0)
        pos = cut
    return p


def run(rounds=200, seed=7):
    random.seed(seed)
    data, video = sample_stream()
    problems = []
    for r in range(rounds):
        cuts = [] if r == 0 else random.sample(range(1, len(data)), random.choice((1, 5, 50, 500)))
        p = feed_all(data, cuts)
        got = [(ts, length) for ts, length, _ in p.arrivals]
        if got != video:
            problems.append(f"round {r}: video messages differ ({len(got)} vs {len(video)})")
        if p.chunk_size != 4096 or p.t_key is None or p.regressions:
            problems.append(f"round {r}: chunk size {p.chunk_size}, keyframe {p.t_key}, "
                            f"regressions {p.regressions}")
        if problems:
            break
    return problems


if __name__ == "__main__":
    print(run() or "parser ok")
