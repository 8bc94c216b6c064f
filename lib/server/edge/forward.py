"""`forward { enabled on; destination host:port ...; }`: push every published stream onward.

Rules: on an origin (not an edge) each publish starts one Pusher per destination, publishing
the same app/stream (vhost kept as SRS does, in the tcUrl) and reconnecting with backoff until
the publisher leaves. A destination that is down never affects the publisher or players.
"""
from lib.rtmp.url import build_tc_url, stream_with_param
from lib.server.edge.push import Pusher


def forward_names(req, origin):
    tc_url = build_tc_url("rtmp", origin[0], req.vhost, req.app, origin[1])
    return tc_url, req.app, stream_with_param(req.stream, req.param, vhost_to_strip=True)


class ForwardPlugin:
    def __init__(self, server):
        self.server = server

    def on_publish_started(self, conn, source):
        vhost_conf = conn.vhost_conf
        fwd = vhost_conf.forward
        if vhost_conf.is_edge or not fwd.enabled or not fwd.destination:
            return
        req = conn.req
        pushers = []
        for dest in fwd.destination:
            p = Pusher(source, [dest], lambda origin, req=req: forward_names(req, origin), conn.log,
                       queue_ms=int(vhost_conf.play.queue_length * 1000), what="forward")
            source.sinks.append(p)
            p.start()
            pushers.append(p)
        conn.plugin_state["forward"] = pushers

    def on_publish_stopped(self, conn, source):
        for p in conn.plugin_state.pop("forward", ()):
            p.stop()
            if p in source.sinks:
                source.sinks.remove(p)
