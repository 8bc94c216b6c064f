"""An origin cluster as network-namespace hosts (issue 21): Redis, origins, edges, encoders and
players each in its own namespace (tests/netns.py), and a sampler that watches who publishes
what from every origin's API and from Redis.

Layout (10.213.0.0/16, only inside the namespaces):
    data  br1 10.213.1.0/24: origins .10.., edges .20.., leaf edges .30.., pub .100, play .101,
                             probe .102
    store br9 10.213.9.0/24: redis .5, edges .9.2x, probe .9.102; origins reach it through their
                             own eth1 (no address there: a route with their data address as
                             source), so `link_down(origin, "eth1")` cuts that origin off Redis
                             and nothing else, and the address it advertises stays its data one.

Rules:
- The test process never joins a namespace; `NsWorker` runs calls (HTTP API, Redis) on a
  thread that did setns(2) into the probe host, so every socket it opens lives there.
- `Sampler` polls every origin's /api/v1/streams and Redis every 100 ms on its own worker and
  keeps every sample; `duplicates()` lists the samples where two origins published one stream.
- Everything started is kept by pid in the Lab and killed by `Lab.close()`.
"""
import ctypes
import json
import os
import queue
import subprocess
import threading
import time

import requests
import redis

from tests.netns import PYTHON, Lab, NsServer

REDIS_IP = "10.213.9.5"
REDIS_URL = f"redis://{REDIS_IP}:6379/0"
KEY_PREFIX = "srsedge:stream:__defaultVhost__/"
CLONE_NEWNET = 0x40000000
_libc = ctypes.CDLL(None, use_errno=True)


def origin_ip(i):
    return f"10.213.1.{10 + i}"


def edge_ip(i):
    return f"10.213.1.{20 + i}"


def leaf_ip(i):
    return f"10.213.1.{30 + i}"


class NsWorker:
    """A thread inside a namespace running the calls it is given, one at a time."""

    def __init__(self, lab, host):
        self.path = f"/var/run/netns/{lab.ns(host)}"
        self.calls = queue.Queue()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()
        self.call(lambda: None)             # raises here if setns failed

    def _run(self):
        error = None
        fd = os.open(self.path, os.O_RDONLY)
        try:
            if _libc.setns(fd, CLONE_NEWNET) != 0:
                error = OSError(ctypes.get_errno(), f"setns {self.path}")
        finally:
            os.close(fd)
        while True:
            item = self.calls.get()
            if item is None:
                return
            fn, box, done = item
            try:
                if error is not None:
                    raise error
                box.append((True, fn()))
            except Exception as e:  # noqa: BLE001 - handed back to the caller
                box.append((False, e))
            done.set()

    def call(self, fn, timeout=15.0):
        box, done = [], threading.Event()
        self.calls.put((fn, box, done))
        if not done.wait(timeout):
            raise TimeoutError("namespace call did not return")
        ok, value = box[0]
        if not ok:
            raise value
        return value

    def close(self):
        self.calls.put(None)


ORIGIN_CONF = f"""listen 1935;
srs_log_tank console;
http_api {{ enabled on; listen 0.0.0.0:1985; }}
vhost __defaultVhost__ {{
    cluster {{ directory {REDIS_URL}; directory_ttl TTL; }}
}}
"""
EDGE_CONF = f"""listen 1935;
srs_log_tank console;
http_api {{ enabled on; listen 0.0.0.0:1985; }}
vhost __defaultVhost__ {{
    cluster {{ mode remote; directory {REDIS_URL}; directory_ttl TTL; origin_data_timeout 2;
              edge_idle_timeout 2; }}
}}
"""
LEAF_CONF = """listen 1935;
srs_log_tank console;
http_api { enabled on; listen 0.0.0.0:1985; }
vhost __defaultVhost__ {
    cluster { mode remote; origin ORIGINS; origin_data_timeout 2; edge_idle_timeout 2; }
}
"""


