"""Apps that use `logging` and `threading` the way real apps do: a record per request (which
makes threading.current_thread() build a _DummyThread on the worker's thread), a thread-local,
and a short-lived background thread. Shutting them down must print no traceback."""
import asyncio
import logging
import threading

logging.basicConfig(level=logging.INFO, format="%(levelname)s %(threadName)s %(message)s")
log = logging.getLogger("logging_apps")
local = threading.local()
log.info("imported")  # at import time too: the import runs on the worker thread


def _background():
    log.info("background thread ran")


def app(environ, start_response):
    local.count = getattr(local, "count", 0) + 1
    t = threading.Thread(target=_background)
    t.start()
    t.join()
    log.info("request %s on %s (%d here)", environ["PATH_INFO"], threading.current_thread().name,
             local.count)
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"logged\n"]


async def asgi_app(scope, receive, send):
    if scope["type"] == "lifespan":
        while True:
            msg = await receive()
            log.info("lifespan %s", msg["type"])
            await send({"type": msg["type"] + ".complete"})
            if msg["type"] == "lifespan.shutdown":
                return
    local.count = getattr(local, "count", 0) + 1
    log.info("asgi request %s on %s", scope["path"], threading.current_thread().name)
    await asyncio.sleep(0)
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"text/plain")]})
    await send({"type": "http.response.body", "body": b"logged\n"})
