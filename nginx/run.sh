#!/usr/bin/env bash
# nginx/run.sh: run the nginx HLS cache tier in the foreground (-t: only test its config).
#
#   nginx/run.sh [-t] [CONF_DIR]
#
# CONF_DIR holds listen.conf and upstream.conf (default: this directory; the compose variant's
# are in compose/). nginx.conf always comes from this directory.
#
# Rules:
# - nginx runs with a runtime prefix RUNTIME that holds copies of nginx.conf, listen.conf and
#   upstream.conf; everything nginx writes (pid, logs, cache, temp files) goes to RUNTIME/var.
#   RUNTIME is $SRSEDGE_NGINX_RUNTIME when set, else objs/nginx-tier in the checkout.
# - Started as root, nginx runs its workers as `nobody`, and they must enter RUNTIME/var for
#   the cache. A checkout under /root or in a `mktemp -d` dir (0700) is closed to them; then,
#   when RUNTIME was not given, a fresh `mktemp -d /tmp/srsedge-nginx.XXXXXX` (mode 0711: others
#   may enter, not list) is used instead, and said. Workers stay unprivileged (no `user root`).
# - Before nginx starts, the workers' access to RUNTIME/var is checked (as root, with runuser
#   as `nobody`); when they cannot enter it, this script says why and exits 1 instead of
#   starting a tier whose every cache access would fail.
# - The nginx process replaces this script (exec): its pid is this script's pid.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
WORKER_USER=nobody                  # nginx's default `user`; nginx.conf sets none

die() { echo "nginx/run.sh: $*" >&2; exit 1; }

TEST=()
if [[ ${1:-} == -t ]]; then TEST=(-t); shift; fi
CONF_DIR=$(cd "${1:-$HERE}" && pwd) || die "no directory ${1:-}"
for f in listen.conf upstream.conf; do
    [[ -f $CONF_DIR/$f ]] || die "no $CONF_DIR/$f"
done

worker_can_enter() {  # worker_can_enter DIR: can nginx's workers reach DIR?
    ((EUID != 0)) && return 0       # workers run as this user
    if ! command -v runuser >/dev/null; then
        echo "nginx/run.sh: no runuser, not checking $WORKER_USER's access to $1" >&2
        return 0
    fi
    runuser -u "$WORKER_USER" -- test -x "$1" 2>/dev/null
}

NGINX=$(command -v nginx || echo /usr/sbin/nginx)
[[ -x $NGINX ]] || die "nginx is not installed (make setup installs it)"

if [[ -n ${SRSEDGE_NGINX_RUNTIME:-} ]]; then
    RUNTIME=$SRSEDGE_NGINX_RUNTIME
    mkdir -p "$RUNTIME/var"
    RUNTIME=$(cd "$RUNTIME" && pwd)
    worker_can_enter "$RUNTIME/var" ||
        die "nginx's workers (user $WORKER_USER) cannot enter $RUNTIME/var, so they could not" \
            "use their cache: every parent directory needs x for them (chmod o+x), or unset" \
            "SRSEDGE_NGINX_RUNTIME to use a fresh directory in /tmp"
else
    RUNTIME=$(cd "$HERE/.." && pwd)/objs/nginx-tier
    mkdir -p "$RUNTIME/var"
    if ! worker_can_enter "$RUNTIME/var"; then
        echo "nginx/run.sh: nginx's workers (user $WORKER_USER) cannot enter $RUNTIME" >&2
        RUNTIME=$(mktemp -d /tmp/srsedge-nginx.XXXXXX)
        chmod 0711 "$RUNTIME"
        mkdir -p "$RUNTIME/var"
        worker_can_enter "$RUNTIME/var" || die "nor $RUNTIME/var: is /tmp closed to them?"
    fi
fi

cp "$HERE/nginx.conf" "$RUNTIME/nginx.conf"
cp "$CONF_DIR/listen.conf" "$CONF_DIR/upstream.conf" "$RUNTIME/"
echo "nginx/run.sh: prefix $RUNTIME (logs and cache in $RUNTIME/var)" >&2
exec "$NGINX" "${TEST[@]}" -p "$RUNTIME/" -c nginx.conf
