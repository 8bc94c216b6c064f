"""Play one RTMP stream (run inside a network namespace) and record what arrived, as JSON.

Usage: python tests/netns_player.py URL SECONDS OUTFILE

Rules: prints one line "playing" (or "failed: why") as soon as the play is answered, reads for
SECONDS, then writes {"played", "closed", "error", "statuses", "ended", "media": [[arrival time,
type, timestamp, kind], ...]} to OUTFILE (kind: "h" video sequence header, "k" keyframe, "").
It always ends by itself: every wait is bounded by SECONDS plus the client's socket timeouts.
"""
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from lib.media import flv  # noqa: E402
from tests.rtmpclient import RtmpTestClient  # noqa: E402


def video_kind(type_id, payload):
    """"h" video sequence header, "k" keyframe, "" anything else."""
    if type_id != 9:
        return ""
    if flv.is_video_sequence_header(payload):
        return "h"
    return "k" if flv.is_video_keyframe(payload) else ""


def main(url, seconds, out):
    result = {"played": False, "closed": False, "error": "", "statuses": [], "media": []}
    client = None
    try:
        client = RtmpTestClient(url, timeout=5.0)
        result["played"] = client.play(5.0) and client.session.state == "playing"
        print("playing" if result["played"] else "failed: play refused", flush=True)
        if result["played"]:
            client.read_for(seconds)
    except OSError as e:
        result["error"] = repr(e)
        print(f"failed: {e!r}", flush=True)
    finally:
        result["ended"] = time.time()
        if client is not None:
            client.close()
            result["closed"] = client.closed or bool(result["error"])
            result["statuses"] = client.statuses
            result["media"] = [[at, t, ts, video_kind(t, payload)]
                               for at, (t, ts, payload) in zip(client.arrivals, client.media)]
        with open(out, "w") as f:
            json.dump(result, f)


if __name__ == "__main__":
    main(sys.argv[1], float(sys.argv[2]), sys.argv[3])
