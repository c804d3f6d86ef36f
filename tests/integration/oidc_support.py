"""A real OpenID Connect provider for the black-box auth tests.

tests/oidc/provider.mjs runs npm's oidc-provider (a certified OpenID
Connect implementation) on a free loopback port; this module installs it
(tests/oidc/install.sh: `npm ci` of the pinned lockfile, only when missing),
starts it, reads its one ready line, and talks to it: client-credentials
access tokens (RS256 from "rs-client", ES256 from "es-client"), key
rotation, and failure injection on its JWKS endpoint. Stopped by PID.
"""

import json
import os
import select
import signal
import subprocess
import time

import requests

from harness import REPO_ROOT

OIDC_DIR = REPO_ROOT / "tests" / "oidc"
AUDIENCE = "https://api.test"


def install():
    r = subprocess.run(["bash", str(OIDC_DIR / "install.sh")], capture_output=True, text=True, timeout=300)
    if r.returncode != 0:
        raise AssertionError(f"tests/oidc/install.sh failed:\n{r.stdout}\n{r.stderr}")


class OidcProvider:
    def __init__(self, workdir, max_age=300):
        install()
        self.stderr_path = workdir / "oidc-provider.stderr"
        err = open(self.stderr_path, "wb")
        try:
            self.proc = subprocess.Popen(
                ["node", str(OIDC_DIR / "provider.mjs"), "--audience", AUDIENCE, "--max-age", str(max_age)],
                cwd=OIDC_DIR, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=err,
                start_new_session=True)
        finally:
            err.close()
        ready, _, _ = select.select([self.proc.stdout], [], [], 30)
        line = self.proc.stdout.readline() if ready else b""
        if not line:
            self.stop()
            raise AssertionError("oidc-provider did not start within 30 s:\n" + self.stderr())
        info = json.loads(line)
        self.port = info["port"]
        self.issuer = info["issuer"]
        self.secrets = info["clients"]
        self.jwks_url = f"{self.issuer}/jwks"
        self.session = requests.Session()
        self.session.trust_env = False  # loopback only, whatever the proxy variables say

    def stderr(self):
        try:
            return self.stderr_path.read_text(errors="replace")[-4000:]
        except OSError:
            return ""

    def token(self, client="rs-client", scope="users:read users:write"):
        r = self.session.post(f"{self.issuer}/token", auth=(client, self.secrets[client]),
                              data={"grant_type": "client_credentials", "scope": scope,
                                    "resource": AUDIENCE}, timeout=10)
        assert r.status_code == 200, f"token endpoint: {r.status_code} {r.text}\n{self.stderr()}"
        return r.json()["access_token"]

    def _admin(self, path, body=None):
        r = self.session.post(f"{self.issuer}/admin/{path}", json=body or {}, timeout=10)
        assert r.status_code == 200, f"admin/{path}: {r.status_code} {r.text}"
        return r.json()

    def rotate(self):
        return self._admin("rotate")

    def retire(self):
        return self._admin("retire")

    def configure(self, max_age=None, fail=None):
        body = {}
        if max_age is not None:
            body["max_age"] = max_age
        if fail is not None:
            body["fail"] = fail
        return self._admin("config", body)

    def stats(self):
        return self._admin("stats")

    def jwks(self):
        return self.session.get(self.jwks_url, timeout=10).json()

    def stop(self):
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        if self.proc.stdout:
            self.proc.stdout.close()


def wait_for(predicate, timeout, interval=0.05):
    """The first truthy value of predicate() within timeout, else its last."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(interval)
