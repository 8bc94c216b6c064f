"""Anti-hotlinking (`vhost.refer`), SRS's SrsRefer: is a page allowed to use this stream?

Rules (as SRS's srs_app_refer.cpp):
- The page's domain is its URL without "scheme://", without the path and without ":port".
- A refer entry matches when its first occurrence in the domain is at the domain's end
  ("github.com" matches "www.github.com" and "github.com"; as in SRS it also matches
  "evilgithub.com": write ".github.com" to exclude that).
- `refer { enabled on; all A B; play C; publish D; }`: `all` is checked for every client first,
  then `play` for players and `publish` for publishers; a list that is not configured allows
  everyone, a configured list must match (an empty pageUrl matches nothing).
- RTMP checks the connect's `pageUrl`; HTTP-FLV/TS check the `Referer` header (SRS does not check
  HTTP players at all; we do, so a refer list also protects the HTTP mounts).
Pure logic: no I/O, no logging.
"""


def page_domain(page_url):
    """'http://www.github.com:8080/a/b' -> 'www.github.com'."""
    domain = page_url
    pos = domain.find("://")
    if pos >= 0:
        domain = domain[pos + 3:]
    domain = domain.split("/", 1)[0]
    return domain.split(":", 1)[0]


def allowed(page_url, refers):
    """True when `refers` (a list of domains; empty or None: not configured) allows the page."""
    if not refers:
        return True
    domain = page_domain(page_url or "")
    # SRS: the FIRST occurrence of the entry must be at the end of the domain
    return any(ref and ref in domain and domain.find(ref) == len(domain) - len(ref)
               for ref in refers)


def check(refer_conf, action, page_url):
    """(ok, reason) for `action` in ("all", "play", "publish") under a vhost's Refer section."""
    if not refer_conf.enabled:
        return True, ""
    refers = getattr(refer_conf, action)
    if allowed(page_url, refers):
        return True, ""
    return False, f"refer {action}: page {page_url!r} is not in {' '.join(refers)}"
