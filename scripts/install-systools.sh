#!/usr/bin/env bash
# Installs the system tools srsedge's make targets use, with apt-get, only when they are missing.
# Needs root (or sudo).
#   install-systools.sh demo    ffmpeg/ffprobe (the demo's publisher) and nginx (its HLS cache tier)
#   install-systools.sh [test]  the demo's tools, plus nginx's RTMP module (interop tests) and
#                               iproute2 (network-namespace fault tests), chromium and npm (browser
#                               tests, www/ players), rtmpdump, a C compiler and Python's headers
#                               (the C chunk reader): what `make test` needs
set -euo pipefail
profile=${1:-test}
case $profile in demo|test) ;; *) echo "usage: $0 [demo|test]" >&2; exit 2 ;; esac
need=()
command -v ffmpeg >/dev/null 2>&1 || need+=(ffmpeg)
command -v ffprobe >/dev/null 2>&1 || need+=(ffmpeg)
command -v nginx >/dev/null 2>&1 || need+=(nginx)
if [[ $profile == test ]]; then
    [ -e /usr/lib/nginx/modules/ngx_rtmp_module.so ] || need+=(libnginx-mod-rtmp)
    command -v ip >/dev/null 2>&1 || need+=(iproute2)          # network-namespace fault tests
    [ -x /usr/bin/chromium ] || need+=(chromium)                # tests/test_browser.py (headless)
    command -v npm >/dev/null 2>&1 || need+=(npm)               # www/: the players' JS (npm ci)
    command -v redis-server >/dev/null 2>&1 || need+=(redis-server)  # the origin cluster's directory (tests start their own)
    command -v rtmpdump >/dev/null 2>&1 || need+=(rtmpdump)     # play duration (-B), an outside RTMP client
    command -v cc >/dev/null 2>&1 || need+=(gcc)                # the C chunk reader (scripts/build_accel.py)
    py=.venv/bin/python; [ -x "$py" ] || py=python3             # ... and the headers of the venv's Python
    "$py" -c 'import os, sys, sysconfig; sys.exit(not os.path.exists(os.path.join(sysconfig.get_paths()["include"], "Python.h")))' \
        || need+=(python3-dev)
fi
if [ ${#need[@]} -eq 0 ]; then exit 0; fi
SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO=sudo; fi
echo "installing system packages: ${need[*]}"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
