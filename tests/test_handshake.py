"""Handshake tests. The complex-handshake math is written out here independently of the module
(constants in hex, offsets by hand) so a shared mistake cannot make both sides agree."""

import hashlib
import hmac
import random

import pytest
from hypothesis import given, settings, strategies as st

from lib.rtmp import handshake as hs
from lib.rtmp.errors import HandshakeError

FP30 = bytes.fromhex("47656e75696e652041646f626520466c61736820506c61796572203030" "31")
FMS36 = bytes.fromhex("47656e75696e652041646f626520466c617368204d6564696120536572766572"
                      "20303031")
TAIL = bytes.fromhex("f0eec24a8068bee82e00d0d1029e7e576eec5d2d29806fab93b8e636cfeb31ae")
FP62 = FP30 + TAIL
FMS68 = FMS36 + TAIL


def sha(key, data):
    return hmac.new(key, data, hashlib.sha256).digest()


def rng_rand(seed=1):
    return random.Random(seed).randbytes


def digest_pos(packet, block_start):
    """librtmp's GetDigestOffset1 (block at 8) / GetDigestOffset2 (block at 772)."""
    return block_start + 4 + sum(packet[block_start:block_start + 4]) % 728


def build_c1(block_start, seed=7, version=b"\x80\x00\x07\x02"):
    """A Flash-style C1 whose digest block starts at `block_start`; returns (c1, digest)."""
    c1 = bytearray(random.Random(seed).randbytes(1536))
    c1[4:8] = version
    pos = digest_pos(c1, block_start)
    digest = sha(FP30, bytes(c1[:pos] + c1[pos + 32:]))
    c1[pos:pos + 32] = digest
    return bytes(c1), digest


def librtmp_check_s1(s1):
    """The server digest as librtmp finds it (either position, FMS 36-byte key), or None."""
    for block_start in (8, 772):
        pos = digest_pos(s1, block_start)
        if s1[pos:pos + 32] == sha(FMS36, s1[:pos] + s1[pos + 32:]):
            return block_start, s1[pos:pos + 32]
    return None


def librtmp_check_s2(s2, c1_digest):
    return s2[1504:] == sha(sha(FMS68, c1_digest), s2[:1504])


def run_server(data, seed=1, now_ms=0):
    server = hs.ServerHandshake(rand=rng_rand(seed), now_ms=now_ms)
    return server, server.feed(data)


# ---- constants and helpers ---------------------------------------------------------------------

def test_key_constants():
    assert FP30 == b"Genuine Adobe Flash Player 001"
    assert FMS36 == b"Genuine Adobe Flash Media Server 001"
    assert (hs.FP_KEY, hs.FMS_KEY) == (FP62, FMS68)
    assert (len(hs.FP_KEY), len(hs.FMS_KEY)) == (62, 68)


@pytest.mark.parametrize("schema,block_start", [(0, 772), (1, 8)])
def test_find_digest_schemas(schema, block_start):
    c1, _ = build_c1(block_start)
    assert hs.find_digest(c1, FP30) == (schema, digest_pos(c1, block_start))
    assert hs.find_digest(c1, FMS36) is None
    broken = bytearray(c1)
    broken[0] ^= 1  # the time field is covered by the digest
    assert hs.find_digest(bytes(broken), FP30) is None
    assert hs.find_digest(c1[:-1], FP30) is None


# ---- server ------------------------------------------------------------------------------------

@pytest.mark.parametrize("block_start,schema", [(772, 0), (8, 1)])
def test_server_complex_reply_validates_as_librtmp(block_start, schema):
    c1, c1_digest = build_c1(block_start)
    server, out = run_server(b"\x03" + c1, now_ms=0x1_2345_6789)
    assert server.complex and not server.done
    assert len(out) == 1 + 1536 * 2 and out[0] == 3
    s1, s2 = out[1:1537], out[1537:]
    assert s1[:4] == (0x23456789).to_bytes(4, "big")
    assert s1[4] >= 3  # ffmpeg checks S1's digest only when this byte is >= 3: we want it checked
    assert librtmp_check_s1(s1) == (block_start, s1[digest_pos(s1, block_start):][:32])
    assert librtmp_check_s2(s2, c1_digest)
    assert hs.validate_s2(s2, c1_digest)
    assert hs.validate_s1(s1) == librtmp_check_s1(s1)[1]