class ClusterLab:
    """Redis, `origins` origins and `edges` directory edges (and `leaves` leaf edges pulling
    from the edges by static lists), an encoders' host and a players' host."""

    def __init__(self, workdir, origins=3, edges=2, leaves=0, ttl=3):
        self.lab = Lab()
        self.dir = workdir
        self.ttl = ttl
        self.procs = []
        try:
            self._build(origins, edges, leaves)
        except BaseException:
            self.close()
            raise

    def _build(self, n_origins, n_edges, n_leaves):
        lab = self.lab
        lab.add_host("redis", ("br9", f"{REDIS_IP}/24"))
        lab.exec("redis", "ip", "route", "add", "10.213.1.0/24", "dev", "eth0")
        for i in range(n_origins):
            host = f"o{i}"
            lab.add_host(host, ("br1", f"{origin_ip(i)}/24"), ("br9", f"10.213.9.{10 + i}/24"))
            self.store_route(host)
        for i in range(n_edges):
            lab.add_host(f"e{i}", ("br1", f"{edge_ip(i)}/24"), ("br9", f"10.213.9.{20 + i}/24"))
        for i in range(n_leaves):
            lab.add_host(f"l{i}", ("br1", f"{leaf_ip(i)}/24"))
        lab.add_host("pub", ("br1", "10.213.1.100/24"))
        lab.add_host("play", ("br1", "10.213.1.101/24"))
        lab.add_host("probe", ("br1", "10.213.1.102/24"), ("br9", "10.213.9.102/24"))
        self.start_redis()
        conf = lambda text: text.replace("TTL", str(self.ttl))   # noqa: E731
        self.origins = [NsServer(lab, f"o{i}", conf(ORIGIN_CONF), self.dir)
                        for i in range(n_origins)]
        self.edges = [NsServer(lab, f"e{i}", conf(EDGE_CONF), self.dir) for i in range(n_edges)]
        self.leaves = []
        for i in range(n_leaves):
            mids = [edge_ip(i % n_edges), edge_ip((i + 1) % n_edges)]
            text = LEAF_CONF.replace("ORIGINS", " ".join(f"{m}:1935" for m in mids))
            self.leaves.append(NsServer(lab, f"l{i}", text, self.dir))
        servers = self.origins + self.edges + self.leaves
        for s in servers:
            s.spawn()
        for s in servers:
            s.wait_ready(20)
        self.probe = NsWorker(lab, "probe")
        self.redis = redis.Redis(host=REDIS_IP, port=6379, decode_responses=True,
                                 socket_timeout=1, socket_connect_timeout=1)
        self.http = requests.Session()
        self.wait(lambda: len(self.members()) == n_origins, 15, "every origin registered")

    def store_route(self, host):
        """The origin reaches Redis on eth1 with its data address as source."""
        self.lab.exec(host, "ip", "addr", "flush", "dev", "eth1")
        self.lab.exec(host, "ip", "link", "set", "eth1", "up")
        self.lab.exec(host, "ip", "route", "replace", "10.213.9.0/24", "dev", "eth1", "src",
                      origin_ip(int(host[1:])))

    def start_redis(self):
        self.redis_proc = self.lab.spawn("redis", [
            "redis-server", "--port", "6379", "--bind", "0.0.0.0", "--protected-mode", "no",
            "--save", "", "--appendonly", "no", "--dir", str(self.dir)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def kill_redis(self):
        self.redis_proc.kill()
        self.redis_proc.wait(5)

    # ------------------------------------------------------------ queries (in the probe host)
    def q(self, fn, timeout=15.0):
        return self.probe.call(fn, timeout)

    def members(self):
        """{origin id: rtmp address} of the live members in Redis."""
        def read():
            ids = sorted(self.redis.smembers("srsedge:origins"))
            records = self.redis.mget([f"srsedge:origin:{i}" for i in ids]) if ids else []
            return {json.loads(r)["id"]: json.loads(r)["rtmp"] for r in records if r}
        try:
            return self.q(read)
        except (redis.RedisError, OSError):
            return {}

    def owners(self):
        """{stream name: owner id} from Redis."""
        def read():
            keys = list(self.redis.scan_iter(match=KEY_PREFIX + "*", count=1000))
            values = self.redis.mget(keys) if keys else []
            return {k[len(KEY_PREFIX):].split("/", 1)[1]: v for k, v in zip(keys, values) if v}
        return self.q(read)

    def api(self, ip, path):
        return self.q(lambda: self.http.get(f"http://{ip}:1985/api/v1/{path}", timeout=2).json())

    def streams(self, ip):
        return self.api(ip, "streams?count=10000")["streams"]

    def owner_addr(self, owner_id):
        return self.members().get(owner_id, "").rpartition(":")[0]

    def origin_by_id(self, owner_id):
        ip = self.owner_addr(owner_id)
        return next((o for i, o in enumerate(self.origins) if origin_ip(i) == ip), None)

    @staticmethod
    def wait(predicate, timeout, what):
        deadline = time.time() + timeout
        while True:
            try:
                value = predicate()
            except (requests.RequestException, redis.RedisError, OSError):
                value = None
            if value:
                return value
            assert time.time() < deadline, f"timeout: {what}"
            time.sleep(0.1)

    # ------------------------------------------------------------ load
    def pubgen(self, urls, n, media):
        """bench.pubgen in the encoders' host: n publishers (urls round robin, {i} = number)."""
        return self.lab.spawn("pub", [PYTHON, "-m", "bench.pubgen", *urls, "-n", str(n),
                                      "--media", str(media), "--setup-timeout", "20"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def encoder_loop(self, url, media, retry_delay):
        """ffmpeg in a retry loop, as OBS reconnects after `retry_delay` s."""
        loop = (f"while :; do ffmpeg -v error -re -stream_loop -1 -i {media} -c copy -f flv "
                f"{url}; sleep {retry_delay}; done")
        return self.lab.spawn("pub", ["sh", "-c", loop], stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)

    def player(self, url, seconds, name):
        """tests/netns_player.py in the players' host; returns (proc, result path)."""
        out = self.dir / f"{name}.json"
        proc = self.lab.spawn("play", [PYTHON, "tests/netns_player.py", url, str(seconds),
                                       str(out)], stdout=subprocess.PIPE, text=True)
        return proc, out

    def close(self):
        if getattr(self, "probe", None) is not None:
            self.probe.close()
        self.lab.close()


class Sampler:
    """Every 100 ms: which origin publishes which stream (its API: publish.active, not a relay)
    and the owners in Redis. Runs on its own worker in the probe host."""

    def __init__(self, cluster, interval=0.1):
        self.cluster = cluster
        self.interval = interval
        self.samples = []                   # (time, {stream: [origin index]}, {stream: owner})
        self.stopped = threading.Event()
        self.worker = NsWorker(cluster.lab, "probe")
        self.session = requests.Session()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _active(self, i):
        try:
            r = self.session.get(f"http://{origin_ip(i)}:1985/api/v1/streams?count=10000",
                                 timeout=0.5)
            streams = r.json()["streams"]
        except (requests.RequestException, ValueError, KeyError):
            return []                       # dead or busy: it publishes nothing we can see
        return [s["name"] for s in streams if s["publish"]["active"] and s.get("edge") is None]

    def _sample(self):
        at = time.time()
        on = {}
        for i in range(len(self.cluster.origins)):
            for name in self._active(i):
                on.setdefault(name, []).append(i)
        try:
            keys = list(self.cluster.redis.scan_iter(match=KEY_PREFIX + "*", count=1000))
            values = self.cluster.redis.mget(keys) if keys else []
            owners = {k[len(KEY_PREFIX):].split("/", 1)[1]: v
                      for k, v in zip(keys, values) if v}
        except (redis.RedisError, OSError):
            owners = None
        return at, on, owners

    def _run(self):
        while not self.stopped.is_set():
            started = time.time()
            try:
                self.samples.append(self.worker.call(self._sample, 10))
            except Exception:  # noqa: BLE001 - a lost sample is not a duplicate
                pass
            self.stopped.wait(max(0.0, self.interval - (time.time() - started)))

    def stop(self):
        self.stopped.set()
        self.thread.join(5)
        self.worker.close()
        return self

    def duplicates(self, since=0.0, until=float("inf")):
        """[(time, stream, [origin indexes])] where two origins published one stream."""
        return [(at, name, where) for at, on, _ in self.samples if since <= at <= until
                for name, where in on.items() if len(where) > 1]

    def last(self):
        return self.samples[-1] if self.samples else (0, {}, {})
