"""Hello-world WSGI app used by perf/bench.py (hornbeam-uring, gunicorn).

Kept byte-for-byte equivalent to apps/hello_asgi.py and nginx.conf.tmpl:
200, text/plain, Content-Length 13, body b"Hello, World!".
"""

BODY = b"Hello, World!"
HEADERS = [("Content-Type", "text/plain"), ("Content-Length", str(len(BODY)))]


def application(environ, start_response):
    start_response("200 OK", HEADERS)
    return [BODY]


app = application
