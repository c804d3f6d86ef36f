"""The deploy files (deploy/), checked offline: no container engine and no
Kubernetes cluster run here, so every file is validated by the tool its
users would run (or the nearest offline one) and by what must hold between
files.

- Dockerfile: lint (npm's dockerfile-utils); the build stage installs the
  packages `make` needs (the pkg-config modules of the Makefile, and
  scripts/deps.sh agrees); the run stage installs every library that
  `ldd build/api` resolves and nothing it does not need; non-root user,
  SIGTERM, and a HEALTHCHECK that really probes /health/live (run here
  against a live server and a dead port).
- compose.yaml: `docker-compose config -q` (Debian's 1.29), and its
  settings agree with HAProxy, PgBouncer and the shutdown timing.
- HAProxy, PgBouncer, Prometheus configs: `haproxy -c`, `promtool check
  config`, the pool sizing arithmetic.
- deploy/k8s: `kubectl kustomize` renders every kustomization; every object
  passes its kubernetes-models schema with no unknown field; kubectl's own
  types keep every field of the pod templates; the rendered output keeps
  every field its inputs had; and the numbers that must agree do (preStop,
  SHUTDOWN_DELAY_MS, terminationGracePeriodSeconds, selectors, pool sizing).
"""

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from harness import REPO_ROOT, free_port

DEPLOY = REPO_ROOT / "deploy"
K8S = DEPLOY / "k8s"
DEPLOY_TOOLS = REPO_ROOT / "scripts" / "deploy-tools.sh"
KUSTOMIZATIONS = ("base", "overlays/production", "prometheus-adapter")


def need(tool):
    path = shutil.which(tool)
    assert path, f"{tool} is not installed (scripts/deps.sh installs it)"
    return path


def run(args, **kw):
    kw.setdefault("timeout", 120)
    if "input" not in kw:
        kw["stdin"] = subprocess.DEVNULL
    return subprocess.run(args, capture_output=True, text=True, cwd=REPO_ROOT, **kw)


# ---- Dockerfile -----------------------------------------------------------------------

def dockerfile_stages(path):
    """[(from-line, [(INSTRUCTION, args)])] with continuation lines joined
    and comments dropped."""
    logical, cur = [], ""
    for line in Path(path).read_text().splitlines():
        if not cur and line.lstrip().startswith("#"):
            continue
        if line.rstrip().endswith("\\"):
            cur += line.rstrip()[:-1] + " "
            continue
        cur += line
        if cur.strip():
            logical.append(cur.strip())
        cur = ""
    stages = []
    for line in logical:
        instr, _, rest = line.partition(" ")
        instr = instr.upper()
        if instr == "FROM":
            stages.append((rest.strip(), []))
        else:
            assert stages, f"{instr} before FROM in {path}"
            stages[-1][1].append((instr, rest.strip()))
    return stages


def apt_installs(instructions):
    """Package names every `apt-get install` of a stage's RUN lines names."""
    pkgs = []
    for instr, args in instructions:
        if instr != "RUN":
            continue
        for m in re.finditer(r"apt-get install((?:\s+[^&;|]+)+)", args):
            pkgs += [w for w in m.group(1).split() if not w.startswith("-")]
    return pkgs


def deps_sh_packages():
    text = (REPO_ROOT / "scripts" / "deps.sh").read_text()
    block = re.search(r"PACKAGES=\((.*?)\n\)", text, re.S).group(1)
    names = []
    for line in block.splitlines():
        line = line.split("#", 1)[0].strip()
        names += [alt for w in line.split() for alt in w.strip("'\"").split("|")]
    return set(names)


def owning_package(path):
    """The Debian package that installed path (merged /usr tolerated)."""
    candidates = [path, os.path.realpath(path)]
    for p in list(candidates):
        if p.startswith("/usr/"):
            candidates.append(p[4:])
        else:
            candidates.append("/usr" + p)
    for p in candidates:
        r = run(["dpkg", "-S", p])
        if r.returncode == 0:
            return r.stdout.split(":", 1)[0].strip().split(",")[0].strip()
    raise AssertionError(f"no installed package owns {path}")


