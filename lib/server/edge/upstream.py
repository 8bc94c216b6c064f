"""RTMP client links to other servers (origins, forward destinations), over gevent sockets.

Rules:
- `Upstreams` chooses origins stickily: it stays on the origin that works and moves to the next
  only on failure; a failed origin is retried after a capped exponential backoff, never a fixed
  sleep, and a success resets its backoff.
- `RtmpLink` = one TCP connection + one sans-IO ClientSession. `open_link` connects, handshakes
  and waits for the server's `connect` answer within a timeout; every failure is a LinkError
  that says which origin and why.
- The SRS debug object (`debug_srs_upnode`) is sent as the optional connect argument.
"""
import os
import socket
import time

import gevent
import gevent.socket

from lib.errors import SrsEdgeError
from lib.names import VERSION
from lib.rtmp import session as rs
from lib.rtmp.errors import ProtocolError

CONNECT_TIMEOUT = 3.0
RECV_SIZE = 262144         # an origin's merged burst in one read
BACKOFF_FIRST = 0.5
BACKOFF_CAP = 8.0


class LinkError(SrsEdgeError):
    pass


class Upstreams:
    """Sticky origin selection with per-origin capped exponential backoff."""

    def __init__(self, origins, clock=time.monotonic):
        if not origins:
            raise ValueError("no origin")
        self.origins = list(origins)
        self.index = 0
        self.clock = clock
        self.backoff = {o: 0.0 for o in self.origins}
        self.retry_at = {o: 0.0 for o in self.origins}
        self.failovers = 0

    @property
    def current(self):
        return self.origins[self.index]

    def update(self, origins):
        """A reload changed the list: keep the current origin if it is still listed."""
        cur = self.current
        self.origins = list(origins)
        for o in self.origins:
            self.backoff.setdefault(o, 0.0)
            self.retry_at.setdefault(o, 0.0)
        self.index = self.origins.index(cur) if cur in self.origins else 0

    def choose(self):
        """(origin, seconds to wait before trying it): the current one if it may be tried,
        else the next one in order that may, else the one whose backoff ends first."""
        now = self.clock()
        n = len(self.origins)
        for step in range(n):
            o = self.origins[(self.index + step) % n]
            if self.retry_at[o] <= now:
                if step:
                    self.index = (self.index + step) % n
                return o, 0.0
        soonest = min(self.origins, key=lambda o: self.retry_at[o])
        self.index = self.origins.index(soonest)
        return soonest, max(0.0, self.retry_at[soonest] - now)

    def failed(self, origin):
        b = self.backoff.get(origin, 0.0)
        b = BACKOFF_FIRST if b == 0 else min(BACKOFF_CAP, b * 2)
        self.backoff[origin] = b
        self.retry_at[origin] = self.clock() + b
        if len(self.origins) > 1 and origin == self.current:
            self.index = (self.index + 1) % len(self.origins)
            self.failovers += 1

    def succeeded(self, origin):
        self.backoff[origin] = 0.0
        self.retry_at[origin] = 0.0


def debug_upnode_args(cid, local_ip=""):
    """SRS's connect debug object: who the edge is, for the origin's logs."""
    return {"srs_sig": "srs", "srs_server": f"srsedge/{VERSION}", "srs_version": VERSION,
            "srs_pid": float(os.getpid()), "srs_id": cid, "srs_server_ip": local_ip,
            "srs_primary": "srsedge", "srs_authors": "srsedge"}


def format_origin(origin):
    return f"{origin[0]}:{origin[1]}"


class RtmpLink:
    """An RTMP client connection driven in the calling greenlet."""

    def __init__(self, sock, session, origin):
        self.sock = sock
        self.session = session
        self.origin = origin
        self.closed = False

    def send(self, data):
        if data:
            self.sock.sendall(data)

    def flush(self):
        self.send(self.session.data_to_send())

    def recv_events(self, timeout):
        """Events from the next read; LinkError on close, timeout or protocol error."""
        self.sock.settimeout(timeout)
        try:
            data = self.sock.recv(RECV_SIZE)
        except socket.timeout:
            raise LinkError(f"{format_origin(self.origin)}: no data for {timeout:g}s") from None
        except OSError as e:
            raise LinkError(f"{format_origin(self.origin)}: {e}") from e
        if not data:
            raise LinkError(f"{format_origin(self.origin)}: closed by the server")
        try:
            events = self.session.feed(data)
        except ProtocolError as e:
            raise LinkError(f"{format_origin(self.origin)}: protocol error: {e}") from e
        self.flush()
        return events

    def wait_state(self, states, timeout):
        """Pump until the session reaches one of `states`; returns the events seen."""
        deadline = time.monotonic() + timeout
        seen = []
        while self.session.state not in states:
            left = deadline - time.monotonic()
            if left <= 0:
                raise LinkError(f"{format_origin(self.origin)}: timeout in state {self.session.state}")
            seen.extend(self.recv_events(left))
            if self.session.state == "closed":
                break
        return seen

    def close(self):
        if not self.closed:
            self.closed = True
            try:
                self.sock.close()
            except OSError:
                pass


def open_link(origin, tc_url, app, connect_args=(), connect_extra=None, timeout=CONNECT_TIMEOUT):
    """TCP connect + handshake + RTMP connect. Returns an RtmpLink in state `connected`."""
    host, port = origin
    try:
        sock = gevent.socket.create_connection((host, port), timeout=timeout)
    except OSError as e:
        raise LinkError(f"{host}:{port}: connect failed: {e}") from e
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    session = rs.ClientSession(tc_url, app, connect_args=connect_args, connect_extra=connect_extra,
                               now_ms=int(time.time() * 1000) & 0xFFFFFFFF)
    link = RtmpLink(sock, session, origin)
    try:
        link.send(session.start())
        events = link.wait_state(("connected", "closed"), timeout)
    except (LinkError, OSError) as e:
        link.close()
        raise LinkError(str(e)) from e
    if session.state != "connected":
        link.close()
        codes = [e.code for e in events if isinstance(e, rs.Status)]
        raise LinkError(f"{host}:{port}: connect refused {codes}")
    return link
