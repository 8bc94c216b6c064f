"""A sans-IO HTTP/1.1 response reader (the edge's HTTP-FLV pull, lib/server/edge/flv_upstream.py):
bytes in, the response head once complete, then body bytes.

Rules (this module owns them):
- `feed(bytes)` returns the body bytes those bytes completed (b"" while in the head); `head`
  is None until the status line and headers are in (then a Head: status, reason, headers with
  lower-case names, the last of repeated ones kept).
- The body is framed as HTTP/1.1 says: `Transfer-Encoding: chunked` (SRS's HTTP-FLV; chunk
  extensions and trailers are read and ignored), else `Content-Length`, else until the server
  closes (ours: `Connection: close`). `finished` is True once a framed body is complete; bytes
  after it are ignored (no pipelining).
- Bounds: a head over MAX_HEAD bytes, a chunk-size line over MAX_LINE, or bytes that are not
  HTTP raise HttpError. A body is never buffered here: what arrives is returned at once.
"""

MAX_HEAD = 16384
MAX_LINE = 1024


class HttpError(ValueError):
    """Bytes that are not an HTTP/1.1 response."""


class Head:
    __slots__ = ("status", "reason", "headers")

    def __init__(self, status, reason, headers):
        self.status, self.reason, self.headers = status, reason, headers

    def __repr__(self):
        return f"Head({self.status} {self.reason})"


def parse_head(block):
    """Head from the bytes before the blank line."""
    lines = block.decode("latin-1").split("\r\n")
    version, _, rest = lines[0].partition(" ")
    code, _, reason = rest.partition(" ")
    if not version.startswith("HTTP/1.") or len(code) != 3 or not code.isdigit():
        raise HttpError(f"not an HTTP response: {lines[0][:80]!r}")
    headers = {}
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if not sep or not name or name != name.strip():
            raise HttpError(f"bad header line {line[:80]!r}")
        headers[name.lower()] = value.strip()
    return Head(int(code), reason, headers)


class ResponseReader:
    def __init__(self):
        self.head = None
        self.finished = False
        self._buf = bytearray()
        self._left = None           # bytes left of a Content-Length body or of the current chunk
        self._chunked = False
        self._phase = "head"        # head | body | size | data | crlf | trailer | done

    def feed(self, data):
        if self._phase == "head":
            self._buf += data
            end = self._buf.find(b"\r\n\r\n")
            if end < 0:
                if not b"HTTP/1.".startswith(bytes(self._buf[:7])):
                    raise HttpError("not an HTTP response")
                if len(self._buf) > MAX_HEAD:
                    raise HttpError("response head too long")
                return b""
            if end > MAX_HEAD:
                raise HttpError("response head too long")
            self.head = parse_head(bytes(self._buf[:end]))
            data = bytes(self._buf[end + 4:])
            self._buf = bytearray()
            self._start_body()
        if self._chunked:
            return self._dechunk(data)
        if self._left is None:
            return bytes(data)
        piece = bytes(data[:self._left])
        self._left -= len(piece)
        if not self._left:
            self._finish()
        return piece

    def _start_body(self):
        headers = self.head.headers
        if "chunked" in headers.get("transfer-encoding", "").lower():
            self._chunked, self._phase = True, "size"
        elif "content-length" in headers:
            length = headers["content-length"]
            if not length.isdigit():
                raise HttpError(f"bad Content-Length {length[:40]!r}")
            self._left, self._phase = int(length), "body"
            if not self._left:
                self._finish()
        else:
            self._phase = "body"

    def _finish(self):
        self.finished, self._phase = True, "done"

    def _dechunk(self, data):
        buf = self._buf
        buf += data
        out = []
        pos = 0
        while pos < len(buf) and self._phase != "done":
            if self._phase == "data":
                take = min(self._left, len(buf) - pos)
                out.append(bytes(buf[pos:pos + take]))
                pos += take
                self._left -= take
                if not self._left:
                    self._phase = "crlf"
                continue
            end = buf.find(b"\r\n", pos)
            if end < 0:
                if len(buf) - pos > MAX_LINE:
                    raise HttpError("chunk line too long")
                break
            line = bytes(buf[pos:end])
            pos = end + 2
            if self._phase == "crlf":
                if line:
                    raise HttpError("chunk not followed by CRLF")
                self._phase = "size"
            elif self._phase == "size":
                size = line.partition(b";")[0].strip()
                try:
                    self._left = int(size, 16)
                except ValueError:
                    raise HttpError(f"bad chunk size {size[:40]!r}") from None
                self._phase = "data" if self._left else "trailer"
            elif not line:                          # trailer: ends at a blank line
                self._finish()
        del buf[:pos]
        if self._phase == "done":
            buf.clear()
        return b"".join(out)
