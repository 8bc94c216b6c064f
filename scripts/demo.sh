#!/usr/bin/env bash
# make demo: the cluster of compose/docker-compose.yml as local processes on loopback: origin
# (forwards to the backup), backup origin, edge (lists both origins), the nginx HLS cache, and an
# ffmpeg test publisher (testsrc2 + sine, H.264/AAC) on the origin. Prints the URLs to play;
# Ctrl-C stops everything.
#
# Rules:
# - Configs conf/demo-{origin,backup,edge}.conf (their own ports, so the demo runs beside
#   `make run`); pids, logs and HLS files under objs/demo/. The URLs' ports are read from them.
# - nginx runs through nginx/run.sh with the port files in objs/demo/nginx/ (pointing at the two
#   origins' http_server) and its runtime (logs, cache) in a fresh `mktemp -d` directory in /tmp
#   that nginx's workers can enter wherever the checkout is (see nginx/README.md); it is removed
#   when the demo stops.
# - HLS is per vhost ([vhost] in hls_m3u8_file): the default vhost's playlist is
#   /__defaultVhost__/live/livestream.m3u8.
# - The servers are started and stopped by scripts/srsedge-ctl (pid files); nginx and ffmpeg
#   are this script's children in a session of their own (so a terminal's Ctrl-C reaches only
#   this script, which stops them in order), stopped by pid. A start failure, or any process
#   dying later, stops everything and exits 1; Ctrl-C (SIGINT), SIGTERM or SIGHUP stop
#   everything and exit 0 (a stop asked for is a success).
# - DEMO_DURATION=N stops the demo after N seconds (tests); default 0: run until Ctrl-C.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
PY=${SRSEDGE_PYTHON:-$ROOT/.venv/bin/python}
CTL=scripts/srsedge-ctl
DEMO=objs/demo
NGINX_PORT=18088
STREAM=live/livestream
DURATION=${DEMO_DURATION:-0}
SERVERS=(backup origin edge)        # start order: the forward target first, the edge last
STARTED=()                          # servers started by this run
NGINX_RUNTIME=                      # nginx's prefix (logs, cache), removed at stop
declare -A PIDS=()                  # name -> pid of everything running

die() { echo "demo: $*" >&2; exit 1; }

