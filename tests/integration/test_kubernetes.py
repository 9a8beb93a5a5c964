"""examples/kubernetes: the manifests are valid Kubernetes objects, make the choices the README
claims, and the ConfigMap's hornbeam.toml runs the real binary.

Schema: every object is checked against the API types of Debian's python3-kubernetes, the client
generated from the Kubernetes OpenAPI schema (its models' `openapi_types`/`attribute_map`, and its
deserializer, which raises on a missing required field). No JSON schema of Kubernetes is shipped
by Debian, and no npm package of schemas is installed here; this is the schema Debian ships, for
the API of Kubernetes 1.22 (python3-kubernetes 22.6): a field newer than that would be reported
as unknown. Unknown fields, wrong types and missing required fields fail.

The Dockerfile is not built here (no container runtime, no network): its COPY sources and the
scripts it runs are checked to exist, and scripts/runtime-deps.sh, which it runs, is run on a real
install.
"""
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import pytest
import requests

from hbtest import BINARY, EXAMPLES, REPO, assert_no_sanitizer, free_port, require_binary, run_binary, server_env

try:
    import kubernetes.client as k8s
    import yaml
except ImportError as e:  # a failure, not a skip: scripts/setup.sh installs both (TEST_PKGS)
    raise ImportError("test_kubernetes needs python3-yaml and python3-kubernetes (scripts/setup.sh): %s" % e)

K8S = EXAMPLES / "kubernetes"
KINDS = {("v1", "ConfigMap"): "V1ConfigMap", ("v1", "Service"): "V1Service",
         ("apps/v1", "Deployment"): "V1Deployment"}
PRIMITIVES = {"str": (str,), "int": (int,), "bool": (bool,), "float": (int, float),
              "datetime": (str,), "date": (str,), "object": (object,)}


def _docs():
    out = []
    for f in sorted(K8S.glob("*.yaml")):
        for d in yaml.safe_load_all(f.read_text()):
            if d is not None:
                out.append((f.name, d))
    return out


def _check(value, typ, where, errors):
    """Checks value against a python-kubernetes type string, recursively."""
    if value is None:
        return
    m = re.fullmatch(r"list\[(.+)\]", typ)
    if m:
        if not isinstance(value, list):
            errors.append("%s: expected a list (%s), got %r" % (where, typ, value))
            return
        for i, v in enumerate(value):
            _check(v, m.group(1), "%s[%d]" % (where, i), errors)
        return
    m = re.fullmatch(r"dict\((\w+), (.+)\)", typ)
    if m:
        if not isinstance(value, dict):
            errors.append("%s: expected a map (%s), got %r" % (where, typ, value))
            return
        for k, v in value.items():
            _check(v, m.group(2), "%s.%s" % (where, k), errors)
        return
    if typ in PRIMITIVES:
        ok = isinstance(value, PRIMITIVES[typ]) and not (typ == "int" and isinstance(value, bool))
        if not ok:
            errors.append("%s: expected %s, got %r" % (where, typ, value))
        return
    cls = getattr(k8s, typ)
    if not isinstance(value, dict):
        errors.append("%s: expected an object (%s), got %r" % (where, typ, value))
        return
    by_json = {j: a for a, j in cls.attribute_map.items()}
    for k, v in value.items():
        if k not in by_json:
            errors.append("%s: unknown field %r in %s" % (where, k, typ))
            continue
        _check(v, cls.openapi_types[by_json[k]], "%s.%s" % (where, k), errors)


def test_manifests_match_the_kubernetes_api_schema():
    docs = _docs()
    assert {d["kind"] for _, d in docs} == {"ConfigMap", "Service", "Deployment"}
    client = k8s.ApiClient()
    for name, d in docs:
        klass = KINDS.get((d.get("apiVersion"), d.get("kind")))
        assert klass, "%s: unexpected apiVersion/kind %s/%s" % (name, d.get("apiVersion"), d.get("kind"))
        errors = []
        _check(d, klass, "%s:%s" % (name, d["kind"]), errors)
        assert not errors, "\n".join(errors)
        # The generated models refuse missing required fields (ValueError naming the field).
        client._ApiClient__deserialize(d, klass)


