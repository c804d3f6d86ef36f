"""Versions, licence and CI/CD: VERSION is the one source of the version,
CHANGELOG.md has its section, `api --version` names the commit of a build
from a checkout, the licence is MIT everywhere it is stated, and the GitHub
Actions workflow is valid (scripts/lint-workflows.sh, offline) and does what
docs/install.md says it does. scripts/deps.sh names the Node.js the tooling
needs when it finds an older one."""

import os
import re
import shutil
import subprocess

import pytest
import yaml

from harness import REPO_ROOT, run_cli

WORKFLOW = REPO_ROOT / ".github" / "workflows" / "ci.yml"


def run(cmd, timeout=120, **kw):
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout,
                          stdin=subprocess.DEVNULL, **kw)


def version():
    return (REPO_ROOT / "VERSION").read_text().strip()


def test_version_is_semver():
    assert re.fullmatch(r"\d+\.\d+\.\d+", version()), version()


def test_changelog_has_a_dated_section_for_the_version():
    text = (REPO_ROOT / "CHANGELOG.md").read_text()
    assert "keepachangelog.com" in text
    assert re.search(r"^## \[Unreleased\]$", text, re.M)
    heads = re.findall(r"^## \[(\d+\.\d+\.\d+)\] - (\d{4}-\d{2}-\d{2})$", text, re.M)
    assert heads and heads[0][0] == version(), \
        f"the newest section of CHANGELOG.md must be VERSION's ({version()}): {heads}"
    body = text.split(f"## [{version()}]", 1)[1].split("\n## [", 1)[0]
    assert re.search(r"^### (Added|Changed|Fixed|Removed|Deprecated|Security)$", body, re.M)


def test_version_names_the_commit_of_a_checkout():
    r = run_cli(["--version"])
    assert r.returncode == 0, r
    m = re.fullmatch(r"api (\S+)(?: \(commit ([0-9a-f]{7,40})(-dirty)?\))?\n", r.stdout)
    assert m, r.stdout
    assert m.group(1) == version()
    git = run(["git", "rev-parse", "--git-dir"], cwd=REPO_ROOT)
    if git.returncode != 0:
        assert m.group(2) is None, "a build outside a checkout cannot know its commit"
        return
    assert m.group(2), f"a build from a checkout must name its commit: {r.stdout!r}"
    kind = run(["git", "cat-file", "-t", m.group(2)], cwd=REPO_ROOT)
    assert kind.stdout.strip() == "commit", f"{m.group(2)} is not a commit of this repository"


def test_a_tree_without_git_builds_without_a_commit(tmp_path):
    # Like a release tarball: no .git. Compiling main.c (where the version
    # line is) is enough to show the Makefile needs no git and passes no commit.
    src = tmp_path / "tree"
    src.mkdir()
    for f in ("Makefile", "VERSION"):
        shutil.copy2(REPO_ROOT / f, src / f)
    shutil.copytree(REPO_ROOT / "src", src / "src")
    env = {k: v for k, v in os.environ.items() if k != "API_COMMIT"}
    r = run(["make", "-n", "build/obj/src/app/main.o"], cwd=src, env=env)
    assert r.returncode == 0, r.stderr
    assert "API_COMMIT" not in r.stdout and f"-DAPI_VERSION='\"{version()}\"'" in r.stdout, r.stdout
    r = run(["make", "-s", "build/obj/src/app/main.o"], cwd=src, env=env)
    assert r.returncode == 0, r.stderr
    assert (src / "build/obj/src/app/main.o").is_file()


def test_licence_is_mit_by_the_api_authors():
    text = (REPO_ROOT / "LICENSE").read_text()
    assert text.startswith("MIT License\n")
    assert re.search(r"^Copyright \(c\) \d{4} the api authors$", text, re.M)
    assert "Permission is hereby granted, free of charge" in text
    readme = (REPO_ROOT / "README.md").read_text()
    assert re.search(r"MIT licen[cs]e", readme) and "LICENSE" in readme


# ---- the workflow --------------------------------------------------------------

