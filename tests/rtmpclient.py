"""A small blocking RTMP client for tests, built on our sans-IO ClientSession.

Rules: plain sockets with timeouts (no gevent), so tests can drive a real server process and see
exactly what a player receives (timestamps, status codes), or send hand-made bad bytes.
"""
import socket
import threading
import time

from lib.rtmp import session as rs
from lib.rtmp.url import discover


class RtmpTestClient:
    def __init__(self, url, timeout=10.0, connect_args=(), connect_extra=None):
        tc_url, _, stream = url.rpartition("/")
        req = discover("/".join(tc_url.split("/", 3)[:3]), "x")   # only the host: the names
                                                                  # go to the server as given
        self.stream = stream
        self.sock = socket.create_connection((req.host, req.port), timeout=timeout)
        self.session = rs.ClientSession(tc_url, tc_url.split("/", 3)[3], connect_args=connect_args,
                                        connect_extra=connect_extra)
        self.sock.sendall(self.session.start())
        self.events = []
        self.media = []                # (type_id, timestamp, payload)
        self.arrivals = []             # time.time() each media message arrived
        self.statuses = []
        self.closed = False

    def _pump_once(self, timeout=None):
        if timeout is not None:
            self.sock.settimeout(timeout)
        try:
            data = self.sock.recv(65536)
        except socket.timeout:
            return True
        if not data:
            self.closed = True
            return False
        for ev in self.session.feed(data):
            self.events.append(ev)
            if isinstance(ev, rs.Media):
                self.media.append((ev.type_id, ev.timestamp, ev.payload))
                self.arrivals.append(time.time())
            elif isinstance(ev, rs.Status):
                self.statuses.append(ev.code)
        out = self.session.data_to_send()
        if out:
            self.sock.sendall(out)
        return True

    def pump_until(self, predicate, timeout=10.0):
        deadline = time.time() + timeout
        while not predicate() and time.time() < deadline:
            try:
                if not self._pump_once(timeout=max(0.05, min(1.0, deadline - time.time()))):
                    break
            except (ConnectionResetError, BrokenPipeError):
                self.closed = True
                break
        return predicate()

    def play(self, timeout=10.0):
        self.session.play(self.stream)
        self.sock.sendall(self.session.data_to_send())
        return self.pump_until(lambda: self.session.state in ("playing", "closed"), timeout)

    def publish(self, timeout=10.0):
        self.session.publish(self.stream)
        self.sock.sendall(self.session.data_to_send())
        return self.pump_until(lambda: self.session.state in ("publishing", "closed"), timeout)

    def send_media(self, type_id, timestamp, payload):
        self.session.send_media(type_id, timestamp, payload)
        self.sock.sendall(self.session.data_to_send())

    def read_for(self, seconds):
        deadline = time.time() + seconds
        self.pump_until(lambda: time.time() >= deadline or self.closed, seconds + 1)

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


def timestamp_regressions(media):
    """Count per-type timestamp decreases in a list of (type_id, ts, payload)."""
    last = {}
    bad = 0
    for type_id, ts, _ in media:
        if type_id in (8, 9):
            if ts < last.get(type_id, -1):
                bad += 1
            last[type_id] = ts
    return bad


def longest_pause(client, after=0.0):
    """Longest wall-clock pause (s) between media messages the client received after `after`."""
    times = [t for t in client.arrivals if t >= after]
    return max((b - a for a, b in zip(times, times[1:])), default=0.0)


def read_all(clients, seconds):
    """Read every client at once for `seconds` (each in a thread, so arrival times are real)."""
    threads = [threading.Thread(target=c.read_for, args=(seconds,)) for c in clients]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
