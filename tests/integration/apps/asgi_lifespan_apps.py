"""Lifespan test apps (tests/integration/test_asgi_lifespan.py)."""
import os


async def _hello(scope, receive, send, body):
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
    await send({"type": "http.response.body", "body": body})


async def failing_startup(scope, receive, send):
    """lifespan.startup.failed with a message: the server must exit non-zero printing it."""
    if scope["type"] == "lifespan":
        await receive()
        await send({"type": "lifespan.startup.failed", "message": "database unreachable at db:5432"})
        return
    await _hello(scope, receive, send, b"should not serve")


async def raising_startup(scope, receive, send):
    if scope["type"] == "lifespan":
        await receive()
        raise RuntimeError("startup exploded")
    await _hello(scope, receive, send, b"served")


async def no_lifespan(scope, receive, send):
    """An app that only knows HTTP: raises on the lifespan scope."""
    assert scope["type"] == "http", "only http here"
    await _hello(scope, receive, send, b"http only")


async def stateful(scope, receive, send):
    if scope["type"] == "lifespan":
        while True:
            m = await receive()
            if m["type"] == "lifespan.startup":
                scope["state"]["db"] = "connected"
                scope["state"]["items"] = []
                if os.environ.get("HB_LIFESPAN_LOG"):
                    with open(os.environ["HB_LIFESPAN_LOG"], "a") as f:
                        f.write("startup %d\n" % os.getpid())
                await send({"type": "lifespan.startup.complete"})
            elif m["type"] == "lifespan.shutdown":
                if os.environ.get("HB_LIFESPAN_LOG"):
                    with open(os.environ["HB_LIFESPAN_LOG"], "a") as f:
                        f.write("shutdown\n")
                await send({"type": "lifespan.shutdown.complete"})
                return
    state = scope.get("state")
    if scope["path"] == "/set":
        state["new_key"] = 1          # shallow copy: not seen by the next request
        state["items"].append("x")    # ... but the objects inside are shared
    import json
    body = json.dumps({"has_state": state is not None, "state": state}).encode()
    await _hello(scope, receive, send, body)


async def slow_startup(scope, receive, send):
    if scope["type"] == "lifespan":
        import asyncio
        await receive()
        await asyncio.sleep(30)
    await _hello(scope, receive, send, b"late")