def test_workflow_is_valid():
    r = run([str(REPO_ROOT / "scripts" / "lint-workflows.sh")], timeout=300)
    assert r.returncode == 0, f"{r.stdout}\n{r.stderr}"
    assert "ci.yml: valid" in r.stdout


def test_validator_rejects_a_broken_workflow(tmp_path):
    bad = tmp_path / "broken.yml"
    bad.write_text(WORKFLOW.read_text().replace("runs-on:", "runs_on:", 1))
    r = run([str(REPO_ROOT / "scripts" / "lint-workflows.sh"), str(bad)], timeout=300)
    assert r.returncode != 0 and "INVALID" in r.stderr, f"{r.stdout}\n{r.stderr}"


def _steps(job):
    return [(s.get("uses", ""), s.get("run", ""), s.get("with", {}) or {}) for s in job["steps"]]


def test_workflow_tests_packages_and_releases():
    wf = yaml.safe_load(WORKFLOW.read_text())
    on = wf.get("on", wf.get(True))  # YAML 1.1 reads a bare `on` as true
    assert "push" in on and "pull_request" in on
    assert any(t.startswith("v") for t in on["push"]["tags"])
    test = wf["jobs"]["test"]
    assert test["container"] in ("debian:12", {"image": "debian:12"})
    assert test["timeout-minutes"] <= 20
    steps = _steps(test)
    node = [w for u, _, w in steps if u.startswith("actions/setup-node@")]
    assert node and str(node[0]["node-version"]).split(".")[0] == "20", node
    runs = [r for _, r, _ in steps]
    order = [i for i, r in enumerate(runs) if r.strip() in (".ci/run", "make deb")]
    assert [runs[i].strip() for i in order] == [".ci/run", "make deb"], runs
    uploads = [w for u, _, w in steps if u.startswith("actions/upload-artifact@")]
    assert uploads and uploads[0]["path"].startswith("build/deb/") and \
        uploads[0]["path"].endswith(".deb")
    # a node older than setup-node's would run the tooling: it comes first
    uses = [u for u, _, _ in steps]
    assert uses.index(next(u for u in uses if u.startswith("actions/setup-node@"))) < \
        runs.index(".ci/run")
    release = wf["jobs"]["release"]
    assert "refs/tags/v" in release["if"] and release["needs"] == "test"
    assert release["permissions"] == {"contents": "write"}
    rsteps = _steps(release)
    assert any(u.startswith("actions/download-artifact@") for u, _, _ in rsteps)
    assert any("gh release create" in r and ".deb" in r for _, r, _ in rsteps)
    assert any('"v${version}"' in r for _, r, _ in rsteps), "the tag must be checked against VERSION"


def test_ci_entry_point_runs_deps_then_make_test():
    text = (REPO_ROOT / ".ci" / "run").read_text()
    assert text.index("scripts/deps.sh") < text.index("make test")


# ---- deps.sh and Node -------------------------------------------------------------

def test_deps_names_the_node_version_the_tooling_needs(tmp_path):
    # A Node 18 first on PATH (Debian 12's own): deps.sh must say which
    # version the pinned tooling needs. (It installs nothing here: make
    # test's set-up already did, and nodejs is installed or provided.)
    fake = tmp_path / "bin"
    fake.mkdir()
    (fake / "node").write_text("#!/bin/sh\necho v18.19.0\n")
    (fake / "node").chmod(0o755)
    env = dict(os.environ, PATH=f"{fake}:{os.environ['PATH']}")
    r = run([str(REPO_ROOT / "scripts" / "deps.sh")], env=env, timeout=300)
    assert r.returncode == 0, r.stderr
    assert "Node.js 18.19.0" in r.stderr and ">= 20.19" in r.stderr, r.stderr
    # and the workflow validator refuses to run on it, saying why
    r = run([str(REPO_ROOT / "scripts" / "lint-workflows.sh")], env=env)
    assert r.returncode != 0 and ">= 20.19" in r.stderr, r.stderr


def test_deps_is_quiet_about_a_recent_node():
    r = run([str(REPO_ROOT / "scripts" / "deps.sh")], timeout=300)
    assert r.returncode == 0, r.stderr
    assert "Node.js" not in r.stderr, r.stderr