def test_server_simple_reply_echoes_c1():
    c1 = bytes(8) + random.Random(3).randbytes(1528)
    server, out = run_server(b"\x03" + c1, now_ms=5000)
    assert not server.complex
    s1, s2 = out[1:1537], out[1537:]
    assert out[0] == 3 and s2 == c1
    assert s1[:8] == (5000).to_bytes(4, "big") + bytes(4)


def test_server_zero_version_is_simple_even_with_valid_digest():
    c1, _ = build_c1(8, version=bytes(4))
    server, out = run_server(b"\x03" + c1)
    assert not server.complex and out[1537:] == c1


def test_server_bad_digest_falls_back_to_simple():
    c1, _ = build_c1(8)
    c1 = c1[:100] + bytes([c1[100] ^ 0xFF]) + c1[101:]
    server, out = run_server(b"\x03" + c1)
    assert not server.complex and out[1537:] == c1


def test_server_c2_not_checked_and_leftover():
    c1, _ = build_c1(8)
    server, _ = run_server(b"\x03" + c1)
    assert server.feed(b"\xAA" * 1535) == b"" and not server.done
    assert server.feed(b"\xBB" + b"connect") == b""
    assert server.done and server.leftover == b"connect"
    with pytest.raises(HandshakeError):
        server.feed(b"more")


def full_client_stream(block_start):
    c1, _ = build_c1(block_start)
    return b"\x03" + c1 + random.Random(9).randbytes(1536) + b"\x02pipelined-connect"


@pytest.mark.parametrize("block_start", [8, 772, None])
def test_server_every_split_point(block_start):
    stream = (full_client_stream(block_start) if block_start else
              b"\x03" + bytes(1536) + bytes(1536) + b"tail")
    whole, whole_out = run_server(stream)
    assert whole.done and whole.leftover.endswith(b"tail" if block_start is None else b"connect")
    for cut in range(len(stream) + 1):
        server, out = run_server(stream[:cut])
        if server.done:  # the caller keeps what it did not feed
            leftover = server.leftover + stream[cut:]
        else:
            out += server.feed(stream[cut:])
            leftover = server.leftover
        assert (out, leftover, server.complex) == (whole_out, whole.leftover, whole.complex)


def test_server_byte_by_byte():
    stream = full_client_stream(8)
    whole, whole_out = run_server(stream)
    server = hs.ServerHandshake(rand=rng_rand(1))
    out = b""
    for i in range(len(stream)):
        if server.done:
            break
        out += server.feed(stream[i:i + 1])
    # Fed one byte at a time, C2's last byte ends the handshake before the pipelined bytes.
    assert out == whole_out and server.done and server.leftover == b""
    assert stream[i:] == whole.leftover


@pytest.mark.parametrize("first,hint", [
    (b"\x06", "RTMPE"), (b"\x00", "want 3"), (b"G", "HTTP"), (b"P", "HTTP"), (b"\x16", "TLS"),
])
def test_server_rejects_wrong_c0_on_first_byte(first, hint):
    server = hs.ServerHandshake()
    with pytest.raises(HandshakeError, match=hint) as err:
        server.feed(first)
    assert f"C0 version {first[0]}, want 3" in str(err.value)


def test_server_rejects_http_request():
    with pytest.raises(HandshakeError, match="HTTP"):
        hs.ServerHandshake().feed(b"GET /live/stream.flv HTTP/1.1\r\nHost: x\r\n\r\n")


# ---- client ------------------------------------------------------------------------------------

def test_client_c1_is_flash_style():
    client = hs.ClientHandshake(rand=rng_rand(), now_ms=42)
    c0c1 = client.start()
    c1 = c0c1[1:]
    assert c0c1[0] == 3 and len(c1) == 1536
    assert c1[:8] == (42).to_bytes(4, "big") + bytes.fromhex("80000702")
    pos = digest_pos(c1, 8)
    assert c1[pos:pos + 32] == sha(FP30, c1[:pos] + c1[pos + 32:])
    assert client.c1_digest == c1[pos:pos + 32]


def test_client_simple_c1():
    client = hs.ClientHandshake(complex=False, rand=rng_rand(), now_ms=42)
    c1 = client.start()[1:]
    assert c1[:8] == (42).to_bytes(4, "big") + bytes(4) and client.c1_digest is None


