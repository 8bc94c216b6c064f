#!/usr/bin/env bash
# compose-test: runs compose/docker-compose.yml and compose/cluster.yml for real with podman and
# checks both end to end. `.ci/run` runs it after `make test`; run it by hand the same way:
# `bash scripts/compose-test.sh` (SRSEDGE_COMPOSE_PHASES="classic cluster" by default: one
# phase per stack, one after the other; name one to run only that one).
#
# Phase "classic" (docker-compose.yml): the stack comes up on one srsedge image that holds the
# runtime only, the APIs answer on the host's loopback and every healthcheck passes; ffmpeg
# publishes through the edge (proxied to the origin, forwarded to the backup); RTMP and HTTP-FLV
# play through the edge, HLS through nginx; then the origin container is stopped and publishing
# through the edge, a new edge player and HLS through nginx go on from the backup, and nginx can
# test and reload its config while the origin is down; then the stack is torn down.
# Phase "cluster" (cluster.yml, issue 21): redis, 3 origins of one scaled service, the edge and
# nginx come up healthy; the 3 origins are registered in Redis with their container IPs (an
# origin's /api/v1/clusters); an encoder (ffmpeg in a retry loop, as OBS) publishes through the
# edge and the stream lands on exactly one origin, which the directory names as its owner; RTMP
# and HTTP-FLV play through the edge, HLS through nginx (any origin); then the owner's container
# is stopped: it leaves the directory, the encoder's stream comes back on another origin, an
# HTTP-FLV player on the edge stays connected and keeps receiving, and new players and HLS via
# nginx play from the new owner; then the stack is torn down.
#
# Rules:
# - Runs as root on a Debian 12 machine with no container registry: it apt-installs podman, runc,
#   netavark, aardvark-dns, iptables, mmdebstrap and ffmpeg when missing, and podman-compose from PyPI into
#   a venv of its own. Nothing of the host's podman setup is used or changed: containers.conf and
#   storage.conf of its own (CONTAINERS_CONF, CONTAINERS_STORAGE_CONF), storage, network configs
#   and the venv under $SRSEDGE_COMPOSE_CACHE (default /var/tmp/srsedge-compose-test), kept
#   between runs so a second run is warm. SRSEDGE_COMPOSE_FRESH=1 wipes it first (a cold run);
#   SRSEDGE_COMPOSE_KEEP=1 leaves the stack up at the end (to look at it; it prints how to stop it).
# - Runtime runc with cgroupfs (crun 1.8 refuses this kernel's hybrid cgroup layout); container
#   rlimits capped at the host's hard nofile limit and at an nproc limit runc accepts.
# - Base images: no registry serves them, so mmdebstrap builds localhost/debian:bookworm from the
#   host's apt sources (python3, python3-venv, nginx, redis-server) and `podman import`s it;
#   three stand-ins are tagged with the exact names compose uses (docker.io/library/python:3.11-slim:
#   a venv on PATH as `python`/`pip`, the host's CA bundle for pip; docker.io/library/nginx:stable;
#   docker.io/library/redis:7: Debian's redis-server 7).
# - Host ports are free ports picked here and passed through the compose file's SRSEDGE_*_PORT
#   variables, so the run never collides with `make demo` or another server.
# - Every step says what it does; a failing step prints "compose-test: FAILED: <step>: <why>",
#   the containers' last log lines, tears down and exits 1. The last line is a count of checks.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
CACHE=${SRSEDGE_COMPOSE_CACHE:-/var/tmp/srsedge-compose-test}
PROJECT=srsedge-ci                  # the stack of the running phase (teardown takes it down)
COMPOSE_FILE=compose/docker-compose.yml
ORIGIN_CONF=conf/compose-origin.conf  # the origins' config in the running phase's stack
PHASES=" ${SRSEDGE_COMPOSE_PHASES:-classic cluster} "
PODMAN_COMPOSE_VERSION=1.0.6
STREAM=live/livestream
WORK=$(mktemp -d /tmp/srsedge-compose-test.XXXXXX)
STEP="start"
PASSED=0
FAILED=0
UP=0
PUBLISHER=""                        # the encoder: an ffmpeg, or a retry loop in its own process group
PLAYER=""                           # the cluster phase's long-running edge player (ffmpeg)
T0=$SECONDS

