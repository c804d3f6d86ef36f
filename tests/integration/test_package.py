"""The Debian package (`make deb`) and its systemd units, checked statically:
no systemd runs as PID 1 here, so the units are verified with
`systemd-analyze verify` and `systemd-analyze security --offline=yes`
against the package's own files, and the package with dpkg-deb and lintian.

The package is built once per run from the tree (build/deb/); these tests
read only what it contains."""

import gzip
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from harness import REPO_ROOT
from systemd_support import UNITS_DIR, built_deb, parse_seconds, read_unit

# deploy/ files the observability work adds; packaged when present.
OPTIONAL_SHARE = {
    "deploy/grafana/api.json": "usr/share/api/grafana/api.json",
    "deploy/prometheus/alerts.yml": "usr/share/api/prometheus/alerts.yml",
}
SECURITY_MAX = 2.0


def run(cmd, timeout=120, **kw):
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout,
                          stdin=subprocess.DEVNULL, **kw)


@pytest.fixture(scope="module")
def deb():
    return built_deb()


@pytest.fixture(scope="module")
def root(deb, tmp_path_factory):
    """The package's files, extracted (dpkg-deb -x)."""
    d = tmp_path_factory.mktemp("debroot")
    r = run(["dpkg-deb", "-x", str(deb["deb"]), str(d)])
    assert r.returncode == 0, r.stderr
    return d


@pytest.fixture(scope="module")
def listing(deb):
    """{path: (mode string, owner/group)} from dpkg-deb -c."""
    r = run(["dpkg-deb", "-c", str(deb["deb"])])
    assert r.returncode == 0, r.stderr
    files = {}
    for line in r.stdout.splitlines():
        mode, owner, _size, _date, _time, path = line.split(None, 5)
        files[path.removeprefix("./").split(" -> ")[0].rstrip("/")] = (mode, owner)
    return files


@pytest.fixture(scope="module")
def settings():
    """(name, default or "") of every setting `api --help` lists."""
    r = run([str(REPO_ROOT / "build" / "api"), "--help"])
    assert r.returncode == 0, r.stderr
    found = []
    on = False
    for line in r.stdout.splitlines():
        if line.startswith("Configuration"):
            on = True
            continue
        m = re.match(r"^  ([A-Z][A-Z0-9_]*) +(.*?)(?: \[([^\]]*)\])?$", line) if on else None
        if m:
            found.append((m.group(1), m.group(3) or ""))
    assert len(found) > 20, r.stdout
    return found


def field(info, name):
    m = re.search(rf"^ {name}: (.*)$", info, re.M)
    return m.group(1) if m else None


# ---- the .deb ------------------------------------------------------------------

def test_make_deb_names_the_package_by_version_and_arch(deb):
    assert deb["deb"].name == f"api_{deb['version']}_{deb['arch']}.deb"
    assert deb["changes"].is_file()
    # The tree stays clean: everything is under build/.
    assert deb["git_status_after"] == deb["git_status_before"], \
        f"make deb changed the tree:\n{deb['git_status_before']}\n->\n{deb['git_status_after']}"


def test_package_holds_the_listed_files(listing):
    expected = {
        "usr/sbin/api": "-rwxr-xr-x",
        "lib/systemd/system/api.service": "-rw-r--r--",
        "lib/systemd/system/api-migrate.service": "-rw-r--r--",
        "etc/api/api.env": "-rw-------",
        "usr/share/man/man8/api.8.gz": "-rw-r--r--",
        "usr/share/doc/api/copyright": "-rw-r--r--",
        "usr/share/doc/api/changelog.gz": "-rw-r--r--",
    }
    for path, mode in expected.items():
        assert path in listing, f"{path} missing from the package: {sorted(listing)}"
        assert listing[path] == (mode, "root/root"), f"{path}: {listing[path]}"
    for src, dst in OPTIONAL_SHARE.items():
        assert ((REPO_ROOT / src).is_file()) == (dst in listing), \
            f"{dst} must be packaged exactly when {src} exists"
    # Nothing else under /usr/share/api/ (no placeholder dashboards).
    extra = [p for p in listing if p.startswith("usr/share/api/") and
             listing[p][0][0] != "d" and p not in OPTIONAL_SHARE.values()]
    assert not extra, extra


def test_optional_observability_files_are_the_repositorys(root):
    for src, dst in OPTIONAL_SHARE.items():
        if (REPO_ROOT / src).is_file():
            assert (root / dst).read_bytes() == (REPO_ROOT / src).read_bytes(), dst


def test_units_in_the_package_are_the_repositorys(root):
    for name in ("api.service", "api-migrate.service"):
        assert (root / "lib/systemd/system" / name).read_text() == (UNITS_DIR / name).read_text()


