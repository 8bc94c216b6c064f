"""The owner loop shared by the link drivers (edge/ingest.py, edge/push.py).

Rules: one greenlet runs `_loop` and is the only one to touch the link's socket and session.
Each turn it first performs the machine's queued actions (performing may queue more), then a
due timer, then the subclass's IO step (`_io(link)`: read what arrived, write what is queued;
True when it did something), and otherwise sleeps until the wake event is set: by the link's
read watcher (`_arm`: one-shot, or a reader lent to the hub, edge/ingest.py), by another greenlet that told the machine something, or
by the machine's next timer.
"""


class LinkDriver:
    machine = None                   # a lib/cluster LinkMachine
    link = None                      # the current RtmpLink or None
    wake = None                      # gevent Event
    clock = None

    def _loop(self):
        machine, wake = self.machine, self.wake
        while True:
            actions = machine.take_actions()
            if actions:
                if self._perform(actions):
                    return
                continue
            now = self.clock()
            timer = machine.get_timer()
            if timer is not None and timer <= now:
                machine.handle_timer(now)
                continue
            link = self.link
            if link is not None:
                if self._io(link):
                    continue
                self._arm(link)
            wake.wait(None if timer is None else timer - now)
            wake.clear()

    def _perform(self, actions):
        """Carry out the machine's actions in order; True when the link is over."""
        raise NotImplementedError

    def _io(self, link):
        raise NotImplementedError

    def _arm(self, link):
        """Before sleeping: wake up when the link is readable (subclasses may read in the hub)."""
        link.arm(self.wake)