say() { echo "compose-test: [$((SECONDS - T0))s] $*"; }
step() { STEP=$*; say "$STEP"; }
ok() { PASSED=$((PASSED + 1)); say "  ok: $*"; }
fail() {
    trap - ERR
    FAILED=1
    echo "compose-test: FAILED: $STEP: $*" >&2
    if ((UP)); then
        local c
        for c in $(podman ps -a --filter "label=io.podman.compose.project=$PROJECT" --format '{{.Names}}' 2>/dev/null); do
            echo "---- last log lines of $c ($(podman inspect -f '{{.State.Status}}' "$c" 2>/dev/null)):" >&2
            podman logs --tail 15 "$c" 2>&1 | sed 's/^/    /' >&2 || true
        done
    fi
    [[ -s $WORK/publisher.log ]] && { echo "---- ffmpeg publisher:" >&2; tail -5 "$WORK/publisher.log" >&2; }
    [[ -s $WORK/player.log ]] && { echo "---- ffmpeg player:" >&2; tail -5 "$WORK/player.log" >&2; }
    exit 1
}
trap 'fail "command failed (exit $?) at line $LINENO: $BASH_COMMAND"' ERR

teardown() {
    local rc=$?
    trap - ERR EXIT
    ((rc == 0 || FAILED)) || echo "compose-test: FAILED: $STEP: exit $rc (a command inside a function failed)" >&2
    stop_clients
    if ((UP)) && [[ ${SRSEDGE_COMPOSE_KEEP:-0} == 1 ]]; then
        keep_stack
    elif ((UP)); then
        stack_down || rc=1
    fi
    rm -rf "$WORK"
    if ((rc == 0)); then
        say "done in $((SECONDS - T0))s"
        echo "compose-test: $PASSED passed, 0 failed"
    fi
    exit "$rc"
}
trap teardown EXIT

stop_clients() {  # the encoder (with its retry loop's process group) and the player, by pid
    local pid
    for pid in $PUBLISHER $PLAYER; do
        kill -- "-$pid" 2>/dev/null || kill "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    PUBLISHER="" PLAYER=""
}
end_phase() {  # stop the clients, take the stack down (SRSEDGE_COMPOSE_KEEP=1: leave it up)
    stop_clients
    if [[ ${SRSEDGE_COMPOSE_KEEP:-0} == 1 ]]; then keep_stack; UP=0; return; fi
    stack_down || fail "compose down"
}
keep_stack() {
    say "SRSEDGE_COMPOSE_KEEP=1: the stack stays up (project $PROJECT); CONTAINERS_CONF=$CONTAINERS_CONF" \
        "CONTAINERS_STORAGE_CONF=$CONTAINERS_STORAGE_CONF $CACHE/venv/bin/podman-compose -p $PROJECT -f $COMPOSE_FILE down -v"
}
stack_down() {  # take the running phase's stack down; fails when containers are left
    local left
    say "tear down: compose down ($PROJECT)"
    UP=0
    compose down -v -t 5 >"$WORK/down.log" 2>&1 || {
        echo "compose-test: teardown failed, see below" >&2; cat "$WORK/down.log" >&2; return 1; }
    left=$(podman ps -a -q --filter "label=io.podman.compose.project=$PROJECT" 2>/dev/null)
    if [[ -n $left ]]; then
        echo "compose-test: teardown left containers: $left" >&2
        podman rm -f $left >/dev/null 2>&1 || true
        return 1
    fi
}

