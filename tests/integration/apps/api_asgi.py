"""ASGI app for test_api_ws.py: WebSocket subscribers of hornbeam_erlang topics, HTTP publish.

GET /ws/<topic> (WebSocket): subscribes, sends {"subscribed": who}, then forwards every message
published to the topic (as JSON text) until the client leaves.
POST /publish?topic=T (JSON body) -> {"reached": n}; /register?name=N; POST /call?name=N.
"""
import asyncio
import json
import os
import threading
from urllib.parse import parse_qs

import hornbeam_erlang as hb
from asgi_util import asgi_app

try:
    from _hornbeam import interpreter_id
except ImportError:
    def interpreter_id():
        return 0


def who():
    return {"interp": interpreter_id(), "pid": os.getpid(), "tid": threading.get_native_id()}


def whoami(*args):
    return {"who": who(), "args": list(args)}


async def websocket(scope, receive, send):
    msg = await receive()
    assert msg["type"] == "websocket.connect", msg
    topic = scope["path"][len("/ws/"):]
    await send({"type": "websocket.accept"})
    sub = hb.subscribe(topic)
    await send({"type": "websocket.send", "text": json.dumps({"subscribed": who()})})

    async def pump():
        async for m in sub:
            await send({"type": "websocket.send", "text": json.dumps(m)})

    task = asyncio.ensure_future(pump())
    try:
        while True:
            m = await receive()
            if m["type"] == "websocket.disconnect":
                break
    finally:
        task.cancel()
        sub.close()


async def read_body(receive):
    body = b""
    while True:
        m = await receive()
        body += m.get("body", b"")
        if not m.get("more_body"):
            return body


async def http(scope, receive, send):
    q = parse_qs(scope.get("query_string", b"").decode())
    body = await read_body(receive)
    path = scope["path"]
    status = 200
    try:
        if path == "/publish":
            out = {"reached": hb.publish(q["topic"][0], json.loads(body or b"null"))}
        elif path == "/register":
            hb.register_function(q["name"][0], whoami)
            out = {}
        elif path == "/call":
            out = {"result": await hb.acall(q["name"][0], *json.loads(body or b"[]"))}
        elif path == "/who":
            out = {}
        else:
            status, out = 404, {"error": "not found"}
    except Exception as e:
        status, out = 500, {"error": type(e).__name__, "message": str(e)}
    out["who"] = who()
    data = json.dumps(out).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"),
                            (b"content-length", str(len(data)).encode())]})
    await send({"type": "http.response.body", "body": data})


app = asgi_app(http, websocket)
