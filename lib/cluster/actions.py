"""What a link state machine asks its driver to do. Plain records; the driver performs them in
order (lib/server/edge/ingest.py, lib/server/edge/push.py)."""
from dataclasses import dataclass


@dataclass(frozen=True)
class Connect:
    """Open a link to `origin` (TCP, handshake, connect, then play or publish)."""
    origin: tuple


@dataclass(frozen=True)
class Close:
    """Close the current link (no-op when there is none)."""
    reason: str


@dataclass(frozen=True)
class Resumed:
    """Media flows again after a switch: continue the timeline (`gap` seconds without media)."""
    origin: tuple
    gap: float


@dataclass(frozen=True)
class Accepted:
    """A push link is publishing on `origin` (the first time: the encoder may start)."""
    origin: tuple
    first: bool


@dataclass(frozen=True)
class NotFound:
    """No origin can give the stream: tell the players (StreamNotFound) and close them."""
    reason: str


@dataclass(frozen=True)
class GiveUp:
    """A push link in give-up mode failed on every target: disconnect the publisher."""
    reason: str


@dataclass(frozen=True)
class Stop:
    """The link is over for good: release the source and end the driver."""
    reason: str
