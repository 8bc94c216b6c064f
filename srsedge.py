"""srsedge entry point: `python srsedge.py [-c] FILE`, `-t` tests the config, `-v` the version.

Rules: gevent monkey-patching happens before anything else is imported. Config errors print
`FILE:LINE: message` and exit 1. Signals as SRS: SIGHUP reload, SIGTERM fast quit, SIGQUIT
graceful quit, SIGUSR1 reopen the log file.
"""
from gevent import monkey

monkey.patch_all()

import argparse  # noqa: E402
import os  # noqa: E402
import signal  # noqa: E402
import sys  # noqa: E402

import gevent  # noqa: E402
import gevent.event  # noqa: E402

from lib.config import ConfigError, load_config  # noqa: E402
from lib.names import VERSION  # noqa: E402
from lib.server.process import gctune, pidfile  # noqa: E402
from lib.server.http.listener import TlsConfigError  # noqa: E402
from lib.server.process.log import Logger  # noqa: E402

def parse_args(argv):
    p = argparse.ArgumentParser(prog="srsedge", description="SRS-compatible RTMP edge/origin server")
    p.add_argument("conf", nargs="?", help="config file (SRS format)")
    p.add_argument("-c", dest="conf_opt", metavar="FILE", help="config file (SRS format)")
    p.add_argument("-t", dest="test", action="store_true", help="test the config file and exit")
    p.add_argument("-v", "-V", dest="version", action="store_true", help="print the version and exit")
    p.add_argument("--worker", type=int, default=0, help=argparse.SUPPRESS)
    p.add_argument("--upstream-port", type=int, default=0, help=argparse.SUPPRESS)
    return p.parse_args(argv)


def daemonize():
    if os.fork() > 0:
        os._exit(0)
    os.setsid()
    if os.fork() > 0:
        os._exit(0)
    devnull = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(devnull, fd)


def install_signals(server, logger, path, done, pool=None):
    def quit_fast(name):
        server.log.trace(f"{name}: fast quit")
        server.stop()
        if pool is not None:
            pool.stop(signal.SIGTERM)
        done.set()

    def quit_graceful():
        # as SRS: stop accepting, then give clients grace_start_wait + grace_final_wait to finish
        grace = (server.config.grace_start_wait + server.config.grace_final_wait) / 1000.0
        server.log.trace(f"SIGQUIT: graceful quit, stop accepting, draining up to {grace:g}s")
        if pool is not None:
            pool.stopping = True
            pool.signal_all(signal.SIGQUIT)
        server.stop(grace=grace)
        if pool is not None:
            pool.stop(signal.SIGTERM, timeout=grace + 2)
        done.set()

    def reopen_log():
        if logger.reopen():
            server.log.trace(f"SIGUSR1: log file reopened ({logger.path})")
        else:
            server.log.trace("SIGUSR1: logging to the console, no log file to reopen")
        if pool is not None:
            pool.signal_all(signal.SIGUSR1)

    def reload():
        server.reload_from(path)
        if pool is not None:
            pool.signal_all(signal.SIGHUP)

    gevent.signal_handler(signal.SIGTERM, lambda: gevent.spawn(quit_fast, "SIGTERM"))
    gevent.signal_handler(signal.SIGINT, lambda: gevent.spawn(quit_fast, "SIGINT"))
    gevent.signal_handler(signal.SIGQUIT, lambda: gevent.spawn(quit_graceful))
    gevent.signal_handler(signal.SIGUSR1, reopen_log)
    gevent.signal_handler(signal.SIGHUP, lambda: gevent.spawn(reload))


def reader_note():
    from lib.rtmp import chunk
    from lib.server.core import source
    media = ("; media path: C (lib/server/core/_sourcec.c)" if source.IMPLEMENTATION == "c" else
             "; media path: Python (lib/server/core/_sourcec.c is not built or is turned off)")
    if chunk.IMPLEMENTATION == "c":
        from lib.server.core import receiver
        pump = (", publishers read by the C socket pump (lib/server/core/_pumpc.c)"
                if receiver.SocketPump is not None else
                ", publishers read in Python (lib/server/core/_pumpc.c is not built)")
        return "RTMP chunk reader: C accelerator (lib/rtmp/_chunkc.c)" + pump + media
    return ("RTMP chunk reader: pure Python (the C accelerator is not built: "
            "python scripts/build_accel.py, or SRSEDGE_PURE_PYTHON is set)" + media)


def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)
    if args.version:
        print(VERSION)
        return 0
    path = args.conf_opt or args.conf or "conf/srs.conf"
    try:
        config = load_config(path)
    except ConfigError as e:
        print(f"srsedge: config error: {e}", file=sys.stderr)
        return 1
    if args.test:
        for line in config.unsupported:
            print(f"srsedge: warning: {line}", file=sys.stderr)
        for warning in config.warnings:
            print(f"srsedge: warning: {warning}", file=sys.stderr)
        print(f"srsedge: {reader_note()}")
        print(f"srsedge: config file {path} test is successful")
        return 0
    if args.worker:
        return run_worker(args, config, path)
    if config.daemon:
        daemonize()
    logger = Logger(config.log_tank, config.log_level, config.log_file)
    from lib.server.core.app import Server
    from lib.server.process.workers import WorkerPool
    server = Server(config, logger)
    done = gevent.event.Event()
    pool = WorkerPool(server, os.path.abspath(path), config.workers, 0) if config.workers > 1 else None
    install_signals(server, logger, path, done, pool)   # before the pid file tells anyone we run
    try:
        pidfile.acquire(config.pid)
    except (pidfile.PidFileError, OSError) as e:
        logger.write(4, "main", str(e))
        if not logger.to_console:       # the log is a file: say it on the terminal too, once
            print(f"srsedge: {e}", file=sys.stderr)
        return 1
    for warning in config.unsupported + config.warnings:
        server.log.warn(warning)
    server.log.trace(reader_note())
    try:
        server.start()
    except OSError as e:
        server.log.error(f"cannot listen: {e}")
        pidfile.release(config.pid)
        return 1
    except TlsConfigError as e:
        server.log.error(str(e))
        if not logger.to_console:
            print(f"srsedge: {e}", file=sys.stderr)
        pidfile.release(config.pid)
        return 1
    if pool is not None:
        pool.upstream_port = server.start_internal()
        pool.start()
    gctune.tune()
    try:
        done.wait()
    finally:
        pidfile.release(config.pid)
    server.log.trace("quit")
    return 0


def run_worker(args, config, path):
    """Workers 1..N-1 (started by worker 0): an edge of worker 0 on the shared port."""
    from lib.server.process.workers import die_with_parent
    die_with_parent()
    from lib.server.core.app import Server
    from lib.server.process.workers import worker_config
    logger = Logger(config.log_tank, config.log_level, config.log_file)
    server = Server(worker_config(config, args.upstream_port), logger)
    server.config_transform = lambda cfg: worker_config(cfg, args.upstream_port)
    done = gevent.event.Event()
    install_signals(server, logger, path, done)
    try:
        server.start()
    except OSError as e:
        server.log.error(f"worker {args.worker}: cannot listen: {e}")
        return 1
    server.log.trace(f"worker {args.worker} serving, upstream 127.0.0.1:{args.upstream_port}")
    done.wait()
    return 0


if __name__ == "__main__":
    sys.exit(main())
