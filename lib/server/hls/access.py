"""Which vhosts' `security` rules guard an HLS file served by srsedge's own HTTP server.

Rules (this module owns them):
- A file with an HLS extension (HLS_EXTENSIONS) under the `hls_path` of an HLS-enabled origin
  vhost belongs to that vhost when its path relative to hls_path fits the vhost's
  hls_m3u8_file or hls_ts_file template: [vhost] is the vhost's own name, [app] any path,
  every other variable any part of one name; the template's extension may be any HLS one
  (a segment template also names fMP4 segments).
- A file can fit several vhosts (templates without [vhost] and one hls_path): then every one
  of them must allow `play` from the client's address (lib/server/core/security.py), since any
  of them may have written it. A file that fits no vhost is served without a check.
- The vhost is found from the file, never from the Host header: a player cannot pick the
  vhost whose rules apply. The matchers are built once per config object (a reload builds
  new ones); each request costs one realpath and a regex per HLS vhost.
"""
import os
import re

from lib.server.core import security

HLS_EXTENSIONS = (".m3u8", ".ts", ".m4s", ".mp4", ".aac", ".key")
_VARIABLE = re.compile(r"\[(vhost|app|stream|seq|timestamp|2006|01|02|15|04|05|999)\]")


def template_regex(template, vhost, named=False):
    """A regex for the relative paths `template` makes for `vhost` (extension free); `named`:
    [app] and [stream] are the groups `app` and `stream` (a repeat must match the same)."""
    stem, ext = os.path.splitext(template)
    parts, pos, seen = [], 0, set()
    for m in _VARIABLE.finditer(stem):
        parts.append(re.escape(stem[pos:m.start()]))
        name = m.group(1)
        any_part = ".+" if name == "app" else "[^/]*"
        if named and name in ("app", "stream"):
            any_part = f"(?P={name})" if name in seen else f"(?P<{name}>{any_part})"
            seen.add(name)
        parts.append(re.escape(vhost) if name == "vhost" else any_part)
        pos = m.end()
    parts.append(re.escape(stem[pos:]))
    suffix = r"\.[^/.]+" if ext else ""
    return "".join(parts) + suffix


class HlsVhostRules:
    """Built from one config: (real hls_path, regex, vhost conf) per HLS-enabled vhost."""

    def __init__(self, config):
        self.config = config
        self.rules = []
        for vhost in config.vhosts.values():
            if not vhost.enabled or vhost.is_edge or not vhost.hls.enabled:
                continue
            hls = vhost.hls
            pattern = "|".join(f"(?:{template_regex(t, vhost.name)})"
                               for t in (hls.hls_m3u8_file, hls.hls_ts_file))
            self.rules.append((os.path.realpath(hls.hls_path), re.compile(pattern), vhost))

    def owners(self, real_path):
        """The vhost confs that may have written the file at `real_path`."""
        if not real_path.endswith(HLS_EXTENSIONS):
            return []
        found = []
        for root, regex, vhost in self.rules:
            if real_path.startswith(root + os.sep):
                rel = real_path[len(root) + 1:].replace(os.sep, "/")
                if regex.fullmatch(rel):
                    found.append(vhost)
        return found

    def streams_of(self, real_path):
        """[(vhost conf, app, stream)] whose HLS files the file at `real_path` may be (the
        origin cluster asks the owner of such a stream for a file it does not have)."""
        found = []
        if not real_path.endswith(HLS_EXTENSIONS):
            return found
        for root, _, vhost in self.rules:
            if not real_path.startswith(root + os.sep):
                continue
            rel = real_path[len(root) + 1:].replace(os.sep, "/")
            for template in (vhost.hls.hls_m3u8_file, vhost.hls.hls_ts_file):
                m = re.fullmatch(template_regex(template, vhost.name, named=True), rel)
                if m is not None and m.groupdict().get("app") and m.groupdict().get("stream"):
                    found.append((vhost, m.group("app"), m.group("stream")))
        return found

    def check_play(self, real_path, ip):
        """(allowed, reason) for playing the file at `real_path` from `ip`."""
        for vhost in self.owners(real_path):
            ok, reason = security.check(vhost.security, "play", ip)
            if not ok:
                return False, f"vhost {vhost.name}: {reason}"
        return True, ""


class HlsAccess:
    """The server's current HlsVhostRules, rebuilt when the config object changes."""

    def __init__(self, server):
        self.server = server
        self._rules = None

    def rules(self):
        config = self.server.config
        if self._rules is None or self._rules.config is not config:
            self._rules = HlsVhostRules(config)
        return self._rules

    def check_play(self, real_path, ip):
        return self.rules().check_play(real_path, ip)
