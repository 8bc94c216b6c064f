"""Server-level refusals, and how a client's socket ended.

Rules: raising Reject (or a subclass) while handling a client closes that client with one log
line carrying the message; it never affects other clients. A socket error ends a client in one
of three ways (`socket_end`): the peer left (a reset or broken pipe is how players often close:
a normal exit, not an error), we shut it down ourselves (kick, quit: gevent wakes the reading
greenlet with EBADF "File descriptor was closed in another greenlet"; whoever shut it down has
logged why), or a real socket error.
"""
import errno

from lib.errors import SrsEdgeError

PEER_LEFT, SHUT_BY_US, SOCKET_ERROR = "peer left", "shut by us", "socket error"


def socket_end(err):
    """Classify the OSError that ended a client's socket: PEER_LEFT, SHUT_BY_US or SOCKET_ERROR."""
    if err.errno in (errno.ECONNRESET, errno.EPIPE, errno.ECONNABORTED):
        return PEER_LEFT
    if err.errno == errno.EBADF:
        return SHUT_BY_US
    return SOCKET_ERROR


class Reject(SrsEdgeError):
    """A policy refusal (hook, duplicate publisher, edge cannot serve): close this client."""
