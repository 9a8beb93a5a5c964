"""WSGI test apps for the integration suite (one dispatcher, routed on PATH_INFO).

Runs inside the server's embedded CPython (3.13, possibly a sub-interpreter): stdlib only.
Every path that is not a known route is answered by the environ echo, so tests may use any path.
Query parameters configure each route. When the server's environment has HB_REQ_LOG, every
request appends "METHOD PATH?QUERY" to that file (used to check what reached the app).
"""
import hashlib
import json
import os
import re
import sys
import time
from urllib.parse import parse_qs
from wsgiref.validate import validator


# Made once per import, so once per interpreter: /whoami tells which one served a request.
_TOKEN = os.urandom(8).hex()
_served = [0]


def _q(environ):
    return {k: v[-1] for k, v in parse_qs(environ.get("QUERY_STRING", ""), keep_blank_values=True).items()}


def _append(path, line):
    if not path:
        return
    with open(path, "a", encoding="utf-8") as f:
        f.write(line + "\n")
        f.flush()


def _json(start_response, obj, status="200 OK", extra=()):
    body = json.dumps(obj, sort_keys=True).encode()
    start_response(status, [("Content-Type", "application/json"), ("Content-Length", str(len(body)))] + list(extra))
    return [body]


def _read_all(inp, mode, size=65536):
    """Reads wsgi.input in one of several ways; returns the bytes."""
    if mode == "read":
        return inp.read()
    if mode == "read_none":
        return inp.read(None)
    if mode == "read_neg":
        return inp.read(-1)
    if mode == "readn":
        parts = []
        while True:
            b = inp.read(size)
            if not b:
                break
            parts.append(b)
        return b"".join(parts)
    if mode == "read1":
        parts = []
        while True:
            b = inp.read(1)
            if not b:
                break
            parts.append(b)
        return b"".join(parts)
    if mode == "readline":
        parts = []
        while True:
            b = inp.readline()
            if not b:
                break
            parts.append(b)
        return b"".join(parts)
    if mode == "readline_n":
        parts = []
        while True:
            b = inp.readline(7)
            if not b:
                break
            assert len(b) <= 7, len(b)
            parts.append(b)
        return b"".join(parts)
    if mode == "readlines":
        return b"".join(inp.readlines())
    if mode == "iter":
        return b"".join(line for line in inp)
    raise ValueError("unknown mode %r" % mode)


def _environ_view(environ):
    out = {}
    for k, v in environ.items():
        if isinstance(v, str):
            out[k] = v
    out["wsgi.version"] = list(environ.get("wsgi.version", ()))
    for k in ("wsgi.multithread", "wsgi.multiprocess", "wsgi.run_once"):
        out[k] = environ.get(k)
    out["_has"] = {k: (k in environ) for k in (
        "wsgi.input", "wsgi.errors", "wsgi.file_wrapper", "CONTENT_LENGTH", "CONTENT_TYPE",
        "HTTP_CONTENT_LENGTH", "HTTP_CONTENT_TYPE", "HTTP_TRANSFER_ENCODING")}
    return out


# -- routes -------------------------------------------------------------------------------

def echo(environ, start_response):
    q = _q(environ)
    body = b""
    err = None
    if q.get("read", "1") != "0":
        try:
            body = _read_all(environ["wsgi.input"], q.get("mode", "read"))
        except Exception as e:  # noqa: BLE001 - reported to the client
            err = "%s: %s" % (type(e).__name__, e)
    return _json(start_response, {
        "environ": _environ_view(environ),
        "body": body.decode("latin-1"),
        "body_len": len(body),
        "read_error": err,
    })


def noread(environ, start_response):
    body = b"noread"
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]


def body(environ, start_response):
    q = _q(environ)
    data = _read_all(environ["wsgi.input"], q.get("mode", "read"), int(q.get("size", "65536")))
    return _json(start_response, {"len": len(data), "sha256": hashlib.sha256(data).hexdigest()})


def hash_(environ, start_response):
    """Reads the body incrementally (read(n) loop), never holding it whole."""
    q = _q(environ)
    n = int(q.get("size", "65536"))
    h = hashlib.sha256()
    total = 0
    inp = environ["wsgi.input"]
    while True:
        b = inp.read(n)
        if not b:
            break
        total += len(b)
        h.update(b)
    return _json(start_response, {"len": total, "sha256": h.hexdigest()})


