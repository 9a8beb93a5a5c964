"""CPU-bound WSGI app for perf/procs_vs_threads.py: each request runs a pure-Python loop
(about 0.3 ms on one core at the default HB_CPU_ITERS), holding its interpreter's GIL throughout;
/hello answers at once."""
import os

ITERS = int(os.environ.get("HB_CPU_ITERS", "5000"))
HELLO = b"Hello, World!"


def app(environ, start_response):
    if environ.get("PATH_INFO") == "/hello":
        body = HELLO
    else:
        acc = 0
        for i in range(ITERS):
            acc = (acc * 31 + i) & 0xFFFFFFFF
        body = b"%d" % acc
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]
