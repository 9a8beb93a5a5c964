"""Plain ASGI app for perf/bench.py's non-framework scenarios (hornbeam-uring, uvicorn, hypercorn).

Routes, the same bytes as raw_wsgi.py, plus:
  /sleep   awaits asyncio.sleep(0.01), then answers 'Hello, World!' (an I/O-bound handler)
"""
import asyncio
import json

MSG = {"message": "Hello, World!", "id": 1, "ok": True, "tags": ["a", "b"]}
BODIES = {"/64k": b"x" * 65536, "/1m": b"x" * 1048576}


async def _reply(send, body, ctype=b"text/plain", status=200):
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", ctype), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


async def app(scope, receive, send):
    if scope["type"] == "lifespan":
        while True:
            m = await receive()
            await send({"type": m["type"] + ".complete"})
            if m["type"] == "lifespan.shutdown":
                return
    if scope["type"] != "http":
        return
    path = scope["path"]
    if path == "/json":
        await _reply(send, json.dumps(MSG).encode(), b"application/json")
    elif path in BODIES:
        await _reply(send, BODIES[path])
    elif path == "/sleep":
        await asyncio.sleep(0.01)
        await _reply(send, b"Hello, World!")
    elif path == "/upload":
        got, more = 0, True
        while more:
            m = await receive()
            got += len(m.get("body", b""))
            more = m.get("more_body", False)
        await _reply(send, str(got).encode())
    else:
        await _reply(send, b"not found", status=404)


application = app
