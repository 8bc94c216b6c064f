"""The edge link state machine, as an explicit table (no gevent, no IO).

Rules: one `EdgeState` per edge stream link. States: init, pulling (connecting to / waiting for
media from an origin), connected (media flowing), publishing (a forwarder carries a publish to
the origin), stopping (no player left; the link lingers for the grace period). A trigger not in
the table for the current state raises EdgeStateError: the caller has a bug.

The table is what prevents SRS's #2215/#2911 race: a player arriving while the link is
`stopping` re-attaches (`play` from stopping goes back to pulling/connected), so a new player
is never refused because the link is on its way down.
"""


class EdgeStateError(Exception):
    pass


TRANSITIONS = {
    ("init", "play"): "pulling",             # first player: start pulling
    ("pulling", "media"): "connected",       # the origin sends media
    ("pulling", "fail"): "pulling",          # origin failed: next origin, players stay
    ("connected", "fail"): "pulling",
    ("connected", "media"): "connected",
    ("pulling", "idle"): "stopping",         # last player left: grace period starts
    ("connected", "idle"): "stopping",
    ("stopping", "play"): "connected",       # a player came back in the grace period
    ("stopping", "fail"): "stopping",
    ("stopping", "media"): "stopping",
    ("stopping", "stopped"): "init",         # grace period over: link closed
    ("pulling", "not_found"): "init",        # no origin has the stream: players told, link gone
    ("init", "publish"): "publishing",       # a publish through the edge
    ("publishing", "fail"): "publishing",    # forwarder moves to the next origin
    ("publishing", "unpublish"): "init",
    ("publishing", "not_found"): "init",     # every origin refused: encoder disconnected
    ("stopping", "not_found"): "init",
}
# server shutdown or reload dropping the vhost: from anywhere back to init
for _state in ("init", "pulling", "connected", "publishing", "stopping"):
    TRANSITIONS[(_state, "shutdown")] = "init"


class EdgeState:
    __slots__ = ("state", "since", "history")

    def __init__(self, now=0.0):
        self.state = "init"
        self.since = now
        self.history = []

    def fire(self, trigger, now=0.0):
        nxt = TRANSITIONS.get((self.state, trigger))
        if nxt is None:
            raise EdgeStateError(f"edge: {trigger} not allowed in state {self.state}")
        if nxt != self.state:
            self.since = now
        self.history.append((self.state, trigger, nxt))
        if len(self.history) > 32:
            del self.history[:-32]
        self.state = nxt
        return nxt

    def can(self, trigger):
        return (self.state, trigger) in TRANSITIONS
