"""`security { enabled on; allow|deny publish|play all|IP|CIDR; }` as SRS checks it.

Rules (SRS's SrsSecurity): when enabled, a client must match at least one `allow` rule for its
action (publish or play), and then must match no `deny` rule for it. `all` matches every
address; an IP matches itself; a CIDR matches its network (IPv4 or IPv6, an IPv4-mapped IPv6
peer counts as IPv4). Disabled: everything is allowed.
"""
import ipaddress


def _address(ip):
    try:
        addr = ipaddress.ip_address(ip)
    except ValueError:
        return None
    if addr.version == 6 and addr.ipv4_mapped is not None:
        return addr.ipv4_mapped
    return addr


def _matches(spec, addr, ip):
    if spec == "all":
        return True
    if spec == ip:
        return True
    if addr is None:
        return False
    try:
        if "/" in spec:
            return addr in ipaddress.ip_network(spec, strict=False)
        return addr == ipaddress.ip_address(spec)
    except (ValueError, TypeError):
        return False


def check(security, action, ip):
    """(allowed, reason) for `action` ("publish"/"play") from `ip`."""
    if security is None or not security.enabled:
        return True, ""
    addr = _address(ip)
    rules = [(kind, spec) for kind, act, spec in security.rules if act == action]
    if not any(kind == "allow" and _matches(spec, addr, ip) for kind, spec in rules):
        return False, f"security: {action} from {ip} not allowed by any allow rule"
    for kind, spec in rules:
        if kind == "deny" and _matches(spec, addr, ip):
            return False, f"security: {action} from {ip} denied by 'deny {action} {spec}'"
    return True, ""
