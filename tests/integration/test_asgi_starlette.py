"""Starlette (Debian's python3-starlette, from /usr/lib/python3/dist-packages) on the ASGI worker:
routing, JSON, StreamingResponse, WebSocketRoute echo, lifespan state. App: apps/asgi_starlette.py."""
import asyncio

import httpx
import pytest
import starlette  # noqa: F401 - a missing python3-starlette is a failure, not a skip
import websockets


@pytest.fixture(scope="module")
def ssrv(module_server_factory):
    return module_server_factory("asgi_starlette:app", "--worker-class", "asgi", "--workers", "2")


@pytest.fixture
def base(ssrv):
    ssrv.assert_alive()
    yield "http://127.0.0.1:%d" % ssrv.port
    ssrv.assert_alive()
    assert not ssrv.error_lines(), ssrv.describe()


def test_plain(base):
    r = httpx.get(base + "/")
    assert r.status_code == 200
    assert r.text == "Hello, Starlette!"


def test_routing_and_json(base):
    r = httpx.get(base + "/items/42?q=abc")
    assert r.status_code == 200
    assert r.json() == {"id": 42, "q": "abc", "greeting": "hello from lifespan"}
    assert httpx.get(base + "/items/notanint").status_code == 404
    assert httpx.get(base + "/nope").status_code == 404


def test_post_json(base):
    r = httpx.post(base + "/json", json={"a": [1, 2, 3]})
    assert r.json()["got"] == {"a": [1, 2, 3]}
    assert httpx.get(base + "/json").status_code == 405


def test_streaming_response(base):
    with httpx.stream("GET", base + "/stream") as r:
        assert r.headers.get("transfer-encoding") == "chunked"
        lines = [l.rstrip("\n") for l in r.iter_lines() if l.strip()]
    assert lines == ["line %d" % i for i in range(5)]


def test_http2_client_falls_back(base):
    with httpx.Client() as c:
        for _ in range(10):
            assert c.get(base + "/").status_code == 200


def test_websocket_route_echo(ssrv):
    async def go():
        async with websockets.connect("ws://127.0.0.1:%d/ws" % ssrv.port) as ws:
            await ws.send("hi")
            assert await ws.recv() == "hi"
            await ws.send(b"\x00\x01" * 1000)
            assert await ws.recv() == b"\x00\x01" * 1000
    asyncio.run(asyncio.wait_for(go(), 10))