def fms_s1(block_start, seed=11):
    s1 = bytearray(random.Random(seed).randbytes(1536))
    s1[4:8] = b"\x0d\x0e\x0a\x0d"
    pos = digest_pos(s1, block_start)
    digest = sha(FMS36, bytes(s1[:pos] + s1[pos + 32:]))
    s1[pos:pos + 32] = digest
    return bytes(s1), digest


@pytest.mark.parametrize("block_start", [8, 772])
def test_client_answers_complex_s1(block_start):
    s1, s1_digest = fms_s1(block_start)
    client = hs.ClientHandshake(rand=rng_rand())
    client.start()
    c2 = client.feed(b"\x03" + s1 + bytes(1536) + b"extra")
    assert client.done and client.server_complex and client.leftover == b"extra"
    assert c2[1504:] == sha(sha(FP62, s1_digest), c2[:1504])
    assert hs.validate_c2(c2, s1_digest)


def test_client_echoes_simple_s1():
    s1 = bytes(8) + random.Random(4).randbytes(1528)
    client = hs.ClientHandshake(rand=rng_rand())
    client.start()
    assert client.feed(b"\x03" + s1 + bytes(1536)) == s1
    assert client.done and not client.server_complex and client.leftover == b""


def test_client_every_split_point():
    s1, _ = fms_s1(772)
    stream = b"\x03" + s1 + bytes(1536) + b"\x02\x00window-ack"

    def run(cut):
        client = hs.ClientHandshake(rand=rng_rand())
        client.start()
        out = client.feed(stream[:cut])
        if client.done:  # the caller keeps what it did not feed
            return out, client.leftover + stream[cut:]
        return out + client.feed(stream[cut:]), client.leftover

    whole = run(len(stream))
    assert whole[1] == b"\x02\x00window-ack"
    for cut in range(len(stream)):
        assert run(cut) == whole


def test_client_errors():
    with pytest.raises(HandshakeError, match="before start"):
        hs.ClientHandshake().feed(b"\x03")
    client = hs.ClientHandshake()
    client.start()
    with pytest.raises(HandshakeError, match="S0 version 6"):
        client.feed(b"\x06")


# ---- both roles together -----------------------------------------------------------------------

@pytest.mark.parametrize("complex_", [True, False])
def test_client_against_server(complex_):
    client = hs.ClientHandshake(complex=complex_, rand=rng_rand(1), now_ms=10)
    server = hs.ServerHandshake(rand=rng_rand(2), now_ms=20)
    s0s1s2 = server.feed(client.start())
    assert server.complex == complex_
    c2 = client.feed(s0s1s2 + b"\x02from-server")
    assert client.done and client.server_complex == complex_
    assert client.leftover == b"\x02from-server"
    if complex_:
        assert hs.validate_s2(s0s1s2[1537:], client.c1_digest)
        assert hs.validate_c2(c2, hs.validate_s1(s0s1s2[1:1537]))
    else:
        assert s0s1s2[1537:] == client._c1 and c2 == s0s1s2[1:1537]
    assert server.feed(c2 + b"\x03connect") == b""
    assert server.done and server.leftover == b"\x03connect"


# ---- arbitrary input ---------------------------------------------------------------------------

chunks = st.lists(st.binary(max_size=2000), max_size=6)


def feed_all(role, parts):
    try:
        for part in parts:
            role.feed(part)
    except HandshakeError:
        pass


@settings(max_examples=200, deadline=None)
@given(chunks, st.booleans())
def test_server_random_input_only_handshake_error(parts, lead_with_3):
    feed_all(hs.ServerHandshake(rand=rng_rand()), ([b"\x03"] if lead_with_3 else []) + parts)


@settings(max_examples=200, deadline=None)
@given(chunks, st.booleans(), st.booleans())
def test_client_random_input_only_handshake_error(parts, lead_with_3, complex_):
    client = hs.ClientHandshake(complex=complex_, rand=rng_rand())
    client.start()
    feed_all(client, ([b"\x03"] if lead_with_3 else []) + parts)


@settings(max_examples=100, deadline=None)
@given(st.binary(min_size=1536, max_size=1536))
def test_find_digest_random_never_raises(packet):
    assert hs.find_digest(packet, FP30) is None or len(hs.find_digest(packet, FP30)) == 2
