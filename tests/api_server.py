"""Test launcher: `python tests/api_server.py CONF [--sample-interval S]`.

Runs a server the way srsedge.py does (monkey-patch first, config, logger, Server.start) and
then starts the HTTP API with `start_api` (a no-op once Server.start does it itself). The
sample interval of the API's kbps sampler can be lowered so tests see rates quickly.
SIGTERM/SIGINT stop it; SIGUSR2 blocks its event loop for 300 ms (a planted stall).
"""
from gevent import monkey

monkey.patch_all()

import argparse  # noqa: E402
import os  # noqa: E402
import signal  # noqa: E402
import sys  # noqa: E402

import gevent  # noqa: E402
import gevent.event  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from lib.config import load_config  # noqa: E402
from lib.server.api import routes as api  # noqa: E402
from lib.server.core.app import Server  # noqa: E402
from lib.server.process.log import Logger  # noqa: E402


def main():
    p = argparse.ArgumentParser()
    p.add_argument("conf")
    p.add_argument("--sample-interval", type=float, default=api.SAMPLE_INTERVAL)
    args = p.parse_args()
    api.SAMPLE_INTERVAL = args.sample_interval
    config = load_config(args.conf)
    server = Server(config, Logger(config.log_tank, config.log_level, config.log_file))
    endpoints = server.start() + api.start_api(server)
    server.log.trace(f"test launcher: {', '.join(endpoints)}")
    done = gevent.event.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        gevent.signal_handler(sig, done.set)
    # test-only: SIGUSR2 blocks the event loop for 300 ms (tests/test_loop_lag.py)
    gevent.signal_handler(signal.SIGUSR2, monkey.get_original("time", "sleep"), 0.3)
    done.wait()
    server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
