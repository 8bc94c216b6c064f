"""The Client: what every connection that publishes or plays offers the rest of the server.

Rules:
- RTMP connections (lib/server/rtmp/connection.py) and HTTP-FLV players (lib/server/http/flv.py)
  both derive from ClientBase and so have every attribute below from the start; plugins, hooks
  and the API read these and nothing else (no getattr with defaults, no attributes added from
  outside).
- Plugins keep their per-client state in `plugin_state` under their own key.
- `send_bytes` counts every byte sent to the client (control replies and media).
- Hooks are paired: `owe(action)` records that an accepted hook needs its closing twin
  (on_publish -> on_unpublish, on_play -> on_stop, on_connect -> on_close) and `settle(action)`
  sends it once. A client's teardown settles whatever is still owed.
- A hook's `stream_id` is the stream's API id, remembered from the last hook that found the
  source: on_unpublish/on_stop name the id of their opening twin even when the source is gone
  by then (SRS's statistics stream outlives the publisher).
"""
import time

from lib.server.core.hooks import HookContext

CLOSING_HOOK = {"on_connect": "on_close", "on_publish": "on_unpublish", "on_play": "on_stop"}


class ClientBase:
    kind = "rtmp"                      # the consumer kind: "rtmp" or "flv"

    def __init__(self, server, sock, addr):
        self.server = server
        self.sock = sock
        self.ip = addr[0] if isinstance(addr, tuple) else str(addr)
        self.port = addr[1] if isinstance(addr, tuple) else 0
        self.log = server.logger.context()
        self.cid = self.log.cid
        self.created = time.time()
        self.req = None                # lib.rtmp.url.Request once the stream is known
        self.vhost_conf = None
        self.role = "unknown"          # then "publish" or "play"
        self.source = None
        self.consumer = None
        self.bytes_in = 0
        self.bytes_sent_direct = 0     # bytes written to the socket outside the consumer
        self.bytes_sent_done = 0       # bytes of consumers that are gone
        self.page_url = ""
        self.connect_object = {}
        self.connect_args = ()
        self.close_reason = "client closed"
        self.plugin_state = {}
        self._owed = {}                # closing hook action -> urls
        self._stream_id = ""           # the API id of the stream, once a hook has found it

    @property
    def send_bytes(self):
        live = self.consumer.bytes_out if self.consumer is not None else 0
        return self.bytes_sent_direct + self.bytes_sent_done + live

    def drop_consumer(self):
        """Detach the consumer's byte count into the client's total; returns the consumer."""
        consumer, self.consumer = self.consumer, None
        if consumer is not None:
            self.bytes_sent_done += consumer.bytes_out
        return consumer

    # ------------------------------------------------------------ hooks
    def hooks_conf(self):
        return self.vhost_conf.http_hooks

    def hook_context(self):
        req = self.req
        return HookContext(
            client_id=self.cid, ip=self.ip, vhost=req.vhost, app=req.app,
            stream=req.stream or "", param=req.param or "", tc_url=req.tc_url,
            page_url=self.page_url or "", server_id=self.server.server_id,
            service_id=self.server.service_id, stream_id=self._hook_stream_id(req),
            send_bytes=self.send_bytes, recv_bytes=self.bytes_in,
            timeout=self.vhost_conf.http_hooks.timeout)

    def _hook_stream_id(self, req):
        self._stream_id = self.server.stream_id(req) or self._stream_id
        return self._stream_id

    def call_hook(self, action):
        """Call `action`'s hooks (if configured). Returns (ok, reason); unless refused, the
        closing twin, if configured, is owed (as SRS: on_close follows every accepted
        connection whether or not on_connect is configured)."""
        hooks = self.hooks_conf()
        urls = getattr(hooks, action) if hooks.enabled else []
        ok, reason = True, ""
        if urls:
            ok, reason = self.server.hooks.call(action, urls, self.hook_context())
        closing = CLOSING_HOOK.get(action)
        if ok and closing is not None and hooks.enabled and getattr(hooks, closing):
            self._owed[closing] = getattr(hooks, closing)
        return ok, reason

    def settle(self, action):
        """Send the closing hook `action` if an accepted hook owes it (once)."""
        urls = self._owed.pop(action, None)
        if urls:
            ok, reason = self.server.hooks.call(action, urls, self.hook_context())
            if not ok:
                self.log.warn(f"{action} failed (ignored): {reason}")

    def settle_all(self):
        for action in ("on_unpublish", "on_stop", "on_close"):
            self.settle(action)

    def kick(self, reason, status=None):
        raise NotImplementedError
