"""A WebSocket chat room as a raw ASGI app, with a browser page (index.html) that uses it.

    hornbeam-uring app:app --worker-class asgi --workers 2 --pythonpath examples/websocket_chat
    open http://127.0.0.1:8000/   (or: python3 -m websockets ws://127.0.0.1:8000/chat/general)

Every member of a room gets every message of that room, whichever worker interpreter holds their
connection: a message is published with hornbeam_erlang.publish("chat:<room>", ...) and each
connection forwards what its subscription to that topic receives (the sender included, so
everyone sees the same order). The room's member count and last 100 messages live in the
shared state (hornbeam_erlang.state_*), which every worker sees.

Protocol (JSON text messages). The server sends {"type": "hello", "worker": <id>, "room": ...}
first (the worker interpreter serving this connection), then the room's traffic:
{"type": "system", "text": "alice joined #general"} and {"type": "message", "username": ...,
"text": ...}; a bad message gets {"type": "error", "text": ...} (to its sender only).
The client sends {"type": "join", "username": "alice"}, then {"type": "message", "text": "hi"}.
HTTP: `/` the page, `/health`, `/rooms/<name>` (connections and recent messages).

Under plain Python (uvicorn, one process) hornbeam_erlang's in-process fallback gives the same
behaviour within that process.
"""
import asyncio
import json
import os

from hornbeam_erlang import publish, state_get, state_incr, state_set, subscribe

try:
    from _hornbeam import interpreter_id as _interp_id  # inside hornbeam-uring
except ImportError:
    def _interp_id():
        return os.getpid()

PAGE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "index.html")
MAX_NAME = 40
MAX_TEXT = 4000


async def _reply(send, status, body, ctype):
    await send({"type": "http.response.start", "status": status, "headers": [(b"content-type", ctype)]})
    await send({"type": "http.response.body", "body": body})


async def http(scope, receive, send):
    path = scope["path"]
    if path == "/health":
        await _reply(send, 200, b'{"status": "ok"}', b"application/json")
    elif path.startswith("/rooms/"):
        room = path[len("/rooms/"):]
        info = {"room": room, "connections": state_get("room:%s:count" % room) or 0,
                "recent_messages": (state_get("room:%s:recent" % room) or [])[-10:]}
        await _reply(send, 200, json.dumps(info).encode(), b"application/json")
    elif path in ("/", "/index.html"):
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"text/html; charset=utf-8"),
                                (b"content-length", str(os.path.getsize(PAGE)).encode())]})
        if "http.response.pathsend" in scope.get("extensions", {}):
            await send({"type": "http.response.pathsend", "path": PAGE})  # sent by splice
        else:
            with open(PAGE, "rb") as f:
                await send({"type": "http.response.body", "body": f.read()})
    else:
        await _reply(send, 404, b"Not Found\n", b"text/plain")


def _remember(room, username, text):
    key = "room:%s:recent" % room
    recent = (state_get(key) or []) + [{"username": username, "text": text}]
    state_set(key, recent[-100:])


async def _forward(sub, send):
    """Sends what the room's subscription receives, until cancelled."""
    async for msg in sub:
        await send({"type": "websocket.send", "text": json.dumps(msg)})


def _parse(message):
    raw = message.get("text")
    if raw is None:
        raw = (message.get("bytes") or b"").decode("utf-8", "replace")
    try:
        data = json.loads(raw)
    except ValueError:
        return None
    return data if isinstance(data, dict) else None


async def chat(scope, receive, send):
    if not scope["path"].startswith("/chat/"):
        await send({"type": "websocket.close", "code": 1008})  # before accept: 403
        return
    room = scope["path"][len("/chat/"):] or "general"
    topic = "chat:" + room
    username = None
    if (await receive())["type"] != "websocket.connect":
        return
    await send({"type": "websocket.accept"})
    sub = subscribe(topic)  # before anything is published, so this member sees its own join
    forwarder = asyncio.ensure_future(_forward(sub, send))
    state_incr("room:%s:count" % room, 1)
    await send({"type": "websocket.send", "text": json.dumps(
        {"type": "hello", "worker": _interp_id(), "room": room})})
    try:
        while True:
            message = await receive()
            if message["type"] == "websocket.disconnect":
                return
            data = _parse(message)
            if data is None:
                await send({"type": "websocket.send", "text": '{"type": "error", "text": "invalid JSON"}'})
            elif data.get("type") == "join":
                username = str(data.get("username") or "anonymous")[:MAX_NAME]
                publish(topic, {"type": "system", "text": "%s joined #%s" % (username, room)})
            elif data.get("type") == "message":
                text = str(data.get("text", ""))[:MAX_TEXT]
                who = username or "anonymous"
                _remember(room, who, text)
                publish(topic, {"type": "message", "username": who, "text": text})
            else:
                await send({"type": "websocket.send", "text": json.dumps(
                    {"type": "error", "text": "unknown message type %r" % (data.get("type"),)})})
    finally:
        forwarder.cancel()
        await asyncio.gather(forwarder, return_exceptions=True)  # the client may be gone
        sub.close()
        state_incr("room:%s:count" % room, -1)
        if username is not None:
            publish(topic, {"type": "system", "text": "%s left #%s" % (username, room)})


async def app(scope, receive, send):
    if scope["type"] == "http":
        await http(scope, receive, send)
    elif scope["type"] == "websocket":
        await chat(scope, receive, send)
    elif scope["type"] == "lifespan":
        while True:
            message = await receive()
            kind = message["type"].rsplit(".", 1)[-1]
            await send({"type": "lifespan.%s.complete" % kind})
            if kind == "shutdown":
                return
