"""Plain WSGI app for perf/bench.py's non-framework scenarios (hornbeam-uring, gunicorn, uWSGI).

Routes, the same bytes as raw_asgi.py:
  /json    json.dumps of a small dict (application/json)
  /64k     65,536 bytes of 'x' (text/plain)
  /1m      1,048,576 bytes of 'x'
  /upload  POST: reads the whole body, answers its length as text (GET: '0')
"""
import json

MSG = {"message": "Hello, World!", "id": 1, "ok": True, "tags": ["a", "b"]}
BODIES = {"/64k": b"x" * 65536, "/1m": b"x" * 1048576}


def application(environ, start_response):
    path = environ.get("PATH_INFO", "/")
    if path == "/json":
        body = json.dumps(MSG).encode()
        ctype = "application/json"
    elif path in BODIES:
        body = BODIES[path]
        ctype = "text/plain"
    elif path == "/upload":
        n = int(environ.get("CONTENT_LENGTH") or 0)
        stream, got = environ["wsgi.input"], 0
        while got < n:
            chunk = stream.read(min(65536, n - got))
            if not chunk:
                break
            got += len(chunk)
        body = str(got).encode()
        ctype = "text/plain"
    else:
        start_response("404 Not Found", [("Content-Type", "text/plain"), ("Content-Length", "9")])
        return [b"not found"]
    start_response("200 OK", [("Content-Type", ctype), ("Content-Length", str(len(body)))])
    return [body]


app = application