stop_all() {
    trap - EXIT INT TERM HUP
    echo "demo: stopping"
    local name pid i
    for name in ffmpeg nginx; do
        pid=${PIDS[$name]:-}
        [[ -n $pid ]] || continue
        kill "$pid" 2>/dev/null || true
        for ((i = 0; i < 50; i++)); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    for ((i = ${#STARTED[@]} - 1; i >= 0; i--)); do
        "$CTL" stop "conf/demo-${STARTED[i]}.conf" || true
    done
    [[ -z $NGINX_RUNTIME ]] || rm -rf "$NGINX_RUNTIME"
    echo "demo: stopped"
}
trap stop_all EXIT
trap 'exit 0' INT TERM HUP

ports() {  # ports NAME -> "RTMP_PORT HTTP_PORT API_PORT" of conf/demo-NAME.conf
    "$PY" -c 'import sys; from lib.config import load_config
c = load_config(sys.argv[1]); print(c.listen[0][1], c.http_server.listen[1], c.http_api.listen[1])' "conf/demo-$1.conf"
}

wait_port() {  # wait_port NAME PORT: until something accepts on 127.0.0.1:PORT
    local i
    for ((i = 0; i < 100; i++)); do
        kill -0 "${PIDS[$1]}" 2>/dev/null || die "$1 exited while starting, see its log in $DEMO/"
        if (exec 3<>"/dev/tcp/127.0.0.1/$2") 2>/dev/null; then return 0; fi
        sleep 0.1
    done
    die "$1 does not accept on port $2 after 10s"
}

command -v ffmpeg >/dev/null && command -v nginx >/dev/null || die "needs ffmpeg and nginx: run 'make setup'"
[[ -x $PY ]] || die "no $PY: run 'make setup'"
read -r ORIGIN_RTMP ORIGIN_HTTP ORIGIN_API < <(ports origin)
read -r _ BACKUP_HTTP BACKUP_API < <(ports backup)
read -r EDGE_RTMP EDGE_HTTP EDGE_API < <(ports edge)
mkdir -p "$DEMO"

for name in "${SERVERS[@]}"; do
    "$CTL" start "conf/demo-$name.conf" ||
        die "$name did not start (if a previous demo is still running: $CTL stop conf/demo-$name.conf)"
    STARTED+=("$name")
    PIDS[$name]=$(cat "$DEMO/$name.pid")
done

rm -rf "$DEMO/nginx" && mkdir -p "$DEMO/nginx"
echo "listen 127.0.0.1:$NGINX_PORT;" >"$DEMO/nginx/listen.conf"
printf 'set $hls_origin 127.0.0.1:%s;\nset $hls_backup 127.0.0.1:%s;\n' \
    "$ORIGIN_HTTP" "$BACKUP_HTTP" >"$DEMO/nginx/upstream.conf"
NGINX_RUNTIME=$(mktemp -d /tmp/srsedge-demo-nginx.XXXXXX)
chmod 0711 "$NGINX_RUNTIME"
SRSEDGE_NGINX_RUNTIME=$NGINX_RUNTIME setsid nginx/run.sh "$DEMO/nginx" </dev/null >"$DEMO/nginx.log" 2>&1 &
PIDS[nginx]=$!
wait_port nginx "$NGINX_PORT"

setsid ffmpeg -hide_banner -nostdin -loglevel warning -re \
    -f lavfi -i testsrc2=size=640x360:rate=25 -f lavfi -i sine=frequency=440:sample_rate=44100 \
    -c:v libx264 -preset veryfast -tune zerolatency -g 50 -keyint_min 50 -sc_threshold 0 \
    -pix_fmt yuv420p -b:v 800k -c:a aac -b:a 64k \
    -f flv "rtmp://127.0.0.1:$ORIGIN_RTMP/$STREAM" </dev/null >"$DEMO/ffmpeg.log" 2>&1 &
PIDS[ffmpeg]=$!
sleep 2
kill -0 "${PIDS[ffmpeg]}" 2>/dev/null || die "the publisher exited, see $DEMO/ffmpeg.log"

cat <<EOF

srsedge demo is running: ffmpeg publishes rtmp://127.0.0.1:$ORIGIN_RTMP/$STREAM to the origin,
which forwards it to the backup origin. Play it with ffplay, VLC or ffprobe:

  RTMP (edge):        rtmp://127.0.0.1:$EDGE_RTMP/$STREAM
  HTTP-FLV (edge):    http://127.0.0.1:$EDGE_HTTP/$STREAM.flv
  HTTP-FLV (origin):  http://127.0.0.1:$ORIGIN_HTTP/$STREAM.flv
  HLS (nginx cache):  http://127.0.0.1:$NGINX_PORT/__defaultVhost__/$STREAM.m3u8   (after the first fragments)

HTTP APIs of the three servers, see docs/api.md:
  origin:  http://127.0.0.1:$ORIGIN_API/api/v1/streams
  backup:  http://127.0.0.1:$BACKUP_API/api/v1/streams
  edge:    http://127.0.0.1:$EDGE_API/api/v1/streams

pids: $(for name in "${!PIDS[@]}"; do printf '%s=%s ' "$name" "${PIDS[$name]}"; done)
logs: $DEMO/*.log, $NGINX_RUNTIME/var/access.log. Ctrl-C stops everything.
EOF

while ((DURATION == 0 || SECONDS < DURATION)); do
    for name in "${!PIDS[@]}"; do
        kill -0 "${PIDS[$name]}" 2>/dev/null || die "$name (pid ${PIDS[$name]}) exited, see its log in $DEMO/"
    done
    sleep 1
done