def test_copyright_carries_the_mit_licence(root):
    text = (root / "usr/share/doc/api/copyright").read_text()
    assert text == (REPO_ROOT / "debian" / "copyright").read_text()
    assert "Copyright: 2026 the api authors" in text and "License: Expat" in text
    # the licence's own text, as LICENSE has it (Debian indents it by one)
    licence = (REPO_ROOT / "LICENSE").read_text().split("\n\n", 2)[2]
    dep5 = "\n".join(ln[1:] if ln != " ." else "" for ln in
                     text.split("License: Expat\n", 2)[2].splitlines())
    assert " ".join(licence.split()) == " ".join(dep5.split())


def test_control_fields_and_conffile(deb):
    r = run(["dpkg-deb", "-I", str(deb["deb"])])
    assert r.returncode == 0, r.stderr
    info = r.stdout
    assert field(info, "Package") == "api"
    assert field(info, "Version") == deb["version"]
    assert field(info, "Architecture") == deb["arch"]
    r = run(["dpkg-deb", "-I", str(deb["deb"]), "conffiles"])
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["/etc/api/api.env"]


def _owner_packages(paths):
    """{path: installed package that ships it}, usrmerge-aware (a library
    ldd finds under /usr/lib may be registered under /lib, and back)."""
    alternatives = {}
    for path in paths:
        alts = {path, str(Path(path).resolve())}
        for p in list(alts):
            alts.add(p[len("/usr"):] if p.startswith("/usr/lib/") else "/usr" + p)
        alternatives[path] = alts
    query = sorted(set().union(*alternatives.values()))
    r = run(["dpkg-query", "-S", *query])  # exits 1 when some are unknown: fine
    owner = {}
    for line in r.stdout.splitlines():
        pkgs, _, p = line.partition(": ")
        owner[p.strip()] = pkgs.split(",")[0].split(":")[0].strip()
    found = {}
    for path, alts in alternatives.items():
        hits = [owner[a] for a in alts if a in owner]
        assert hits, f"no installed package ships {path}"
        found[path] = hits[0]
    return found


def test_depends_are_the_library_packages_ldd_shows(root, deb):
    binary = root / "usr/sbin/api"
    r = run(["ldd", str(binary)])
    assert r.returncode == 0, r.stderr
    ldd_paths = re.findall(r"=> (/\S+)", r.stdout)
    owners = _owner_packages(ldd_paths)
    by_soname = {Path(p).name: owners[p] for p in ldd_paths}
    ldd_packages = set(by_soname.values())
    needed = re.findall(r"\(NEEDED\).*\[(.+)\]", run(["readelf", "-d", str(binary)]).stdout)
    assert needed, "no NEEDED entries?"
    info = run(["dpkg-deb", "-I", str(deb["deb"])]).stdout
    depends = {re.sub(r"\s*\(.*\)", "", d).strip() for d in field(info, "Depends").split(",")}
    # Every library the binary links against has its package in Depends ...
    for soname in needed:
        assert by_soname[soname] in depends, f"{soname} ({by_soname[soname]}) not in {depends}"
    # ... and Depends names nothing that is not one of those libraries' packages.
    assert depends <= ldd_packages, f"Depends has more than ldd shows: {depends - ldd_packages}"


def test_lintian_reports_no_errors_or_warnings(deb):
    r = run(["lintian", "--fail-on", "error,warning", str(deb["changes"])], timeout=300)
    findings = [ln for ln in r.stdout.splitlines() if re.match(r"^[EW]: ", ln)]
    assert r.returncode == 0 and not findings, f"lintian:\n{r.stdout}\n{r.stderr}"


# ---- what the package installs ------------------------------------------------------

def test_man_page_renders_cleanly_and_lists_every_setting(root, settings):
    page = root / "usr/share/man/man8/api.8.gz"
    r = run(["man", "--warnings", "-E", "UTF-8", "-l", "-Tutf8", "-Z", str(page)],
            env={"LC_ALL": "C.UTF-8", "PATH": "/usr/bin:/bin"})
    assert r.returncode == 0 and not r.stderr.strip(), f"man warnings:\n{r.stderr}"
    text = gzip.decompress(page.read_bytes()).decode()
    assert text.startswith(".TH API 8 ")
    for name, _ in settings:
        assert f".B {name}\n" in text, f"{name} is not in api(8)"


