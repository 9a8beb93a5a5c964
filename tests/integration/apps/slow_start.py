"""Apps that take a while to become ready (readiness tests): `app` sleeps HB_IMPORT_SLEEP
seconds (default 3) at import, `lifespan_app` sleeps as long in ASGI lifespan startup. Each
writes HB_START_LOG (when set) as the slow part begins, so a test knows the server is in it.
`late_end_app` (import with HB_IMPORT_SLEEP=0) sends its whole Content-Length body, then takes
0.5 s more before its iterable ends: a client has all of it and may close before the end."""
import os
import time


def _mark(what):
    path = os.environ.get("HB_START_LOG")
    if path:
        with open(path, "a") as f:
            f.write("%s %d\n" % (what, os.getpid()))


def _secs():
    return float(os.environ.get("HB_IMPORT_SLEEP", "3"))


_mark("import")
if not os.environ.get("HB_SLOW_LIFESPAN_ONLY"):
    time.sleep(_secs())


def app(environ, start_response):
    body = b"ready"
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]


async def lifespan_app(scope, receive, send):
    if scope["type"] == "lifespan":
        while True:
            m = await receive()
            if m["type"] == "lifespan.startup":
                _mark("startup")
                import asyncio
                await asyncio.sleep(_secs())
                await send({"type": "lifespan.startup.complete"})
            else:
                await send({"type": "lifespan.shutdown.complete"})
                return
    body = b"ready"
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"text/plain"), (b"content-length", b"5")]})
    await send({"type": "http.response.body", "body": body})


def late_end_app(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "5")])

    def body():
        yield b"ready"
        time.sleep(0.5)
    return body()
