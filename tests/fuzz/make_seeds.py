#!/usr/bin/python3
"""Writes the generated fuzz seeds and the key fixture they belong to.

    tests/fuzz/make_seeds.py

The JWT and JWKS seeds need real signatures, so this makes a fresh RSA-2048
and P-256 key pair, writes their public halves as the fixed JWKS of
tests/fuzz/fuzz_keys.h (with the HS256 secret, issuer, audience and clock
the jwt targets verify with), and signs the seed tokens with them. The
private halves are never written: to change a seed, run this again and
commit the header with the seeds. Only files named gen-* are written (old
ones are removed first); hand-written seeds next to them stay.

Needs python3-cryptography (scripts/deps.sh installs it).
"""
import base64
import hashlib
import hmac
import json
import pathlib
import subprocess

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

HERE = pathlib.Path(__file__).resolve().parent
CORPUS = HERE / "corpus"

SECRET = b"fuzz-hs256-secret-0123456789abcdef"
ISSUER = "https://issuer.example"
AUDIENCE = "api"
NOW = 1800000000
CURSOR_KEY = b"cursor-fuzz-key"  # tests/fuzz/cursor.c and route.c


def b64(b):
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


def uint(n, size=None):
    size = size or (n.bit_length() + 7) // 8
    return n.to_bytes(size, "big")


def rsa_jwk(key, kid, **extra):
    pub = key.public_key().public_numbers()
    return {"kty": "RSA", "kid": kid, **extra, "n": b64(uint(pub.n)), "e": b64(uint(pub.e))}


def ec_jwk(key, kid, crv="P-256", size=32, **extra):
    pub = key.public_key().public_numbers()
    return {"kty": "EC", "kid": kid, **extra, "crv": crv,
            "x": b64(uint(pub.x, size)), "y": b64(uint(pub.y, size))}


def compact(obj):
    return json.dumps(obj, separators=(",", ":"))


def token(header, claims, sign):
    h = b64(compact(header).encode() if isinstance(header, dict) else header)
    p = b64(compact(claims).encode() if isinstance(claims, dict) else claims)
    signing_input = f"{h}.{p}".encode()
    return f"{h}.{p}.{b64(sign(signing_input))}"


def hs256(secret):
    return lambda m: hmac.new(secret, m, hashlib.sha256).digest()


def rs256(key):
    return lambda m: key.sign(m, padding.PKCS1v15(), hashes.SHA256())


def es256(key):
    def sign(m):
        r, s = decode_dss_signature(key.sign(m, ec.ECDSA(hashes.SHA256())))
        return uint(r, 32) + uint(s, 32)
    return sign


def write(target, files):
    d = CORPUS / target
    d.mkdir(parents=True, exist_ok=True)
    for old in d.glob("gen-*"):
        old.unlink()
    for name, data in files.items():
        (d / f"gen-{name}").write_bytes(data.encode() if isinstance(data, str) else data)


def c_string(s):
    return json.dumps(s)  # a JSON string literal is a valid C one for ASCII text


