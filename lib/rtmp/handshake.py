"""RTMP handshake, server and client roles, sans-IO (simple and complex/digest variants).

Rules:
- C0/S0 is one version byte and must be 3; anything else is a HandshakeError (with a hint when
  the byte looks like HTTP, TLS or RTMPE). C1/S1 and C2/S2 are 1536 bytes each.
- Complex handshake (as Flash, ffmpeg, librtmp, SRS): C1/S1 = time(4) + version(4) + two 764-byte
  blocks, a key block and a digest block. Schema numbering follows SRS:
    schema 0 = key block at 8, digest block at 772;
    schema 1 = digest block at 8, key block at 772 (what Flash/ffmpeg/librtmp clients send).
  A digest block starts with 4 bytes whose sum % 728 gives where the 32-byte digest sits after
  them. The digest is HMAC-SHA256 over the 1504 other bytes, keyed with the 30-byte Flash Player
  text (C1) or the 36-byte Flash Media Server text (S1).
  C2/S2 = 1504 random bytes + HMAC-SHA256(HMAC-SHA256(full key, peer's C1/S1 digest), those 1504)
  with the full 62-byte FP key (C2) or 68-byte FMS key (S2).
- The key block holds random bytes: no Diffie-Hellman, since we do not speak encrypted RTMPE.
- Server: if C1 has a nonzero version and a valid digest (schema 0 tried first, then 1), reply
  complex in C1's schema; otherwise simple: S1 = time + 4 zero bytes + random, S2 = echo of C1.
  C2 is not validated (encoders send all sorts; SRS does not check it either).
- Client: complex C1 uses schema 1 and version 0x80000702. If S1 carries a valid FMS digest,
  C2 is the digest response; otherwise (a simple server) C2 echoes S1. S2 is not checked.
- Bytes after C2 (server) or S2 (client) are kept in `leftover`: peers pipeline the next
  message right behind the handshake.
- feed() after `done` is a caller bug and raises HandshakeError, so that the only exception
  any bytes can cause stays HandshakeError.
- No clock reads, no sockets: time (`now_ms`) and randomness (`rand(n) -> n bytes`) are injected.
"""

import hashlib
import hmac
import os

from lib.rtmp.errors import HandshakeError

RTMP_VERSION = 3
PACKET_SIZE = 1536
DIGEST_SIZE = 32
RANDOM_SIZE = PACKET_SIZE - DIGEST_SIZE  # 1504: the random part of C2/S2

FP_KEY_TEXT = b"Genuine Adobe Flash Player 001"  # 30 bytes: signs C1
FMS_KEY_TEXT = b"Genuine Adobe Flash Media Server 001"  # 36 bytes: signs S1
_KEY_TAIL = bytes.fromhex("F0EEC24A8068BEE82E00D0D1029E7E576EEC5D2D29806FAB93B8E636CFEB31AE")
FP_KEY = FP_KEY_TEXT + _KEY_TAIL  # 62 bytes: keys C2's digest
FMS_KEY = FMS_KEY_TEXT + _KEY_TAIL  # 68 bytes: keys S2's digest

CLIENT_VERSION = 0x80000702  # as Flash Player / ffmpeg
SERVER_VERSION = 0x04050001  # nonzero: ffmpeg checks S1's digest when version byte 0 >= 3

DIGEST_BLOCK_AT = {0: 772, 1: 8}  # schema -> offset of the digest block in C1/S1


# ---- digest math -------------------------------------------------------------------------------

def _hmac(key, data):
    return hmac.new(key, data, hashlib.sha256).digest()


def digest_offset(c1s1, schema):
    """Offset of the 32-byte digest in a C1/S1 laid out in `schema`."""
    block = DIGEST_BLOCK_AT[schema]
    return block + 4 + sum(c1s1[block:block + 4]) % 728


def _c1s1_digest(c1s1, offset, key):
    return _hmac(key, bytes(c1s1[:offset]) + bytes(c1s1[offset + DIGEST_SIZE:]))


def find_digest(c1s1, key):
    """(schema, offset) of a valid digest in C1/S1 keyed with `key`, or None."""
    if len(c1s1) != PACKET_SIZE:
        return None
    for schema in (0, 1):
        offset = digest_offset(c1s1, schema)
        expected = _c1s1_digest(c1s1, offset, key)
        if hmac.compare_digest(bytes(c1s1[offset:offset + DIGEST_SIZE]), expected):
            return schema, offset
    return None


def response_digest(peer_digest, full_key, random_part):
    """The last 32 bytes of C2/S2: HMAC(HMAC(full_key, peer's digest), 1504 random bytes)."""
    return _hmac(_hmac(full_key, peer_digest), random_part)


def validate_s1(s1):
    """S1's digest (FMS key, either schema) as a Flash/librtmp client checks it, or None."""
    found = find_digest(s1, FMS_KEY_TEXT)
    if found is None:
        return None
    offset = found[1]
    return bytes(s1[offset:offset + DIGEST_SIZE])


def validate_s2(s2, c1_digest):
    """True if S2 answers the client digest `c1_digest` (librtmp's "genuine Adobe" check)."""
    if len(s2) != PACKET_SIZE:
        return False
    expected = response_digest(c1_digest, FMS_KEY, bytes(s2[:RANDOM_SIZE]))
    return hmac.compare_digest(bytes(s2[RANDOM_SIZE:]), expected)


