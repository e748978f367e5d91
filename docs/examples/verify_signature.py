"""Verify a SocketDock backend POST signed with --backend-secret (docs/SECURITY.md), and
drop a POST already acted on by its event id.

In a web framework (Flask shown; the same for /connect and /disconnect):

    events = EventLog()

    @app.post("/message")
    def message():
        body = request.get_data()  # the raw bytes, before any JSON parsing
        if not verify(SECRET, "message", request.headers, body):
            return "bad signature", 401
        event_id = request.headers["X-SocketDock-Event-Id"]
        if events.seen(event_id):
            return "", 204  # a replay, or a POST already acted on
        ...  # act on json.loads(body)
        events.remember(event_id)  # only once acted on: a POST answered 503 comes again
        return "", 204

Run as a script: python3 verify_signature.py SECRET < requests, one JSON object a line,
{"event": "<kind expected where it arrived>", "headers": {...}, "body": "..."}; prints
accepted, duplicate or rejected for each.
"""
import hashlib
import hmac
import json
import sys
import time

MAX_SKEW = 300  # seconds a timestamp may be from our clock


def verify(secret: bytes, event: str, headers, body: bytes) -> bool:
    """True when the POST is signed with secret as the event expected where it arrived
    ("connect", "message" or "disconnect") and its timestamp is recent. headers is a
    case-insensitive mapping, as web frameworks provide."""
    timestamp = headers.get("X-SocketDock-Timestamp", "")
    signed_event = headers.get("X-SocketDock-Event", "")
    event_id = headers.get("X-SocketDock-Event-Id", "")
    signature = headers.get("X-SocketDock-Signature", "")
    if not (timestamp and signed_event and event_id and signature.startswith("sha256=")):
        return False
    signed = f"{timestamp}.{signed_event}.{event_id}.".encode() + body
    mac = hmac.new(secret, signed, hashlib.sha256).hexdigest()
    if not hmac.compare_digest(mac.encode(), signature[len("sha256="):].encode()):
        return False
    if signed_event != event:
        return False  # e.g. a captured message POST replayed at the connect URI
    try:
        return abs(time.time() - int(timestamp)) <= MAX_SKEW
    except ValueError:
        return False


class EventLog:
    """Event ids acted on, kept for 2 * MAX_SKEW: as long as a captured POST can pass verify."""

    def __init__(self):
        self._acted = {}  # event id -> when acted on; insertion order is time order

    def seen(self, event_id: str) -> bool:
        now = time.time()
        while self._acted:
            oldest = next(iter(self._acted))
            if now - self._acted[oldest] <= 2 * MAX_SKEW:
                break
            del self._acted[oldest]
        return event_id in self._acted

    def remember(self, event_id: str) -> None:
        self._acted[event_id] = time.time()


class Headers(dict):
    """Header names in any case, for the script."""

    def get(self, name, default=None):
        return super().get(name.lower(), default)


if __name__ == "__main__":
    secret, events = sys.argv[1].encode(), EventLog()
    for line in sys.stdin:
        req = json.loads(line)
        headers = Headers({k.lower(): v for k, v in req["headers"].items()})
        if not verify(secret, req["event"], headers, req["body"].encode()):
            print("rejected")
        elif events.seen(headers.get("X-SocketDock-Event-Id")):
            print("duplicate")
        else:
            events.remember(headers.get("X-SocketDock-Event-Id"))
            print("accepted")
