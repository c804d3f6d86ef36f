"""RS256 / ES256 keys and tokens for the black-box auth tests, made with
Debian's python3-cryptography: key pairs generated per test run, their
public halves as JWKs (RFC 7517), and JWS compact tokens (RFC 7515) signed
with them. Nothing here knows the server.
"""

import json
import time
import uuid

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

from users_support import b64url


def _int_b64(n, length=None):
    length = length or (n.bit_length() + 7) // 8
    return b64url(n.to_bytes(length, "big"))


class Key:
    """A private key with its kid and JWS algorithm (RS256 or ES256)."""

    def __init__(self, alg, kid=None, bits=2048):
        self.alg = alg
        self.kid = kid or f"{alg.lower()}-{uuid.uuid4().hex[:12]}"
        if alg == "RS256":
            self.private = rsa.generate_private_key(public_exponent=65537, key_size=bits)
        elif alg == "ES256":
            self.private = ec.generate_private_key(ec.SECP256R1())
        else:
            raise ValueError(alg)

    def jwk(self, **extra):
        pub = self.private.public_key().public_numbers()
        if self.alg == "RS256":
            d = {"kty": "RSA", "kid": self.kid, "n": _int_b64(pub.n), "e": _int_b64(pub.e)}
        else:
            d = {"kty": "EC", "crv": "P-256", "kid": self.kid,
                 "x": _int_b64(pub.x, 32), "y": _int_b64(pub.y, 32)}
        d.update(extra)
        return d

    def public_pem(self):
        return self.private.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)

    def sign_raw(self, data):
        """The JWS signature of data: PKCS#1 v1.5 for RS256, R||S for ES256."""
        if self.alg == "RS256":
            return self.private.sign(data, padding.PKCS1v15(), hashes.SHA256())
        r, s = decode_dss_signature(self.private.sign(data, ec.ECDSA(hashes.SHA256())))
        return r.to_bytes(32, "big") + s.to_bytes(32, "big")


def jwks(*keys):
    return {"keys": [k.jwk() if isinstance(k, Key) else k for k in keys]}


def segment(obj):
    return b64url(json.dumps(obj, separators=(",", ":")).encode())


def claims(scope="users:read users:write", exp_in=300, **extra):
    now = int(time.time())
    c = {"sub": f"client-{uuid.uuid4().hex[:8]}", "scope": scope, "iat": now}
    if exp_in is not None:
        c["exp"] = now + exp_in
    c.update(extra)
    return c


def token(key, payload, header=None, alg=None, signature=None):
    """A compact JWS signed by key (kid in the header unless overridden).
    signature=bytes replaces the real one."""
    hdr = {"alg": alg or key.alg, "typ": "at+jwt", "kid": key.kid}
    hdr.update(header or {})
    hdr = {k: v for k, v in hdr.items() if v is not None}
    signing_input = f"{segment(hdr)}.{segment(payload)}"
    sig = signature if signature is not None else key.sign_raw(signing_input.encode())
    return f"{signing_input}.{b64url(sig)}"
