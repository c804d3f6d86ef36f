"""RS256 / ES256 bearer tokens verified with keys from JWT_JWKS_FILE, keys
made by the test (python3-cryptography): every way such a token must be
refused, the keys the server must ignore without failing, the cache of
verified tokens against exp, and the start-up rules for keys (the public
development key only on loopback without a JWKS; no key at all, or an
unusable JWKS file, stops the start with one clear line)."""

import base64
import hashlib
import hmac
import json
import time

import pytest

from harness import run_cli
from jose_support import Key, b64url, claims, jwks, segment, token
from users_support import (Client, assert_page, assert_problem_response, make_token, requires_db,
                           start_users_server, users_env)

pytestmark = requires_db

ISSUER = "https://idp.test"
AUDIENCE = "https://api.test"
DEV_SECRET = "dev-only-jwt-secret-do-not-use-in-production"  # the public one, in src/app/config.c


@pytest.fixture(scope="module")
def keys():
    return {
        "rs": Key("RS256"),
        "es": Key("ES256"),
        "small": Key("RS256", bits=1024),
        "other_es": Key("ES256"),
    }


@pytest.fixture(scope="module")
def jwks_srv(module_server, keys, tmp_path_factory):
    path = tmp_path_factory.mktemp("jwks") / "jwks.json"
    doc = jwks(keys["rs"].jwk(use="sig", alg="RS256"), keys["es"].jwk(alg="ES256"),
               keys["small"].jwk(),                                 # under 2048 bits: skipped
               {"kty": "oct", "kid": "hmac", "k": b64url(b"x" * 32)},  # unknown type: skipped
               {"kty": "OKP", "crv": "Ed25519", "kid": "ed", "x": b64url(b"\0" * 32)},
               {"kty": "EC", "crv": "P-384", "kid": "p384", "x": "AA", "y": "AA"})
    path.write_text(json.dumps(doc))
    srv = start_users_server(module_server, JWT_SECRET=None, JWT_JWKS_FILE=str(path), JWT_ISSUER=ISSUER,
                             JWT_AUDIENCE=AUDIENCE, JWT_LEEWAY_S="0")
    return srv


@pytest.fixture(scope="module")
def client(jwks_srv):
    c = Client(jwks_srv, token=None)
    yield c
    c.close()


def good(**extra):
    return claims(**{"iss": ISSUER, "aud": AUDIENCE, **extra})


def test_unusable_keys_are_skipped_not_fatal(jwks_srv):
    line = jwks_srv.wait_for_log(lambda o: "JWT_JWKS_FILE" in o.get("msg", "") and "skipped" in o["msg"])
    assert line["msg"].startswith("JWT_JWKS_FILE: 4 keys skipped"), line
    jwks_srv.wait_for_log(lambda o: o.get("msg") == "JWT_JWKS_FILE: 2 keys loaded")


@pytest.mark.parametrize("which", ["rs", "es"])
def test_rs256_and_es256_tokens_are_accepted(client, keys, which):
    assert_page(client.get("/v1/users", token=token(keys[which], good())))
    # aud as an array that holds ours
    assert_page(client.get("/v1/users", token=token(keys[which], good(aud=["other", AUDIENCE]))))


def test_scopes_apply_to_jwks_tokens(client, keys):
    tok = token(keys["es"], good(scope="users:read"))
    assert_page(client.get("/v1/users", token=tok))
    assert_problem_response(client.post("/v1/users", token=tok, json_body={"email": "a@b.co", "name": "x"}), 403)


def _hs256(secret, header, payload):
    signing_input = f"{segment(header)}.{segment(payload)}"
    sig = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64url(sig)}"


def _swap_payload(tok, payload):
    h, _, s = tok.split(".")
    return f"{h}.{segment(payload)}.{s}"


def _with_sig(tok, sig):
    h, p, _ = tok.split(".")
    return f"{h}.{p}.{b64url(sig)}"


def _der(raw):
    """R||S as the DER SEQUENCE OpenSSL produces (not a JWS signature)."""
    def integer(b):
        b = b.lstrip(b"\0") or b"\0"
        if b[0] & 0x80:
            b = b"\0" + b
        return b"\x02" + bytes([len(b)]) + b
    body = integer(raw[:32]) + integer(raw[32:])
    return b"\x30" + bytes([len(body)]) + body


def _sig_bytes(tok):
    return base64.urlsafe_b64decode(tok.split(".")[2] + "==")


def _resigned(tok, change):
    """tok with its own signature bytes passed through change()."""
    return _with_sig(tok, change(_sig_bytes(tok)))


