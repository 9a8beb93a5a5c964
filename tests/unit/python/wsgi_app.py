"""The WSGI app that tests/unit/python/test_wsgi.c serves: one route per behaviour."""
import io
import os
import sys
import threading
import time

TOKEN = os.urandom(8).hex()  # differs in every interpreter that imports this module
closed = []
events = []


class Closing:
    """An iterable result that records its close() call."""

    def __init__(self, chunks, tag, fail_at=None, delay=0.0):
        self.chunks, self.tag, self.fail_at, self.delay = chunks, tag, fail_at, delay

    def __iter__(self):
        for i, chunk in enumerate(self.chunks):
            if i == self.fail_at:
                raise RuntimeError("boom while iterating")
            if self.delay:
                time.sleep(self.delay)
            yield chunk

    def close(self):
        closed.append(self.tag)


def ok(start_response, body, status="200 OK", extra=()):
    if isinstance(body, str):
        body = body.encode("utf-8")
    start_response(status, [("Content-Type", "text/plain"),
                            ("Content-Length", str(len(body)))] + list(extra))
    return [body]


def route_env(environ, start_response):
    items = sorted((k, v) for k, v in environ.items() if isinstance(v, str))
    items += [("wsgi.version", environ["wsgi.version"]),
              ("wsgi.multithread", environ["wsgi.multithread"]),
              ("wsgi.multiprocess", environ["wsgi.multiprocess"]),
              ("wsgi.run_once", environ["wsgi.run_once"]),
              ("wsgi.input_terminated", environ["wsgi.input_terminated"]),
              ("errors", type(environ["wsgi.errors"]).__name__),
              ("input", type(environ["wsgi.input"]).__name__)]
    return ok(start_response, repr(items))


def route_echo(environ, start_response):
    inp, parts = environ["wsgi.input"], []
    while True:
        chunk = inp.read(1000)
        if not chunk:
            break
        parts.append(chunk)
    body = b"".join(parts)
    start_response("200 OK", [("X-Parts", str(len(parts)))])
    return [body]


def route_readall(environ, start_response):
    body = environ["wsgi.input"].read()
    again = environ["wsgi.input"].read()
    return ok(start_response, body + b"|" + repr(again).encode())


def route_lines(environ, start_response):
    inp = environ["wsgi.input"]
    first = inp.readline()
    second = inp.readline(3)
    third = inp.readline()
    rest = inp.readlines()
    after = [inp.read(), inp.readline(), inp.read(5)]
    return ok(start_response, repr([first, second, third, rest, after]))


def route_iter(environ, start_response):
    return ok(start_response, repr(list(environ["wsgi.input"])))


def route_raise(environ, start_response):
    raise ValueError("boom in the app")


def route_badheader(environ, start_response):
    start_response("200 OK", [("X-Bad", "a\r\nInjected: 1")])
    return [b"x"]


def route_badname(environ, start_response):
    start_response("200 OK", [("X Bad", "a")])
    return [b"x"]


def route_badstatus(environ, start_response):
    start_response("200\r\nOK", [])
    return [b"x"]


def route_nonlatin(environ, start_response):
    start_response("200 OK", [("X-Euro", "\u20ac")])
    return [b"x"]


def route_caught(environ, start_response):
    try:
        start_response("200 OK", [("X-Bad", "a\nb")])
    except ValueError:
        pass
    return [b"should not be sent"]


def route_close(environ, start_response):
    start_response("200 OK", [])
    return Closing([b"a", b"b"], environ["QUERY_STRING"])


def route_closed(environ, start_response):
    return ok(start_response, repr(closed) + repr(events))


def route_slowiter(environ, start_response):
    start_response("200 OK", [])
    return Closing([b"x" * 10] * 50, "slow", delay=0.02)


def route_iterfail(environ, start_response):
    start_response("200 OK", [])
    fail_at = int(environ["QUERY_STRING"] or "1")
    return Closing([b"a", b"b"], "iterfail%d" % fail_at, fail_at=fail_at)


def route_short(environ, start_response):
    start_response("200 OK", [("Content-Length", "10")])
    return Closing([b"abc"], "short")


def route_long(environ, start_response):
    start_response("200 OK", [("Content-Length", "3")])
    return Closing([b"ab", b"cdef", b"gh"], "long")