compose() { "$CACHE/venv/bin/podman-compose" -p "$PROJECT" -f "$COMPOSE_FILE" "$@"; }
container() {  # container SERVICE -> its container name
    podman ps -a --filter "label=io.podman.compose.project=$PROJECT" \
        --filter "label=com.docker.compose.service=$1" --format '{{.Names}}' | head -1
}
free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
wait_until() {  # wait_until SECONDS WHAT COMMAND...: retries COMMAND every 0.5 s
    local deadline=$((SECONDS + $1)) what=$2
    shift 2
    until "$@" >"$WORK/last.out" 2>&1; do
        ((SECONDS < deadline)) || fail "$what: not true after the deadline; last: $(tail -3 "$WORK/last.out")"
        sleep 0.5
    done
}
api() { python3 - "$1" "$2" <<'EOF'
# api PORT PATH: GET http://127.0.0.1:PORT/PATH, check it is JSON with code 0, print it
import json, sys, urllib.request
doc = json.load(urllib.request.urlopen(f"http://127.0.0.1:{sys.argv[1]}{sys.argv[2]}", timeout=5))
assert doc.get("code") == 0, doc
print(json.dumps(doc))
EOF
}
# stream_bytes PORT: bytes received so far by the stream $STREAM on the server with API on PORT
stream_bytes() { api "$1" /api/v1/streams | python3 -c '
import json, sys
streams = [s for s in json.load(sys.stdin)["streams"] if s["app"] + "/" + s["name"] == sys.argv[1]]
print(streams[0]["recv_bytes"] if streams and streams[0]["publish"]["active"] else -1)' "$STREAM"; }
grows() {  # grows PORT: the stream's received bytes on that server grow within 3 s
    local a b
    a=$(stream_bytes "$1") && ((a >= 0)) || return 1
    sleep 3
    b=$(stream_bytes "$1") && ((b > a))
}
plays() {  # plays URL: ffprobe sees H.264 video and AAC audio
    local streams
    streams=$(timeout 30 ffprobe -v error -rw_timeout 10000000 -show_entries stream=codec_name \
        -of csv=p=0 "$1" 2>"$WORK/ffprobe.err" | awk NF | sort -u | tr '\n' ' ')
    [[ $streams == "aac h264 " ]] || { echo "ffprobe $1: streams [$streams] $(tail -2 "$WORK/ffprobe.err")"; return 1; }
}
segments() {  # segments URL: the media segments a playlist lists (fails when it lists none)
    python3 -c 'import sys, urllib.request
lines = urllib.request.urlopen(sys.argv[1], timeout=5).read().decode().splitlines()
segs = [l for l in lines if l and not l.startswith("#")]
print("\n".join(segs)) if segs else sys.exit(1)' "$1"
}
new_segment() {  # new_segment URL SEEN: the playlist lists a segment not in SEEN (lines)
    local now
    now=$(segments "$1") || return 1
    [[ -n $(comm -13 <(sort <<<"$2") <(sort <<<"$now")) ]]
}
m3u8_path() {  # the playlist path of $STREAM: hls_m3u8_file of $ORIGIN_CONF
    local path
    path=$(sed -n 's/^[[:space:]]*hls_m3u8_file[[:space:]]\{1,\}\([^;[:space:]]*\).*/\1/p' "$ORIGIN_CONF" | head -1)
    path=${path:-[app]/[stream].m3u8}           # SRS's default
    path=${path//\[vhost\]/__defaultVhost__}
    path=${path//\[app\]/${STREAM%%/*}}
    echo "${path//\[stream\]/${STREAM#*/}}"
}
# the encoder: a generated H.264/AAC stream in real time; append the RTMP URL
ENCODER=(ffmpeg -hide_banner -nostdin -loglevel warning -re
    -f lavfi -i testsrc2=size=320x180:rate=25 -f lavfi -i sine=frequency=440:sample_rate=44100
    -c:v libx264 -preset ultrafast -tune zerolatency -g 25 -keyint_min 25 -sc_threshold 0
    -pix_fmt yuv420p -b:v 300k -c:a aac -b:a 48k -t 300 -f flv)
check() {  # check WHAT COMMAND...: run once, count it or fail with its output
    local what=$1 out
    shift
    out=$("$@" 2>&1) || fail "$what: $out"
    ok "$what"
}

# ------------------------------------------------------------------ tools
step "install tools (apt-get only for missing ones)"
[[ $(id -u) == 0 ]] || fail "needs root (podman as root, apt-get)"
need=()
for tool in podman:podman runc:runc netavark:/usr/lib/podman/netavark aardvark-dns:/usr/lib/podman/aardvark-dns \
            iptables:iptables mmdebstrap:mmdebstrap ffmpeg:ffmpeg ffmpeg:ffprobe; do
    command -v "${tool#*:}" >/dev/null 2>&1 || need+=("${tool%%:*}")
done
if ((${#need[@]})); then
    say "apt-get install ${need[*]}"
    apt-get update -qq >"$WORK/apt.log" 2>&1 || { cat "$WORK/apt.log" >&2; fail "apt-get update"; }
    DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 install -y -qq \
        --no-install-recommends "${need[@]}" >>"$WORK/apt.log" 2>&1 ||
        { tail -20 "$WORK/apt.log" >&2; fail "apt-get install ${need[*]}"; }
fi
if [[ ${SRSEDGE_COMPOSE_FRESH:-0} == 1 ]]; then
    say "SRSEDGE_COMPOSE_FRESH=1: wiping $CACHE"
    # podman's storage keeps bind mounts under its graphroot: unmount them (deepest first)
    awk -v dir="$CACHE/" 'index($2, dir) == 1 {print $2}' /proc/mounts | sort -r | xargs -r umount
    rm -rf "$CACHE"
fi
mkdir -p "$CACHE"
if [[ ! -x $CACHE/venv/bin/podman-compose ]]; then
    say "pip install podman-compose==$PODMAN_COMPOSE_VERSION into $CACHE/venv"
    python3 -m venv "$CACHE/venv" && "$CACHE/venv/bin/pip" install -q \
        "podman-compose==$PODMAN_COMPOSE_VERSION" >"$WORK/pip.log" 2>&1 ||
        { cat "$WORK/pip.log" >&2; rm -rf "$CACHE/venv"; fail "pip install podman-compose"; }
fi

# ------------------------------------------------------------------ podman setup of our own
mkdir -p "$CACHE/storage" "$CACHE/run" "$CACHE/networks"
write_podman_conf() {  # write_podman_conf NPROC
    cat >"$CACHE/containers.conf" <<EOF
[containers]
default_ulimits = ["nofile=$(ulimit -Hn):$(ulimit -Hn)", "nproc=$1:$1"]
[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
[network]
network_backend = "netavark"
network_config_dir = "$CACHE/networks"
EOF
}
cat >"$CACHE/storage.conf" <<EOF
[storage]
driver = "overlay"
graphroot = "$CACHE/storage"
runroot = "$CACHE/run"
EOF
MAX_NPROC=$(ulimit -Hu)
[[ $MAX_NPROC == unlimited ]] && MAX_NPROC=4194304
write_podman_conf "$MAX_NPROC"
export CONTAINERS_CONF=$CACHE/containers.conf CONTAINERS_STORAGE_CONF=$CACHE/storage.conf
podman info >"$WORK/podman-info.log" 2>&1 || { cat "$WORK/podman-info.log" >&2; fail "podman info"; }

# ------------------------------------------------------------------ base and stand-in images
step "images: localhost/debian:bookworm and the stand-ins compose names"
if ! podman image exists localhost/debian:bookworm; then
    sources=/etc/apt/sources.list.d/debian.sources
    [[ -f $sources ]] || sources=/etc/apt/sources.list
    say "mmdebstrap bookworm from $sources (once; ~30-60 s)"
    mmdebstrap --quiet --variant=minbase --include=python3,python3-venv,ca-certificates,nginx,redis-server \
        bookworm - "$sources" 2>"$WORK/mmdebstrap.log" | podman import - localhost/debian:bookworm >/dev/null 2>&1 ||
        { tail -20 "$WORK/mmdebstrap.log" >&2; fail "mmdebstrap | podman import"; }
    podman image exists localhost/debian:bookworm || fail "podman import made no localhost/debian:bookworm"
fi
# Container rlimits may not exceed what runc may set here: the host's hard nofile limit, and an
# nproc limit that is lower than `ulimit -Hu` on some machines (seen: 32768 works, 65536 not).
for nproc in "$MAX_NPROC" 65536 32768 16384 4096; do
    ((nproc <= MAX_NPROC)) || continue
    write_podman_conf "$nproc"
    podman run --rm localhost/debian:bookworm true >"$WORK/rlimit.log" 2>&1 && break
    grep -q "error setting rlimit" "$WORK/rlimit.log" || { cat "$WORK/rlimit.log" >&2; fail "podman run true"; }
done
grep -q "error setting rlimit" "$WORK/rlimit.log" && { cat "$WORK/rlimit.log" >&2; fail "no container rlimit works"; }
say "  container rlimits: nofile $(ulimit -Hn), nproc $nproc"
if ! podman image exists docker.io/library/python:3.11-slim; then
    mkdir -p "$WORK/python"
    cp /etc/ssl/certs/ca-certificates.crt "$WORK/python/host-ca.crt"
    cat >"$WORK/python/Containerfile" <<'EOF'
# Stand-in for the official python:3.11-slim: Debian's python3 (3.11) in a venv on PATH, so
# `python` and `pip` exist and pip may install; the host's CA bundle lets pip through TLS.
FROM localhost/debian:bookworm
COPY host-ca.crt /etc/ssl/certs/host-ca.crt
RUN python3 -m venv /usr/local/python
ENV PATH=/usr/local/python/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    PIP_CERT=/etc/ssl/certs/host-ca.crt PIP_DISABLE_PIP_VERSION_CHECK=1
EOF
    podman build -q -t docker.io/library/python:3.11-slim "$WORK/python" >"$WORK/build.log" 2>&1 ||
        { cat "$WORK/build.log" >&2; fail "build the python stand-in"; }
fi
if ! podman image exists docker.io/library/nginx:stable; then
    podman tag localhost/debian:bookworm docker.io/library/nginx:stable
fi
if ! podman image exists docker.io/library/redis:7; then
    mkdir -p "$WORK/redis"
    cat >"$WORK/redis/Containerfile" <<'EOF'
# Stand-in for the official redis:7: Debian 12's redis-server (7.0) and redis-cli. The base has
# them unless it was built before they were in its package list: then apt installs them here.
FROM localhost/debian:bookworm
RUN command -v redis-server >/dev/null || { apt-get update -qq && \
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends redis-server && \
    rm -rf /var/lib/apt/lists/*; }
EXPOSE 6379
CMD ["redis-server", "--protected-mode", "no"]
EOF
    podman build -q -t docker.io/library/redis:7 "$WORK/redis" >"$WORK/build.log" 2>&1 ||
        { cat "$WORK/build.log" >&2; fail "build the redis stand-in"; }
fi
ok "images localhost/debian:bookworm, docker.io/library/python:3.11-slim, docker.io/library/nginx:stable, docker.io/library/redis:7"

# ================================================================== phase "classic"
# (not indented, to keep its history readable: it runs when $PHASES names it)
if [[ $PHASES == *" classic "* ]]; then
# ------------------------------------------------------------------ up
step "compose up (build the srsedge image, start origin-backup, origin, edge, nginx-hls)"
EDGE_RTMP=$(free_port) EDGE_HTTP=$(free_port) ORIGIN_RTMP=$(free_port) HLS=$(free_port)
ORIGIN_API=$(free_port) BACKUP_API=$(free_port) EDGE_API=$(free_port)
export SRSEDGE_EDGE_RTMP_PORT=$EDGE_RTMP SRSEDGE_EDGE_HTTP_PORT=$EDGE_HTTP \
    SRSEDGE_ORIGIN_RTMP_PORT=$ORIGIN_RTMP SRSEDGE_HLS_PORT=$HLS SRSEDGE_ORIGIN_API_PORT=$ORIGIN_API \
    SRSEDGE_BACKUP_API_PORT=$BACKUP_API SRSEDGE_EDGE_API_PORT=$EDGE_API
UP=1
compose down -v -t 1 >/dev/null 2>&1 || true      # what a killed earlier run may have left
compose build >"$WORK/build.log" 2>&1 || { tail -30 "$WORK/build.log" >&2; fail "compose build"; }
compose up -d >"$WORK/up.log" 2>&1 || { grep -v "level=error msg=\"Removing timer" "$WORK/up.log" | tail -30 >&2; fail "compose up -d"; }
for svc in origin-backup origin edge nginx-hls; do
    c=$(container "$svc")
    [[ -n $c ]] || { tail -30 "$WORK/up.log" >&2; fail "no container for service $svc"; }
    [[ $(podman inspect -f '{{.State.Status}}' "$c") == running ]] ||
        { grep -v "Removing timer" "$WORK/up.log" | tail -30 >&2; fail "service $svc is not running"; }
done
images=$(for svc in origin-backup origin edge; do podman inspect -f '{{.ImageName}}' "$(container "$svc")"; done | sort -u)
[[ $images == localhost/srsedge:latest ]] || fail "the srsedge services run [$images], not one localhost/srsedge:latest"
ok "4 containers, the three srsedge services on one image ($images)"
requirement_names() {  # requirement_names FILE: the package names it lists (lower case, no -r)
    sed -e 's/#.*//' -e '/^[[:space:]]*-/d' -e 's/[[:space:]<>=!~;\[].*//' "$1" | tr 'A-Z_' 'a-z-' | grep .
}
clean_runtime() {  # the image holds requirements.txt's packages, none of the test-only ones, no tests/
    local installed name
    installed=$(podman run --rm localhost/srsedge:latest sh -c 'test ! -e tests && pip list --format=freeze' 2>&1) ||
        { echo "tests/ in the image, or no pip: $installed"; return 1; }
    installed=$(cut -d= -f1 <<<"$installed" | tr 'A-Z_' 'a-z-')
    for name in $(requirement_names requirements.txt); do
        grep -qx "$name" <<<"$installed" || { echo "runtime package $name missing"; return 1; }
    done
    for name in $(requirement_names requirements-dev.txt); do
        ! grep -qx "$name" <<<"$installed" || { echo "test package $name installed"; return 1; }
    done
}
check "the image holds the runtime only (requirements.txt; nothing of requirements-dev.txt, no tests/)" clean_runtime

step "healthy: HTTP APIs on the host's loopback, every container's healthcheck"
for port in $ORIGIN_API $BACKUP_API $EDGE_API; do
    wait_until 30 "HTTP API on 127.0.0.1:$port" api "$port" /api/v1/versions
done
ok "the three HTTP APIs answer on 127.0.0.1 ($ORIGIN_API $BACKUP_API $EDGE_API)"
for svc in origin-backup origin edge nginx-hls; do
    wait_until 30 "healthcheck of $svc" podman healthcheck run "$(container "$svc")"
done
ok "healthchecks pass (origin-backup origin edge nginx-hls)"

# ------------------------------------------------------------------ publish and play
step "publish with ffmpeg through the edge; play RTMP, HTTP-FLV (edge) and HLS (nginx)"
"${ENCODER[@]}" "rtmp://127.0.0.1:$EDGE_RTMP/$STREAM" </dev/null >"$WORK/publisher.log" 2>&1 &
PUBLISHER=$!
wait_until 30 "the stream reaches the origin (API)" grows "$ORIGIN_API"
wait_until 30 "the origin's forward reaches the backup (API)" grows "$BACKUP_API"
ok "published through the edge: origin and backup receive it"
check "RTMP via the edge plays H.264 + AAC" plays "rtmp://127.0.0.1:$EDGE_RTMP/$STREAM"
check "HTTP-FLV via the edge plays H.264 + AAC" plays "http://127.0.0.1:$EDGE_HTTP/$STREAM.flv"
M3U8=http://127.0.0.1:$HLS/$(m3u8_path)
wait_until 40 "HLS playlist with segments via nginx" segments "$M3U8"
check "HLS via nginx plays H.264 + AAC" plays "$M3U8"

# ------------------------------------------------------------------ origin down
step "stop the origin container: publishing and HLS go on from the backup"
podman stop -t 2 "$(container origin)" >/dev/null 2>&1    # SIGQUIT, SIGKILL after 2 s of draining
kill -0 "$PUBLISHER" 2>/dev/null || fail "the ffmpeg publisher died when the origin stopped"
wait_until 30 "the backup receives the edge's publish" grows "$BACKUP_API"
sleep 2
kill -0 "$PUBLISHER" 2>/dev/null || fail "the ffmpeg publisher (through the edge) died after the origin stopped"
ok "publishing through the edge goes on into the backup"
check "a new HTTP-FLV player via the edge plays (from the backup)" plays "http://127.0.0.1:$EDGE_HTTP/$STREAM.flv"
seen=$(segments "$M3U8") || fail "no HLS playlist via nginx after the origin stopped"
wait_until 40 "the HLS playlist via nginx lists a new segment (from the backup)" new_segment "$M3U8" "$seen"
check "HLS via nginx plays from the backup" plays "$M3U8"

# ------------------------------------------------------------------ nginx reload, origin down
# (podman-compose turns depends_on into `--requires`: podman itself refuses to start nginx-hls
# while the origin container is stopped, so what is checked is what nginx does on a start or a
# reload: `nginx -t` parses the config and resolves the upstream names, then a real reload)
step "nginx-hls tests and reloads its config while the origin is down"
nginx_fixed() { grep -qs -E '^\s*(resolver|server .* resolve)' nginx/nginx.conf nginx/compose/*.conf; }
NGINX=(podman exec "$(container nginx-hls)" nginx -p /srv/nginx/ -c nginx.conf)
if out=$("${NGINX[@]}" -t 2>&1); then
    "${NGINX[@]}" -s reload >"$WORK/reload.log" 2>&1 || { cat "$WORK/reload.log" >&2; fail "nginx -s reload"; }
    sleep 1
    check "HLS via nginx plays after nginx reloaded with the origin down" plays "$M3U8"
elif nginx_fixed; then
    fail "nginx -t fails while the origin is down, though its upstream resolves at request time: $out"
else
    say "  KNOWN ISSUE (not counted): nginx cannot start or reload while 'origin' does not resolve" \
        "(its upstream is resolved at start; the fix is not merged yet): $(grep -m1 "host not found" <<<"$out" || tail -1 <<<"$out")"
fi
end_phase
fi

# ================================================================== phase "cluster"
if [[ $PHASES == *" cluster "* ]]; then
PROJECT=srsedge-ci-cluster COMPOSE_FILE=compose/cluster.yml ORIGIN_CONF=conf/compose-cluster-origin.conf
ORIGINS=3
running() {  # running SERVICE: the names of its running containers, one a line
    podman ps --filter "label=io.podman.compose.project=$PROJECT" \
        --filter "label=com.docker.compose.service=$1" --format '{{.Names}}' | sort
}
container_ip() { podman inspect -f '{{range .NetworkSettings.Networks}}{{.IPAddress}} {{end}}' "$1" | awk '{print $1}'; }
api_port() { podman port "$1" 1985 | head -1 | sed 's/.*://'; }   # an origin's API port on the host
cluster_py() {  # cluster_py CHECK ARGS...: the cluster checks on the APIs (JSON), see below
    python3 - "$@" <<'EOF'
import json, sys, urllib.request

def get(port, path):
    doc = json.load(urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5))
    assert doc.get("code") in (0, 2048), doc
    return doc

def directory(port):
    dirs = get(port, "/api/v1/clusters")["data"]["directories"]
    assert len(dirs) == 1 and dirs[0].get("reachable"), f"directory on :{port}: {dirs}"
    return dirs[0]

check, args = sys.argv[1], sys.argv[2:]
if check == "members":            # members ORIGIN_PORT IP...: the directory lists exactly these origins
    port, ips = args[0], sorted(args[1:])
    d = directory(port)
    seen = sorted(m["ip"] for m in d["origins"])
    assert d["role"] == "origin" and seen == ips, f"origins registered with {seen}, containers have {ips}"
    assert all(m["rtmp"] == m["ip"] + ":1935" and m["http"] == m["ip"] + ":8080" for m in d["origins"]), d["origins"]
    print(" ".join(m["id"] for m in d["origins"]))
elif check == "owner":            # owner STREAM EDGE_PORT ORIGIN_PORT...: exactly one origin owns it
    app, name = args[0].split("/")
    found = get(args[1], f"/api/v1/clusters?vhost=__defaultVhost__&app={app}&stream={name}")
    assert found["code"] == 0, f"the directory names no owner: {found}"
    owner = found["data"]["origin"]["id"]
    owning = []
    for port in args[2:]:
        me = directory(port)["self"]
        for s in get(port, "/api/v1/streams")["streams"]:
            if (s["app"], s["name"]) == (app, name) and s.get("owner") == me and s["publish"]["active"]:
                owning.append((port, me))
    assert [me for _, me in owning] == [owner], f"origins owning it {owning}, the directory says {owner}"
    print(owning[0][0], owner)
EOF
}
file_grows() {  # file_grows PATH: the file grows within 3 s
    local a b
    a=$(stat -c %s "$1" 2>/dev/null || echo 0)
    sleep 3
    b=$(stat -c %s "$1" 2>/dev/null || echo 0)
    ((b > a)) || { echo "$1: $a -> $b bytes"; return 1; }
}

step "compose up the cluster (compose/cluster.yml): redis, $ORIGINS origins, edge, nginx-hls"
EDGE_RTMP=$(free_port) EDGE_HTTP=$(free_port) HLS=$(free_port) EDGE_API=$(free_port)
export SRSEDGE_EDGE_RTMP_PORT=$EDGE_RTMP SRSEDGE_EDGE_HTTP_PORT=$EDGE_HTTP SRSEDGE_HLS_PORT=$HLS \
    SRSEDGE_EDGE_API_PORT=$EDGE_API SRSEDGE_ORIGINS=$ORIGINS
UP=1
compose down -v -t 1 >/dev/null 2>&1 || true      # what a killed earlier run may have left
compose build >"$WORK/build.log" 2>&1 || { tail -30 "$WORK/build.log" >&2; fail "compose build"; }
compose up -d >"$WORK/up.log" 2>&1 || { grep -v "level=error msg=\"Removing timer" "$WORK/up.log" | tail -30 >&2; fail "compose up -d"; }
for svc in redis edge nginx-hls origin; do
    [[ -n $(running "$svc") ]] || { grep -v "Removing timer" "$WORK/up.log" | tail -30 >&2; fail "service $svc is not running"; }
done
mapfile -t ORIGIN_CONTAINERS < <(running origin)
((${#ORIGIN_CONTAINERS[@]} == ORIGINS)) || fail "${#ORIGIN_CONTAINERS[@]} origin containers, not $ORIGINS: ${ORIGIN_CONTAINERS[*]}"
ok "redis, edge, nginx-hls and $ORIGINS containers of the one service origin run"

step "healthy: the edge's and every origin's API (ephemeral loopback ports), every healthcheck"
declare -A PORT_OF=() IP_OF=()
for c in "${ORIGIN_CONTAINERS[@]}"; do
    PORT_OF[$c]=$(api_port "$c") IP_OF[$c]=$(container_ip "$c")
    [[ ${PORT_OF[$c]} =~ ^[0-9]+$ && -n ${IP_OF[$c]} ]] || fail "$c: API port [${PORT_OF[$c]}], IP [${IP_OF[$c]}]"
done
for port in "$EDGE_API" "${PORT_OF[@]}"; do
    wait_until 30 "HTTP API on 127.0.0.1:$port" api "$port" /api/v1/versions
done
for c in $(running redis) $(running edge) $(running nginx-hls) "${ORIGIN_CONTAINERS[@]}"; do
    wait_until 30 "healthcheck of $c" podman healthcheck run "$c"
done
ok "APIs answer (edge $EDGE_API, origins ${PORT_OF[*]}), healthchecks pass"

step "membership: every origin is in the directory with its container IP"
FIRST=${ORIGIN_CONTAINERS[0]}
wait_until 20 "$ORIGINS origins in the directory" cluster_py members "${PORT_OF[$FIRST]}" "${IP_OF[@]}"
ok "$ORIGINS origins registered (seen by $FIRST's /api/v1/clusters) at their container IPs: ${IP_OF[*]}"

step "publish through the edge (ffmpeg in a retry loop): the stream lands on exactly one origin"
setsid bash -c 'while :; do "$@"; sleep 1; done' encoder "${ENCODER[@]}" "rtmp://127.0.0.1:$EDGE_RTMP/$STREAM" \
    </dev/null >"$WORK/publisher.log" 2>&1 &
PUBLISHER=$!
wait_until 30 "one origin owns the stream" cluster_py owner "$STREAM" "$EDGE_API" "${PORT_OF[@]}"
read -r OWNER_PORT OWNER_ID <"$WORK/last.out"
for c in "${ORIGIN_CONTAINERS[@]}"; do [[ ${PORT_OF[$c]} == "$OWNER_PORT" ]] && OWNER=$c; done
wait_until 20 "the stream grows on its owner" grows "$OWNER_PORT"
ok "the stream is on exactly one origin, $OWNER ($OWNER_ID), as the directory says"
check "RTMP via the edge plays H.264 + AAC (pulled from the owner)" plays "rtmp://127.0.0.1:$EDGE_RTMP/$STREAM"
check "HTTP-FLV via the edge plays H.264 + AAC" plays "http://127.0.0.1:$EDGE_HTTP/$STREAM.flv"
M3U8=http://127.0.0.1:$HLS/$(m3u8_path)
wait_until 40 "HLS playlist with segments via nginx" segments "$M3U8"
check "HLS via nginx plays H.264 + AAC (from whichever origin nginx asks)" plays "$M3U8"
non_owner_playlist() {  # a non-owner origin's own http_server answers the playlist (from the owner)
    local c
    for c in "${ORIGIN_CONTAINERS[@]}"; do
        [[ $c == "$OWNER" ]] && continue
        podman exec "$c" python -c 'import sys, urllib.request
body = urllib.request.urlopen("http://127.0.0.1:8080/" + sys.argv[1], timeout=5).read().decode()
assert "#EXTINF" in body, body' "$(m3u8_path)" || { echo "from $c"; return 1; }
    done
}
check "every other origin serves the stream's HLS playlist (proxied from the owner)" non_owner_playlist

step "stop the owning origin ($OWNER): the stream comes back on another, the edge player stays"
ffmpeg -hide_banner -nostdin -loglevel warning -rw_timeout 20000000 -i "http://127.0.0.1:$EDGE_HTTP/$STREAM.flv" \
    -c copy -f flv -y "$WORK/player.flv" </dev/null >"$WORK/player.log" 2>&1 &
PLAYER=$!
wait_until 20 "the edge player receives" file_grows "$WORK/player.flv"
T_STOP=$SECONDS
podman stop -t 2 "$OWNER" >/dev/null 2>&1    # SIGQUIT, SIGKILL after 2 s of draining
SURVIVORS=() SURVIVOR_IPS=()
for c in "${ORIGIN_CONTAINERS[@]}"; do
    [[ $c == "$OWNER" ]] || { SURVIVORS+=("${PORT_OF[$c]}"); SURVIVOR_IPS+=("${IP_OF[$c]}"); }
done
wait_until 30 "the stopped origin leaves the directory" cluster_py members "${SURVIVORS[0]}" "${SURVIVOR_IPS[@]}"
wait_until 40 "another origin owns the stream" cluster_py owner "$STREAM" "$EDGE_API" "${SURVIVORS[@]}"
read -r NEW_PORT NEW_ID <"$WORK/last.out"
wait_until 20 "the stream grows on its new owner" grows "$NEW_PORT"
ok "the encoder's stream is on $NEW_ID $((SECONDS - T_STOP)) s after the stop; the stopped origin left the directory"
wait_until 30 "the edge player receives again" file_grows "$WORK/player.flv"
kill -0 "$PLAYER" 2>/dev/null || fail "the edge's HTTP-FLV player was disconnected: $(tail -2 "$WORK/player.log")"
# the player's own view of the timestamps: ffmpeg warns of any DTS that goes back (loglevel warning)
! grep -i "monoton" "$WORK/player.log" >&2 || fail "the edge player saw timestamps go back (above)"
ok "the HTTP-FLV player on the edge stayed connected, receives from the new owner, timestamps monotonic"
check "a new RTMP player via the edge plays (from the new owner)" plays "rtmp://127.0.0.1:$EDGE_RTMP/$STREAM"
seen=$(segments "$M3U8") || seen=""
wait_until 40 "the HLS playlist via nginx lists a new segment (from the new owner)" new_segment "$M3U8" "$seen"
check "HLS via nginx plays from the new owner" plays "$M3U8"
end_phase
fi