def main():
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    ec_key = ec.generate_private_key(ec.SECP256R1())
    jwks = {"keys": [rsa_jwk(rsa_key, "fuzz-rsa", use="sig", alg="RS256"), ec_jwk(ec_key, "fuzz-ec", alg="ES256")]}

    header = HERE / "fuzz_keys.h"
    header.write_text(
        "/* fuzz_keys: the key fixture of the jwt targets, written by\n"
        "   tests/fuzz/make_seeds.py with the seeds of corpus/jwt/ (their\n"
        "   signatures are made with the private halves, which were not kept). */\n"
        "#ifndef TESTS_FUZZ_KEYS_H\n#define TESTS_FUZZ_KEYS_H\n\n"
        f"#define FUZZ_JWKS {c_string(compact(jwks))}\n"
        f"#define FUZZ_HS256_SECRET {c_string(SECRET.decode())}\n"
        f"#define FUZZ_ISSUER {c_string(ISSUER)}\n"
        f"#define FUZZ_AUDIENCE {c_string(AUDIENCE)}\n"
        f"#define FUZZ_NOW {NOW}\n"
        "#define FUZZ_LEEWAY 60\n\n#endif\n")
    subprocess.run(["clang-format", "-i", str(header)], check=True)

    good = {"iss": ISSUER, "aud": AUDIENCE, "sub": "client-1", "scope": "users:read users:write",
            "exp": NOW + 300, "iat": NOW - 10}
    hs, rs, es = hs256(SECRET), rs256(rsa_key), es256(ec_key)
    h_hs = {"alg": "HS256", "typ": "JWT"}
    h_rs = {"alg": "RS256", "typ": "JWT", "kid": "fuzz-rsa"}
    h_es = {"alg": "ES256", "kid": "fuzz-ec"}
    pem = rsa_key.public_key().public_bytes(serialization.Encoding.PEM,
                                            serialization.PublicFormat.SubjectPublicKeyInfo)
    tokens = {
        "hs256": token(h_hs, good, hs),
        "rs256": token(h_rs, good, rs),
        "es256": token(h_es, good, es),
        "hs256-aud-array": token(h_hs, {**good, "aud": ["other", AUDIENCE]}, hs),
        "rs256-scope-array": token(h_rs, {**good, "scope": ["users:read", "users:write"]}, rs),
        "es256-nbf-fraction": token(h_es, {**good, "nbf": NOW + 30.5, "exp": NOW + 0.25}, es),
        "hs256-expired": token(h_hs, {**good, "exp": NOW - 61}, hs),
        "hs256-not-yet": token(h_hs, {**good, "nbf": NOW + 61}, hs),
        "hs256-no-exp": token(h_hs, {k: v for k, v in good.items() if k != "exp"}, hs),
        "hs256-bad-iss": token(h_hs, {**good, "iss": "https://evil.example"}, hs),
        "hs256-exp-huge": token(h_hs, {**good, "exp": 2**63 - 1}, hs),
        "hs256-claims-array": token(h_hs, b"[1,2,3]", hs),
        "rs256-no-kid": token({"alg": "RS256"}, good, rs),
        "rs256-unknown-kid": token({**h_rs, "kid": "gone"}, good, rs),
        "rs256-names-ec-key": token({**h_rs, "kid": "fuzz-ec"}, good, rs),
        "hs256-rsa-pem-secret": token({**h_hs, "kid": "fuzz-rsa"}, good, hs256(pem)),
        "none": token({"alg": "none"}, good, lambda m: b""),
        "crit": token({**h_hs, "crit": ["exp"]}, good, hs),
        "es256-zero-sig": token(h_es, good, lambda m: bytes(64)),
        "rs256-bad-sig": token(h_rs, good, lambda m: bytes(256)),
    }
    write("jwt", tokens)

    claims = {
        "good": good,
        "minimal": {"iss": ISSUER, "aud": AUDIENCE, "exp": NOW + 1},
        "aud-array": {**good, "aud": [AUDIENCE, "x"]},
        "scope-array": {**good, "scope": ["a", "b", "users:read"]},
        "fractions": {**good, "exp": NOW + 0.5, "nbf": NOW - 0.5},
        "expired": {**good, "exp": NOW - 100},
        "future": {**good, "nbf": NOW + 100},
        "extremes": {**good, "exp": 2**63 - 1, "nbf": -(2**63)},
        "sub-empty": {**good, "sub": ""},
        "sub-long": {**good, "sub": "s" * 256},
        "scope-number": {**good, "scope": 7},
    }
    write("jwt_claims", {k: compact(v) for k, v in claims.items()})

    small = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    p384 = ec.generate_private_key(ec.SECP384R1())
    off = ec_jwk(ec_key, "off")
    off["y"] = b64(bytes([base64.urlsafe_b64decode(off["y"] + "=")[0] ^ 1]) +
                   base64.urlsafe_b64decode(off["y"] + "=")[1:])
    sets = {
        "fixture": jwks,
        "rsa": {"keys": [rsa_jwk(rsa_key, "r", key_ops=["verify"])]},
        "ec": {"keys": [ec_jwk(ec_key, "e", use="sig")]},
        "skipped": {"keys": [
            rsa_jwk(small, "small"),
            rsa_jwk(rsa_key, "enc", use="enc"),
            rsa_jwk(rsa_key, "rs384", alg="RS384"),
            {**rsa_jwk(rsa_key, "priv"), "d": "AQAB"},
            rsa_jwk(rsa_key, "ops", key_ops=["sign"]),
            ec_jwk(p384, "p384", crv="P-384", size=48),
            off,
            {"kty": "oct", "kid": "hmac", "k": b64(SECRET)},
            {"kty": "OKP", "kid": "ed", "crv": "Ed25519", "x": b64(bytes(32))},
            rsa_jwk(rsa_key, ""),
            "not a key",
        ]},
        "duplicate-kid": {"keys": [rsa_jwk(rsa_key, "k"), ec_jwk(ec_key, "k")]},
        "empty": {"keys": []},
        "no-keys": {"other": []},
    }
    write("jwks", {k: compact(v) for k, v in sets.items()})

    cursors = {}
    for name, raw in {"zero": bytes(16), "ones": b"\xff" * 16,
                      "v7": bytes.fromhex("0190f1e2d3c4700080001122334455ff")}.items():
        body = b"\x01" + raw
        cursors[name] = b64(body + hmac.new(CURSOR_KEY, body, hashlib.sha256).digest()[:16])
    write("cursor", cursors)
    write("route", {f"list-{name}": f"GET /v1/users?limit=20&cursor={c}" for name, c in cursors.items()})


if __name__ == "__main__":
    main()
