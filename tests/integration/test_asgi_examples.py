"""The ASGI examples run: examples/hello_asgi, examples/websocket_chat, examples/starlette_app."""
import asyncio
import json

import pytest
import requests
import websockets

from hbtest import EXAMPLES, REPO, http


def test_hello_asgi(server):
    s = server("app:application", "--worker-class", "auto", pythonpath=[EXAMPLES / "hello_asgi"])
    assert http(s.port, "GET", "/").body == b"Hello, World!"
    assert b"method: GET" in http(s.port, "GET", "/info?x=1").body
    assert http(s.port, "POST", "/echo", body=b"abc").body == b"abc"
    assert http(s.port, "GET", "/nope").status == 404


def test_websocket_chat(server):
    s = server("app:app", "--worker-class", "asgi", "--workers", "2",
               pythonpath=[EXAMPLES / "websocket_chat", REPO / "python"])
    page = requests.get("http://127.0.0.1:%d/" % s.port, timeout=5)
    assert page.status_code == 200
    assert "new WebSocket" in page.text
    assert page.content == (EXAMPLES / "websocket_chat" / "index.html").read_bytes()
    assert http(s.port, "GET", "/health").json() == {"status": "ok"}

    async def go():
        uri = "ws://127.0.0.1:%d/chat/lobby" % s.port
        async with websockets.connect(uri) as ws:
            hello = json.loads(await ws.recv())
            assert hello["type"] == "hello" and hello["room"] == "lobby" and isinstance(hello["worker"], int)
            await ws.send(json.dumps({"type": "join", "username": "alice"}))
            assert json.loads(await ws.recv()) == {"type": "system", "text": "alice joined #lobby"}
            await ws.send(json.dumps({"type": "message", "text": "hi"}))
            assert json.loads(await ws.recv()) == {"type": "message", "username": "alice", "text": "hi"}
            await ws.send("not json")
            assert json.loads(await ws.recv())["type"] == "error"
    asyncio.run(asyncio.wait_for(go(), 10))
    room = http(s.port, "GET", "/rooms/lobby").json()
    assert room["recent_messages"][-1] == {"username": "alice", "text": "hi"}


def test_starlette_app(server):
    s = server("app:app", "--worker-class", "asgi", pythonpath=[EXAMPLES / "starlette_app"])
    base = "http://127.0.0.1:%d" % s.port
    assert requests.get(base + "/", timeout=5).text.startswith("Hello from Starlette")
    assert requests.get(base + "/items/1", timeout=5).json() == {"id": 1, "name": "hornbeam"}
    assert requests.post(base + "/items", json={"name": "new"}, timeout=5).status_code == 201
    assert requests.get(base + "/items/99", timeout=5).status_code == 404
    r = requests.get(base + "/ticks?n=3", timeout=5)
    assert r.text == "tick 0\ntick 1\ntick 2\n"
    assert "uptime_s" in requests.get(base + "/uptime", timeout=5).json()

    async def go():
        async with websockets.connect("ws://127.0.0.1:%d/ws" % s.port) as ws:
            await ws.send("ping")
            assert await ws.recv() == "ping"
    asyncio.run(asyncio.wait_for(go(), 10))