def validate_c2(c2, s1_digest):
    """True if C2 answers the server digest `s1_digest` (we never require it)."""
    if len(c2) != PACKET_SIZE:
        return False
    expected = response_digest(s1_digest, FP_KEY, bytes(c2[:RANDOM_SIZE]))
    return hmac.compare_digest(bytes(c2[RANDOM_SIZE:]), expected)


# ---- packet builders ---------------------------------------------------------------------------

def _header(now_ms, version):
    return (int(now_ms) & 0xFFFFFFFF).to_bytes(4, "big") + version.to_bytes(4, "big")


def make_simple_c1s1(now_ms, rand):
    """time + 4 zero bytes + 1528 random bytes."""
    return _header(now_ms, 0) + rand(PACKET_SIZE - 8)


def make_complex_c1s1(now_ms, version, schema, key, rand):
    """time + version + random blocks, with the digest for `key` placed per `schema`."""
    packet = bytearray(_header(now_ms, version) + rand(PACKET_SIZE - 8))
    offset = digest_offset(packet, schema)
    packet[offset:offset + DIGEST_SIZE] = _c1s1_digest(packet, offset, key)
    return bytes(packet)


def make_response(peer_digest, full_key, rand):
    """C2/S2 for a complex handshake: 1504 random bytes + response digest."""
    random_part = rand(RANDOM_SIZE)
    return random_part + response_digest(peer_digest, full_key, random_part)


def _check_version(byte, name):
    if byte == RTMP_VERSION:
        return
    message = f"{name} version {byte}, want {RTMP_VERSION}"
    if bytes([byte]) in (b"G", b"P", b"H", b"O", b"D", b"C"):
        message += f" (looks like an HTTP request: {bytes([byte])!r}, not RTMP)"
    elif byte == 0x16:
        message += " (looks like a TLS ClientHello: RTMPS is not supported)"
    elif byte in (6, 8, 9):
        message += " (encrypted RTMPE is not supported)"
    raise HandshakeError(message)


# ---- roles -------------------------------------------------------------------------------------

class ServerHandshake:
    """Server role: feed C0C1 -> S0S1S2 out; feed C2 -> done (extra bytes in `leftover`)."""

    def __init__(self, rand=os.urandom, now_ms=0):
        self._rand = rand
        self._now_ms = now_ms
        self._buf = bytearray()
        self._replied = False
        self.done = False
        self.complex = False
        self.leftover = b""

    def feed(self, data):
        if self.done:
            raise HandshakeError("handshake data fed after the handshake was done")
        self._buf += data
        out = b""
        if not self._replied:
            if self._buf:
                _check_version(self._buf[0], "C0")
            if len(self._buf) < 1 + PACKET_SIZE:
                return b""
            c1 = bytes(self._buf[1:1 + PACKET_SIZE])
            del self._buf[:1 + PACKET_SIZE]
            self._replied = True
            out = bytes([RTMP_VERSION]) + self._reply(c1)
        if len(self._buf) >= PACKET_SIZE:  # C2, content not checked
            self.leftover = bytes(self._buf[PACKET_SIZE:])
            self._buf = bytearray()
            self.done = True
        return out

    def _reply(self, c1):
        found = find_digest(c1, FP_KEY_TEXT) if c1[4:8] != bytes(4) else None
        if found is None:
            return make_simple_c1s1(self._now_ms, self._rand) + c1
        schema, offset = found
        self.complex = True
        s1 = make_complex_c1s1(self._now_ms, SERVER_VERSION, schema, FMS_KEY_TEXT, self._rand)
        s2 = make_response(c1[offset:offset + DIGEST_SIZE], FMS_KEY, self._rand)
        return s1 + s2


class ClientHandshake:
    """Client role: start() -> C0C1; feed S0S1S2 -> C2 out and done (extra in `leftover`).

    `server_complex` tells, once done, whether S1 carried a valid FMS digest.
    """

    def __init__(self, complex=True, rand=os.urandom, now_ms=0):
        self.complex = complex
        self._rand = rand
        self._now_ms = now_ms
        self._buf = bytearray()
        self._c1 = None
        self.done = False
        self.server_complex = False
        self.leftover = b""

    @property
    def c1_digest(self):
        """Our C1's digest (complex only), the key to check S2 with validate_s2."""
        if not self.complex or self._c1 is None:
            return None
        offset = digest_offset(self._c1, 1)
        return self._c1[offset:offset + DIGEST_SIZE]

    def start(self):
        if self.complex:
            self._c1 = make_complex_c1s1(self._now_ms, CLIENT_VERSION, 1, FP_KEY_TEXT, self._rand)
        else:
            self._c1 = make_simple_c1s1(self._now_ms, self._rand)
        return bytes([RTMP_VERSION]) + self._c1

    def feed(self, data):
        if self._c1 is None:
            raise HandshakeError("handshake data fed before start()")
        if self.done:
            raise HandshakeError("handshake data fed after the handshake was done")
        self._buf += data
        if self._buf:
            _check_version(self._buf[0], "S0")
        total = 1 + 2 * PACKET_SIZE
        if len(self._buf) < total:
            return b""
        s1 = bytes(self._buf[1:1 + PACKET_SIZE])
        self.leftover = bytes(self._buf[total:])
        self._buf = bytearray()
        self.done = True
        return self._reply(s1)

    def _reply(self, s1):
        s1_digest = validate_s1(s1) if self.complex else None
        if s1_digest is None:
            return s1
        self.server_complex = True
        return make_response(s1_digest, FP_KEY, self._rand)
