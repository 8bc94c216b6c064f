"""RTMP client links to other servers (origins, forward targets) over gevent sockets.

Rules:
- One greenlet owns a link: it connects (`open_link`, blocking within a timeout), reads, feeds
  the sans-IO ClientSession and writes. No other greenlet touches the socket or the session.
  To wait for "readable, or something else to do" in that one greenlet, `arm(event)` starts a
  one-shot read watcher that sets the owner's wake-up event; `read_available()` then reads what
  the kernel has without blocking. `arm(event, reader)` instead keeps the watcher on and calls
  `reader()` in the event loop's io callback for each readable event (the owner lends the
  read side while it sleeps: the reader must not block or write); when `reader` returns False
  the watcher stops and the owner is woken as with the one-shot watcher.
- Timeouts: the connect phase (TCP connect, handshake, RTMP connect, publish answer) has one
  deadline (CONNECT_TIMEOUT); every blocking read in it gets what is left. Writes have their
  own timeout, SEND_TIMEOUT (SRS_CONSTS_RTMP_TIMEOUT), whatever the connect phase left: the
  socket's timeout is SEND_TIMEOUT except during a connect-phase read.
- Every failure is a LinkError that says which origin and why (connect error/timeout, refused,
  closed, protocol error, write error).
- The SRS debug object (`debug_srs_upnode`) is sent as the optional connect argument.
"""
import os
import socket
import time

import gevent.socket
from gevent import get_hub

from lib.cluster.origins import format_origin
from lib.errors import SrsEdgeError
from lib.names import VERSION
from lib.rtmp import session as rs
from lib.rtmp.errors import ProtocolError

CONNECT_TIMEOUT = 3.0
SEND_TIMEOUT = 30.0        # SRS_CONSTS_RTMP_TIMEOUT: a write may block this long (a far side's stall)
RECV_SIZE = 262144         # an origin's merged burst in one read
READ_BUDGET = 4 << 20      # bytes read per wake-up before other greenlets get a turn


class LinkError(SrsEdgeError):
    pass


def debug_upnode_args(cid, local_ip=""):
    """SRS's connect debug object: who the edge is, for the origin's logs."""
    return {"srs_sig": "srs", "srs_server": f"srsedge/{VERSION}", "srs_version": VERSION,
            "srs_pid": float(os.getpid()), "srs_id": cid, "srs_server_ip": local_ip,
            "srs_primary": "srsedge", "srs_authors": "srsedge"}


