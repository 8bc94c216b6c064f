"""The server process: listeners, registries, lifecycle.

Rules: registries (sources, clients) live on the Server object and are passed to what needs
them; nothing here is a module global. `max_connections` is enforced at accept with one log
line per refused connection. Startup logs one line listing every listening endpoint.
"""
import os
import random
import socket
import time

import gevent
from gevent.server import StreamServer

from lib.names import VERSION, stream_key
from lib.server.core.hooks import Hooks
from lib.server.rtmp.connection import RtmpConnection
from lib.server.core.source import SourceRegistry
from lib.server.process.loopmonitor import LoopMonitor


class Server:
    def __init__(self, config, logger):
        self.config = config
        self.logger = logger
        self.log = logger.context("main")
        self.sources = SourceRegistry(on_create=self._on_source_created)
        self.clients = {}
        self.hooks = Hooks()
        self.server_id = f"vid-{random.randrange(16**7):07x}"
        self.service_id = f"{random.randrange(16**8):08x}"
        self.started = time.time()
        self.listeners = []
        self.connections = 0
        self.plugins = []              # objects with optional before_play/after_play/... methods
        self.config_transform = None   # workers 1..N-1: applied to every (re)loaded config
        self.internal = None           # worker 0: listener for the other workers' links
        self.loop_monitor = None       # the event loop's lag (process/loopmonitor.py), once started
        from lib.server.core import plugins
        plugins.install(self)

    # ------------------------------------------------------------ naming
    @staticmethod
    def stream_key(req, vhost_conf=None):
        vhost = vhost_conf.name if vhost_conf is not None else req.vhost
        return stream_key(vhost, req.app, req.stream)

    def stream_id(self, req):
        """The API id of the stream `req` names (hooks' stream_id), "" when it has no source."""
        source = self.sources.get(stream_key(req.vhost, req.app, req.stream))
        return source.api_id if source is not None else ""

    # ------------------------------------------------------------ extension points
    def _dispatch(self, hook, *args):
        """Call `hook(*args)` on every plugin that has it, in order; exceptions propagate
        (a Reject from before_play/before_publish refuses the client)."""
        for p in self.plugins:
            f = getattr(p, hook, None)
            if f is not None:
                f(*args)

    def before_play(self, conn, source):
        self._dispatch("before_play", conn, source)

    def before_publish(self, conn, source):
        """Plugins may refuse (raise Reject) or block (edge: wait for the origin to accept)."""
        self._dispatch("before_publish", conn, source)

    def after_play(self, conn, source):
        self._dispatch("after_play", conn, source)

    def _on_source_created(self, source):
        self._dispatch("on_source_created", source)

    def on_publish_started(self, conn, source):
        self._dispatch("on_publish_started", conn, source)

    def on_publish_stopped(self, conn, source):
        self._dispatch("on_publish_stopped", conn, source)

    # ------------------------------------------------------------ lifecycle
    def start(self):
        self.loop_monitor = LoopMonitor(self.logger.context("loop")).start()
        endpoints = []
        for host, port in self.config.listen:
            listener = self._listen(host, port)
            endpoints.append(f"rtmp://{host or '0.0.0.0'}:{listener.server_port}")
        from lib.server.api.routes import start_api
        from lib.server.http.server import start_http
        endpoints += start_http(self)
        endpoints += start_api(self)
        self.log.trace(f"srsedge/{VERSION} pid={os.getpid()} listening: {', '.join(endpoints)}")
        self._dispatch("on_server_start")
        return endpoints

    def _listen(self, host, port):
        if self.config.workers > 1 or self.config_transform is not None:
            # several worker processes share the port: the kernel spreads the connections
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            sock.bind((host or "0.0.0.0", port))
            sock.listen(1024)
            listener = StreamServer(sock, self._handle)
        else:
            listener = StreamServer((host or "0.0.0.0", port), self._handle, backlog=1024)
            listener.init_socket()
        listener.start()
        self.listeners.append(listener)
        return listener

    def start_internal(self):
        """Worker 0: a loopback port for the other workers' trusted links. Returns the port."""
        listener = StreamServer(("127.0.0.1", 0), self._handle_trusted, backlog=1024)
        listener.start()
        self.internal = listener
        self.log.trace(f"workers: internal link port 127.0.0.1:{listener.server_port}")
        return listener.server_port

    def _handle_trusted(self, sock, addr):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        RtmpConnection(self, sock, addr, trusted=True).run()

    @property
    def rtmp_ports(self):
        return [lst.server_port for lst in self.listeners]

    def _handle(self, sock, addr):
        if self.connections >= self.config.max_connections:
            self.log.warn(f"refuse {addr[0]}:{addr[1]}: max_connections {self.config.max_connections} reached")
            sock.close()
            return
        self.connections += 1
        try:
            RtmpConnection(self, sock, addr).run()
        finally:
            self.connections -= 1

    def stop_accepting(self):
        for listener in self.listeners:
            listener.close()
        if self.internal is not None:
            self.internal.close()
        for name in ("http", "api"):
            if getattr(self, name, None) is not None:
                getattr(self, name).close()

    def stop(self, grace=0.0):
        self._dispatch("on_server_stop")
        if self.loop_monitor is not None:
            self.loop_monitor.stop()
        self.stop_accepting()
        deadline = time.time() + grace
        while grace and self.clients and time.time() < deadline:
            gevent.sleep(0.1)
        if self.clients:
            self.log.trace(f"quit: closing {len(self.clients)} clients")
        for src in list(self.sources.sources.values()):
            if src.consumers:        # media received but not yet sent (mw_latency) goes first
                try:
                    src.flush_all()
                except Exception as e:  # noqa: BLE001 - quitting must go on
                    self.log.error(f"quit: flushing {src.key} failed: {e!r}")
        for conn in list(self.clients.values()):
            conn.close_reason = "server quit"
            try:
                conn.sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        gevent.sleep(0)

    # ------------------------------------------------------------ reload (SIGHUP)
    def reload_from(self, path):
        """Load `path` and apply it; a config that fails `-t` is ignored (old one keeps
        running). Connected players and publishers are never dropped."""
        from lib.config import ConfigError, load_config
        try:
            new = load_config(path)
        except ConfigError as e:
            self.log.error(f"reload ignored, config error: {e}")
            return False
        if self.config_transform is not None:
            new = self.config_transform(new)
        for name, vhost in new.vhosts.items():
            old = self.config.vhosts.get(name)
            if old is not None and old.cluster.mode != vhost.cluster.mode:
                self.log.error(f"reload ignored: vhost {name} cluster.mode {old.cluster.mode} -> "
                               f"{vhost.cluster.mode} needs a restart")
                return False
        old = self.config
        self.config = new
        self.logger.configure(new.log_tank, new.log_level, new.log_file)
        self._reload_listeners(old, new)
        for src in list(self.sources.sources.values()):
            vhost_conf = new.vhost(src.vhost)
            if vhost_conf is None:
                if src.edge is not None:
                    src.edge.stop(f"reload removed vhost {src.vhost}")
                continue
            src.apply_config(vhost_conf)
            if src.edge is not None:
                src.edge.apply_config(vhost_conf)
        self._dispatch("on_reload", old, new)
        self.log.trace(f"reload ok: {path}")
        return True

    def _reload_listeners(self, old, new):
        if set(old.listen) == set(new.listen):
            return
        keep = []
        for listener in self.listeners:
            addr = listener.address
            if any((h or "0.0.0.0", p) == addr and p for h, p in new.listen):
                keep.append(listener)
            else:
                listener.close()
                self.log.trace(f"reload: stopped listening on rtmp://{addr[0]}:{addr[1]}")
        self.listeners = keep
        have = {lst.address for lst in keep}
        for host, port in new.listen:
            if (host or "0.0.0.0", port) in have:
                continue
            try:
                self._listen(host, port)
                self.log.trace(f"reload: listening on rtmp://{host or '0.0.0.0'}:{port}")
            except OSError as e:
                self.log.error(f"reload: cannot listen on {host}:{port}: {e}")
