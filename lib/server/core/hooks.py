"""SRS HTTP callbacks (`vhost.http_hooks`): POST a JSON event to the configured URLs.

Rules (this module owns them):
- Bodies use SRS's field names exactly (see `FIELDS`). Inputs come in a plain `HookContext`, never
  server objects. `stream_id` is sent only when known (SRS omits it when the stream has no stats).
- `Hooks.call(action, urls, ctx)` POSTs to each URL in order. A URL accepts only with HTTP 200 or
  201 and a body that is the JSON number `0` or a JSON object whose integer `"code"` is 0. This is
  SRS 7's SrsHttpHooks::do_post exactly (it accepts SRS_CONSTS_HTTP_OK and _Created), except
  that SRS compares the bare body to "0" exactly and we also accept surrounding whitespace (`0\\n`).
  Anything else rejects: other status (redirects are not followed), empty body, `1`, `{"code":1}`,
  garbage, connect refused, timeout.
- For `REJECTING_ACTIONS` (on_connect, on_publish, on_play) the first rejection stops the loop and
  rejects the client. The other actions are notifications: every URL is called and failures are
  only reported; the caller ignores the verdict but logs the reason.
- Bounded time: the timeout (`ctx.timeout`, from the srsedge directive `vhost.http_hooks.timeout`;
  else `Hooks.timeout`; default 30 s = SRS's fixed SRS_HTTP_CLIENT_TIMEOUT) bounds connect and
  every socket read; in the server process (sockets monkey-patched by gevent) a `gevent.Timeout`
  also caps each URL's whole request at the timeout. Proxy environment variables are ignored (`trust_env = False`).
- This module never logs: it returns `(ok, reason)`. Reasons name the action and the URL, with
  token-like query values replaced by `***` (lib.redact `redact`). Bodies sent to the hook keep the real
  values: token auth is what hooks are for.
- It imports no other lib.server module.
"""
import json
from dataclasses import dataclass

import gevent
import requests
import urllib3
from requests.adapters import HTTPAdapter

from lib.names import DEFAULT_VHOST, stream_url  # noqa: E402,F401 (stream_url: re-exported)
from lib.redact import redact  # noqa: F401 (re-exported: the one redaction, lib/redact.py)
DEFAULT_TIMEOUT = 30.0     # seconds: SRS's SRS_HTTP_CLIENT_TIMEOUT

ACTIONS = ("on_connect", "on_close", "on_publish", "on_unpublish", "on_play", "on_stop")
REJECTING_ACTIONS = frozenset({"on_connect", "on_publish", "on_play"})

_STREAM_FIELDS = ("server_id", "service_id", "action", "client_id", "ip", "vhost", "app",
                  "tcUrl", "stream", "param", "stream_url", "stream_id")
# JSON fields per action, in the order of SRS 6/7 (on_connect also carries stream/param there).
FIELDS = {
    "on_connect": ("server_id", "service_id", "action", "client_id", "ip", "vhost", "app",
                   "stream", "param", "tcUrl", "pageUrl"),
    "on_close": ("server_id", "service_id", "action", "client_id", "ip", "vhost", "app",
                 "send_bytes", "recv_bytes"),
    "on_publish": _STREAM_FIELDS,
    "on_unpublish": _STREAM_FIELDS,
    "on_play": ("server_id", "service_id", "action", "client_id", "ip", "vhost", "app",
                "stream", "tcUrl", "param", "pageUrl", "stream_url", "stream_id"),
    "on_stop": _STREAM_FIELDS,
    "on_dvr": ("server_id", "service_id", "action", "client_id", "ip", "vhost", "app", "tcUrl",
               "stream", "param", "cwd", "file", "stream_url", "stream_id"),
}

_MAX_BODY_SHOWN = 64
_MAX_ERROR_SHOWN = 200


@dataclass
class HookContext:
    """What an event is about, with SRS's meaning for each field."""
    client_id: str = ""
    ip: str = ""
    vhost: str = DEFAULT_VHOST
    app: str = ""
    stream: str = ""
    param: str = ""        # query of the stream/tcUrl, e.g. "?token=xxx"
    tc_url: str = ""
    page_url: str = ""
    server_id: str = ""
    service_id: str = ""
    stream_id: str = ""    # empty: not sent
    send_bytes: int = 0
    recv_bytes: int = 0
    cwd: str = ""          # on_dvr: the server's working directory
    file: str = ""         # on_dvr: the file written, as dvr_path made it
    timeout: float = None  # seconds (vhost.http_hooks.timeout); None: Hooks.timeout