def route_exc_before(environ, start_response):
    start_response("200 OK", [("X-First", "1")])
    try:
        raise KeyError("x")
    except KeyError:
        start_response("503 Oops", [("X-Second", "1")], sys.exc_info())
    return [b"replaced"]


def route_exc_after(environ, start_response):
    write = start_response("200 OK", [])
    write(b"partial;")
    try:
        raise KeyError("x")
    except KeyError:
        try:
            start_response("500 Oops", [], sys.exc_info())
        except KeyError:
            events.append("reraised")
    return [b"more"]


def route_twice(environ, start_response):
    start_response("200 OK", [])
    try:
        start_response("201 Created", [])
    except AssertionError:
        events.append("twice-refused")
    return [b"once"]


def route_write(environ, start_response):
    write = start_response("200 OK", [("Content-Length", "11")])
    write(b"hello ")
    return [b"", b"world"]


def route_extras(environ, start_response):
    # hints before the head go out; pushes only where the environ offers them
    hinted = environ["hornbeam.early_hint"](["</a.css>; rel=preload", "</b.js>; rel=preload"])
    push = environ.get("hornbeam.push")
    pushed = push("/a.css?v=1", [("Accept", "text/css")]) if push else None
    try:
        environ["hornbeam.early_hint"]("not a list")
        bad = "accepted a str"
    except TypeError:
        bad = "TypeError"
    write = start_response("200 OK", [("Content-Type", "text/plain")])
    write(b"x")
    late = environ["hornbeam.early_hint"](["</c.css>"])  # the head went with the first bytes
    return [repr((hinted, pushed, late, bad)).encode()]


def route_empty(environ, start_response):
    start_response("204 No Content", [("X-Empty", "yes")])
    return []


def route_gen_empty(environ, start_response):
    start_response("200 OK", [("X-Gen", "yes"), ("Connection", "close"),
                              ("Transfer-Encoding", "chunked"), ("Date", "x")])
    yield b""


def route_file(environ, start_response):
    f = open(environ["QUERY_STRING"], "rb")
    f.read(2)
    start_response("200 OK", [])
    return environ["wsgi.file_wrapper"](f, 4096)


def route_filelike(environ, start_response):
    start_response("200 OK", [])
    return environ["wsgi.file_wrapper"](io.BytesIO(b"0123456789"), 4)


def route_sleep(environ, start_response):
    time.sleep(0.3)
    return ok(start_response, str(threading.get_ident()))


def route_token(environ, start_response):
    return ok(start_response, TOKEN)


def route_errors(environ, start_response):
    environ["wsgi.errors"].write("a line for the error log\n")
    environ["wsgi.errors"].writelines(["two\n", "lines\n"])
    environ["wsgi.errors"].flush()
    return ok(start_response, "logged")


def route_notbytes(environ, start_response):
    start_response("200 OK", [])
    return ["a str"]


def route_nostart(environ, start_response):
    return [b"no start_response"]


def route_readgone(environ, start_response):
    """Reads until the client leaves: the read raises, nothing is logged, close() runs."""
    try:
        while environ["wsgi.input"].read(100):
            pass
    except ConnectionResetError:
        events.append("reset")
        raise
    return ok(start_response, "unreachable")


def route_stuck(environ, start_response):
    time.sleep(3)
    return ok(start_response, "late")


def _validated_inner(environ, start_response):
    inp = environ["wsgi.input"]
    data = inp.read(5) + inp.readline() + b"".join(inp.readlines()) + inp.read(100)
    environ["wsgi.errors"].write("")
    start_response("200 OK", [("Content-Type", "text/plain"),
                              ("Content-Length", str(len(data) + 3))])
    return iter([b"ok:", data])


def route_validated(environ, start_response):
    """wsgiref.validate checks the server side of PEP 3333 (environ, input, errors, close)."""
    import warnings
    from wsgiref.validate import validator
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        environ = dict(environ)
        environ["PATH_INFO"] = "/"
        return validator(_validated_inner)(environ, start_response)


ROUTES = {k[len("route_"):].replace("_", "-"): v for k, v in list(globals().items())
          if k.startswith("route_")}


def application(environ, start_response):
    name = environ["PATH_INFO"].strip("/").split("/")[0]
    route = ROUTES.get(name)
    if route is None:
        return ok(start_response, "not found: " + name, "404 Not Found")
    return route(environ, start_response)


class Holder:
    class Inner:
        app = staticmethod(application)