class RtmpLink:
    """An RTMP client connection, used only by the greenlet that opened it."""

    def __init__(self, sock, session, origin):
        self.sock = sock
        self.raw = getattr(sock, "_sock", sock)     # non-blocking under gevent
        self.session = session
        self.origin = origin
        self.closed = False
        self.readable = False
        self._watcher = None
        self._event = None
        self._reader = None
        self._failure = None         # a read failure not raised yet (read_available)

    def _where(self):
        return format_origin(self.origin)

    # ------------------------------------------------------------ writing
    def flush(self):
        """Send what the session has queued (blocks this greenlet while the socket is full)."""
        data = self.session.data_to_send()
        if data:
            try:
                self.sock.sendall(data)
            except OSError as e:
                raise LinkError(f"{self._where()}: write failed: {e}") from e

    # ------------------------------------------------------------ reading, owner's wake-up
    def arm(self, event, reader=None):
        """Set `event` once the socket is readable (one shot; re-arm after reading); with
        `reader`, call it in the hub on every readable event until it returns False."""
        if self.closed:
            return
        if self._watcher is None:
            self._watcher = get_hub().loop.io(self.raw.fileno(), 1)
        self._event = event
        self._reader = reader
        if not self._watcher.active:
            self._watcher.start(self._on_readable)

    def _on_readable(self):
        reader = self._reader
        if reader is not None and reader():
            return
        if self._watcher is not None:
            self._watcher.stop()
        self.readable = True
        self._event.set()

    def read_available(self, raw=False):
        """Events from what the kernel holds now (never blocks); LinkError on close or bad
        bytes. Reads at most READ_BUDGET bytes, then leaves the rest for the next wake-up.
        `raw`: the parsed messages instead, for the caller to pass on (session.handle).
        A failure after some events were read returns those first; the next call raises it
        (what the far side sent before it went away is never dropped)."""
        self.readable = False
        if self._failure is not None:
            raise self._failure
        feed = self.session.read_messages if raw else self.session.feed
        events = []
        got = 0
        while got < READ_BUDGET:
            try:
                data = self.raw.recv(RECV_SIZE)
            except (BlockingIOError, InterruptedError):
                break
            except OSError as e:
                return self._failed(events, LinkError(f"{self._where()}: {e}"))
            if not data:
                return self._failed(events, LinkError(f"{self._where()}: closed by the server"))
            got += len(data)
            try:
                events.extend(feed(data))
            except ProtocolError as e:
                return self._failed(events, LinkError(f"{self._where()}: protocol error: {e}"))
            if len(data) < RECV_SIZE:
                return events            # a short read emptied the socket: no failing recv
        if got >= READ_BUDGET:
            self.readable = True         # more may be waiting: come back at once
        return events

    def _failed(self, events, error):
        """Raise `error` now if nothing was read, else return `events` and raise it next time."""
        if not events:
            raise error
        self._failure = error
        self.readable = True             # come back at once for the failure
        return events

    def recv_events(self, timeout):
        """Blocking read (connect phase only): events from the next read. The read gets
        `timeout`; writes keep SEND_TIMEOUT."""
        self.sock.settimeout(timeout)
        try:
            data = self.sock.recv(RECV_SIZE)
        except socket.timeout:
            raise LinkError(f"{self._where()}: no data for {timeout:g}s") from None
        except OSError as e:
            raise LinkError(f"{self._where()}: {e}") from e
        finally:
            self.sock.settimeout(SEND_TIMEOUT)
        if not data:
            raise LinkError(f"{self._where()}: closed by the server")
        try:
            events = self.session.feed(data)
        except ProtocolError as e:
            raise LinkError(f"{self._where()}: protocol error: {e}") from e
        self.flush()
        return events

    def wait_state(self, states, timeout):
        """Connect phase: pump until the session reaches one of `states`; returns the events."""
        deadline = time.monotonic() + timeout
        seen = []
        while self.session.state not in states:
            left = deadline - time.monotonic()
            if left <= 0:
                raise LinkError(f"{self._where()}: timeout in state {self.session.state}")
            seen.extend(self.recv_events(left))
            if self.session.state == "closed":
                break
        return seen

    def close(self):
        if self.closed:
            return
        self.closed = True
        if self._watcher is not None:
            self._watcher.stop()
            self._watcher.close()
            self._watcher = None
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
        sock.sendall(session.start())
        events = link.wait_state(("connected", "closed"), timeout)
    except (LinkError, OSError) as e:
        link.close()
        raise LinkError(str(e)) from e
    except BaseException:              # the owner was killed meanwhile (a stop): no socket left
        link.close()
        raise
    if session.state != "connected":
        link.close()
        codes = [e.code for e in events if isinstance(e, rs.Status)]
        raise LinkError(f"{host}:{port}: connect refused {codes}")
    return link


def open_stream(origin, tc_url, app, stream, kind, connect_args=(), connect_extra=None,
                timeout=CONNECT_TIMEOUT):
    """open_link, then play or publish `stream`. For publish, waits until the server accepted
    (LinkError `publish refused [codes]` otherwise); for play, returns once the command is sent
    (the origin answers with media or a status that the owner reads)."""
    link = open_link(origin, tc_url, app, connect_args, connect_extra, timeout)
    try:
        if kind == "play":
            link.session.play(stream)
            link.flush()
            return link
        link.session.publish(stream)
        link.flush()
        events = link.wait_state(("publishing", "closed"), timeout + 2.0)
    except (LinkError, OSError) as e:
        link.close()
        raise LinkError(f"{format_origin(origin)}: {e}") from e
    except BaseException:
        link.close()
        raise
    if link.session.state != "publishing":
        link.close()
        codes = [e.code for e in events if isinstance(e, rs.Status)]
        raise LinkError(f"{format_origin(origin)}: publish refused {codes}")
    return link
