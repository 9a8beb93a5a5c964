"""A WebSocket chat room as a raw ASGI app, with a browser page (index.html) that uses it.

    hornbeam-uring app:app --worker-class asgi --pythonpath examples/websocket_chat
    open http://127.0.0.1:8000/   (or: websocat ws://127.0.0.1:8000/chat/general)

Protocol (JSON text messages): {"type": "join", "username": "alice"} then
{"type": "message", "text": "hi"}; the server answers with {"type": "system"|"message"|"error", ...}.
Each message is echoed to its sender; the room's counters and last 100 messages live in the
shared state (hornbeam_erlang.state_*), which every worker sees. Broadcasting to the other
members of a room is what hornbeam_erlang.publish/subscribe are for.
HTTP: `/` the page, `/health`, `/rooms/<name>` (connections and recent messages).
"""
import json
import os

try:
    from hornbeam_erlang import state_get, state_incr, state_set
except ImportError:  # plain Python (uvicorn): a per-process stand-in
    _state = {}

    def state_get(key):
        return _state.get(key)

    def state_set(key, value):
        _state[key] = value

    def state_incr(key, delta=1):
        _state[key] = _state.get(key, 0) + delta
        return _state[key]

PAGE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "index.html")


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


async def chat(scope, receive, send):
    if not scope["path"].startswith("/chat/"):
        await send({"type": "websocket.close", "code": 1008})  # before accept: 403
        return
    room = scope["path"][len("/chat/"):] or "general"
    username = "anonymous"
    if (await receive())["type"] != "websocket.connect":
        return
    await send({"type": "websocket.accept"})
    state_incr("room:%s:count" % room, 1)
    try:
        while True:
            message = await receive()
            if message["type"] == "websocket.disconnect":
                return
            raw = message.get("text")
            if raw is None:
                raw = (message.get("bytes") or b"").decode("utf-8", "replace")
            try:
                data = json.loads(raw)
            except ValueError:
                reply = {"type": "error", "text": "invalid JSON"}
            else:
                if data.get("type") == "join":
                    username = str(data.get("username") or "anonymous")[:40]
                    reply = {"type": "system", "text": "%s joined #%s" % (username, room)}
                else:
                    text = str(data.get("text", ""))
                    _remember(room, username, text)
                    reply = {"type": "message", "username": username, "text": text}
            await send({"type": "websocket.send", "text": json.dumps(reply)})
    finally:
        state_incr("room:%s:count" % room, -1)


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