def stream(environ, start_response):
    q = _q(environ)
    n = int(q.get("n", "5"))
    size = int(q.get("size", "10"))
    delay = float(q.get("delay", "0"))
    start_response("200 OK", [("Content-Type", "text/plain")])

    def gen():
        for i in range(n):
            if delay:
                time.sleep(delay)
            yield (b"%d" % (i % 10)) * size
    return gen()


def pattern(total):
    """The bytes /large sends: a repeating 256-byte pattern (tests recompute it)."""
    block = bytes(range(256)) * 256  # 64 KiB
    full, rest = divmod(total, len(block))
    return block, full, rest


def large(environ, start_response):
    q = _q(environ)
    total = int(q.get("size", str(8 << 20)))
    block, full, rest = pattern(total)
    headers = [("Content-Type", "application/octet-stream")]
    if q.get("cl") == "1":
        headers.append(("Content-Length", str(total)))
    start_response("200 OK", headers)

    def gen():
        for _ in range(full):
            yield block
        if rest:
            yield block[:rest]
    return gen()


def validate_inner(environ, start_response):
    inp = environ["wsgi.input"]
    data = b""
    if environ["REQUEST_METHOD"] == "POST":
        n = int(environ.get("CONTENT_LENGTH") or 0)
        data = inp.read(n)
    environ["wsgi.errors"].write("")
    environ["wsgi.errors"].flush()
    out = b"validated:" + data
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(out)))])
    return [out]


validated = validator(validate_inner)


def raise_(environ, start_response):
    raise RuntimeError(_q(environ).get("msg", "boom"))


def raise_iter(environ, start_response):
    msg = _q(environ).get("msg", "boom-iter")
    start_response("200 OK", [("Content-Type", "text/plain")])

    def gen():
        yield b"first"
        raise RuntimeError(msg)
    return gen()


def badheader(environ, start_response):
    kind = _q(environ).get("kind", "crlf")
    status = "200 OK"
    headers = [("Content-Type", "text/plain")]
    if kind == "crlf":
        headers.append(("X-Bad", "a\r\nInjected: yes"))
    elif kind == "lf":
        headers.append(("X-Bad", "a\nInjected: yes"))
    elif kind == "cr":
        headers.append(("X-Bad", "a\rInjected: yes"))
    elif kind == "name_crlf":
        headers.append(("X-Bad\r\nInjected", "yes"))
    elif kind == "name_colon":
        headers.append(("X-Bad: Injected", "yes"))
    elif kind == "nonlatin1_value":
        headers.append(("X-Bad", "caf\u00e9 \u20ac"))
    elif kind == "nonlatin1_name":
        headers.append(("X-B\u20ac", "v"))
    elif kind == "status_crlf":
        status = "200 OK\r\nInjected: yes"
    elif kind == "status_nonlatin1":
        status = "200 \u20acK"
    elif kind == "status_bad":
        status = "abc"
    start_response(status, headers)
    return [b"should-not-be-sent"]


def clmismatch(environ, start_response):
    n = int(_q(environ).get("n", "3"))
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "10")])
    return [b"x" * n]


def cpu(environ, start_response):
    """Busy loop for `secs` of this thread's CPU time (shared-GIL threads would take longer)."""
    secs = float(_q(environ).get("secs", "0.3"))
    t0 = time.thread_time()
    n = 0
    while time.thread_time() - t0 < secs:
        for _ in range(1000):
            n += 1
    import threading
    return _json(start_response, {"iterations": n, "pid": os.getpid(), "interp": id(sys.modules),
                                  "thread": threading.get_ident()})


def gil(environ, start_response):
    """Holds this interpreter's GIL for the whole call: re does not release it while matching,
    and (a+)+$ on "a" * n + "b" backtracks about 2^n steps (n=24: ~1.5 s). Times are
    CLOCK_MONOTONIC, comparable with /now's in another worker."""
    n = int(_q(environ).get("n", "24"))
    t0 = time.monotonic()
    re.match(r"(a+)+$", "a" * n + "b")
    return _json(start_response, {"t0": t0, "t1": time.monotonic(), "interp": id(sys.modules)})


def now(environ, start_response):
    return _json(start_response, {"t": time.monotonic(), "interp": id(sys.modules)})


def sleep(environ, start_response):
    secs = float(_q(environ).get("secs", "1"))
    t0 = time.monotonic()
    time.sleep(secs)
    return _json(start_response, {"slept": time.monotonic() - t0})


