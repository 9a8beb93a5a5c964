"""The fallback modules (python/hornbeam_erlang.py, python/hornbeam_ml.py) under Debian's real
gunicorn (/usr/bin/gunicorn on Debian's python3): apps written for hornbeam-uring's API run
there unchanged, with in-process state, pub/sub, functions and the ML cache.

One gunicorn worker with threads: the fallback is per process (that is its documented limit),
so a test that needs two requests to share state talks to one process."""
import json
import os
import signal
import subprocess
import time
import uuid

import pytest

from hbtest import APPS, EXAMPLES, REPO, connect, free_port, http, request_bytes, HTTPReader

GUNICORN = "/usr/bin/gunicorn"


class Gunicorn:
    def __init__(self, workdir, app, pythonpath):
        self.port = free_port()
        env = {k: v for k, v in os.environ.items()
               if not k.startswith("HORNBEAM_") and k not in ("PYTHONPATH", "PYTHONHOME")}
        env["PYTHONPATH"] = ":".join(str(p) for p in pythonpath)
        env["PYTHONDONTWRITEBYTECODE"] = "1"
        self.log = workdir / "gunicorn.log"
        self._log = open(self.log, "wb")
        self.proc = subprocess.Popen(
            [GUNICORN, "--workers", "1", "--threads", "4", "--worker-class", "gthread",
             "--bind", "127.0.0.1:%d" % self.port, "--graceful-timeout", "5", app],
            cwd=str(workdir), env=env, stdin=subprocess.DEVNULL, stdout=self._log,
            stderr=subprocess.STDOUT, start_new_session=True)

    def text(self):
        return self.log.read_bytes().decode("utf-8", "replace")

    def wait_ready(self, timeout=20.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, "gunicorn exited with %s:\n%s" % (self.proc.returncode, self.text())
            try:
                with connect(self.port, timeout=2) as c:
                    c.sendall(request_bytes("GET", "/gunicorn-ready", [("Connection", "close")]))
                    HTTPReader(c, timeout=5).read_head()
                    return self
            except Exception:  # noqa: BLE001 - not up yet (refused, reset, no answer)
                time.sleep(0.1)
        pytest.fail("gunicorn did not answer within %.0fs:\n%s" % (timeout, self.text()))

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)
        self._log.close()
        return self.proc.returncode


@pytest.fixture
def gunicorn(tmp_path):
    started = []

    def start(app, pythonpath):
        g = Gunicorn(tmp_path, app, pythonpath)
        started.append(g)
        return g.wait_ready()
    yield start
    for g in started:
        rc = g.stop()
        log = g.text()
        assert rc == 0, "gunicorn exit status %r:\n%s" % (rc, log[-4000:])
        assert "Traceback" not in log, log[-4000:]


def call(g, path, body=None, status=200):
    r = http(g.port, "POST" if body is not None else "GET", path,
             [("Content-Type", "application/json")] if body is not None else None,
             json.dumps(body).encode() if body is not None else b"")
    assert r.status == status, r
    return r.json()


class _AnyWho:
    """Equal to any "who" dict (the app adds one to every answer)."""

    def __eq__(self, other):
        return isinstance(other, dict) and "pid" in other


ANY_WHO = _AnyWho()


def test_api_app_under_gunicorn(gunicorn):
    g = gunicorn("api_wsgi:app", [REPO / "python", APPS])
    assert call(g, "/node")["native"] is False
    key = "k-" + uuid.uuid4().hex[:8]
    # state
    assert [call(g, "/incr?key=" + key)["value"] for _ in range(3)] == [1, 2, 3]
    value = {"a": [1, 2.5, None, True], "t": {"__tuple__": [1, "x"]}, "b": {"__bytes__": "00ff"}}
    call(g, "/set?key=%s-v" % key, value)
    assert call(g, "/get?key=%s-v" % key)["value"] == value
    assert call(g, "/delete?key=%s-v" % key)["deleted"] is True
    assert call(g, "/get?key=%s-v" % key)["value"] == "__missing__"
    assert call(g, "/badtype?kind=set", status=500)["error"] == "TypeError"
    # pub/sub, across requests (threads) of the one process
    topic = "t-" + uuid.uuid4().hex[:8]
    call(g, "/sub_open?topic=%s&queue=2" % topic)
    assert [call(g, "/publish?topic=%s&msg=m%d" % (topic, i))["reached"] for i in range(3)] == [1, 1, 1]
    out = call(g, "/sub_drain?topic=" + topic)
    assert out["got"] == ["m1", "m2"] and out["dropped"] == 1, out
    assert call(g, "/publish?topic=%s&msg=late" % topic)["reached"] == 0
    assert call(g, "/sub_drop?topic=" + topic + "-drop") == {"before": 1, "after": 0, "who": ANY_WHO}
    # registered functions
    name = "f-" + uuid.uuid4().hex[:8]
    call(g, "/register?name=%s&fn=add" % name)
    assert call(g, "/call?name=" + name, [2, 3])["result"] == 5
    assert call(g, "/call?name=nope-" + name)["error"] == "FunctionNotRegistered"
    # the ML cache
    text = "text-" + uuid.uuid4().hex[:8]
    first = call(g, "/ml?text=" + text)
    again = call(g, "/ml?text=" + text)
    assert again["embedding"] == first["embedding"]
    assert again["stats"]["hits"] >= 1 and again["stats"]["misses"] >= 1
    prefix = "p-" + uuid.uuid4().hex[:8]
    for k in ("__hits", "__misses", "__entries"):
        call(g, "/ml_key?text=a&key=%s&prefix=%s&max_entries=5" % (k, prefix))
    out = call(g, "/ml_key?text=b&key=__hits&prefix=" + prefix)
    assert out["stats"] == {"hits": 1, "misses": 3, "hit_rate": 0.25}, out
    assert out["keys"] == sorted("%s:%s" % (prefix, k) for k in ("__hits", "__misses", "__entries"))
    assert call(g, "/ml_clear?prefix=" + prefix)["stats"] == {"hits": 0, "misses": 0, "hit_rate": 0.0}


def test_embedding_service_example_under_gunicorn(gunicorn):
    g = gunicorn("app:application", [REPO / "python", EXAMPLES / "embedding_service"])
    texts = ["t-" + uuid.uuid4().hex[:8] for _ in range(3)]
    first = call(g, "/embed", {"texts": texts})
    assert len(first["embeddings"]) == 3 and first["model"]
    for _ in range(4):
        assert call(g, "/embed", {"texts": texts})["embeddings"] == first["embeddings"]
    m = call(g, "/metrics")
    assert m["cache"] == {"hits": 12, "misses": 3, "hit_rate": 0.8}, m
    assert m["requests_total"] >= 6, m
    assert call(g, "/embed", {"texts": "nope"}, status=400)["error"]
