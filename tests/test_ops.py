"""Ops files: scripts/srsedge-ctl (real processes), compose/ (docker-compose.yml and the origin
cluster's cluster.yml, checked statically here; run for real by scripts/compose-test.sh, from
.ci/run), scripts/demo.sh (the whole local cluster, stopped
with SIGINT), scripts/srsedge.service, scripts/install-systools.sh (what each profile installs).

Rules: the ctl tests use free ports and tmp pid/log paths; the demo uses its own fixed ports
(conf/demo-*.conf) and is skipped when one is taken. Everything started is stopped by pid.
"""
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import threading
import time
import urllib.request
import warnings

import pytest

from lib.config import load_config
from tests.conftest import PYTHON, ROOT, ffprobe_streams, free_port, need_tool, wait_for, wait_port

CTL = os.path.join(ROOT, "scripts", "srsedge-ctl")
COMPOSE_DIR = os.path.join(ROOT, "compose")
CTL_ENV = dict(os.environ, SRSEDGE_PYTHON=PYTHON)


def alive(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def ctl(*args, cwd=ROOT):
    res = subprocess.run([CTL, *map(str, args)], cwd=cwd, env=CTL_ENV, capture_output=True,
                         text=True, timeout=60)
    res.out = res.stdout + res.stderr
    return res


def write_conf(path, port, extra=""):
    path.write_text(f"listen 127.0.0.1:{port};\npid {path.parent}/ctl.pid;\nsrs_log_tank file;\n"
                    f"srs_log_file {path.parent}/ctl.log;\n{extra}vhost __defaultVhost__ {{ }}\n")


# ------------------------------------------------------------------ scripts/srsedge-ctl
def test_ctl_round_trip(tmp_path):
    port = free_port()
    conf = tmp_path / "ctl.conf"
    write_conf(conf, port)
    pid_file, log = tmp_path / "ctl.pid", tmp_path / "ctl.log"
    good = conf.read_text()

    r = ctl("status", conf)
    assert r.returncode == 1 and r.stdout.strip() == "srsedge is stopped"
    r = ctl("stop", conf)
    assert r.returncode != 0 and "not running" in r.out
    r = ctl("reload", conf)
    assert r.returncode != 0 and "not running" in r.out

    r = ctl("start", "ctl.conf", cwd=tmp_path)             # a relative CONF from another cwd
    assert r.returncode == 0, r.out
    pid = int(re.search(r"srsedge started, pid (\d+)", r.stdout).group(1))
    try:
        assert int(pid_file.read_text()) == pid and alive(pid)
        wait_port(port)
        r = ctl("status", conf)
        assert r.returncode == 0 and r.stdout.strip() == f"srsedge is running, pid {pid}"

        r = ctl("start", conf)
        assert r.returncode != 0 and f"already running, pid {pid}" in r.out
        assert int(pid_file.read_text()) == pid and alive(pid)

        r = ctl("reload", conf)
        assert r.returncode == 0, r.out
        assert wait_for(lambda: "reload ok" in log.read_text(), 15)

        conf.write_text(good.replace("vhost __defaultVhost__ { }", "vhost __defaultVhost__ { bogus on; }"))
        r = ctl("reload", conf)
        assert r.returncode != 0 and "test failed" in r.out and "bogus" in r.out
        assert log.read_text().count("reload ok") == 1     # no SIGHUP was sent
        r = ctl("status", conf)                             # the pid line still finds it
        assert r.returncode == 0 and f"pid {pid}" in r.stdout and "cannot load" in r.stderr
        conf.write_text(good)

        os.rename(log, tmp_path / "ctl.log.1")
        r = ctl("logrotate", conf)
        assert r.returncode == 0, r.out
        assert wait_for(lambda: log.exists() and "log file reopened" in log.read_text(), 15)

        r = ctl("restart", conf)
        assert r.returncode == 0, r.out
        assert wait_for(lambda: not alive(pid), 15)
        pid = int(pid_file.read_text())
        assert alive(pid)
        wait_port(port)

        r = ctl("stop", conf)
        assert r.returncode == 0 and f"srsedge stopped, pid {pid}" in r.stdout, r.out
        assert not alive(pid) and not pid_file.exists()
        r = ctl("status", conf)
        assert r.returncode == 1 and "stopped" in r.stdout
    finally:
        if alive(pid):
            os.kill(pid, signal.SIGKILL)


def test_ctl_refuses_bad_config(tmp_path):
    conf = tmp_path / "ctl.conf"
    write_conf(conf, free_port(), extra="no_such_directive on;\n")
    r = ctl("start", conf)
    assert r.returncode != 0
    assert "no_such_directive" in r.out and "test failed" in r.out
    assert not (tmp_path / "ctl.pid").exists()
    r = ctl("start", tmp_path / "missing.conf")
    assert r.returncode != 0 and "not found" in r.out
    r = ctl("frobnicate", conf)
    assert r.returncode != 0 and "usage" in r.out


def test_ctl_start_failure_and_daemon_on(tmp_path):
    """`daemon on` detaches by itself; a second config on a taken port fails with a message."""
    port = free_port()
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    a, b = tmp_path / "a" / "ctl.conf", tmp_path / "b" / "ctl.conf"
    write_conf(a, port, extra="daemon on;\n")
    write_conf(b, port)
    r = ctl("start", a)
    assert r.returncode == 0, r.out
    pid = int((tmp_path / "a" / "ctl.pid").read_text())
    try:
        wait_port(port)
        r = ctl("start", b)
        assert r.returncode != 0 and re.search("exited while starting|failed to start", r.out)
        assert "Address already in use" in (tmp_path / "b" / "ctl.log").read_text()
        assert ctl("status", b).returncode == 1
        r = ctl("stop", a)
        assert r.returncode == 0 and not alive(pid), r.out
    finally:
        if alive(pid):
            os.kill(pid, signal.SIGKILL)


def test_systemd_unit():
    with open(os.path.join(ROOT, "scripts", "srsedge.service")) as f:
        text = f.read()
    assert "Type=simple" in text and "ExecReload=/bin/kill -HUP $MAINPID" in text
    assert re.search(r"^ExecStartPre=.* srsedge\.py -t -c \$\{CONF\}$", text, re.M)
    conf = re.search(r"^Environment=CONF=(\S+)$", text, re.M).group(1)
    assert os.path.exists(os.path.join(ROOT, conf))


# ------------------------------------------------------------------ compose/
def load_yaml(path):
    """PyYAML from the venv, else from a system python (Debian's python3-yaml)."""
    try:
        import yaml
        with open(path) as f:
            return yaml.safe_load(f)
    except ImportError:
        pass
    code = "import json, sys, yaml; json.dump(yaml.safe_load(open(sys.argv[1])), sys.stdout)"
    for py in ("/usr/bin/python3", shutil.which("python3")):
        if py and os.path.exists(py):
            r = subprocess.run([py, "-c", code, path], capture_output=True, text=True)
            if r.returncode == 0:
                return json.loads(r.stdout)
    pytest.skip("PyYAML not found: pip install pyyaml (or apt-get install python3-yaml)")


def conf_ports(config):
    """Every port a config listens on: RTMP, HTTP API, HTTP server."""
    ports = {port for _, port in config.listen}
    for section in (config.http_api, config.http_server):
        if section.enabled:
            ports.add(section.listen[1])
    return ports


def container_port(mapping):
    return int(str(mapping).split("/")[0].rsplit(":", 1)[-1])


def host_path(volume):
    src, dst = volume.split(":")[:2]
    return os.path.normpath(os.path.join(COMPOSE_DIR, src)), dst


def nginx_directives(path, name):
    with open(path) as f:
        lines = [line.split("#")[0].strip() for line in f]
    return [line[len(name):].strip().rstrip(";").split()
            for line in lines if line.startswith(name + " ")]


def test_compose_files_agree():
    doc = load_yaml(os.path.join(COMPOSE_DIR, "docker-compose.yml"))
    services = doc["services"]
    assert set(services) == {"origin", "origin-backup", "edge", "nginx-hls"}
    with open(os.path.join(COMPOSE_DIR, "Dockerfile")) as f:
        dockerfile = f.read()
    assert re.search(r"^FROM docker\.io/library/python:3\.11-slim$", dockerfile, re.M)
    exposed = {int(p) for p in re.search(r"^EXPOSE (.+)$", dockerfile, re.M).group(1).split()}
    cmd_conf = re.search(r'^CMD \[.*"-c", "([^"]+)"\]', dockerfile, re.M).group(1)
    assert os.path.exists(os.path.join(ROOT, cmd_conf))
    default = load_config(os.path.join(ROOT, cmd_conf))    # EXPOSE 1985 means reachable: not loopback
    assert default.http_api.listen == ("0.0.0.0", 1985) and conf_ports(default) == {1935, 1985, 8080}
    workdir = re.search(r"^WORKDIR (\S+)$", dockerfile, re.M).group(1)

    configs, used, port_vars = {}, set(), []
    built = [name for name, svc in services.items() if "build" in svc]
    assert built == ["origin-backup"], "one service builds the srsedge image"
    for name, svc in services.items():
        image = svc["image"]
        assert re.match(r"(localhost|[\w-]+\.[\w.-]+)/\S+:\S+$", image), f"{name}: {image} not fully qualified"
        assert "healthcheck" in svc, f"{name}: no healthcheck"
        for mapping in svc.get("ports", []):
            host = re.fullmatch(r"(127\.0\.0\.1:)?\$\{(SRSEDGE_\w+_PORT):-(\d+)\}:(\d+)", mapping)
            assert host, f"{name}: host port of {mapping} not overridable by an SRSEDGE_*_PORT variable"
            port_vars.append(host.group(2))
        mounts = dict(host_path(v) for v in svc.get("volumes", []) if v.startswith("."))
        for src in mounts:
            assert os.path.exists(src), f"{name}: mount {src} missing"
        if name == "nginx-hls":
            continue
        assert svc["image"] == "localhost/srsedge:latest" and svc.get("pull_policy") == "never", name
        build = services["origin-backup"]["build"]
        assert os.path.exists(os.path.join(COMPOSE_DIR, build["context"], build["dockerfile"]))
        conf = svc["command"][svc["command"].index("-c") + 1]
        assert mounts.get(os.path.join(ROOT, conf)) == f"{workdir}/{conf}", f"{name}: {conf} not mounted"
        config = configs[name] = load_config(os.path.join(ROOT, conf))
        ports = conf_ports(config)
        used |= ports
        published = {container_port(p) for p in svc.get("ports", [])}
        assert published <= ports, f"{name}: publishes {published - ports}, conf listens on {ports}"
        # the API listens on every container address, and is published on the host's loopback only
        assert config.http_api.enabled and config.http_api.listen[0] == "0.0.0.0", name
        api = [p for p in svc["ports"] if container_port(p) == config.http_api.listen[1]]
        assert api and all(p.startswith("127.0.0.1:") for p in api), f"{name}: API published {api}"
        assert config.http_server.enabled
        if name != "edge":
            assert config.vhost("__defaultVhost__").hls.enabled
    assert used == exposed
    assert len(port_vars) == len(set(port_vars)), f"a port variable is used twice: {port_vars}"

    rtmp = {name: config.listen[0][1] for name, config in configs.items()}
    edge = configs["edge"].vhost("__defaultVhost__")
    assert edge.cluster.mode == "remote"
    assert edge.cluster.origin == [("origin", rtmp["origin"]), ("origin-backup", rtmp["origin-backup"])]
    forward = configs["origin"].vhost("__defaultVhost__").forward
    assert forward.enabled and forward.destination == [("origin-backup", rtmp["origin-backup"])]
    assert set(services["edge"]["depends_on"]) == {"origin", "origin-backup"}

    nginx = services["nginx-hls"]
    mounts = dict(host_path(v) for v in nginx["volumes"] if v.startswith("."))
    prefix = nginx["command"][-1].rstrip("/")          # compose/nginx-hls.sh CONF_DIR
    by_dst = {dst: src for src, dst in mounts.items()}
    assert by_dst[f"{prefix}/nginx.conf"] == os.path.join(ROOT, "nginx", "nginx.conf")
    listen = nginx_directives(by_dst[f"{prefix}/listen.conf"], "listen")
    assert {container_port(p) for p in nginx["ports"]} == {int(listen[0][0].rsplit(":", 1)[-1])}
    upstream = dict(nginx_directives(by_dst[f"{prefix}/upstream.conf"], "set"))
    http = {name: config.http_server.listen[1] for name, config in configs.items()}
    assert upstream == {"$hls_origin": f"origin:{http['origin']}",
                        "$hls_backup": f"origin-backup:{http['origin-backup']}"}


def redis_port(args):
    """The port a redis-server command line listens on (Redis's default 6379)."""
    return int(args[args.index("--port") + 1]) if "--port" in args else 6379


def test_cluster_compose_agrees():
    """compose/cluster.yml (issue 21): redis, `origin` scaled by deploy.replicas behind its one
    service name, edge and nginx-hls. Origins and the edge share one directory (the service
    `redis`); the edge falls back to, and nginx asks, the service `origin`; origins publish no
    fixed host port (replicas could not share it), only their APIs on ephemeral loopback ports;
    Redis publishes none. Same image, healthcheck, nginx entry and port variables as
    docker-compose.yml."""
    services = load_yaml(os.path.join(COMPOSE_DIR, "cluster.yml"))["services"]
    classic = load_yaml(os.path.join(COMPOSE_DIR, "docker-compose.yml"))["services"]
    assert set(services) == {"redis", "origin", "edge", "nginx-hls"}
    assert [name for name, svc in services.items() if "build" in svc] == ["edge"]
    assert services["edge"]["build"] == classic["origin-backup"]["build"]
    replicas = re.fullmatch(r"\$\{SRSEDGE_ORIGINS:-(\d+)\}", str(services["origin"]["deploy"]["replicas"]))
    assert replicas and int(replicas.group(1)) >= 2, services["origin"]["deploy"]
    assert services["origin"]["ports"] == ["127.0.0.1::1985"]
    assert "ports" not in services["redis"] and "healthcheck" in services["redis"]
    assert re.match(r"[\w-]+\.[\w.-]+/\S+:\S+$", services["redis"]["image"]), "fully qualified"

    port_vars, configs = set(), {}
    for name in ("origin", "edge"):
        svc = services[name]
        for key in ("image", "pull_policy", "healthcheck", "stop_signal"):
            assert svc[key] == classic["origin"][key], f"{name}: {key}"
        conf = svc["command"][svc["command"].index("-c") + 1]
        mounts = dict(host_path(v) for v in svc["volumes"])
        assert mounts == {os.path.join(ROOT, conf): f"/srv/srsedge/{conf}"}, name
        config = configs[name] = load_config(os.path.join(ROOT, conf))
        assert config.http_api.listen[0] == "0.0.0.0", name
        for mapping in svc["ports"]:
            assert mapping.startswith("127.0.0.1:") or container_port(mapping) != config.http_api.listen[1]
            assert container_port(mapping) in conf_ports(config), f"{name}: {mapping}"
            port_vars |= set(re.findall(r"\$\{(SRSEDGE_\w+_PORT):-\d+\}", mapping))
        assert svc["depends_on"] == ["redis"], name
    directory = f"redis://redis:{redis_port(services['redis']['command'])}/0"
    origin = configs["origin"].vhost("__defaultVhost__")
    assert origin.cluster.mode == "local" and origin.cluster.directory == directory
    assert not origin.forward.enabled and origin.hls.enabled
    edge = configs["edge"].vhost("__defaultVhost__").cluster
    assert edge.mode == "remote" and edge.directory == directory
    assert edge.directory_ttl == origin.cluster.directory_ttl
    assert edge.origin == [("origin", configs["origin"].listen[0][1])]

    nginx = services["nginx-hls"]
    assert nginx["command"] == classic["nginx-hls"]["command"] and nginx["image"] == classic["nginx-hls"]["image"]
    mounts = dict(host_path(v) for v in nginx["volumes"] if v.startswith("."))
    by_dst = {dst: src for src, dst in mounts.items()}
    prefix = nginx["command"][-1].rstrip("/")
    assert by_dst[f"{prefix}/upstream.conf"] == os.path.join(ROOT, "nginx", "compose", "upstream-cluster.conf")
    classic_mounts = dict(host_path(v) for v in classic["nginx-hls"]["volumes"] if v.startswith("."))
    assert {d: s for s, d in classic_mounts.items() if not d.endswith("/upstream.conf")} == \
        {d: s for d, s in by_dst.items() if not d.endswith("/upstream.conf")}
    upstream = dict(nginx_directives(by_dst[f"{prefix}/upstream.conf"], "set"))
    http = configs["origin"].http_server.listen[1]
    assert upstream == {"$hls_origin": f"origin:{http}", "$hls_backup": f"origin:{http}"}
    port_vars |= set(re.findall(r"\$\{(SRSEDGE_\w+_PORT):-\d+\}", " ".join(nginx["ports"])))
    with open(os.path.join(COMPOSE_DIR, "docker-compose.yml")) as f:
        assert port_vars and port_vars <= set(re.findall(r"\$\{(SRSEDGE_\w+_PORT):-\d+\}", f.read()))


@pytest.mark.parametrize("name", ["docker", "compose-origin", "compose-backup", "compose-edge",
                                  "compose-cluster-origin", "compose-cluster-edge",
                                  "demo-origin", "demo-backup", "demo-edge"])
def test_ops_configs_pass_t(name):
    r = subprocess.run([PYTHON, "srsedge.py", "-t", "-c", f"conf/{name}.conf"], cwd=ROOT,
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr


# ------------------------------------------------------------------ scripts/demo.sh
DEMO_CONFS = [os.path.join(ROOT, "conf", f"demo-{n}.conf") for n in ("origin", "backup", "edge")]
DEMO_NGINX_PORT = 18088


def port_free(port):
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)   # as servers do: TIME_WAIT is free
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def process_tree(roots):
    """The pids in `roots` and all their descendants (from /proc)."""
    parent = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    parent[int(entry)] = int(f.read().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                pass
    tree, todo = set(), list(roots)
    while todo:
        pid = todo.pop()
        if pid not in tree:
            tree.add(pid)
            todo += [child for child, ppid in parent.items() if ppid == pid]
    return tree


def test_demo_runs_and_stops_on_sigint():
    need_tool("ffmpeg")
    need_tool("nginx")
    ports = [DEMO_NGINX_PORT]
    for path in DEMO_CONFS:
        ports += conf_ports(load_config(path))
    if not all(port_free(p) for p in ports):
        pytest.skip(f"a demo port ({ports}) is taken: is `make demo` running?")
    demo = subprocess.Popen(["bash", "scripts/demo.sh"], cwd=ROOT, stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env=dict(CTL_ENV, DEMO_DURATION="90"), start_new_session=True)
    lines = []
    reader = threading.Thread(target=lambda: lines.extend(demo.stdout), daemon=True)
    reader.start()
    output = lambda: "".join(lines)  # noqa: E731
    try:
        assert wait_for(lambda: "pids:" in output() or demo.poll() is not None, 40), output()
        assert demo.poll() is None, output()
        pids = {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", output().split("pids:")[1].split("\n")[0])}
        assert set(pids) == {"origin", "backup", "edge", "nginx", "ffmpeg"}
        tree = process_tree([demo.pid, *pids.values()])
        urls = re.findall(r"^\s+(\S[^:]*\)):\s+(\S+)", output(), re.M)
        assert [u for _, u in urls][:3] == ["rtmp://127.0.0.1:11935/live/livestream",
                                            "http://127.0.0.1:18080/live/livestream.flv",
                                            "http://127.0.0.1:18081/live/livestream.flv"]
        for label, url in urls:
            if "HLS" in label:
                m3u8 = os.path.join(ROOT, "objs", "demo", "origin", "html", "__defaultVhost__", "live",
                                    "livestream.m3u8")
                if not wait_for(lambda: os.path.exists(m3u8), 15, 0.5):
                    warnings.warn(f"demo: no {m3u8} after 15 s (HLS writer not wired?): "
                                  f"HLS URL {url} not checked")
                    continue
            # (HLS lists each stream twice: in its program and alone)
            assert sorted(set(ffprobe_streams(url))) == ["aac,audio", "h264,video"], f"{label} {url}"
        apis = re.findall(r"^\s+(origin|backup|edge):\s+(http://127\.0\.0\.1:\d+/api/v1/streams)$", output(), re.M)
        assert [name for name, _ in apis] == ["origin", "backup", "edge"], output()
        for name, url in apis:   # each API answers and knows the stream (the edge once played)
            with urllib.request.urlopen(url, timeout=10) as r:
                streams = json.load(r)["streams"]
            assert "livestream" in {s["name"] for s in streams}, f"{name} {url}: {streams}"
        assert all(alive(pid) for pid in pids.values())
        os.killpg(demo.pid, signal.SIGINT)  # as a terminal's Ctrl-C: the whole foreground group
        assert demo.wait(30) == 0, output()  # a stop asked for is a success (make prints no error)
        assert "exited" not in output()     # ffmpeg and nginx were not hit before the demo stopped them
        reader.join(5)
        assert "demo: stopped" in output()
        assert wait_for(lambda: not any(alive(p) for p in tree), 15), \
            [p for p in tree if alive(p)]
        assert not any(os.path.exists(os.path.join(ROOT, "objs", "demo", f"{n}.pid"))
                       for n in ("origin", "backup", "edge"))
    finally:
        if demo.poll() is None:
            demo.send_signal(signal.SIGINT)
            try:
                demo.wait(30)
            except subprocess.TimeoutExpired:
                demo.kill()
        reader.join(5)
        demo.stdout.close()
        for path in DEMO_CONFS:
            subprocess.run([CTL, "stop", path], env=CTL_ENV, capture_output=True, timeout=60)


# ------------------------------------------------------------------ scripts/install-systools.sh
def installs(tmp_path, profile):
    """The packages install-systools.sh PROFILE asks apt-get for on a machine with no tools."""
    stubs = tmp_path / "bin"
    stubs.mkdir(exist_ok=True)
    calls = tmp_path / "apt-calls"
    (stubs / "apt-get").write_text(f"#!/bin/bash\necho \"$*\" >> {calls}\n")
    (stubs / "id").write_text("#!/bin/bash\necho 0\n")
    for stub in stubs.iterdir():
        stub.chmod(0o755)
    calls.write_text("")
    res = subprocess.run([shutil.which("bash"), "scripts/install-systools.sh", profile], cwd=ROOT,
                         env={"PATH": str(stubs)}, capture_output=True, text=True, timeout=30)
    assert res.returncode == 0, res.stderr
    return calls.read_text().split("--no-install-recommends")[-1].split()


def test_demo_installs_only_what_it_uses(tmp_path):
    assert set(installs(tmp_path, "demo")) == {"ffmpeg", "nginx"}
    test = installs(tmp_path, "test")
    assert {"ffmpeg", "nginx", "iproute2"} <= set(test)
    if not os.path.exists("/usr/lib/nginx/modules/ngx_rtmp_module.so"):
        assert "libnginx-mod-rtmp" in test
    dry = subprocess.run(["make", "-n", "demo"], cwd=ROOT, capture_output=True, text=True, timeout=30)
    assert "install-systools.sh demo" in dry.stdout and "install-systools.sh test" not in dry.stdout


def test_compose_test_script_drives_every_port_and_runs_in_ci():
    """scripts/compose-test.sh runs both compose files (the cluster phase with its own project)
    and sets every SRSEDGE_*_PORT they read (so the CI run never uses a default port), and
    .ci/run runs it after `make test`."""
    wanted = set()
    for name in ("docker-compose.yml", "cluster.yml"):
        with open(os.path.join(COMPOSE_DIR, name)) as f:
            wanted |= set(re.findall(r"\$\{(SRSEDGE_\w+_PORT):-\d+\}", f.read()))
    with open(os.path.join(ROOT, "scripts", "compose-test.sh")) as f:
        script = f.read()
    exported = set(re.findall(r"\b(SRSEDGE_\w+_PORT)=\$", script))
    assert wanted and exported == wanted
    assert "COMPOSE_FILE=compose/docker-compose.yml" in script and "COMPOSE_FILE=compose/cluster.yml" in script
    assert re.search(r"SRSEDGE_COMPOSE_PHASES:-classic cluster\b", script), "CI runs both phases"
    with open(os.path.join(ROOT, ".ci", "run")) as f:
        steps = [line.strip() for line in f if line.strip() and not line.startswith("#")]
    assert steps.index("bash scripts/compose-test.sh") > steps.index("make test")
    r = subprocess.run(["bash", "-n", "scripts/compose-test.sh"], cwd=ROOT, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
