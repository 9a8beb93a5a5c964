"""Plain ASGI app for perf/bench.py's non-framework scenarios (hornbeam-uring, uvicorn, hypercorn).

Routes, the same bytes as raw_wsgi.py, plus:
  /sleep   awaits asyncio.sleep(0.01), then answers 'Hello, World!' (an I/O-bound handler)
"""
import asyncio
import json

from asgi_common import lifespan, reply

MSG = {"message": "Hello, World!", "id": 1, "ok": True, "tags": ["a", "b"]}
BODIES = {"/64k": b"x" * 65536, "/1m": b"x" * 1048576}


async def app(scope, receive, send):
    if scope["type"] == "lifespan":
        return await lifespan(receive, send)
    if scope["type"] != "http":
        return
    path = scope["path"]
    if path == "/json":
        await reply(send, json.dumps(MSG).encode(), b"application/json")
    elif path in BODIES:
        await reply(send, BODIES[path])
    elif path == "/sleep":
        await asyncio.sleep(0.01)
        await reply(send, b"Hello, World!")
    elif path == "/upload":
        got, more = 0, True
        while more:
            m = await receive()
            got += len(m.get("body", b""))
            more = m.get("more_body", False)
        await reply(send, str(got).encode())
    else:
        await reply(send, b"not found", status=404)


application = app
