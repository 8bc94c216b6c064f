"""HTTP-FLV/TS over TLS (SRS's `http_server { https {...} }`): the fan-out writes players' bytes
with non-blocking `sendmsg` on a plain socket (lib/server/core/consumer.py), which a TLS socket
cannot take. A TLS player gets a socket pair instead: the fan-out writes one end exactly as for
a plain player, and a pump greenlet encrypts what arrives at the other end into the TLS
connection.

Rules:
- Backpressure is kept: the pump sends with `sendall` on the TLS socket (its own greenlet
  waits); meanwhile the pair's buffer fills and the player's consumer sees a full socket, so a
  slow TLS player is shed exactly like a plain one.
- The client closing the TLS connection closes the pair's far end for writing, so the player's
  end reads EOF (how FlvPlayer notices a player leaving). The player's end closing ends the
  pump after what was written is sent (`drain`, before pywsgi closes the TLS connection).
- One extra copy per byte for TLS players only; plain players are untouched.
"""
import socket

import gevent
from gevent import ssl

CHUNK = 256 * 1024
DRAIN_TIMEOUT = 5.0


class TlsPipe:
    def __init__(self, tls_sock):
        self.tls = tls_sock
        self.player_end, self.pump_end = socket.socketpair()
        self.out = gevent.spawn(self._to_client)
        self.back = gevent.spawn(self._from_client)

    def _to_client(self):
        try:
            while True:
                data = self.pump_end.recv(CHUNK)
                if not data:
                    return
                self.tls.sendall(data)
        except OSError:
            pass
        finally:
            self.back.kill(block=False)
            self._close(self.pump_end)

    def _from_client(self):
        try:
            while self.tls.recv(4096):
                pass                    # a player sends nothing after its request
        except OSError:
            pass
        try:
            self.pump_end.shutdown(socket.SHUT_WR)     # the player's end reads EOF
        except OSError:
            pass

    def drain(self):
        """The response is complete: send what is left, then let pywsgi close the connection."""
        try:
            self.player_end.shutdown(socket.SHUT_WR)
        except OSError:
            pass
        self.out.join(timeout=DRAIN_TIMEOUT)
        self.out.kill(block=False)
        self._close(self.player_end)

    @staticmethod
    def _close(sock):
        try:
            sock.close()
        except OSError:
            pass


def is_tls(sock):
    return isinstance(sock, ssl.SSLSocket)
