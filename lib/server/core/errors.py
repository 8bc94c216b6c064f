"""Server-level refusals.

Rule: raising Reject (or a subclass) while handling a client closes that client with one log
line carrying the message; it never affects other clients.
"""


from lib.errors import SrsEdgeError


class Reject(SrsEdgeError):
    """A policy refusal (hook, duplicate publisher, edge cannot serve): close this client."""
