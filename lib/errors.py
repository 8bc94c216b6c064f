"""The error base of srsedge.

Rule: every error srsedge raises on purpose derives from SrsEdgeError, so a caller can tell our
own refusals and protocol errors from bugs. Subclasses live with the code that raises them
(lib.rtmp.errors, lib.config.errors, lib.server.core.errors, lib.server.edge.upstream).
"""


class SrsEdgeError(Exception):
    """Base of every error srsedge raises on purpose."""
