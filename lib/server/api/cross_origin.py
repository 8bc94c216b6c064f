"""Which web pages may use the HTTP API from a browser: CORS answers, the kick's origin check, JSONP.

Rules (this module owns them; lib/server/api/routes.py asks it per request, with the live
config, so a reload applies). No I/O here.
- A browser names the page that asks in the `Origin` header (fetch/XHR, and every DELETE).
  A page is *trusted* when its origin is
  - this server's own pages: `http://HOST:PORT`, HOST the name the request was sent to (its
    Host header), PORT the port http_server listens on (the console at /console/), and
    `https://HOST:PORT` of http_server's https port when it has one;
  - the API's own origin (the request's scheme + Host: a same-origin request);
  - listed in `http_api { allow_origin ORIGIN ...; }`.
  Another port or another name of the same host (localhost vs 127.0.0.1) is another site.
- `crossdomain on` (the default, as SRS): answers to a trusted page carry
  `Access-Control-Allow-Origin: <its origin>`; its preflight (OPTIONS) may use GET, HEAD and
  DELETE with an Authorization header. `allow_origin *` lets every other page *read*
  (`Access-Control-Allow-Origin: *`, what SRS's crossdomain does), never DELETE. Any other page
  gets no CORS header: the browser hides the answer and does not send the DELETE. Every answer
  says `Vary: Origin`. `crossdomain off`: no CORS headers at all, OPTIONS 405.
- A request that can change state (any method but GET, HEAD, OPTIONS) from a page that is not
  trusted is refused (403) whatever a preflight said: the check holds with `crossdomain off` and
  for a browser that skips the preflight. A request without Origin is not a page's cross-site
  request (curl, scripts, SRS's tools) and is left to auth. GET and HEAD never change state, and
  the only state-changing method is DELETE, which always needs a preflight across sites; a
  "simple" POST (a form, fetch no-cors) is 403/405 and changes nothing.
- JSONP (`?callback=NAME`, a plain JS name): answered only with `http_api { jsonp on; }` and auth
  off (a script tag would carry Basic credentials the browser cached for the API), and only for
  reading: `&method=` other than GET (SRS's JSONP kick) is 405. Otherwise `?callback=` is
  ignored: plain JSON, which a script tag on another site cannot read.
"""
import re

_CALLBACK = re.compile(r"^[A-Za-z_$][\w$.]{0,63}$")
ANY = "*"
SAFE_METHODS = ("GET", "HEAD", "OPTIONS")
EXPOSE_HEADERS = "Server, Content-Length, Content-Range"
ALLOW_HEADERS = ("Origin, Range, Accept-Encoding, Referer, Cache-Control, X-Proxy-Authorization, "
                 "X-Requested-With, Content-Type, Authorization")
DEFAULT_PORTS = {"http": 80, "https": 443}


def page_origin(scheme, host, port):
    """An origin as a browser writes it: the default port left out."""
    return f"{scheme}://{host}" if DEFAULT_PORTS.get(scheme) == port else f"{scheme}://{host}:{port}"


def host_name(host_header):
    """The name part of a Host header, lower-cased ("[::1]" stays bracketed); "" if none."""
    host = host_header.strip().lower()
    if host.startswith("["):
        return host[:host.find("]") + 1] if "]" in host else ""
    return host.partition(":")[0]


class CrossOrigin:
    """The policy for one request: `conf` is the http_api section, `pages_port` the port of this
    server's http_server (None when it serves no pages), `host` the request's Host header."""

    def __init__(self, conf, pages_port, host, tls_pages_port=None, scheme="http"):
        self.conf = conf
        self.trusted_origins = {o for o in conf.allow_origin if o != ANY}
        self.any_may_read = ANY in conf.allow_origin
        name = host_name(host)
        if name:
            self.trusted_origins.add(f"{scheme}://{host.strip().lower()}")
            if pages_port:
                self.trusted_origins.add(page_origin("http", name, pages_port))
            if tls_pages_port:
                self.trusted_origins.add(page_origin("https", name, tls_pages_port))

    def trusted(self, origin):
        return origin.lower().rstrip("/") in self.trusted_origins

    def may_change_state(self, method, origin):
        """False for a state-changing method asked by a page that is not trusted."""
        return method in SAFE_METHODS or not origin or self.trusted(origin)

    def cors_headers(self, origin, preflight):
        """The CORS headers of an answer to a page of `origin` (none with crossdomain off)."""
        if not self.conf.crossdomain:
            return []
        headers = [("Vary", "Origin")]
        if origin and self.trusted(origin):
            allowed, methods = origin, "GET, HEAD, DELETE, OPTIONS"
        elif self.any_may_read:
            allowed, methods = ANY, "GET, HEAD, OPTIONS"
        else:
            return headers
        headers += [("Access-Control-Allow-Origin", allowed),
                    ("Access-Control-Expose-Headers", EXPOSE_HEADERS)]
        if preflight:
            headers += [("Access-Control-Allow-Methods", methods),
                        ("Access-Control-Allow-Headers", ALLOW_HEADERS),
                        ("Access-Control-Max-Age", "600")]
        return headers

    def jsonp_callback(self, query):
        """The JSONP function name of `?callback=`, or "" when JSONP is not answered (off, auth
        on, absent, or not a plain JS name)."""
        if not self.conf.jsonp or self.conf.auth.enabled:
            return ""
        callback = query.get("callback", [""])[0]
        return callback if callback and _CALLBACK.match(callback) else ""

    @staticmethod
    def jsonp_method(query):
        """The method a JSONP request asks for with `&method=` (GET when absent)."""
        return query.get("method", ["GET"])[0].upper() or "GET"
