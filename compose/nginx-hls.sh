#!/bin/sh
# nginx-hls container entry (compose and deploy/k8s): nginx's HLS cache tier in the foreground.
#   nginx-hls.sh CONF_DIR        (CONF_DIR holds nginx.conf, listen.conf and upstream.conf)
#
# Rules:
# - The three files are copied into nginx's prefix /srv/nginx/ (state in /srv/nginx/var), so the
#   mounted ones stay read-only.
# - A `resolver` line in upstream.conf (names resolved per request) gets this container's DNS
#   server from /etc/resolv.conf: Docker's embedded DNS is 127.0.0.11, podman's aardvark-dns
#   the network's gateway, Kubernetes' the cluster DNS Service; one config serves all three.
# - With NGINX_HLS_DNS_SEARCH=1 (Kubernetes), the bare host names of `set $hls_...` lines are
#   qualified with the first `search` domain: nginx's resolver does not use search domains.
set -eu
CONF_DIR=${1:?usage: nginx-hls.sh CONF_DIR}
PREFIX=/srv/nginx
ns=$(awk '/^nameserver/ {print $2; exit}' /etc/resolv.conf)
case $ns in *:*) ns="[$ns]" ;; esac            # an IPv6 address, as nginx writes it
search=$(awk '/^search/ {print $2; exit}' /etc/resolv.conf)
mkdir -p "$PREFIX/var"
cp "$CONF_DIR/nginx.conf" "$CONF_DIR/listen.conf" "$PREFIX/"
sed -e "s/^\([[:space:]]*resolver[[:space:]]\{1,\}\)[^[:space:];]\{1,\}/\1$ns/" "$CONF_DIR/upstream.conf" >"$PREFIX/upstream.conf"
if [ "${NGINX_HLS_DNS_SEARCH:-0}" = 1 ] && [ -n "$search" ]; then
    sed -i -e "s/^\([[:space:]]*set[[:space:]]\{1,\}\$hls_[a-z_]*[[:space:]]\{1,\}\)\([a-z0-9-]\{1,\}\):/\1\2.$search:/" "$PREFIX/upstream.conf"
fi
exec nginx -p "$PREFIX/" -c nginx.conf
