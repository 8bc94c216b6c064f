"""The one home of the names every layer shares: version, server name, default vhost, stream key.

Rule: nothing else defines these; the sans-IO layers and the server import them from here.
"""
VERSION = "0.1.0"
SERVER_NAME = f"srsedge/{VERSION}"
DEFAULT_VHOST = "__defaultVhost__"
DEFAULT_APP = "__defaultApp__"


def stream_key(vhost, app, stream):
    """The key of a live source: `vhost/app/stream` (vhost = the matched config vhost name)."""
    return f"{vhost}/{app}/{stream}"
