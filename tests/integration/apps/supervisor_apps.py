"""Apps for test_supervisor.py: paths that take a worker process down, or hang it.

  /pid        the worker process's pid
  /segv       reads address 0 (ctypes.string_at(0)): SIGSEGV
  /exit       os._exit(3)
  /hang       sleeps (HB_HANG_SECS, default 3600)
  /sleep      sleeps ?secs=S, then answers
  /grow       keeps ?mb=N more megabytes (touched) for the process's life
  other       "ok"
asgi_app is the ASGI twin of app for /pid, /segv, /exit and /hang (an async handler that takes
its process down, or blocks its event loop).
Importing fails when the file named by HB_FAIL_IMPORT exists (a crash loop at boot).
"""
import ctypes
import os
import time
from urllib.parse import parse_qs

if os.environ.get("HB_FAIL_IMPORT") and os.path.exists(os.environ["HB_FAIL_IMPORT"]):
    raise RuntimeError("HB_FAIL_IMPORT exists: refusing to import")


KEPT = []


def _die_or_hang(path):
    """The routes both apps share: /segv crashes the process, /exit leaves it with status 3,
    /hang sleeps for HB_HANG_SECS (default an hour)."""
    if path == "/segv":
        ctypes.string_at(0)
    if path == "/exit":
        os._exit(3)
    if path == "/hang":
        time.sleep(float(os.environ.get("HB_HANG_SECS", "3600")))


def app(environ, start_response):
    path = environ.get("PATH_INFO", "/")
    if path == "/grow":
        mb = int(parse_qs(environ.get("QUERY_STRING", "")).get("mb", ["1"])[0])
        KEPT.append(bytearray(b"x" * (mb << 20)))
    _die_or_hang(path)
    if path == "/sleep":
        time.sleep(float(parse_qs(environ.get("QUERY_STRING", "")).get("secs", ["1"])[0]))
    body = str(os.getpid()).encode() if path == "/pid" else b"ok"
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]


async def asgi_app(scope, receive, send):
    if scope["type"] != "http":
        return
    path = scope["path"]
    _die_or_hang(path)  # /hang blocks the event loop, as a sync call in async code does
    body = str(os.getpid()).encode() if path == "/pid" else b"ok"
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"text/plain"), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})
