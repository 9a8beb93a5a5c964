"""ASGI app for tests/integration/test_asgi_idle.py: what an idle worker must still run (other
threads' call_soon_threadsafe, timers, background tasks) while it waits for requests in C, and
scopes built from a template (fresh dicts, values of this request)."""
import asyncio
import json
import threading
import time

_events = []  # what ran on the loop outside any request, in order


def _note(what):
    _events.append(what)


async def _send(send, body, status=200):
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json")]})
    await send({"type": "http.response.body", "body": json.dumps(body).encode()})


async def _background(tag, delay):
    await asyncio.sleep(delay)
    _note("task:" + tag)


async def app(scope, receive, send):
    if scope["type"] == "lifespan":
        while True:
            m = await receive()
            await send({"type": m["type"] + ".complete"})
            if m["type"] == "lifespan.shutdown":
                return
    path = scope["path"]
    loop = asyncio.get_running_loop()
    if path == "/scope":
        keys = list(scope)
        out = {"keys": keys, "method": scope["method"], "http_version": scope["http_version"],
               "client": list(scope["client"]), "server": list(scope["server"]),
               "state": dict(scope["state"]), "extra": scope.get("extra"), "id": id(scope)}
        # mutations an app may do: they must not show in the next request's scope
        scope["extra"] = "set by the previous request"
        scope["method"] = "MUTATED"
        scope["headers"].append((b"x-added", b"1"))
        scope["state"]["leak"] = 1
        del scope["path"]
        return await _send(send, out)
    if path == "/thread":
        # another thread wakes the loop later, when no request is in flight
        tag = scope["query_string"].decode()
        t = threading.Timer(0.2, loop.call_soon_threadsafe, (_note, "thread:" + tag))
        t.start()
        return await _send(send, "scheduled")
    if path == "/timer":
        tag = scope["query_string"].decode()
        loop.call_later(0.2, _note, "timer:" + tag)
        return await _send(send, "scheduled")
    if path == "/task":
        tag = scope["query_string"].decode()
        loop.create_task(_background(tag, 0.2))
        return await _send(send, "scheduled")
    if path == "/to_thread":
        v = await asyncio.to_thread(lambda: (time.sleep(0.05), 42)[1])
        return await _send(send, v)
    if path == "/drip":
        # a held piece must not wait for the end when the app waits between pieces
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"text/plain")]})
        for piece in (b"first;", b"second;"):
            await send({"type": "http.response.body", "body": piece, "more_body": True})
        await asyncio.sleep(1.0)
        await send({"type": "http.response.body", "body": b"third;", "more_body": True})
        await send({"type": "http.response.body", "body": b"", "more_body": False})
        return
    if path == "/oversleep":
        # how much later than asked asyncio.sleep returns while the worker waits in C
        delay = float(scope["query_string"].decode())
        t0 = loop.time()
        await asyncio.sleep(delay)
        return await _send(send, loop.time() - t0 - delay)
    if path == "/events":
        return await _send(send, _events)
    return await _send(send, "not found", 404)
