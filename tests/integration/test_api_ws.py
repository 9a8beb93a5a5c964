"""hornbeam_erlang pub/sub to WebSocket subscribers in 2 ASGI workers (async iteration of
subscribe()), and call() into an ASGI worker (its event loop runs the job)."""
import asyncio
import json
import uuid

import pytest
import websockets

from hbtest import http


@pytest.fixture(scope="module")
def asrv(module_server_factory):
    return module_server_factory("api_asgi:app", "--worker-class", "asgi", "--workers", "2")


def _post(port, path, body):
    r = http(port, "POST", path, [("Content-Type", "application/json")], json.dumps(body).encode())
    assert r.status == 200, r
    return r.json()


async def _connect_on_both_workers(port, topic, least=4):
    conns, interps = [], set()
    for _ in range(30):
        c = await websockets.connect("ws://127.0.0.1:%d/ws/%s" % (port, topic))
        first = json.loads(await asyncio.wait_for(c.recv(), 5))
        conns.append(c)
        interps.add(first["subscribed"]["interp"])
        if len(conns) >= least and len(interps) == 2:
            return conns, interps
    return conns, interps


def test_publish_reaches_websocket_subscribers_on_both_workers(asrv):
    topic = "room-" + uuid.uuid4().hex[:8]

    async def run():
        loop = asyncio.get_running_loop()
        conns, interps = await _connect_on_both_workers(asrv.port, topic)
        try:
            assert len(interps) == 2, "subscribers did not land on both workers"
            out = await loop.run_in_executor(None, _post, asrv.port, "/publish?topic=" + topic, {"n": 0})
            assert out["reached"] == len(conns)
            for c in conns:
                assert json.loads(await asyncio.wait_for(c.recv(), 5)) == {"n": 0}
            for i in range(1, 101):
                out = await loop.run_in_executor(None, _post, asrv.port, "/publish?topic=" + topic, {"n": i})
                assert out["reached"] == len(conns)
            for c in conns:
                got = [json.loads(await asyncio.wait_for(c.recv(), 5))["n"] for _ in range(100)]
                assert got == list(range(1, 101))
        finally:
            for c in conns:
                await c.close()
        # Closed connections unsubscribe (their tasks end).
        for _ in range(100):
            out = await loop.run_in_executor(None, _post, asrv.port, "/publish?topic=" + topic, "late")
            if out["reached"] == 0:
                break
            await asyncio.sleep(0.05)
        assert out["reached"] == 0

    asyncio.run(run())


def test_call_into_an_asgi_worker(asrv):
    name = "fn-" + uuid.uuid4().hex[:8]
    owner = _post(asrv.port, "/register?name=" + name, None)["who"]["interp"]
    for _ in range(60):
        out = _post(asrv.port, "/call?name=" + name, [1, "x"])
        assert out["result"]["who"]["interp"] == owner, out
        assert out["result"]["args"] == [1, "x"]
        if out["who"]["interp"] != owner:
            return
    pytest.fail("the second worker never served the call")