# Every token here is well formed and most are signed by a key the server
# knows: each must still be refused with 401 and an invalid_token challenge.
REJECTED = {
    "alg-none": lambda k: token(k["rs"], good(), alg="none", signature=b""),
    "hs256-with-the-dev-key": lambda k: _hs256(DEV_SECRET.encode(), {"alg": "HS256", "typ": "JWT"}, good()),
    "hs256-signed-with-the-rsa-public-key": lambda k: _hs256(
        k["rs"].public_pem(), {"alg": "HS256", "kid": k["rs"].kid}, good()),
    "hs256-signed-with-the-rsa-jwk": lambda k: _hs256(
        json.dumps(k["rs"].jwk()).encode(), {"alg": "HS256", "kid": k["rs"].kid}, good()),
    "rs256-naming-the-es-key": lambda k: token(k["rs"], good(), header={"kid": k["es"].kid}),
    "es256-naming-the-rs-key": lambda k: token(k["es"], good(), header={"kid": k["rs"].kid}),
    "alg-rs384": lambda k: token(k["rs"], good(), alg="RS384"),
    "alg-ps256": lambda k: token(k["rs"], good(), alg="PS256"),
    "unknown-kid": lambda k: token(k["es"], good(), header={"kid": "no-such-key"}),
    "no-kid": lambda k: token(k["es"], good(), header={"kid": None}),
    "kid-of-a-skipped-1024-bit-key": lambda k: token(k["small"], good()),
    "kid-of-a-skipped-oct-key": lambda k: _hs256(b"x" * 32, {"alg": "HS256", "kid": "hmac"}, good()),
    "signed-by-another-key-same-kid": lambda k: token(k["other_es"], good(), header={"kid": k["es"].kid}),
    "es256-der-signature": lambda k: _resigned(token(k["es"], good()), _der),
    "es256-all-zero-signature": lambda k: token(k["es"], good(), signature=b"\0" * 64),
    "es256-63-byte-signature": lambda k: token(k["es"], good(), signature=b"\1" * 63),
    "rs256-truncated-signature": lambda k: _resigned(token(k["rs"], good()), lambda s: s[:-1]),
    "tampered-claims": lambda k: _swap_payload(token(k["rs"], good(scope="users:read")),
                                               good(scope="users:read users:write", sub="admin")),
    "expired": lambda k: token(k["es"], good(exp_in=-5)),
    "no-exp": lambda k: token(k["es"], good(exp_in=None)),
    "nbf-in-the-future": lambda k: token(k["es"], good(nbf=int(time.time()) + 120)),
    "wrong-issuer": lambda k: token(k["es"], good(iss="https://evil.test")),
    "no-issuer": lambda k: token(k["es"], claims(aud=AUDIENCE)),
    "wrong-audience": lambda k: token(k["es"], good(aud="https://other.test")),
    "audience-array-without-ours": lambda k: token(k["es"], good(aud=["a", "b"])),
    "crit-header": lambda k: token(k["es"], good(), header={"crit": ["exp"], "exp": 1}),
}


@pytest.mark.parametrize("kind", list(REJECTED))
def test_every_refusal_is_401(client, keys, kind):
    r = client.get("/v1/users", token=REJECTED[kind](keys))
    assert_problem_response(r, 401)
    challenge = r.headers.get("WWW-Authenticate", "")
    assert challenge.startswith("Bearer") and 'error="invalid_token"' in challenge, challenge


def test_cached_token_is_never_served_past_its_exp(client, keys):
    # JWT_LEEWAY_S=0 on this server: the token is good for about 2 s, and
    # verified once, then served from the per-worker cache.
    exp = int(time.time()) + 2
    tok = token(keys["rs"], good(exp_in=None, exp=exp))
    for _ in range(4):  # both workers see it
        assert_page(client.get("/v1/users", token=tok))
    while time.time() < exp + 0.05:
        time.sleep(0.05)
    for _ in range(4):
        assert_problem_response(client.get("/v1/users", token=tok), 401)


def test_hs256_dev_key_only_on_loopback_without_a_jwks(server, keys, tmp_path):
    """No JWKS, loopback HOST, no JWT_SECRET: the development key signs
    (with a warning); the same server with a JWKS file refuses it."""
    dev = make_token(secret=DEV_SECRET)
    srv = start_users_server(server, JWT_SECRET=None)
    c = Client(srv, token=dev)
    try:
        assert_page(c.get("/v1/users"))
        srv.wait_for_log(lambda o: o.get("level") == "warn" and "development key" in o.get("msg", ""))
    finally:
        c.close()


@pytest.mark.parametrize("case", ["non-loopback-host-without-key", "missing-file", "not-json", "no-usable-key",
                                  "http-url-off-loopback"])
def test_start_refused_with_one_clear_line(keys, tmp_path, case):
    f = tmp_path / "jwks.json"
    env = users_env(JWT_SECRET=None)
    if case == "non-loopback-host-without-key":
        # refused before anything listens
        env["HOST"] = "0.0.0.0"
        want = "no JWT key"
    elif case == "missing-file":
        env["JWT_JWKS_FILE"] = str(tmp_path / "absent.json")
        want = "JWT_JWKS_FILE"
    elif case == "not-json":
        f.write_text("{not json")
        env["JWT_JWKS_FILE"] = str(f)
        want = "JWT_JWKS_FILE"
    elif case == "no-usable-key":
        f.write_text(json.dumps(jwks(keys["small"], {"kty": "oct", "kid": "h", "k": "AA"})))
        env["JWT_JWKS_FILE"] = str(f)
        want = "no usable"
    else:
        env["JWT_JWKS_URL"] = "http://idp.example.com/jwks"
        want = "JWT_JWKS_URL"
    r = run_cli(["serve"], env=env)
    assert r.returncode == 2, (r.returncode, r.stdout, r.stderr)
    out = (r.stderr + r.stdout).strip().splitlines()
    msgs = [line for line in out if want in line]
    assert len(msgs) == 1, out
    assert "listening" not in r.stdout, r.stdout