def test_env_file_comments_out_every_setting_without_dev_secrets(root, settings):
    text = (root / "etc/api/api.env").read_text()
    active = [ln for ln in text.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
    assert not active, f"api.env must set nothing: {active}"
    for name, default in settings:
        assert f"\n#{name}={default}\n" in text, f"{name} is not listed (commented) in api.env"
    config = (REPO_ROOT / "src/app/config.c").read_text()
    dev_secrets = re.findall(r'#define DEV_\w+\s+"([^"]+)"', config)
    assert len(dev_secrets) >= 2, "the development secrets moved: update this test"
    for secret in dev_secrets:
        assert secret not in text, "a development secret is in api.env"


# ---- the units -----------------------------------------------------------------------

@pytest.fixture(scope="module")
def unit_root(root, tmp_path_factory):
    """The package's root plus the system's unit directory (targets such as
    multi-user.target), so systemd-analyze --root resolves every dependency."""
    d = tmp_path_factory.mktemp("unitroot")
    shutil.copytree(root, d, dirs_exist_ok=True, symlinks=True)
    system = Path("/lib/systemd/system")
    assert system.is_dir(), "systemd's unit directory is missing (apt-get install systemd)"
    dest = d / "lib/systemd/system"
    for unit in system.iterdir():
        if not (dest / unit.name).exists():
            if unit.is_symlink():
                (dest / unit.name).symlink_to(unit.readlink())
            elif unit.is_file():
                shutil.copy2(unit, dest / unit.name)
    return d


def test_systemd_analyze_verify_passes(unit_root):
    units = [str(unit_root / "lib/systemd/system" / n) for n in ("api.service", "api-migrate.service")]
    # MANPATH: Documentation=man:api(8) must resolve to the packaged page.
    r = run(["systemd-analyze", "verify", f"--root={unit_root}", *units],
            env={"PATH": "/usr/bin:/bin:/usr/sbin:/sbin", "MANPATH": str(unit_root / "usr/share/man")})
    # verify exits 0 on unknown keys and bad values (it only warns): any output fails.
    assert r.returncode == 0 and not (r.stdout + r.stderr).strip(), \
        f"systemd-analyze verify:\n{r.stdout}{r.stderr}"


def test_verify_would_catch_a_broken_unit(unit_root, tmp_path):
    text = (UNITS_DIR / "api.service").read_text().replace("ProtectSystem=", "ProtectSytem=")
    bad = unit_root / "lib/systemd/system" / "api-broken-copy.service"
    bad.write_text(text)
    try:
        r = run(["systemd-analyze", "verify", f"--root={unit_root}", str(bad)],
                env={"PATH": "/usr/bin:/bin:/usr/sbin:/sbin",
                     "MANPATH": str(unit_root / "usr/share/man")})
    finally:
        bad.unlink()
    assert "ProtectSytem" in r.stdout + r.stderr


@pytest.mark.parametrize("unit", ["api.service", "api-migrate.service"])
def test_security_exposure_is_ok(unit_root, unit):
    r = run(["systemd-analyze", "security", "--offline=yes", f"--root={unit_root}",
             "--no-pager", unit])
    m = re.search(rf"Overall exposure level for {re.escape(unit)}: ([\d.]+) (\w+)", r.stdout)
    assert m, f"no exposure level:\n{r.stdout}\n{r.stderr}"
    score, verdict = float(m.group(1)), m.group(2)
    print(f"{unit}: exposure {score} {verdict}")
    assert score <= SECURITY_MAX and verdict == "OK", r.stdout


def test_api_service_settings():
    u = read_unit(UNITS_DIR / "api.service")

    def one(key):
        assert key in u, f"api.service has no {key}="
        return u[key][-1]

    assert one("Type") == "notify"
    assert one("ExecStart") == "/usr/sbin/api serve"
    assert one("EnvironmentFile") == "/etc/api/api.env"
    assert one("DynamicUser") == "yes"
    assert one("KillSignal") == "SIGTERM"
    assert one("NoNewPrivileges") == "yes"
    assert one("ProtectSystem") == "strict"
    assert one("ProtectHome") == "yes"
    assert one("PrivateTmp") == "yes"
    assert one("MemoryDenyWriteExecute") == "yes"
    assert one("CapabilityBoundingSet") == ""
    assert one("RestrictAddressFamilies") == "AF_UNIX AF_INET AF_INET6"
    assert u["SystemCallFilter"][0] == "@system-service"
    # The notifier pings every WatchdogSec/2 and the loops adapt their wait
    # to a quarter of that; a few seconds leave room for a loaded machine.
    assert 2 <= parse_seconds(one("WatchdogSec")) <= 60
    assert "api-migrate.service" in one("Wants").split()
    assert "api-migrate.service" in one("After").split()


def test_stop_timeout_covers_the_shutdown_sequence(settings):
    defaults = dict(settings)
    delay_s = int(defaults["SHUTDOWN_DELAY_MS"]) / 1000
    grace_s = int(defaults["SHUTDOWN_GRACE_MS"]) / 1000
    stop_s = parse_seconds(read_unit(UNITS_DIR / "api.service")["TimeoutStopSec"][-1])
    assert stop_s > delay_s + grace_s + 5, (stop_s, delay_s, grace_s)


def test_migrate_unit_runs_api_migrate_once():
    u = read_unit(UNITS_DIR / "api-migrate.service")
    assert u["Type"] == ["oneshot"]
    assert u["ExecStart"] == ["/usr/sbin/api migrate"]
    assert u["EnvironmentFile"] == ["/etc/api/api.env"]
    assert u["SystemCallFilter"] == read_unit(UNITS_DIR / "api.service")["SystemCallFilter"]
