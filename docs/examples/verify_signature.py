"""Verify a SocketDock backend POST signed with --backend-secret (docs/SECURITY.md).

In a web framework: verify(secret, request.headers["X-SocketDock-Timestamp"],
request.headers["X-SocketDock-Signature"], raw_body) before parsing the JSON.
Run as a script: python3 verify_signature.py SECRET TIMESTAMP SIGNATURE < body
"""
import hashlib
import hmac
import sys
import time

MAX_SKEW = 300  # seconds: bounds how long a captured request can be replayed


def verify(secret: bytes, timestamp: str, signature: str, body: bytes) -> bool:
    if not timestamp or not signature.startswith("sha256="):
        return False
    mac = hmac.new(secret, timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    if not hmac.compare_digest(mac, signature[len("sha256="):]):
        return False
    try:
        return abs(time.time() - int(timestamp)) <= MAX_SKEW
    except ValueError:
        return False


if __name__ == "__main__":
    ok = verify(sys.argv[1].encode(), sys.argv[2], sys.argv[3], sys.stdin.buffer.read())
    print("valid" if ok else "invalid")
    sys.exit(0 if ok else 1)
