"""deploy/k8s: every manifest validates strictly offline (kubernetes-validate --strict, which
bundles the schemas), and what schemas cannot see holds: selectors match labels, Services and
probes name declared ports, the ports are the configs' ports, the origin cluster (issue 21) is
wired by the Service names (origins and edges share the directory at the Service `redis`, the
edge falls back to and nginx asks the Service `origin`), origins scale by an autoscaler and
Redis is a StatefulSet of one, the images are compose/cluster.yml's, the ConfigMaps' files
exist, every container has probes and every server a graceful stop that fits its grace period.

Rules: no cluster and no kustomize binary needed: the configMapGenerator is rendered here (plain
ConfigMaps, the names without kustomize's hash); when kubectl is installed, its kustomize output
must agree. Configs are read with the project's own loader, nginx files with a directive grep.
"""
import os
import re
import shutil
import subprocess

import pytest

from lib.config import load_config
from tests.conftest import PYTHON, ROOT
from tests.test_ops import COMPOSE_DIR, load_yaml, nginx_directives, redis_port

K8S = os.path.join(ROOT, "deploy", "k8s")
yaml = pytest.importorskip("yaml")


def kustomization():
    return load_yaml(os.path.join(K8S, "kustomization.yaml"))


def manifests():
    docs = []
    for name in kustomization()["resources"]:
        with open(os.path.join(K8S, name)) as f:
            docs += [d for d in yaml.safe_load_all(f) if d]
    return docs


def config_maps():
    """The configMapGenerator rendered: name -> {key: text}."""
    maps = {}
    for gen in kustomization()["configMapGenerator"]:
        data = {}
        for entry in gen["files"]:
            key, _, path = entry.rpartition("=")
            path = os.path.normpath(os.path.join(K8S, path))
            with open(path) as f:
                data[key or os.path.basename(path)] = f.read()
        maps[gen["name"]] = data
    return maps


def by_kind(kind):
    return {d["metadata"]["name"]: d for d in manifests() if d["kind"] == kind}


def workloads():
    """Deployments and StatefulSets: name -> manifest."""
    return {**by_kind("Deployment"), **by_kind("StatefulSet")}


def containers():
    for name, dep in workloads().items():
        for c in dep["spec"]["template"]["spec"]["containers"]:
            yield name, dep, c


def mounted_file(dep, container, path):
    """(configMap name, key) of the file at `path` inside the container."""
    volumes = {v["name"]: v for v in dep["spec"]["template"]["spec"]["volumes"]}
    for mount in container["volumeMounts"]:
        if os.path.dirname(path) == mount["mountPath"] and "configMap" in volumes[mount["name"]]:
            return volumes[mount["name"]]["configMap"]["name"], os.path.basename(path)
    raise AssertionError(f"{path} is not in a mounted ConfigMap")


def srsedge_config(dep, container):
    cmd = container["command"]
    cm, key = mounted_file(dep, container, cmd[cmd.index("-c") + 1])
    files = config_maps()[cm]
    assert key in files, f"{cm} has no {key}"
    gen = next(g for g in kustomization()["configMapGenerator"] if g["name"] == cm)
    path = next(os.path.normpath(os.path.join(K8S, e)) for e in gen["files"] if e.endswith(key))
    return load_config(path)


