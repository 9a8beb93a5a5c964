"""The build against Debian's Python 3.11 (scripts/test.sh builds it in build-py311 and runs this
file with HB_BINARY pointing there): 3.11 has no per-interpreter GIL, so the workers share the
main interpreter, and Debian's FastAPI 0.92 / pydantic 1.10 / numpy load. FastAPI routing,
a pydantic validation error answered 422, a WebSocket, and numpy arrays as cached_inference
inputs, with no -k flag (worker_class auto). Collected only when HB_PY311=1 (conftest.py): those
packages do not load in the 3.13 build the rest of the suite runs. Apps: apps/fastapi_app.py,
apps/cli_apps.py."""
import asyncio
import json
import re

import pytest
import requests
import websockets

from hbtest import APPS, http, run_binary


def _embedded():
    out = run_binary(["--version"], timeout=10).stdout.decode()
    m = re.search(r"^Python (\d+\.\d+)\.\d+\S* \(prefix (\S+)\)$", out, re.M)
    return (m.group(1), m.group(2)) if m else (None, None)


VERSION, PREFIX = _embedded()


def test_the_binary_embeds_python_3_11():
    assert VERSION == "3.11", ("run this file against the build for Debian's Python 3.11 "
                               "(HB_BINARY=build-py311/hornbeam-uring); this one embeds %s" % VERSION)


@pytest.fixture(scope="module")
def fastapi_srv(module_server_factory):
    return module_server_factory("fastapi_app:app", "--workers", "2")


def url(s, path):
    return "http://127.0.0.1:%d%s" % (s.port, path)


def test_main_interpreter_by_default_and_asgi_detected(fastapi_srv):
    log = fastapi_srv.stderr()
    assert "Embedded Python 3.11." in log, log
    assert "Using worker: asgi (worker_class = auto" in log, log
    res = run_binary(["a:b", "--print-config"], timeout=10)
    assert 'interpreter = "main"  # default' in res.stdout.decode()


def test_isolated_is_refused_with_the_reason():
    res = run_binary(["cli_apps:wsgi_app", "--interpreter", "isolated", "--workers", "1",
                      "--pythonpath", str(APPS)], timeout=20)
    err = res.stderr.decode()
    assert res.returncode != 0 and "no per-interpreter GIL" in err, err


def test_fastapi_routing(fastapi_srv):
    r = requests.get(url(fastapi_srv, "/items/42?q=x"), timeout=10)
    assert r.status_code == 200 and r.json() == {"item_id": 42, "q": "x"}
    assert requests.get(url(fastapi_srv, "/nowhere"), timeout=10).status_code == 404
    r = requests.post(url(fastapi_srv, "/items"), json={"name": "a", "price": 2.5, "tags": ["t"]}, timeout=10)
    assert r.status_code == 200 and r.json() == {"name": "a", "double": 5.0, "tags": ["t"]}


def test_pydantic_validation_error_is_422(fastapi_srv):
    r = requests.get(url(fastapi_srv, "/items/notanint"), timeout=10)
    assert r.status_code == 422
    assert r.json()["detail"][0]["loc"] == ["path", "item_id"]
    r = requests.post(url(fastapi_srv, "/items"), json={"name": "a", "price": "cheap"}, timeout=10)
    assert r.status_code == 422
    assert r.json()["detail"][0]["loc"] == ["body", "price"]


def test_fastapi_websocket(fastapi_srv):
    async def talk():
        async with websockets.connect("ws://127.0.0.1:%d/ws" % fastapi_srv.port) as ws:
            out = []
            for m in ("a", "b" * 1000):
                await ws.send(m)
                out.append(await ws.recv())
            return out
    assert asyncio.run(asyncio.wait_for(talk(), 20)) == ["echo a", "echo " + "b" * 1000]


def test_numpy_inputs_to_cached_inference(fastapi_srv):
    def infer(values, dtype="float64"):
        r = requests.get(url(fastapi_srv, "/infer"), params={"values": values, "dtype": dtype}, timeout=10)
        assert r.status_code == 200, r.text
        return r.json()
    first = infer("1,2,3")
    assert first["result"] == 12.0
    again = infer("1,2,3")
    assert again["result"] == 12.0
    assert again["calls"] == first["calls"], "the same array computed twice: no cache hit"
    assert again["stats"]["hits"] >= 1
    other_dtype = infer("1,2,3", "float32")  # keyed by dtype too: a miss
    assert other_dtype["calls"] == first["calls"] + 1
    assert infer("4,5")["result"] == 18.0


def test_wsgi_basics_on_3_11(server):
    s = server("cli_apps:wsgi_app")
    assert http(s.port, "GET", "/").body == b"wsgi upgrade="
    assert "Using worker: wsgi (worker_class = auto" in s.stderr()


def test_max_requests_has_no_effect_in_the_main_interpreter_and_says_so(server):
    """Without a per-interpreter GIL the workers share the main interpreter, which cannot be
    replaced while its process serves: max_requests does nothing (test_asgi.py's replacement
    test is for sub-interpreters), and the master says so once at start."""
    s = server("asgi_apps:app", "--worker-class", "asgi", "--max-requests", "2")
    tokens = {json.loads(http(s.port, "GET", "/whoami").body)["token"] for _ in range(10)}
    assert len(tokens) == 1, tokens
    warning = "[WARNING] max_requests = 2 has no effect: the app runs in the main interpreter"
    assert s.stderr().count(warning) == 1, s.stderr()[-3000:]
    assert "max_requests reached" not in s.stderr()
