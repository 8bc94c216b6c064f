#!/usr/bin/env bash
# Installs the system tools the tests and benchmarks use (ffmpeg/ffprobe, nginx with the RTMP
# module for interop, iproute2 for the namespace tests, chromium and npm for the browser tests)
# with apt-get, only when they are missing. Needs root (or sudo).
set -euo pipefail
need=()
command -v ffmpeg >/dev/null 2>&1 || need+=(ffmpeg)
command -v ffprobe >/dev/null 2>&1 || need+=(ffmpeg)
command -v nginx >/dev/null 2>&1 || need+=(nginx)
[ -e /usr/lib/nginx/modules/ngx_rtmp_module.so ] || need+=(libnginx-mod-rtmp)
command -v ip >/dev/null 2>&1 || need+=(iproute2)          # network-namespace fault tests
[ -x /usr/bin/chromium ] || need+=(chromium)                # tests/test_browser.py (headless)
command -v npm >/dev/null 2>&1 || need+=(npm)               # www/: the players' JS (npm ci)
command -v rtmpdump >/dev/null 2>&1 || need+=(rtmpdump)      # play duration (-B), an outside RTMP client
if [ ${#need[@]} -eq 0 ]; then exit 0; fi
SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO=sudo; fi
echo "installing system packages: ${need[*]}"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