def test_every_manifest_validates_strictly(tmp_path):
    rendered = tmp_path / "configmaps.yaml"
    rendered.write_text(yaml.safe_dump_all(
        [{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": data}
         for name, data in config_maps().items()]))
    files = [os.path.join(K8S, name) for name in kustomization()["resources"]] + [str(rendered)]
    res = subprocess.run([PYTHON, "-m", "kubernetes_validate", "--strict", *files],
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stdout + res.stderr
    assert res.stdout.count("passed") == len(manifests()) + len(config_maps())


def test_kustomization_lists_every_manifest():
    listed = set(kustomization()["resources"])
    present = {f for f in os.listdir(K8S) if f.endswith(".yaml") and f != "kustomization.yaml"}
    assert listed == present


def test_selectors_match_labels():
    deployments = workloads()
    for name, dep in deployments.items():
        selector = dep["spec"]["selector"]["matchLabels"]
        labels = dep["spec"]["template"]["metadata"]["labels"]
        assert selector.items() <= labels.items(), name
    for name, svc in by_kind("Service").items():
        targets = [d for d, dep in deployments.items()
                   if svc["spec"]["selector"].items() <= dep["spec"]["template"]["metadata"]["labels"].items()]
        assert targets == [name], f"Service {name} selects {targets}"
    for name, pdb in by_kind("PodDisruptionBudget").items():
        labels = deployments[name]["spec"]["template"]["metadata"]["labels"]
        assert pdb["spec"]["selector"]["matchLabels"].items() <= labels.items()
    hpa = by_kind("HorizontalPodAutoscaler")
    assert set(hpa) == {"edge", "origin"}
    assert all(h["spec"]["scaleTargetRef"]["name"] == name for name, h in hpa.items())
    assert set(by_kind("PodDisruptionBudget")) == {"edge", "origin"}
    for name, policy in by_kind("NetworkPolicy").items():
        labels = deployments[name]["spec"]["template"]["metadata"]["labels"]
        assert policy["spec"]["podSelector"]["matchLabels"].items() <= labels.items(), name


def test_ports_are_the_configs_ports():
    services = by_kind("Service")
    for name, dep, c in containers():
        declared = {p["name"]: p["containerPort"] for p in c["ports"]}
        for probe in ("readinessProbe", "livenessProbe"):
            action = c[probe].get("httpGet") or c[probe].get("tcpSocket")
            assert action or c[probe].get("exec"), f"{name} {probe}"
            assert action is None or action["port"] in declared, f"{name} {probe} port {action['port']}"
        for port in services[name]["spec"]["ports"]:
            assert port["targetPort"] in declared, f"Service {name} targets {port['targetPort']}"
        if c["name"] == "srsedge":
            config = srsedge_config(dep, c)
            assert declared == {"rtmp": config.listen[0][1], "http": config.http_server.listen[1],
                                "api": config.http_api.listen[1]}, name
            assert config.http_api.listen[0] == "0.0.0.0", f"{name}: probes need the API on the pod IP"
        elif c["name"] == "redis":
            assert declared == {"redis": redis_port(c["args"])}
        else:
            files = config_maps()[mounted_file(dep, c, c["command"][1])[0]]
            listen = re.search(r"^\s*listen\s+(?:\S+:)?(\d+)\s*;", files["listen.conf"], re.M)
            assert declared == {"hls": int(listen.group(1))}


def test_origin_cluster_wired_by_service_names():
    """Origins and edges share one directory, the Service `redis`; the edge's fallback and nginx
    reach the origins by the Service `origin` (any origin serves any stream); no backup origin
    and no forward: the directory replaces them."""
    services = by_kind("Service")
    confs = {name: srsedge_config(dep, c) for name, dep, c in containers() if c["name"] == "srsedge"}
    assert set(confs) == {"origin", "edge"}
    svc_port = {name: {p["targetPort"]: p["port"] for p in svc["spec"]["ports"]} for name, svc in services.items()}
    directory = f"redis://redis:{svc_port['redis']['redis']}/0"
    origin = confs["origin"].vhost("__defaultVhost__")
    assert origin.cluster.mode == "local" and origin.cluster.directory == directory
    assert not origin.forward.enabled and origin.hls.enabled
    edge = confs["edge"].vhost("__defaultVhost__").cluster
    assert edge.mode == "remote" and edge.directory == directory
    assert edge.directory_ttl == origin.cluster.directory_ttl
    assert edge.origin == [("origin", svc_port["origin"]["rtmp"])]
    assert nginx_origins() == [f"origin:{svc_port['origin']['http']}"] * 2


def test_origins_autoscale_and_redis_is_one():
    """Origins: a Deployment of 2+ that may run old and new pods side by side (RollingUpdate:
    the leases keep each stream on one origin), scaled on CPU, shed slowly. Redis: a StatefulSet
    of one (never two directories behind the Service), reachable only from srsedge pods."""
    origin = by_kind("Deployment")["origin"]
    assert origin["spec"]["strategy"]["type"] == "RollingUpdate" and origin["spec"]["replicas"] >= 2
    hpa = by_kind("HorizontalPodAutoscaler")["origin"]["spec"]
    assert hpa["minReplicas"] >= 2 and hpa["maxReplicas"] > hpa["minReplicas"]
    assert [m["resource"]["name"] for m in hpa["metrics"]] == ["cpu"]
    assert hpa["behavior"]["scaleDown"]["stabilizationWindowSeconds"] >= 300
    (c,) = origin["spec"]["template"]["spec"]["containers"]
    assert c["resources"]["requests"]["cpu"], "the HPA's utilization is relative to the request"
    redis = by_kind("StatefulSet")["redis"]["spec"]
    assert redis["replicas"] == 1 and redis["serviceName"] in by_kind("Service")
    assert "volumeClaimTemplates" not in redis, "the directory is soft state"
    policy = by_kind("NetworkPolicy")["redis"]["spec"]
    (rule,) = policy["ingress"]
    assert [f["podSelector"]["matchLabels"] for f in rule["from"]] == [{"app.kubernetes.io/name": "srsedge"}]
    srsedge = {name for name, dep, c in containers() if c["name"] == "srsedge"}
    assert all(workloads()[n]["spec"]["template"]["metadata"]["labels"]["app.kubernetes.io/name"] == "srsedge"
               for n in srsedge)


def nginx_origins():
    """The origins in nginx/compose/upstream-cluster.conf (the file the ConfigMap carries as
    upstream.conf), primary first: `set $hls_origin/$hls_backup` (names resolved per request),
    or the `server` lines of an upstream block."""
    path = os.path.join(ROOT, "nginx", "compose", "upstream-cluster.conf")
    variables = dict(nginx_directives(path, "set"))
    if variables:
        return [variables["$hls_origin"], variables["$hls_backup"]]
    return [words[0] for words in nginx_directives(path, "server")]


def test_images_are_composes():
    compose = load_yaml(os.path.join(COMPOSE_DIR, "cluster.yml"))["services"]
    for name, dep, c in containers():
        assert c["image"] == compose[name]["image"], name
    assert {i["name"] for i in kustomization()["images"]} == {compose["edge"]["image"].split(":")[0]}


def test_config_map_files_exist():
    for gen in kustomization()["configMapGenerator"]:
        for entry in gen["files"]:
            path = os.path.normpath(os.path.join(K8S, entry.rpartition("=")[2]))
            assert os.path.isfile(path), path
            assert path.startswith(tuple(os.path.join(ROOT, d) + os.sep for d in ("conf", "nginx", "compose"))), path


def test_probes_and_graceful_stop():
    for name, dep, c in containers():
        assert "readinessProbe" in c and "livenessProbe" in c, name
        if c["name"] == "redis":
            continue            # nothing to drain: SIGTERM, and the directory is soft state
        stop = " ".join(c["lifecycle"]["preStop"]["exec"]["command"])
        assert "kill -QUIT 1" in stop, name
        sleep = int(re.search(r"sleep (\d+); kill -QUIT", stop).group(1))
        grace = dep["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
        drain = 0
        if c["name"] == "srsedge":
            config = srsedge_config(dep, c)
            drain = (config.grace_start_wait + config.grace_final_wait) / 1000
        assert sleep + drain + 5 <= grace, f"{name}: preStop {sleep}s + drain {drain}s vs grace {grace}s"


def test_kubectl_kustomize_agrees():
    if shutil.which("kubectl") is None:
        pytest.skip("kubectl not installed: the configMapGenerator was rendered by the other tests")
    res = subprocess.run(["kubectl", "kustomize", "--load-restrictor", "LoadRestrictionsNone", K8S],
                         capture_output=True, text=True, timeout=120)
    if res.returncode != 0 and "unknown" in res.stderr:
        pytest.skip(f"this kubectl cannot render: {res.stderr.strip()[:200]}")
    assert res.returncode == 0, res.stderr
    docs = [d for d in yaml.safe_load_all(res.stdout) if d]
    maps = {re.sub(r"-[a-z0-9]{10}$", "", d["metadata"]["name"]): d["data"] for d in docs if d["kind"] == "ConfigMap"}
    assert maps == config_maps()
    kinds = sorted((d["kind"], d["metadata"]["name"]) for d in docs if d["kind"] != "ConfigMap")
    assert kinds == sorted((d["kind"], d["metadata"]["name"]) for d in manifests())


def test_nginx_includes_are_in_its_config_map():
    """Every file nginx.conf includes is in the ConfigMap beside it (nginx resolves a relative
    include against the directory of the -c file, /etc/nginx-hls)."""
    files = config_maps()["nginx-hls-conf"]
    includes = re.findall(r"^\s*include\s+([^\s;]+)\s*;", files["nginx.conf"], re.M)
    assert includes and set(includes) <= set(files), f"{includes} vs {sorted(files)}"
    (name, dep, c), = [(n, d, c) for n, d, c in containers() if c["name"] == "nginx"]
    script, conf_dir = c["command"][1:]                     # sh nginx-hls.sh CONF_DIR
    assert mounted_file(dep, c, script) == ("nginx-hls-conf", "nginx-hls.sh")
    assert mounted_file(dep, c, conf_dir + "/nginx.conf") == ("nginx-hls-conf", "nginx.conf")
    compose = load_yaml(os.path.join(COMPOSE_DIR, "cluster.yml"))["services"]["nginx-hls"]
    assert compose["command"] == c["command"], "compose and Kubernetes start nginx alike"