def build_body(action, ctx):
    """The JSON object (a dict) SRS would POST for `action` about `ctx`."""
    values = {
        "server_id": ctx.server_id, "service_id": ctx.service_id, "action": action,
        "client_id": ctx.client_id, "ip": ctx.ip, "vhost": ctx.vhost, "app": ctx.app,
        "stream": ctx.stream, "param": ctx.param, "tcUrl": ctx.tc_url, "pageUrl": ctx.page_url,
        "stream_url": stream_url(ctx.vhost, ctx.app, ctx.stream), "stream_id": ctx.stream_id,
        "send_bytes": ctx.send_bytes, "recv_bytes": ctx.recv_bytes, "cwd": ctx.cwd,
        "file": ctx.file,
    }
    body = {name: values[name] for name in FIELDS[action]}
    if not ctx.stream_id:
        body.pop("stream_id", None)
    return body


def check_response(status, body):
    """None if an HTTP answer accepts, else why not (without the action/URL prefix)."""
    if status not in (200, 201):
        return f"HTTP {status}"
    text = body.decode("utf-8", "replace").strip()
    if not text:
        return "empty response"
    try:
        value = json.loads(text)
    except ValueError:
        return f"not JSON: {_shown(text)}"
    if isinstance(value, dict):
        code = value.get("code")
        if type(code) is not int:
            return f"no integer code in {_shown(text)}"
        return None if code == 0 else f"code {code}"
    if text == "0":
        return None
    if type(value) is int:
        return f"code {value}"
    return f"bad response {_shown(text)}"


def _shown(text, limit=_MAX_BODY_SHOWN):
    text = redact(text)
    if len(text) > limit:
        text = text[:limit] + "..."
    return repr(text)


def _caused_by(exc, types):
    """True if a requests error wraps (at any depth) an exception of one of `types`."""
    seen = set()
    todo = [exc]
    while todo:
        e = todo.pop()
        if e is None or id(e) in seen:
            continue
        seen.add(id(e))
        if isinstance(e, types):
            return True
        if isinstance(e, BaseException):
            todo += [e.__cause__, e.__context__, getattr(e, "reason", None), *e.args]
    return False


class Hooks:
    """Calls hook URLs with one reused `requests.Session`; `timeout` in seconds (see header)."""

    def __init__(self, timeout=DEFAULT_TIMEOUT):
        self.timeout = timeout
        self.session = requests.Session()
        self.session.trust_env = False
        adapter = HTTPAdapter(pool_maxsize=64)
        self.session.mount("http://", adapter)
        self.session.mount("https://", adapter)

    def close(self):
        self.session.close()

    def call(self, action, urls, ctx):
        """POST `action`'s body for `ctx` to each URL; returns (ok, reason), reason "" if ok."""
        if action not in FIELDS:
            raise ValueError(f"unknown hook action {action!r}")
        body = build_body(action, ctx)
        timeout = ctx.timeout or self.timeout
        reasons = []
        for url in urls:
            why = self.post(url, body, timeout)
            if why is None:
                continue
            reasons.append(f"{action} {redact(url)}: {why}")
            if action in REJECTING_ACTIONS:
                break
        return not reasons, "; ".join(reasons)

    def post(self, url, body, timeout=None):
        """POST one JSON body to one URL; None if accepted, else why not."""
        timeout = timeout or self.timeout
        limit = f"{timeout:g}s"
        timer = gevent.Timeout(timeout)
        timer.start()
        try:
            resp = self.session.post(url, json=body, timeout=(timeout, timeout),
                                     allow_redirects=False)
            return check_response(resp.status_code, resp.content)
        except gevent.Timeout as e:
            if e is not timer:
                raise
            return f"timeout after {limit}"
        except requests.exceptions.ConnectTimeout:
            return f"connect timeout after {limit}"
        except requests.exceptions.Timeout:
            return f"timeout after {limit}"
        except requests.exceptions.ConnectionError as e:
            # requests reports a timeout while reading the body as a ConnectionError.
            if _caused_by(e, (urllib3.exceptions.ReadTimeoutError, TimeoutError)):
                return f"timeout after {limit}"
            if _caused_by(e, ConnectionRefusedError):
                return "connect refused"
            return f"connect error: {_shown(str(e), _MAX_ERROR_SHOWN)}"
        except requests.exceptions.RequestException as e:
            return f"{type(e).__name__}: {_shown(str(e), _MAX_ERROR_SHOWN)}"
        finally:
            timer.close()