def package_field(pkg, field):
    r = run(["dpkg-query", "-W", f"-f=${{{field}}}", pkg])
    assert r.returncode == 0, f"{pkg} is not installed: {r.stderr}"
    return r.stdout


def depends_closure(pkgs):
    """pkgs and everything they depend on (first alternatives, as apt picks)."""
    seen, todo = set(), list(pkgs)
    while todo:
        p = todo.pop()
        if p in seen:
            continue
        seen.add(p)
        r = run(["dpkg-query", "-W", "-f=${Depends}, ${Pre-Depends}", p])
        if r.returncode != 0:
            continue  # a virtual package or one not installed here
        for dep in r.stdout.split(","):
            dep = dep.strip()
            if dep:
                name = dep.split("|")[0].split()[0].split(":")[0]
                todo.append(name)
    return seen


def test_dockerfiles_lint_clean():
    need("node")
    r = run([str(DEPLOY_TOOLS), "dockerfile-lint", "deploy/Dockerfile", "deploy/pgbouncer/Dockerfile"],
            timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr


def test_dockerfile_lint_reports_a_broken_file(tmp_path):
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM debian:12\nHEALTHCHECK CMD\nSTOPSIGNAL\n")
    r = run([str(DEPLOY_TOOLS), "dockerfile-lint", str(bad)], timeout=300)
    assert r.returncode == 1 and "HEALTHCHECK" in r.stdout, r.stdout + r.stderr


def test_build_stage_installs_what_make_builds_with():
    stages = dockerfile_stages(DEPLOY / "Dockerfile")
    assert [s[0] for s in stages] == ["debian:12 AS build", "debian:12-slim AS run"], [s[0] for s in stages]
    build = set(apt_installs(stages[0][1]))
    machine = deps_sh_packages()
    mk = (REPO_ROOT / "Makefile").read_text()
    modules = re.search(r"^PKGS\s*:=\s*(.+)$", mk, re.M).group(1).split()
    wanted = {"build-essential", "pkg-config"}
    for mod in modules:
        pcdir = run(["pkg-config", "--variable=pcfiledir", mod]).stdout.strip()
        assert pcdir, f"pkg-config does not know {mod}"
        wanted.add(owning_package(f"{pcdir}/{mod}.pc"))
    assert wanted <= build, f"the build stage lacks {sorted(wanted - build)}"
    assert wanted <= machine, f"scripts/deps.sh lacks {sorted(wanted - machine)}"
    assert build <= wanted, f"the build stage installs more than make needs: {sorted(build - wanted)}"
    runs = " ".join(a for i, a in stages[0][1] if i == "RUN")
    assert "make" in runs and "build/api" in runs, runs


# Run-stage packages that are no library but still needed at run time.
RUNTIME_NON_LIBRARIES = {
    "ca-certificates": "JWT_JWKS_URL is fetched with libcurl over verified TLS",
}


def test_run_stage_installs_every_library_the_binary_links():
    binary = REPO_ROOT / "build" / "api"
    assert binary.is_file(), "build/api is missing (make)"
    out = run(["ldd", str(binary)]).stdout
    libs = []
    for line in out.splitlines():
        m = re.match(r"\s*\S+ => (/\S+) \(", line) or re.match(r"\s*(/\S+) \(", line)
        if m:
            libs.append(m.group(1))
        else:
            assert "linux-vdso" in line or not line.strip(), f"unresolved: {line}"
    assert len(libs) >= 5, out
    stages = dockerfile_stages(DEPLOY / "Dockerfile")
    runtime = apt_installs(stages[1][1])
    covered = depends_closure(runtime)
    needed = {}
    for lib in libs:
        needed.setdefault(owning_package(lib), []).append(lib)
    for pkg, owned in needed.items():
        # debian:12-slim is a minbase image: every package of priority
        # "required" is in it, and nothing else.
        required = package_field(pkg, "Priority") == "required"
        assert pkg in covered or required, f"{owned} come from {pkg}, which the run stage does not install"
    for pkg in runtime:
        assert pkg in needed or pkg in RUNTIME_NON_LIBRARIES, \
            f"the run stage installs {pkg}, which build/api does not link"


def test_run_stage_is_non_root_with_sigterm_and_a_liveness_healthcheck():
    stages = dockerfile_stages(DEPLOY / "Dockerfile")
    run_stage = dict()
    for instr, args in stages[1][1]:
        run_stage.setdefault(instr, []).append(args)
    user = run_stage["USER"][-1].split(":")[0]
    assert user not in ("root", "0") and user, user
    assert re.search(r"useradd .*--uid 10001", " ".join(run_stage["RUN"])), run_stage["RUN"]
    assert run_stage["STOPSIGNAL"] == ["SIGTERM"]
    assert run_stage["EXPOSE"] == ["3000"]
    assert any("--from=build" in c and "build/api" in c for c in run_stage["COPY"]), run_stage["COPY"]
    assert "/health/live" in run_stage["HEALTHCHECK"][0]
    assert json.loads(run_stage["ENTRYPOINT"][0]) == ["/usr/local/bin/api"]


def healthcheck_command():
    stages = dockerfile_stages(DEPLOY / "Dockerfile")
    hc = [a for i, a in stages[1][1] if i == "HEALTHCHECK"][0]
    return json.loads(hc[hc.index("CMD") + 3:].strip())


def test_healthcheck_command_probes_liveness(server):
    cmd = healthcheck_command()
    srv = server()
    env = {"PATH": "/usr/bin:/bin", "PORT": str(srv.port)}
    r = run(cmd, env=env, timeout=10)
    assert r.returncode == 0, r.stderr
    srv.wait_for_log(lambda x: x.get("msg") == "request" and x.get("path") == "/health/live")
    # Nothing listening: the check fails (and fast).
    r = run(cmd, env={"PATH": "/usr/bin:/bin", "PORT": str(free_port())}, timeout=10)
    assert r.returncode != 0


# ---- compose, HAProxy, PgBouncer, Prometheus ---------------------------------------------

COMPOSE_ENV = {"JWT_SECRET": "j" * 40, "CURSOR_SECRET": "c" * 40}


def compose(*args, env=None):
    need("docker-compose")
    e = {"PATH": os.environ["PATH"], "HOME": os.environ.get("HOME", "/tmp"), **(env or {})}
    return run(["docker-compose", "-f", str(DEPLOY / "compose.yaml"), *args], env=e, timeout=60)


def mounts(service):
    """(source, target) of each volume, as `docker-compose config` writes
    them ("SRC:TARGET[:MODE]", sources absolute)."""
    out = []
    for v in service.get("volumes", []):
        if isinstance(v, dict):
            out.append((str(v.get("source", "")), v["target"]))
        else:
            parts = v.split(":")
            out.append((parts[0], parts[1]))
    return out


def compose_config():
    r = compose("config", env=COMPOSE_ENV)
    assert r.returncode == 0, r.stderr
    return yaml.safe_load(r.stdout)


def per_instance(env):
    """PostgreSQL connections one instance opens (src/db/capacity.h)."""
    workers, pool = int(env["WORKERS"]), int(env["DATABASE_POOL_SIZE"])
    return workers * (max(1, pool // workers) + 1)


def ms(env, name):
    return int(env[name])


def haproxy_detection_bound_ms():
    """How long HAProxy may take to mark a server DOWN after its first 503:
    inter + (fall - 1) x fastinter + timeout check (deploy/haproxy/haproxy.cfg)."""
    text = (DEPLOY / "haproxy" / "haproxy.cfg").read_text()

    def setting(name):
        m = re.search(rf"\b{name}\s+(\d+)(ms|s)?\b", text)
        assert m, f"haproxy.cfg has no {name}"
        return int(m.group(1)) * (1000 if m.group(2) == "s" else 1)
    fall = int(re.search(r"\bfall\s+(\d+)", text).group(1))
    return setting("inter") + (fall - 1) * setting("fastinter") + setting("timeout check")


def pooling_setting(name):
    for line in (DEPLOY / "pgbouncer" / "pooling.ini").read_text().splitlines():
        m = re.match(rf"^\s*{name}\s*=\s*(\S*)", line)
        if m:
            value = m.group(1)
    return value


def test_compose_file_is_valid():
    r = compose("config", "-q", env=COMPOSE_ENV)
    assert r.returncode == 0, r.stderr
    # The secrets are required, not defaulted.
    r = compose("config", "-q")
    assert r.returncode != 0 and "JWT_SECRET" in r.stderr, r.stderr


def test_compose_services_and_their_settings_agree():
    cfg = compose_config()
    services = cfg["services"]
    assert set(services) == {"api-1", "api-2", "api-3", "migrate", "haproxy", "pgbouncer", "postgres", "redis",
                             "prometheus"}, sorted(services)
    ips = {name: s["networks"]["api"]["ipv4_address"] for name, s in services.items()}
    apis = [services[f"api-{i}"] for i in (1, 2, 3)]
    for s in apis:
        env = s["environment"]
        assert env["DATABASE_PREPARED"] == "0"
        assert f"@{ips['pgbouncer']}:6432/" in env["DATABASE_URL"], env["DATABASE_URL"]
        assert f"//{ips['redis']}:6379/" in env["REDIS_URL"], env["REDIS_URL"]
        assert env["TRUSTED_PROXIES"] == f"{ips['haproxy']}/32"
        assert s["build"]["dockerfile"] == "deploy/Dockerfile"
        # HAProxy sees the drain before the listener closes, and compose
        # waits for delay + grace before it kills.
        assert ms(env, "SHUTDOWN_DELAY_MS") > haproxy_detection_bound_ms()
        grace_s = int(s["stop_grace_period"].rstrip("s"))
        assert grace_s * 1000 > ms(env, "SHUTDOWN_DELAY_MS") + ms(env, "SHUTDOWN_GRACE_MS")
        # Pool sizing against PgBouncer's server connections.
        assert env["DATABASE_MAX_CONNECTIONS"] == pooling_setting("default_pool_size")
        assert int(env["DATABASE_INSTANCES"]) >= 3
        assert int(env["DATABASE_INSTANCES"]) * per_instance(env) <= int(env["DATABASE_MAX_CONNECTIONS"])
        assert s["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
    hap = services["haproxy"]["environment"]
    assert sorted(hap[f"API{i}_ADDR"] for i in (1, 2, 3)) == sorted(f"{ips[f'api-{i}']}:3000" for i in (1, 2, 3))
    mig = services["migrate"]
    assert mig["command"] == ["migrate"]
    assert f"@{ips['postgres']}:5432/" in mig["environment"]["DATABASE_MIGRATION_URL"]
    # Every bind mount names a file or directory of the repository.
    for name, s in services.items():
        for src, _ in mounts(s):
            if src.startswith("/"):
                assert Path(src).exists(), f"{name} mounts {src}, which does not exist"
    assert (str(DEPLOY / "prometheus"), "/etc/prometheus") in mounts(services["prometheus"])
    assert (str(DEPLOY / "haproxy" / "haproxy.cfg"), "/usr/local/etc/haproxy/haproxy.cfg") in \
        mounts(services["haproxy"])
    pgb_ini = (DEPLOY / "pgbouncer" / "pgbouncer.ini").read_text()
    assert "%include /etc/pgbouncer/pooling.ini" in pgb_ini
    assert (str(DEPLOY / "pgbouncer" / "pooling.ini"), "/etc/pgbouncer/pooling.ini") in mounts(services["pgbouncer"])
    assert pooling_setting("pool_mode") == "transaction"


def test_haproxy_config_is_valid_without_warnings():
    env = {"PATH": os.environ["PATH"], "HAPROXY_BIND": "127.0.0.1:1", "HAPROXY_METRICS_BIND": "127.0.0.1:2",
           "API1_ADDR": "127.0.0.1:3", "API2_ADDR": "127.0.0.1:4", "API3_ADDR": "127.0.0.1:5"}
    r = run([need("haproxy"), "-c", "-f", str(DEPLOY / "haproxy" / "haproxy.cfg")], env=env, timeout=30)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "WARNING" not in r.stdout + r.stderr and "Warnings were found" not in r.stdout + r.stderr, r.stderr
    text = (DEPLOY / "haproxy" / "haproxy.cfg").read_text()
    assert "http-check send meth GET uri /health/ready" in text
    assert "prometheus-exporter" in text
    # The local cluster's delay covers HAProxy's detection too.
    cluster = (DEPLOY / "cluster.sh").read_text()
    delay = int(re.search(r"SHUTDOWN_DELAY_MS:-(\d+)", cluster).group(1))
    assert delay > haproxy_detection_bound_ms()


def test_prometheus_config_is_valid():
    r = run([need("promtool"), "check", "config", str(DEPLOY / "prometheus" / "prometheus.yml")], timeout=30)
    assert r.returncode == 0, r.stdout + r.stderr
    cfg = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text())
    targets = {t for job in cfg["scrape_configs"] for sc in job["static_configs"] for t in sc["targets"]}
    assert {"api-1:3000", "api-2:3000", "api-3:3000", "haproxy:8405"} <= targets, targets


# ---- Kubernetes ---------------------------------------------------------------------

@pytest.fixture(scope="module")
def kubeconfig(tmp_path_factory):
    # kubectl's default server is localhost:8080: a config with no cluster
    # at all keeps every command offline.
    p = tmp_path_factory.mktemp("kube") / "config"
    p.write_text("apiVersion: v1\nkind: Config\nclusters: []\ncontexts: []\nusers: []\n")
    return p


def kubectl(kubeconfig, *args, stdin=None):
    env = {"PATH": os.environ["PATH"], "HOME": str(kubeconfig.parent), "KUBECONFIG": str(kubeconfig)}
    kw = {} if stdin is None else {"input": stdin}
    return run([need("kubectl"), *args], env=env, timeout=60, **kw)


def render(kubeconfig, d):
    r = kubectl(kubeconfig, "kustomize", str(K8S / d))
    assert r.returncode == 0, f"kubectl kustomize {d}: {r.stderr}"
    return [o for o in yaml.safe_load_all(r.stdout) if o]


@pytest.fixture(scope="module")
def rendered(kubeconfig):
    return {d: render(kubeconfig, d) for d in KUSTOMIZATIONS}


def by_kind(objs, kind, name=None):
    found = [o for o in objs if o["kind"] == kind and (name is None or o["metadata"]["name"] == name)]
    assert len(found) == 1, f"{kind} {name}: {len(found)} objects"
    return found[0]


def k8s_check(objs):
    return run([str(DEPLOY_TOOLS), "k8s-check"], input=json.dumps(objs), timeout=300)


def test_kustomizations_render(rendered):
    kinds = sorted(o["kind"] for o in rendered["base"])
    assert kinds == sorted(["ConfigMap", "Secret", "Deployment", "Service", "Job", "HorizontalPodAutoscaler",
                            "PodDisruptionBudget", "NetworkPolicy"]), kinds
    assert all(o["metadata"].get("namespace") == "api" for o in rendered["overlays/production"])
    assert [o["kind"] for o in rendered["prometheus-adapter"]] == ["ConfigMap"]


def test_every_object_passes_its_schema_with_no_unknown_field(rendered):
    need("node")
    objs = [o for d in KUSTOMIZATIONS for o in rendered[d]]
    r = k8s_check(objs)
    assert r.returncode == 0, r.stdout + r.stderr
    report = json.loads(r.stdout)
    assert len(report) == len(objs)
    assert all(not e["errors"] and not e["unknown"] for e in report), report


def test_schema_check_finds_typos_and_wrong_types(rendered):
    need("node")
    dep = json.loads(json.dumps(by_kind(rendered["base"], "Deployment")))
    dep["spec"]["template"]["spec"]["terminationGracePeriod"] = 30       # a typo'd field
    dep["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"]["cpu"] = {"x": 1}  # a wrong type
    pdb = json.loads(json.dumps(by_kind(rendered["base"], "PodDisruptionBudget")))
    pdb["spec"]["maxUnavailabe"] = 1
    r = k8s_check([dep, pdb])
    assert r.returncode == 1, r.stdout + r.stderr
    report = json.loads(r.stdout)
    assert "/spec/template/spec/terminationGracePeriod" in report[0]["unknown"], report[0]
    assert report[0]["errors"], report[0]
    assert report[1]["unknown"] == ["/spec/maxUnavailabe"], report[1]


def leaves(value, path=()):
    """{path: scalar} of a document, lists of named items keyed by name (the
    way strategic merge matches them), so order does not matter."""
    out = {}
    if isinstance(value, dict):
        if not value:
            out[path] = {}
        for k, v in value.items():
            out.update(leaves(v, path + (k,)))
    elif isinstance(value, list):
        if not value:
            out[path] = []
        named = all(isinstance(x, dict) and "name" in x for x in value)
        for i, x in enumerate(value):
            out.update(leaves(x, path + ((f"name={x['name']}" if named else i),)))
    else:
        out[path] = value
    return out


def key(o):
    return (o["kind"], o["metadata"]["name"])


def load_inputs(d):
    k = yaml.safe_load((K8S / d / "kustomization.yaml").read_text())
    docs = []
    for f in k.get("resources", []):
        docs += [o for o in yaml.safe_load_all((K8S / d / f).read_text()) if o]
    return k, docs


def test_rendered_output_keeps_every_field_its_inputs_had(rendered):
    for d in ("base", "prometheus-adapter"):
        _, docs = load_inputs(d)
        out = {key(o): leaves(o) for o in rendered[d]}
        assert set(out) == {key(o) for o in docs}, d
        for o in docs:
            missing = {p: v for p, v in leaves(o).items() if out[key(o)].get(p, object()) != v}
            assert not missing, f"{d}: {key(o)} lost or changed {missing}"
    # The overlay: the base's output plus its patches, nothing lost.
    k = yaml.safe_load((K8S / "overlays/production/kustomization.yaml").read_text())
    patches = {}
    for f in k["patchesStrategicMerge"]:
        for o in yaml.safe_load_all((K8S / "overlays/production" / f).read_text()):
            patches[key(o)] = leaves(o)
    images = {i["name"]: i for i in k.get("images", [])}
    out = {key(o): leaves(o) for o in rendered["overlays/production"]}
    for o in rendered["base"]:
        want = leaves(o)
        want.update(patches.get(key(o), {}))
        for p, v in list(want.items()):
            if p[-1] == "image" and v.split(":")[0] in images:
                img = images[v.split(":")[0]]
                want[p] = f"{img.get('newName', img['name'])}:{img['newTag']}"
        missing = {p: v for p, v in want.items() if out[key(o)].get(p, object()) != v}
        assert not missing, f"overlay: {key(o)} lost or changed {missing}"


def test_kubectl_types_keep_every_field_of_the_pod_templates(rendered, kubeconfig):
    # `kubectl set env --local` decodes into kubectl's own Go types and
    # writes them back: a field those types lack would vanish.
    for kind in ("Deployment", "Job"):
        o = by_kind(rendered["base"], kind)
        r = kubectl(kubeconfig, "set", "env", "--local", "-f", "-", "-o", "json", "ROUNDTRIP_CHECK=1",
                    stdin=json.dumps(o))
        assert r.returncode == 0, r.stderr
        back = leaves(json.loads(r.stdout))
        missing = {p: v for p, v in leaves(o).items() if back.get(p, object()) != v}
        assert not missing, f"{kind}: kubectl dropped or changed {missing}"


def config_env(objs):
    return by_kind(objs, "ConfigMap", "api-config")["data"]


def test_shutdown_timing_agrees(rendered):
    objs = rendered["overlays/production"]
    dep = by_kind(objs, "Deployment")
    pod = dep["spec"]["template"]["spec"]
    c = pod["containers"][0]
    cmd = c["lifecycle"]["preStop"]["exec"]["command"]
    assert cmd[0] == "sleep" and len(cmd) == 2, cmd
    pre_stop_s = int(cmd[1])
    env = config_env(objs)
    delay, grace = ms(env, "SHUTDOWN_DELAY_MS"), ms(env, "SHUTDOWN_GRACE_MS")
    assert pre_stop_s * 1000 == delay, "the preStop sleep is matched to SHUTDOWN_DELAY_MS"
    assert pod["terminationGracePeriodSeconds"] > pre_stop_s + (delay + grace) / 1000 + 5
    assert dep["spec"]["strategy"]["rollingUpdate"] == {"maxSurge": 1, "maxUnavailable": 0}


def test_probes_resources_and_security(rendered):
    dep = by_kind(rendered["overlays/production"], "Deployment")
    pod = dep["spec"]["template"]["spec"]
    c = pod["containers"][0]
    assert c["startupProbe"]["httpGet"]["path"] == "/health/live"
    assert c["livenessProbe"]["httpGet"]["path"] == "/health/live"
    assert c["readinessProbe"]["httpGet"]["path"] == "/health/ready"
    for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
        assert c[probe]["httpGet"]["port"] == c["ports"][0]["name"]
    res = c["resources"]
    assert {"cpu", "memory"} <= set(res["requests"]) and {"cpu", "memory"} <= set(res["limits"]), res
    assert int(config_env(rendered["overlays/production"])["WORKERS"]) == int(res["limits"]["cpu"])
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert c["securityContext"]["readOnlyRootFilesystem"] is True
    assert c["securityContext"]["allowPrivilegeEscalation"] is False


def matches(selector, labels):
    return all(labels.get(k) == v for k, v in selector.items())


def test_selectors_and_references_agree(rendered):
    objs = rendered["overlays/production"]
    dep = by_kind(objs, "Deployment")
    labels = dep["spec"]["template"]["metadata"]["labels"]
    assert matches(dep["spec"]["selector"]["matchLabels"], labels)
    assert matches(by_kind(objs, "Service")["spec"]["selector"], labels)
    assert matches(by_kind(objs, "PodDisruptionBudget")["spec"]["selector"]["matchLabels"], labels)
    np = by_kind(objs, "NetworkPolicy")
    assert matches(np["spec"]["podSelector"]["matchLabels"], labels)
    job = by_kind(objs, "Job")
    assert matches(np["spec"]["podSelector"]["matchLabels"], job["spec"]["template"]["metadata"]["labels"])
    assert job["spec"]["template"]["spec"]["containers"][0]["args"] == ["migrate"]
    hpa = by_kind(objs, "HorizontalPodAutoscaler")
    assert hpa["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment",
                                             "name": dep["metadata"]["name"]}
    metrics = {m["type"]: m for m in hpa["spec"]["metrics"]}
    assert metrics["Resource"]["resource"]["name"] == "cpu"
    pods_metric = metrics["Pods"]["pods"]["metric"]["name"]
    adapter = yaml.safe_load(by_kind(rendered["prometheus-adapter"], "ConfigMap")["data"]["config.yaml"])
    assert pods_metric in [r["name"]["as"] for r in adapter["rules"]], adapter
    refs = {r["configMapRef"]["name"] if "configMapRef" in r else r["secretRef"]["name"]
            for r in dep["spec"]["template"]["spec"]["containers"][0]["envFrom"]}
    assert refs == {by_kind(objs, "ConfigMap", "api-config")["metadata"]["name"],
                    by_kind(objs, "Secret")["metadata"]["name"]}


def test_pool_sizing_covers_the_autoscaler_and_the_surge(rendered):
    objs = rendered["overlays/production"]
    env = config_env(objs)
    hpa = by_kind(objs, "HorizontalPodAutoscaler")
    surge = by_kind(objs, "Deployment")["spec"]["strategy"]["rollingUpdate"]["maxSurge"]
    instances = int(env["DATABASE_INSTANCES"])
    assert instances >= hpa["spec"]["maxReplicas"] + surge
    assert instances * per_instance(env) <= int(env["DATABASE_MAX_CONNECTIONS"])
    assert env["DATABASE_PREPARED"] == "0"
