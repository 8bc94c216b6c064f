"""The origin cluster's directory rules (issue 21), sans-IO: which streams this origin owns in the
shared directory (Redis), when a lease is claimed, renewed, re-claimed or given up, and when this
origin's membership is renewed. lib/server/cluster/ performs the actions against Redis and feeds
the answers back; nothing here touches a socket or reads a clock (`now`: seconds, monotonic).

Rules (this module owns them):
- A publish is accepted only once the directory answered that this origin owns the stream
  (`Claim` is an atomic "take it if free or already mine" in the store). Owned elsewhere: the
  publish is refused as a duplicate. Store unreachable: refused ("uniqueness for what is new").
- Leases are renewed every `renew_interval` (a third of the lease TTL) with the same claim, so a
  store that restarted empty is re-claimed by the first renewal, and a lease that another origin
  took meanwhile is seen at once: that stream's copy here is stopped (`StopStream`).
- The store failing never stops what is live here ("availability first for what is live"):
  held streams stay held, unconfirmed. Renewals (claims of every held key) are retried every
  `retry_interval`, so the first one that reaches the store re-claims them all. So two live copies of a stream
  exist only while this origin is cut off from the store, and never longer than one retry
  interval after it reaches the store again.
- Unpublish releases the lease (only if it is still ours: the store checks). With the store
  down the release is skipped; the lease then expires by its TTL.
- Membership: `Register` is asked at start and every `renew_interval`; `Deregister` at stop.
- The driver performs actions in order, one at a time (one greenlet owns the store's
  connection), so no two store calls of this book overlap.
- A call that does not fit (an answer for a key never asked) is ignored with a reason in
  `ignored`, counted; it never changes what is held.
"""
from dataclasses import dataclass, field

PENDING, HELD = "pending", "held"


@dataclass(frozen=True)
class Claim:
    """Atomically take each key if free or already ours; answer each key's owner afterwards."""
    keys: tuple


@dataclass(frozen=True)
class Release:
    """Delete the key's lease if it is still ours."""
    key: str


@dataclass(frozen=True)
class Register:
    """Write (renew) this origin's membership record with its current load."""


@dataclass(frozen=True)
class Deregister:
    """Remove this origin's membership record (a clean stop)."""


@dataclass(frozen=True)
class Answer:
    """Answer a waiting publish: ok, or refused with `reason` (`owner` when owned elsewhere)."""
    key: str
    ok: bool
    reason: str = ""
    owner: str = ""


@dataclass(frozen=True)
class StopStream:
    """Our copy of `key` lost its lease to `owner`: stop serving it here (kick the publisher)."""
    key: str
    owner: str


@dataclass(frozen=True)
class StoreState:
    """The store became reachable (`up`) or unreachable: log it once per transition."""
    up: bool
    reason: str


@dataclass
class _Lease:
    state: str
    since: float
    confirmed: float = None          # when the store last said it is ours


@dataclass
class LeaseBook:
    origin_id: str
    lease_ttl: float
    now: float
    retry_interval: float = 1.0
    leases: dict = field(default_factory=dict)
    store_up: bool = True
    actions: list = field(default_factory=list)
    ignored: int = 0
    last_ignored: str = ""
    stopped: bool = False

    def __post_init__(self):
        self.renew_interval = self.lease_ttl / 3.0
        self.next_renew = self.now          # the first timer registers this origin

    # ------------------------------------------------------------ questions
    def take_actions(self):
        actions, self.actions = self.actions, []
        return actions

    def held(self):
        return sorted(k for k, lease in self.leases.items() if lease.state == HELD)

    def owns(self, key):
        lease = self.leases.get(key)
        return lease is not None and lease.state == HELD

    def get_timer(self):
        return None if self.stopped else self.next_renew

    # ------------------------------------------------------------ events
    def publish_requested(self, key, now):
        """A publisher wants `key` here: ask the store (or refuse at once when it is down)."""
        if self.stopped:
            self.actions.append(Answer(key, False, "origin is stopping"))
            return
        lease = self.leases.get(key)
        if lease is not None:
            # a republish of a stream we hold (its publisher's unpublish not yet seen) or a
            # second claim while one is pending: the source's own duplicate check decides
            if lease.state == HELD:
                self.actions.append(Answer(key, True))
            else:
                self.actions.append(Answer(key, False, "a publish of this stream is pending"))
            return
        if not self.store_up:
            self.actions.append(Answer(key, False, "directory unreachable"))
            return
        self.leases[key] = _Lease(PENDING, now)
        self.actions.append(Claim((key,)))

    def claim_answered(self, owners, now):
        """The store's answer to a Claim: {key: owner id after the claim}."""
        self._store_reached(now)
        for key, owner in owners.items():
            lease = self.leases.get(key)
            if lease is None:
                self._ignore(f"answer for {key}, which is neither held nor pending")
                continue
            if owner == self.origin_id:
                lease.confirmed = now
                if lease.state == PENDING:
                    lease.state, lease.since = HELD, now
                    self.actions.append(Answer(key, True))
                continue
            del self.leases[key]
            if lease.state == PENDING:
                self.actions.append(Answer(key, False, f"already publishing on {owner}", owner))
            else:
                self.actions.append(StopStream(key, owner))

    def store_failed(self, reason, now):
        """A store operation failed (connection refused, timeout, error reply)."""
        for key in [k for k, lease in self.leases.items() if lease.state == PENDING]:
            del self.leases[key]
            self.actions.append(Answer(key, False, f"directory unreachable: {reason}"))
        if self.store_up:
            self.store_up = False
            self.actions.append(StoreState(False, reason))
        self.next_renew = now + self.retry_interval

    def unpublished(self, key, now):
        """The stream's publisher left (or its copy was stopped): give the lease back."""
        lease = self.leases.pop(key, None)
        if lease is not None and lease.state == HELD and self.store_up:
            self.actions.append(Release(key))

    def handle_timer(self, now):
        """Renewal (membership + every held lease) when due."""
        if self.stopped or now < self.next_renew:
            return
        self.next_renew = now + (self.renew_interval if self.store_up else self.retry_interval)
        held = tuple(self.held())
        if held:                    # after an outage this is the re-claim (retry_interval)
            self.actions.append(Claim(held))
        self.actions.append(Register())

    def registered(self, now):
        """A Register (or any store call) succeeded."""
        self._store_reached(now)

    def stop(self, now):
        """Clean stop: release what we hold and leave the membership."""
        if self.stopped:
            return
        self.stopped = True
        if self.store_up:
            self.actions += [Release(k) for k in self.held()]
            self.actions.append(Deregister())
        self.leases.clear()

    # ------------------------------------------------------------ internals
    def _store_reached(self, now):
        if self.store_up:
            return
        self.store_up = True
        self.actions.append(StoreState(True, "reachable again"))
        self.next_renew = now + self.renew_interval

    def _ignore(self, why):
        self.ignored += 1
        self.last_ignored = why
