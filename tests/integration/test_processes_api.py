"""Shared state, pub/sub and call() across worker processes (processes = 2, issue 9): the map is
one shared region, publish and call travel on the process bus (src/core/xbus)."""
import asyncio
import json
import time
import threading
import uuid

import pytest
import websockets

from hbtest import http


@pytest.fixture(scope="module")
def psrv(module_server_factory):
    return module_server_factory("procs_app:app", "--worker-class", "asgi", "--processes", "2",
                                 "--workers", "1")


def _get(port, path):
    r = http(port, "GET", path, timeout=15)
    assert r.status == 200, r
    return json.loads(r.body)


def _pids(port, want=2, within=30.0):
    """The worker pids that answer, until `want` did: the server is up once ONE process is
    ready; under ASan the second may still be importing the app for a few seconds."""
    pids = set()
    deadline = time.monotonic() + within
    while len(pids) < want and time.monotonic() < deadline:
        pids.add(_get(port, "/who")["pid"])
        if len(pids) < want:
            time.sleep(0.02)
    return pids


def test_two_processes_serve(psrv):
    assert len(_pids(psrv.port)) == 2, "requests never reached a second worker process"


def test_state_incr_is_exact_across_processes(psrv):
    key = "hits-" + uuid.uuid4().hex[:8]
    pids, errors = set(), []

    def hammer():
        try:
            for _ in range(20):
                pids.add(_get(psrv.port, "/incr?key=%s&n=50" % key)["pid"])
        except Exception as e:  # reported below
            errors.append(e)
    ts = [threading.Thread(target=hammer) for _ in range(4)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    assert not errors, errors
    assert len(pids) == 2, "both processes should have counted"
    assert _get(psrv.port, "/get?key=" + key)["value"] == 4 * 20 * 50


def test_call_reaches_a_function_of_the_other_process(psrv):
    pids = _pids(psrv.port)
    assert len(pids) == 2
    names = _get(psrv.port, "/names")["names"]
    for p in pids:
        assert "pid-%d" % p in names
    done = set()
    for _ in range(200):
        for p in pids:
            out = _get(psrv.port, "/call?name=pid-%d" % p)
            assert out.get("result") == p, out
            if out["pid"] != p:
                done.add(p)  # served by the other process: the call crossed
        if done == pids:
            break
    assert done == pids, "no call crossed processes"


def _crossing(port, name_of, check):
    """Calls name_of(target pid) from a request served by the other process."""
    pids = _pids(port)
    for _ in range(200):
        for p in pids:
            out = _get(port, "/call?name=%s&timeout_ms=500" % name_of(p))
            if out["pid"] != p:
                check(out, p)
                return
    pytest.fail("no request landed on the other process")


def test_call_errors_and_timeouts_cross_processes(psrv):
    def failed(out, p):
        assert out["error"] == "RuntimeError", out
        assert "ValueError: failed in %d" % p in out["message"], out["message"]
    _crossing(psrv.port, lambda p: "fail-%d" % p, failed)

    def timed_out(out, p):
        assert out["error"] == "TimeoutError", out
    _crossing(psrv.port, lambda p: "slow-%d&args=[2]" % p, timed_out)
    out = _get(psrv.port, "/call?name=nobody-registered-this")
    assert out["error"] == "FunctionNotRegistered", out


def test_publish_reaches_websocket_subscribers_in_both_processes(psrv):
    topic = "room-" + uuid.uuid4().hex[:8]

    async def run():
        loop = asyncio.get_running_loop()
        conns, pids = [], set()
        for _ in range(60):
            c = await websockets.connect("ws://127.0.0.1:%d/ws/%s" % (psrv.port, topic))
            pids.add(json.loads(await asyncio.wait_for(c.recv(), 10))["pid"])
            conns.append(c)
            if len(conns) >= 4 and len(pids) == 2:
                break
        try:
            assert len(pids) == 2, "subscribers did not land in both processes"
            for i in range(50):
                out = await loop.run_in_executor(
                    None, _get, psrv.port, "/publish?topic=%s&msg=m%d" % (topic, i))
                assert out["reached"] == len(conns), out
            for c in conns:
                got = [json.loads(await asyncio.wait_for(c.recv(), 10)) for _ in range(50)]
                assert got == ["m%d" % i for i in range(50)]
        finally:
            for c in conns:
                await c.close()
    asyncio.run(run())