def file_(environ, start_response):
    q = _q(environ)
    f = open(q["path"], "rb")
    headers = [("Content-Type", "application/octet-stream")]
    if q.get("cl") == "1":
        headers.append(("Content-Length", str(os.path.getsize(q["path"]))))
    start_response("200 OK", headers)
    return environ["wsgi.file_wrapper"](f, 32768)


def write_(environ, start_response):
    w = start_response("200 OK", [("Content-Type", "text/plain")])
    w(b"written-1;")
    w(b"written-2;")
    return [b"returned-1;", b"returned-2"]


class Tracked:
    """An iterable that records its close() call (and the reason it stopped) in a log file."""

    def __init__(self, environ, q):
        self.environ = environ
        self.q = q
        self.id = q.get("id", "?")
        self.log = q.get("log") or os.environ.get("HB_CLOSE_LOG")
        _append(self.log, "start %s" % self.id)

    def __iter__(self):
        q = self.q
        if q.get("read") == "1":
            try:
                data = _read_all(self.environ["wsgi.input"], "readn")
                _append(self.log, "read %s %d" % (self.id, len(data)))
            except Exception as e:  # noqa: BLE001
                _append(self.log, "read-error %s %s" % (self.id, type(e).__name__))
        n = int(q.get("n", "3"))
        delay = float(q.get("delay", "0"))
        size = int(q.get("size", "5"))
        for i in range(n):
            if delay:
                time.sleep(delay)
            if q.get("raise") == "1" and i == 1:
                raise RuntimeError("tracked-raise %s" % self.id)
            yield b"x" * size

    def close(self):
        _append(self.log, "close %s" % self.id)


def track(environ, start_response):
    q = _q(environ)
    it = Tracked(environ, q)
    start_response("200 OK", [("Content-Type", "text/plain")])
    return it


def excinfo(environ, start_response):
    when = _q(environ).get("when", "before")
    if when == "before":
        start_response("200 OK", [("Content-Type", "text/plain")])
        try:
            raise ValueError("excinfo-before")
        except ValueError:
            start_response("500 Internal Server Error", [("Content-Type", "text/plain"), ("X-Handled", "1")],
                           sys.exc_info())
        return [b"handled-error"]

    start_response("200 OK", [("Content-Type", "text/plain")])

    def gen():
        yield b"partial"
        try:
            raise ValueError("excinfo-after")
        except ValueError:
            # Headers were already sent: start_response must re-raise.
            start_response("500 Internal Server Error", [("Content-Type", "text/plain")], sys.exc_info())
        yield b"never"
    return gen()


def status(environ, start_response):
    q = _q(environ)
    code = q.get("code", "204")
    reasons = {"204": "No Content", "304": "Not Modified", "404": "Not Found", "201": "Created"}
    start_response("%s %s" % (code, reasons.get(code, "Whatever")), [("X-Status", code)])
    return [] if code in ("204", "304") else [b"status-body"]


def whoami(environ, start_response):
    return _json(start_response, {"token": _TOKEN, "served": _served[0]})


def log(environ, start_response):
    body = b"logged"
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]


def errors_(environ, start_response):
    msg = _q(environ).get("msg", "to-wsgi-errors")
    environ["wsgi.errors"].write(msg + "\n")
    environ["wsgi.errors"].flush()
    body = b"ok"
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "2")])
    return [body]


ROUTES = {
    "/noread": noread,
    "/body": body,
    "/hash": hash_,
    "/stream": stream,
    "/large": large,
    "/validate": validated,
    "/raise": raise_,
    "/raise_iter": raise_iter,
    "/badheader": badheader,
    "/clmismatch": clmismatch,
    "/cpu": cpu,
    "/sleep": sleep,
    "/file": file_,
    "/write": write_,
    "/track": track,
    "/excinfo": excinfo,
    "/status": status,
    "/log": log,
    "/whoami": whoami,
    "/gil": gil,
    "/now": now,
    "/errors": errors_,
}


def app(environ, start_response):
    req_log = os.environ.get("HB_REQ_LOG")
    if req_log:
        _append(req_log, "%s %s?%s" % (environ.get("REQUEST_METHOD"), environ.get("PATH_INFO"),
                                       environ.get("QUERY_STRING", "")))
    _served[0] += 1
    handler = ROUTES.get(environ.get("PATH_INFO", ""), echo)
    return handler(environ, start_response)


# Separate entry points for servers that need a single behaviour.
application = app
