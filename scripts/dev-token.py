#!/usr/bin/env python3
"""Print an HS256 JWT for local use: dev-token.py [SCOPE ...].

Signs with JWT_SECRET from the environment, or the server's development
default. Standard library only. Claims: sub=dev, the scopes, exp in 1 hour.
"""
import base64
import hashlib
import hmac
import json
import os
import sys
import time

DEV_SECRET = "dev-only-jwt-secret-do-not-use-in-production"


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def main() -> None:
    secret = (os.environ.get("JWT_SECRET") or DEV_SECRET).encode()
    scopes = " ".join(sys.argv[1:]) or "users:read users:write"
    header = b64url(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    claims = {"sub": "dev", "scope": scopes, "iat": int(time.time()), "exp": int(time.time()) + 3600}
    payload = b64url(json.dumps(claims).encode())
    signature = hmac.new(secret, f"{header}.{payload}".encode(), hashlib.sha256).digest()
    print(f"{header}.{payload}.{b64url(signature)}")


if __name__ == "__main__":
    main()
