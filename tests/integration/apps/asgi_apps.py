"""ASGI test apps for tests/integration/test_asgi*.py (one router; path selects the behaviour)."""
import asyncio
import json
import os

import _hornbeam  # noqa: F401  (the server's module: ClientDisconnected)

# Made once per import, so once per interpreter: /whoami tells which one served a request.
_TOKEN = os.urandom(8).hex()
_served = [0]


async def _read_body(receive):
    body = b""
    msgs = 0
    while True:
        m = await receive()
        msgs += 1
        if m["type"] == "http.disconnect":
            return None, msgs
        body += m.get("body", b"")
        if not m.get("more_body", False):
            return body, msgs


async def _send(send, status, body, ctype=b"text/plain", headers=()):
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", ctype)] + list(headers)})
    await send({"type": "http.response.body", "body": body})


def _jsonable_scope(scope):
    out = {}
    for k, v in scope.items():
        if k == "headers":
            out[k] = [[n.decode("latin-1"), x.decode("latin-1")] for n, x in v]
        elif isinstance(v, bytes):
            out[k] = v.decode("latin-1")
        elif isinstance(v, tuple):
            out[k] = list(v)
        else:
            out[k] = v
    out["_types"] = {k: type(v).__name__ for k, v in scope.items()}
    out["_header_types"] = sorted({"%s/%s" % (type(n).__name__, type(x).__name__)
                                   for n, x in scope["headers"]})
    return out


async def app(scope, receive, send):
    if scope["type"] == "lifespan":
        while True:
            m = await receive()
            if m["type"] == "lifespan.startup":
                scope["state"]["started"] = os.getpid()
                scope["state"]["shared"] = ["x"]
                await send({"type": "lifespan.startup.complete"})
            else:
                if os.environ.get("HB_SHUTDOWN_LOG"):
                    with open(os.environ["HB_SHUTDOWN_LOG"], "a") as f:
                        f.write("shutdown\n")
                await send({"type": "lifespan.shutdown.complete"})
                return
    if scope["type"] == "websocket":
        return await ws_app(scope, receive, send)
    path = scope["path"]
    _served[0] += 1
    if path == "/whoami":
        return await _send(send, 200, json.dumps({"token": _TOKEN, "served": _served[0]}).encode(),
                           b"application/json")
    if path == "/hello":
        return await _send(send, 200, b"Hello, ASGI!")
    if "/scope" in path:
        body, _ = await _read_body(receive)
        out = json.dumps(_jsonable_scope(scope)).encode()
        if path.endswith("/taint"):  # test_scope_dicts_are_per_request: must not reach the next
            scope["extensions"]["x.tainted"] = {}
            scope["extensions"]["http.response.pathsend"]["tainted"] = True
            scope["asgi"]["tainted"] = True
        return await _send(send, 200, out, b"application/json")
    if path == "/ops":  # test_awaitables_held_by_the_app
        first = receive()
        try:
            receive(1)
            bad_args = "accepted"
        except TypeError:
            bad_args = "TypeError"
        msg = await first
        a = send({"type": "http.response.start", "status": 200, "headers": []})
        await a
        b = send({"type": "http.response.body", "body": b"[", "more_body": True})
        distinct = a is not b  # a is still held: b must be another awaitable
        await b
        del a, b
        out = json.dumps({"msg": msg["type"], "bad_args": bad_args, "distinct": distinct})
        await send({"type": "http.response.body", "body": out.encode() + b"]"})
        return
    if path == "/echo":
        body, msgs = await _read_body(receive)
        return await _send(send, 200, body, headers=[(b"x-messages", str(msgs).encode())])
    if path == "/stream":
        n = int(scope["query_string"] or b"5")
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
        for i in range(n):
            await send({"type": "http.response.body", "body": b"chunk%d\n" % i, "more_body": True})
        await send({"type": "http.response.body", "body": b"", "more_body": False})
        return
    if path == "/big":
        total = int(scope["query_string"] or b"1048576")
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-length", str(total).encode())]})
        piece = b"x" * 65536
        sent = 0
        while sent < total:
            n = min(len(piece), total - sent)
            await send({"type": "http.response.body", "body": piece[:n], "more_body": sent + n < total})
            sent += n
        return
    if path == "/sleep":
        await asyncio.sleep(float(scope["query_string"] or b"0.5"))
        return await _send(send, 200, b"slept")
    if path == "/raise":
        raise ValueError("boom before start")
    if path == "/raise-after":
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"partial", "more_body": True})
        raise ValueError("boom after start")
    if path == "/state":
        return await _send(send, 200, json.dumps(scope.get("state", {})).encode(), b"application/json")
    if path == "/mutate-state":
        scope["state"]["mutated"] = True
        return await _send(send, 200, b"ok")
    if path in ("/disconnect", "/disconnect-idle"):
        # streams (or, for -idle, just waits) until the client goes away; records what
        # receive() said and what send() raised
        log = os.environ["HB_DISCONNECT_LOG"]
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"started", "more_body": True})
        await receive()  # the (empty) request body

        async def listen():
            while (await receive())["type"] != "http.disconnect":
                pass
            return "http.disconnect"

        listener = asyncio.ensure_future(listen())
        err = "none"
        try:
            while path == "/disconnect" and not listener.done():
                await send({"type": "http.response.body", "body": b"x" * 4096, "more_body": True})
                await asyncio.sleep(0.01)
            got = await listener
            await send({"type": "http.response.body", "body": b"more", "more_body": True})
        except OSError as e:
            err = "%s/%s" % (type(e).__name__, isinstance(e, _hornbeam.ClientDisconnected))
            got = await listener
        with open(log, "a") as f:
            f.write("%s %s %s\n" % (path[1:], got, err))
        return
    if path == "/disconnect-body":
        # a request whose body never completes: receive() must say http.disconnect
        log = os.environ["HB_DISCONNECT_LOG"]
        body, _ = await _read_body(receive)
        with open(log, "a") as f:
            f.write("body-disconnect %s\n" % (body is None))
        return
    if path == "/after-complete":
        await _send(send, 200, b"done")
        m = await receive()
        with open(os.environ["HB_DISCONNECT_LOG"], "a") as f:
            f.write("after-complete %s\n" % m["type"])
        return
    if path == "/hang":
        await asyncio.sleep(3600)
    if path == "/hang-after-start":
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"partial", "more_body": True})
        await asyncio.sleep(3600)
    if path == "/pathsend":
        fn = os.environ["HB_PATHSEND_FILE"]
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-length", str(os.path.getsize(fn)).encode())]})
        await send({"type": "http.response.pathsend", "path": fn})
        return
    if path == "/no-response":
        return
    if path == "/slow-upload":
        # reads the body slowly: the socket must not be read faster than this
        await asyncio.sleep(1.0)
        total = 0
        while True:
            m = await receive()
            total += len(m.get("body", b""))
            if not m.get("more_body"):
                break
            if scope["query_string"] != b"fast":
                await asyncio.sleep(0.001)
        return await _send(send, 200, str(total).encode())
    if path == "/body-before-start":
        await send({"type": "http.response.body", "body": b"oops"})
        return
    if path == "/bad-status":
        await send({"type": "http.response.start", "status": 101, "headers": []})
        return
    if path == "/send-after-complete":
        await _send(send, 200, b"first")
        try:
            await send({"type": "http.response.body", "body": b"again"})
        except RuntimeError as e:
            with open(os.environ["HB_DISCONNECT_LOG"], "a") as f:
                f.write("after-complete-send RuntimeError\n")
        return
    if path == "/bad-header":
        await send({"type": "http.response.start", "status": 200, "headers": [(b"x-bad", b"a\r\nb")]})
        return
    return await _send(send, 404, b"not found")


