"""What every link state machine shares (lib/cluster/pull.py, push.py): the action list, the
explicit table check with its error state, and moving to the next origin or backing off.

Rules: a subclass sets TABLE ({event: states allowed}) and NAME; a call whose event is not
allowed in the current state records why in `error`, asks for Close + Stop and leaves the
machine in `error` for good (it never looks healthy again). The states "connecting",
"backoff", "stopped" and "error" have the same meaning in every link.
"""
from lib.cluster.actions import Close, Connect, Stop
from lib.cluster.origins import OriginPicker

CONNECTING, BACKOFF, STOPPED, ERROR = "connecting", "backoff", "stopped", "error"


class LinkMachine:
    NAME = "link"
    TABLE = {}

    def __init__(self, origins, now, initial):
        self.picker = OriginPicker(origins)
        self.state = initial
        self.since = now
        self.origin = None              # the origin of the current (or last) link
        self.deadline = None            # subclasses: what a timer in the current state means
        self.failed_round = set()
        self.last_error = ""
        self.error = None
        self.actions = []

    def take_actions(self):
        actions, self.actions = self.actions, []
        return actions

    @property
    def done(self):
        return self.state in (STOPPED, ERROR)

    def _allowed(self, event):
        if self.state in self.TABLE[event]:
            return True
        self.error = self.last_error = f"{self.NAME}: {event} not allowed in state {self.state}"
        self.actions += [Close(self.error), Stop(self.error)]
        self._set(ERROR, self.since)
        return False

    def _set(self, state, now):
        if state != self.state:
            self.state, self.since = state, now

    def _connect_next(self, now):
        """Connect to the origin the picker chooses, or back off until it may be tried."""
        origin, wait = self.picker.choose(now)
        self.origin = origin
        if wait > 0:
            self.deadline = now + wait
            self._set(BACKOFF, now)
        else:
            self.deadline = None
            self.actions.append(Connect(origin))
            self._set(CONNECTING, now)
