"""The pywsgi listeners of the HTTP server and the HTTP API, plain or TLS (SRS's `https` blocks
in http_server and http_api: the same application on a second port, with `key` and `cert`).

Rules:
- `listen(app, (host, port), log)` starts one pywsgi listener (SO_REUSEADDR, backlog 1024);
  with an `https` section it wraps it in TLS (TLS 1.2 and later, the system's default ciphers).
- A key or certificate that cannot be loaded stops the start with an error naming the
  directive and the file (`http_server.https: cannot load cert ./conf/server.crt: ...`): a
  server that silently lacks the HTTPS port it was configured for is worse than none.
- `wsgi.url_scheme` is `https` on the TLS listener, so pages and the API know which origin a
  page has (lib/server/api/cross_origin.py).
"""
import socket
import ssl

from gevent import pywsgi

from lib.errors import SrsEdgeError


class TlsConfigError(SrsEdgeError):
    """An https block whose key or certificate cannot be used."""


def tls_context(https, where):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        ctx.load_cert_chain(https.cert, https.key)
    except (OSError, ssl.SSLError) as e:
        raise TlsConfigError(f"{where}: cannot load cert {https.cert} / key {https.key}: "
                             f"{e.strerror or e}") from e
    return ctx


def listen(app, address, handler_class, error_log, https=None, where=""):
    """A started pywsgi.WSGIServer on `address`; TLS when `https` (an https section) is given."""
    kwargs = {"ssl_context": tls_context(https, where)} if https is not None else {}
    wsgi = pywsgi.WSGIServer(address, app, backlog=1024, handler_class=handler_class, log=None,
                             error_log=error_log, **kwargs)
    wsgi.init_socket()
    wsgi.socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    wsgi.start()
    return wsgi
