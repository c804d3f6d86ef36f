"""Versions and licence: VERSION is the one source of the version,
CHANGELOG.md has its section, `api --version` names the commit of a build
from a checkout, and the licence is MIT wherever it is stated."""

import os
import re
import shutil
import subprocess

from harness import REPO_ROOT, run_cli


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