async def ws_app(scope, receive, send):
    path = scope["path"]
    m = await receive()
    assert m["type"] == "websocket.connect"
    if path == "/ws/deny":
        await send({"type": "websocket.close", "code": 1008})
        return
    if path == "/ws/deny-http":
        await send({"type": "websocket.http.response.start", "status": 401,
                    "headers": [(b"content-type", b"text/plain")]})
        await send({"type": "websocket.http.response.body", "body": b"no entry"})
        return
    if path == "/ws/raise-before":
        raise RuntimeError("boom before accept")
    sub = scope["subprotocols"][0] if scope["subprotocols"] else None
    await send({"type": "websocket.accept", "subprotocol": sub, "headers": [(b"x-ws", b"yes")]})
    if path == "/ws/bad-text":
        await send({"type": "websocket.send", "text": b"bytes are not text"})
        return
    if path == "/ws/close":
        await send({"type": "websocket.close", "code": 4001, "reason": "app says bye"})
        return
    if path == "/ws/raise":
        raise RuntimeError("boom after accept")
    if path == "/ws/flood":
        n = int(scope["query_string"] or b"100")
        block = b"z" * (1 << 20)
        for _ in range(n):
            await send({"type": "websocket.send", "bytes": block})
        await send({"type": "websocket.close", "code": 1000})
        return
    if path == "/ws/scope":
        await send({"type": "websocket.send", "text": json.dumps(_jsonable_scope(scope))})
    while True:
        m = await receive()
        if m["type"] == "websocket.disconnect":
            if os.environ.get("HB_DISCONNECT_LOG"):
                with open(os.environ["HB_DISCONNECT_LOG"], "a") as f:
                    f.write("ws-disconnect %s\n" % m.get("code"))
            return
        if m.get("text") is not None:
            await send({"type": "websocket.send", "text": m["text"]})
        else:
            await send({"type": "websocket.send", "bytes": m["bytes"]})
