"""Errors raised by the sans-IO RTMP code.

Rule: anything a peer can make us raise is a ProtocolError subclass. The server catches
ProtocolError per connection, logs one line with the message, and closes only that connection.
"""

from lib.errors import SrsEdgeError


class ProtocolError(SrsEdgeError):
    """Bad bytes or a bad sequence from a peer."""


class HandshakeError(ProtocolError):
    pass


class ChunkError(ProtocolError):
    pass


class AmfError(ProtocolError):
    pass


class CommandError(ProtocolError):
    pass
