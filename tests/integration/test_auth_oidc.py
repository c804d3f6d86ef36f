"""The server as an OAuth2 resource server behind a real OpenID Connect
provider (npm oidc-provider, started on loopback by oidc_support): RS256
and ES256 client-credentials access tokens verified through JWT_JWKS_URL,
key rotation without a restart, the unknown-kid fetch limit, and a JWKS
endpoint that fails (the server serves meanwhile, 401s until it has keys,
keeps the last good set later)."""

import base64
import concurrent.futures
import hashlib
import hmac
import json
import uuid

import pytest
import requests
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicNumbers

from jose_support import Key, b64url, claims, segment, token
from oidc_support import AUDIENCE, OidcProvider, wait_for
from users_support import Client, assert_page, assert_problem_response, requires_db, start_users_server

pytestmark = requires_db

# Loopback only: curl in the server must not send the fetch to a proxy.
NO_PROXY = {"http_proxy": None, "https_proxy": None, "HTTP_PROXY": None, "HTTPS_PROXY": None,
            "all_proxy": None, "ALL_PROXY": None, "NO_PROXY": "127.0.0.1,localhost"}


@pytest.fixture(scope="module")
def idp(tmp_path_factory):
    p = OidcProvider(tmp_path_factory.mktemp("oidc"))
    yield p
    p.stop()


def oidc_env(idp, **extra):
    env = dict(NO_PROXY, JWT_SECRET=None, JWT_JWKS_URL=idp.jwks_url, JWT_ISSUER=idp.issuer,
               JWT_AUDIENCE=AUDIENCE)
    env.update(extra)
    return env


@pytest.fixture(scope="module")
def api_srv(module_server, idp):
    # Refresh at most every 3 s whatever the provider's max-age says, so a
    # key that leaves the set is seen leaving within the test.
    return start_users_server(module_server, **oidc_env(idp, JWT_JWKS_MAX_REFRESH_S="3",
                                                        JWT_JWKS_MIN_REFRESH_S="1"))


@pytest.fixture(scope="module")
def client(api_srv):
    c = Client(api_srv, token=None)
    yield c
    c.close()


def header_of(tok):
    return json.loads(base64.urlsafe_b64decode(tok.split(".")[0] + "=="))


def accepted(client, tok):
    return client.get("/v1/users?limit=1", token=tok).status_code == 200


def test_rs256_and_es256_access_tokens_from_the_provider(client, idp):
    rs, es = idp.token("rs-client"), idp.token("es-client")
    assert header_of(rs)["alg"] == "RS256" and header_of(es)["alg"] == "ES256"
    # the set loads in the background right after start
    assert wait_for(lambda: accepted(client, rs), 10), "RS256 token never accepted"
    assert_page(client.get("/v1/users", token=rs))
    assert_page(client.get("/v1/users", token=es))
    read_only = idp.token("es-client", scope="users:read")
    assert_page(client.get("/v1/users", token=read_only))
    r = client.post("/v1/users", token=read_only, json_body={"email": f"{uuid.uuid4().hex}@x.co", "name": "n"})
    assert_problem_response(r, 403)
    r = client.post("/v1/users", token=rs, json_body={"email": f"{uuid.uuid4().hex}@x.co", "name": "n"})
    assert r.status_code == 201, r.text


def _rsa_pem(jwk):
    n = int.from_bytes(base64.urlsafe_b64decode(jwk["n"] + "=="), "big")
    e = int.from_bytes(base64.urlsafe_b64decode(jwk["e"] + "=="), "big")
    return RSAPublicNumbers(e, n).public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


def test_forgeries_with_the_providers_public_keys_are_401(client, idp):
    rs = idp.token("rs-client")
    assert wait_for(lambda: accepted(client, rs), 10)
    rsa_jwk = next(k for k in idp.jwks()["keys"] if k["kty"] == "RSA")
    payload = json.loads(base64.urlsafe_b64decode(rs.split(".")[1] + "=="))
    payload["scope"] = "users:read users:write"
    forged = []
    # HS256 with the published RSA key as the HMAC secret (algorithm confusion)
    for secret in (_rsa_pem(rsa_jwk), json.dumps(rsa_jwk).encode()):
        signing_input = f"{segment({'alg': 'HS256', 'kid': rsa_jwk['kid']})}.{segment(payload)}"
        forged.append(f"{signing_input}.{b64url(hmac.new(secret, signing_input.encode(), hashlib.sha256).digest())}")
    h, p, s = rs.split(".")
    forged.append(f"{segment({'alg': 'none', 'kid': rsa_jwk['kid']})}.{p}.")
    forged.append(f"{segment(dict(header_of(rs), alg='ES256'))}.{p}.{s}")  # alg swapped, RSA kid
    forged.append(f"{h}.{segment(dict(payload, sub='someone-else'))}.{s}")  # claims swapped
    es = idp.token("es-client")
    eh, ep, _ = es.split(".")
    forged.append(f"{eh}.{ep}.{b64url(bytes(64))}")  # all-zero ES256 signature
    for tok in forged:
        r = client.get("/v1/users", token=tok)
        assert_problem_response(r, 401)