def test_the_schema_check_catches_mistakes():
    """The validator is not a yes-machine: a typo, a wrong type and a missing field all fail."""
    _, dep = next((n, d) for n, d in _docs() if d["kind"] == "Deployment")
    bad = yaml.safe_load(yaml.safe_dump(dep))
    c = bad["spec"]["template"]["spec"]["containers"][0]
    c["livenessProbe"]["httpGet"]["pth"] = "/x"
    c["ports"][0]["containerPort"] = "8000"
    errors = []
    _check(bad, "V1Deployment", "d", errors)
    assert any("unknown field 'pth'" in e for e in errors), errors
    assert any("containerPort: expected int" in e for e in errors), errors
    del c["name"]
    with pytest.raises(ValueError, match="name"):
        k8s.ApiClient()._ApiClient__deserialize(bad, "V1Deployment")


def _objects():
    docs = [d for _, d in _docs()]
    dep = next(d for d in docs if d["kind"] == "Deployment")
    cm = next(d for d in docs if d["kind"] == "ConfigMap")
    services = [d for d in docs if d["kind"] == "Service"]
    return dep, cm, services


def _toml(cm):
    import tomllib
    return tomllib.loads(cm["data"]["hornbeam.toml"])


def test_deployment_choices():
    dep, cm, services = _objects()
    cfg = _toml(cm)
    pod = dep["spec"]["template"]["spec"]
    labels = dep["spec"]["template"]["metadata"]["labels"]
    assert dep["spec"]["selector"]["matchLabels"].items() <= labels.items()
    (c,) = pod["containers"]
    # Guaranteed QoS with integer CPUs, equal to the workers, pinned.
    for ctr in pod["containers"] + pod.get("initContainers", []):
        res = ctr["resources"]
        for what in ("cpu", "memory"):
            assert res["requests"][what] == res["limits"][what], "%s: %s request != limit" % (ctr["name"], what)
    cpus = c["resources"]["limits"]["cpu"]
    assert re.fullmatch(r"[1-9][0-9]*", str(cpus)), "CPU %r is not a whole number" % cpus
    assert cfg["workers"] == int(cpus)
    assert cfg["cpu_affinity"] is True
    # Probes on the metrics port, /healthz and /readyz.
    ports = {p["name"]: p["containerPort"] for p in c["ports"]}
    assert ports["metrics"] == 9000
    env = {e["name"]: e.get("value") for e in c["env"]}
    assert env["HORNBEAM_METRICS_BIND"].endswith(":9000")
    assert c["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "metrics"}
    assert c["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "metrics"}
    assert c["startupProbe"]["httpGet"]["path"] == "/healthz"
    # The grace period covers preStop + graceful_timeout, with a small margin.
    pre = c["lifecycle"]["preStop"]["exec"]["command"]
    assert pre[0].endswith("sleep")
    need = int(pre[1]) + cfg["graceful_timeout"]
    assert need <= pod["terminationGracePeriodSeconds"] <= need + 10, (pod["terminationGracePeriodSeconds"], need)
    # The config file is the ConfigMap, where the args say.
    mounts = {m["name"]: m["mountPath"] for m in c["volumeMounts"]}
    vols = {v["name"]: v for v in pod["volumes"]}
    cfg_vol = next(n for n, v in vols.items() if v.get("configMap", {}).get("name") == cm["metadata"]["name"])
    assert c["args"] == ["--config", "%s/hornbeam.toml" % mounts[cfg_vol]]
    assert pod["enableServiceLinks"] is False
    assert pod["securityContext"]["runAsNonRoot"] is True
    # Services: one headless, both selecting the pods, targets that exist.
    headless = [s for s in services if s["spec"].get("clusterIP") == "None"]
    assert len(headless) == 1 and headless[0]["spec"]["publishNotReadyAddresses"] is True
    for s in services:
        assert s["spec"]["selector"].items() <= labels.items()
        for p in s["spec"]["ports"]:
            assert p["targetPort"] in ports or p["targetPort"] in ports.values()


def _help_keys():
    res = run_binary(["--help"], timeout=10)
    return set(re.findall(r"--(?:\[no-\])?([a-z][a-z0-9-]+)", res.stdout.decode() + res.stderr.decode()))


def test_configmap_toml_serves_with_the_real_binary(tmp_path):
    """The ConfigMap's file as written, with the Deployment's environment; only the bind (a free
    loopback port) and the app directory (/app is the image's) are overridden on the command line."""
    require_binary()
    dep, cm, _ = _objects()
    toml = tmp_path / "hornbeam.toml"
    toml.write_text(cm["data"]["hornbeam.toml"])
    c = dep["spec"]["template"]["spec"]["containers"][0]
    port, mport = free_port(), free_port()
    env = {e["name"]: e["value"] for e in c["env"] if "value" in e}
    env["POD_NAME"] = "hornbeam-uring-abc12"
    env["HORNBEAM_NODE_NAME"] = env["HORNBEAM_NODE_NAME"].replace("$(POD_NAME)", env["POD_NAME"])
    env["HORNBEAM_METRICS_BIND"] = "127.0.0.1:%d" % mport
    argv = [str(BINARY)] + c["args"][:1] + [str(toml)] + [
        "--bind", "127.0.0.1:%d" % port, "--pythonpath", str(EXAMPLES / "hello_wsgi")]
    with open(tmp_path / "stderr", "wb") as err:
        proc = subprocess.Popen(argv, cwd=str(tmp_path), env=server_env(env), stdin=subprocess.DEVNULL,
                                stdout=subprocess.DEVNULL, stderr=err, start_new_session=True)
    try:
        deadline = time.monotonic() + 30
        while True:
            assert proc.poll() is None, "exited %s:\n%s" % (proc.returncode, (tmp_path / "stderr").read_text())
            try:
                r = requests.get("http://127.0.0.1:%d/" % port, timeout=5)
                break
            except requests.ConnectionError:
                assert time.monotonic() < deadline, (tmp_path / "stderr").read_text()
                time.sleep(0.1)
        assert r.status_code == 200 and r.text == "Hello, World!"
        if "metrics-bind" in _help_keys():  # once the metrics bind exists, the probes' paths answer
            for path in ("/healthz", "/readyz"):
                assert requests.get("http://127.0.0.1:%d%s" % (mport, path), timeout=5).status_code == 200, path
    finally:
        proc.send_signal(signal.SIGTERM)
        rc = proc.wait(timeout=40)
    text = (tmp_path / "stderr").read_text()
    assert_no_sanitizer(text)
    assert rc == 0, text
    assert "workers" in text or "Using worker" in text


def test_dockerfile_uses_what_exists():
    text = (K8S / "Dockerfile").read_text()
    assert re.search(r"^FROM \$\{DEBIAN\} AS build", text, re.M) and "ARG DEBIAN=debian:12" in text
    for src in re.findall(r"^COPY (?!--from)(.+?) \S+$", text, re.M):
        for p in src.split():
            assert (REPO / p).exists(), "Dockerfile copies %s, which does not exist" % p
    for script in re.findall(r"\b(scripts/[\w-]+\.sh)\b", text):
        assert os.access(REPO / script, os.X_OK), script
    assert "USER 65534" in text


def test_runtime_deps_lists_the_packages_of_an_install():
    """What the image's run stage installs: every library the installed tree loads, by package."""
    require_binary()
    prefix = Path(tempfile.mkdtemp(prefix="hb-rdeps-"))
    try:
        res = subprocess.run(["cmake", "--install", str(BINARY.parent), "--prefix", str(prefix)],
                             capture_output=True, timeout=300)
        assert res.returncode == 0, res.stderr.decode()
        res = subprocess.run([str(REPO / "scripts" / "runtime-deps.sh"), str(prefix)], capture_output=True,
                             timeout=300)
        assert res.returncode == 0, res.stderr.decode()
        pkgs = res.stdout.decode().split()
        for p in ("liburing2", "libc6"):
            assert p in pkgs, pkgs
        assert not any(p.startswith(("libx11", "libtk")) for p in pkgs), "GUI libraries pulled in: %s" % pkgs
        for p in pkgs:
            q = subprocess.run(["dpkg-query", "-W", "-f=${Status}", p], capture_output=True, text=True)
            assert "install ok installed" in q.stdout, p
    finally:
        shutil.rmtree(prefix, ignore_errors=True)
