"""The one place that relies on gevent.pywsgi internals (for responses written to the socket).

HTTP-FLV answers with a stream that the fan-out writes straight to the socket (the same shared
bytes and merged writes as RTMP players), which WSGI has no way to express. pywsgi never gives
the application its socket, so this module reaches into its WSGIHandler, in exactly these
places (checked by `check()` at import and by tests/test_pywsgi_bridge.py against a real
pywsgi server, so a gevent release that changes them fails loudly, not silently):

- `handler.socket`: the connection; `expose()` (called from our handler's get_environ) puts
  it and the handler into the environ.
- `handler.headers_sent = True`: process_result() then writes no head of its own for the
  empty result we return.
- `handler.close_connection = True`: handle() closes the connection after this request
  instead of reading another one from it (our bytes went out unframed).

Anything else uses plain WSGI.
"""
from gevent import pywsgi

from lib.server.http import tls_pipe

_SOCKET = "srsedge.socket"
_HANDLER = "srsedge.handler"
_PIPE = "srsedge.tls_pipe"


def check():
    """Fail at import if pywsgi's handler lost what we rely on."""
    handler = pywsgi.WSGIHandler
    for name in ("headers_sent", "close_connection", "get_environ", "process_result"):
        if not hasattr(handler, name):
            raise ImportError(f"gevent.pywsgi.WSGIHandler has no {name!r}: "
                              "lib/server/http/pywsgi_bridge.py needs updating")


def expose(handler, environ):
    """Our handler's get_environ: make the socket and handler reachable from the app."""
    environ[_SOCKET] = handler.socket
    environ[_HANDLER] = handler


def raw_socket(environ):
    """The connection's socket for a response the app writes itself; on a TLS connection the
    plain end of a TlsPipe (lib/server/http/tls_pipe.py), made once per request."""
    sock = environ[_SOCKET]
    if not tls_pipe.is_tls(sock):
        return sock
    pipe = environ.get(_PIPE)
    if pipe is None:
        pipe = environ[_PIPE] = tls_pipe.TlsPipe(sock)
    return pipe.player_end


def client_address(environ):
    return environ[_HANDLER].client_address


def release_socket(environ):
    """The app will not write the response itself after all (pywsgi answers an error): a TLS
    pipe made for it is taken down."""
    pipe = environ.pop(_PIPE, None)
    if pipe is not None:
        pipe.drain()


def close_after(environ):
    """Close the connection after this response (no keep-alive)."""
    handler = environ.get(_HANDLER)
    if handler is not None:
        handler.close_connection = True


def written_by_app(environ, start_response, status, headers):
    """The app wrote the whole response on raw_socket(): record the status for pywsgi, which
    must write nothing more and close the connection. Returns the WSGI result."""
    start_response(status, headers)
    pipe = environ.get(_PIPE)
    if pipe is not None:
        pipe.drain()                    # TLS: what the app wrote is sent before pywsgi closes
    handler = environ[_HANDLER]
    handler.headers_sent = True
    handler.close_connection = True
    return []


check()