def test_rotation_without_restart(client, api_srv, idp):
    old_rs, old_es = idp.token("rs-client"), idp.token("es-client")
    assert wait_for(lambda: accepted(client, old_rs) and accepted(client, old_es), 10)
    idp.rotate()  # new signing keys, the old ones stay published for now
    new_rs, new_es = idp.token("rs-client"), idp.token("es-client")
    assert header_of(new_rs)["kid"] != header_of(old_rs)["kid"]
    # A new kid makes the server fetch the set again (or its refresh does).
    assert wait_for(lambda: accepted(client, new_rs), 5), "token of the new RS256 key not accepted"
    assert wait_for(lambda: accepted(client, new_es), 5), "token of the new ES256 key not accepted"
    assert accepted(client, old_rs) and accepted(client, old_es), "old keys are still published"
    idp.retire()  # the old keys leave the set
    assert wait_for(lambda: not accepted(client, old_rs) and not accepted(client, old_es), 8), \
        "tokens of retired keys still accepted"
    r = client.get("/v1/users", token=old_rs)
    assert_problem_response(r, 401)
    assert "invalid_token" in r.headers.get("WWW-Authenticate", "")
    assert_page(client.get("/v1/users", token=new_rs))
    assert_page(client.get("/v1/users", token=new_es))
    api_srv.assert_running()


def _fetches(srv):
    """How many JWKS fetches the server has made, from its own log lines."""
    lines = [o for o in srv.log_lines() if str(o.get("msg", "")).startswith("JWKS") and "fetches" in o]
    return max((o["fetches"] for o in lines), default=0)


def test_unknown_kids_fetch_at_most_once_per_cooldown(server, idp):
    # Default refresh bounds and the default 30 s cooldown.
    srv = start_users_server(server, **oidc_env(idp, LOG_LEVEL="debug"))
    c = Client(srv, token=None)
    try:
        good = idp.token("es-client")
        assert wait_for(lambda: accepted(c, good), 10)
        assert wait_for(lambda: _fetches(srv) == 1, 3), srv.describe()
        stranger = Key("ES256")

        def one(_):
            tok = token(stranger, claims(iss=idp.issuer, aud=AUDIENCE), header={"kid": f"kid-{uuid.uuid4()}"})
            with requests.Session() as s:
                s.trust_env = False
                return s.get(srv.url + "/v1/users", headers={"Authorization": f"Bearer {tok}"},
                             timeout=10).status_code

        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            statuses = list(pool.map(one, range(48)))
        assert set(statuses) == {401}, statuses
        assert wait_for(lambda: _fetches(srv) == 2, 3), _fetches(srv)
        # ... and no more, however many kids keep coming
        for _ in range(2):
            list(map(one, range(8)))
        wait_for(lambda: _fetches(srv) > 2, 1.5)
        assert _fetches(srv) == 2
        assert accepted(c, good), "the real key still works"
    finally:
        c.close()


def test_failing_jwks_endpoint(server, idp):
    """Down at start: the server serves, tokens get 401 (not 5xx), failures
    are logged and counted, and it loads once the endpoint is back. Down
    later: the last good set stays in use."""
    idp.configure(fail=True)
    try:
        srv = start_users_server(server, **oidc_env(idp, JWT_JWKS_MIN_REFRESH_S="1", JWT_JWKS_MAX_REFRESH_S="1"))
        c = Client(srv, token=None)
        tok = idp.token("es-client")
        r = c.get("/v1/users", token=tok)
        assert_problem_response(r, 401)
        assert "unknown" in r.headers.get("WWW-Authenticate", ""), r.headers
        line = srv.wait_for_log(lambda o: o.get("msg", "").startswith("JWKS fetch failed"), timeout=5)
        assert line["level"] == "warn" and line["failures"] >= 1 and "503" in line["error"], line
        assert idp.jwks_url in line["url"], line
        idp.configure(fail=False)
        assert wait_for(lambda: accepted(c, tok), 6), "never loaded after the endpoint came back"
        idp.configure(fail=True)
        before = sum(1 for o in srv.log_lines() if o.get("msg", "").startswith("JWKS fetch failed"))
        assert wait_for(lambda: sum(1 for o in srv.log_lines()
                                    if o.get("msg", "").startswith("JWKS fetch failed")) > before, 5)
        assert_page(c.get("/v1/users", token=tok))  # the last good set
        c.close()
    finally:
        idp.configure(fail=False)
