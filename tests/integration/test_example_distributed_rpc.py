"""examples/distributed_rpc: the README's two commands start a model node and a web node that
form a cluster; the README's curl lines get the model node's prediction through the web node;
predict raising is a 400, a killed model node a 503 at once; kubernetes.yaml matches the
Kubernetes API schema (test_kubernetes.py's check) and uses a headless Service as the seed.

Ports: every HOST:PORT of the commands (the HTTP binds, the cluster binds, the seed) is mapped
to a free port, the same mapping for the curl lines; nothing else of the README is changed.
"""
import json
import math
import re
import shlex
import signal
import subprocess
import tempfile
import time

import requests

from hbtest import (BINARY, EXAMPLES, REPO, assert_no_sanitizer, free_port, readme_code_lines,
                    require_binary, server_env)

EX = EXAMPLES / "distributed_rpc"


def _readme():
    lines = readme_code_lines(EX / "README.md")
    cookie = [l.split("=", 1)[1] for l in lines if l.startswith("export HORNBEAM_CLUSTER_COOKIE=")]
    cmds = [l for l in lines if l.startswith("hornbeam-uring ")]
    curls = [l for l in lines if l.startswith("curl ") and "localhost:8000" in l]
    assert cookie and len(cmds) == 2 and len(curls) == 2, lines
    return cookie[0], cmds, curls


class Node:
    def __init__(self, argv, env):
        self.err = tempfile.TemporaryFile()
        self.proc = subprocess.Popen(argv, cwd=str(REPO), env=env, stdin=subprocess.DEVNULL,
                                     stdout=subprocess.DEVNULL, stderr=self.err,
                                     start_new_session=True)

    def stderr(self):
        self.err.seek(0)
        return self.err.read().decode("utf-8", "replace")

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        rc = self.proc.wait(timeout=30)
        text = self.stderr()
        assert_no_sanitizer(text)
        return rc, text


def _until(fn, timeout=20.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            v = fn()
            if v:
                return v
        except requests.RequestException:
            pass
        time.sleep(0.1)
    return None


def _expected(features):
    w = [0.8, -0.4, 0.25, 0.1]
    z = -0.2 + sum(wi * x for wi, x in zip(w * (len(features) // 4 + 1), features))
    return round(1.0 / (1.0 + math.exp(-z)), 6)


def test_readme_commands_web_node_calls_the_model_node():
    require_binary()
    cookie, cmds, curls = _readme()
    ports = {}

    def remap(text):
        return re.sub(r"(127\.0\.0\.1|localhost):(\d+)",
                      lambda m: "127.0.0.1:%d" % ports.setdefault(m.group(2), free_port()), text)

    env = server_env({"HORNBEAM_CLUSTER_COOKIE": cookie})
    nodes = []
    try:
        for c in cmds:
            words = shlex.split(remap(c))
            assert words[0] == "hornbeam-uring"
            nodes.append(Node([str(BINARY)] + words[1:], env))
        web_port = ports["8000"]
        base = "http://127.0.0.1:%d" % web_port
        got = _until(lambda: "ml@127.0.0.1" in requests.get(base + "/nodes", timeout=5).json()["nodes"])
        assert got, "the web node never saw the model node:\n%s\n%s" % (
            nodes[0].stderr()[-2000:], nodes[1].stderr()[-2000:])
        for line in curls:
            res = subprocess.run(shlex.split(remap(line), comments=True) + ["--fail", "--max-time", "20"],
                                 capture_output=True, timeout=30)
            assert res.returncode == 0, (line, res.stdout, res.stderr)
            body = json.loads(res.stdout)
            if "/predict" in line:
                p = body["prediction"]
                assert p["node"] == "ml@127.0.0.1" and body["served_by"] == "web@127.0.0.1", body
                assert p["score"] == _expected([1.0, 2.0, 3.0]) and p["label"] == 1, body
            else:
                assert body == {"node": "web@127.0.0.1", "nodes": ["ml@127.0.0.1"]}, body
        # predict raising on the model node: RemoteError, a 400 with its last line
        r = requests.post(base + "/predict", data='{"features": "x"}', timeout=10)
        assert r.status_code == 400 and "features must be a list" in r.json()["error"], r.text
        # the model node killed: a 503 at once (NodeDown or, once dead, NodeNotConnected)
        nodes[0].proc.send_signal(signal.SIGKILL)
        nodes[0].proc.wait(10)
        t0 = time.monotonic()
        r = requests.post(base + "/predict", data='{"features": [1]}', timeout=10)
        assert r.status_code == 503, r.text
        assert time.monotonic() - t0 < 3.0
        rc, text = nodes[1].stop()
        assert rc == 0, text[-3000:]
    finally:
        for n in nodes:
            if n.proc.poll() is None:
                n.proc.kill()
                n.proc.wait()


def test_kubernetes_manifest_uses_a_headless_service_as_seed():
    import test_kubernetes as k8s_test
    import yaml
    docs = [d for d in yaml.safe_load_all((EX / "kubernetes.yaml").read_text()) if d]
    client = k8s_test.k8s.ApiClient()
    for d in docs:
        klass = k8s_test.KINDS[(d["apiVersion"], d["kind"])]
        errors = []
        k8s_test._check(d, klass, "kubernetes.yaml:%s" % d["kind"], errors)
        assert not errors, "\n".join(errors)
        client._ApiClient__deserialize(d, klass)
    svc = {d["metadata"]["name"]: d for d in docs if d["kind"] == "Service"}
    headless = svc["hornbeam-cluster"]["spec"]
    assert headless["clusterIP"] == "None" and headless["publishNotReadyAddresses"] is True
    deps = [d for d in docs if d["kind"] == "Deployment"]
    assert sorted(d["metadata"]["name"] for d in deps) == ["ml", "web"]
    for d in deps:
        labels = d["spec"]["template"]["metadata"]["labels"]
        assert all(labels.get(k) == v for k, v in headless["selector"].items())
        args = d["spec"]["template"]["spec"]["containers"][0]["args"]
        assert args[args.index("--cluster-seeds") + 1] == "hornbeam-cluster:7946"
        assert "--cluster-enabled" in args
