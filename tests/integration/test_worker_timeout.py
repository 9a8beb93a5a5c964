"""A WSGI request past `timeout` (issue 9): the client gets 504 at once, and the app's thread gets
hornbeam_erlang.WorkerTimeout (a TimeoutError) raised in it, so a pure-Python loop stops and the
worker serves the next request. A blocking C call (time.sleep) runs to its end first: then the
exception stops what follows it, and it never leaks into the next request."""
import time

from hbtest import http, wait_for

APP = r'''
import time
caught = []

def app(environ, start_response):
    path = environ["PATH_INFO"]
    arg = environ.get("QUERY_STRING") or "0"
    if path == "/spin":
        try:
            while True:
                pass
        except TimeoutError as e:
            caught.append(type(e).__name__)
            raise
    elif path == "/stubborn":  # catches the first ones and spins on
        n = 0
        while True:
            try:
                while True:
                    pass
            except TimeoutError:
                n += 1
                caught.append("again")
                if n == int(arg):
                    break
    elif path == "/sleep":
        try:
            time.sleep(float(arg))
            caught.append("after-sleep")  # never: the exception comes first
        except TimeoutError as e:
            caught.append("sleep-" + type(e).__name__)
            raise
    elif path == "/stream":  # the head goes at once: `timeout` is over, however long it runs
        start_response("200 OK", [("Content-Type", "text/plain")])

        def chunks():
            for i in range(15):
                time.sleep(0.1)
                yield b"%d," % i
        return chunks()
    body = ("ok %s" % ",".join(caught)).encode()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]
'''


def _start(server, tmp_path, *args):
    d = tmp_path / "app"
    d.mkdir(exist_ok=True)
    (d / "wt_app.py").write_text(APP)
    return server("wt_app:app", "--pythonpath", str(d), "--timeout", "500ms", "--workers", "1",
                  "--threads", "1", *args)


def test_a_spinning_request_is_stopped_and_the_worker_goes_on(server, tmp_path):
    srv = _start(server, tmp_path)
    t0 = time.monotonic()
    r = http(srv.port, "GET", "/spin", timeout=10)
    assert r.status == 504, r
    # One thread: without the exception it would spin forever and this would never answer.
    r = http(srv.port, "GET", "/hello", timeout=10)
    took = time.monotonic() - t0
    assert r.status == 200, r
    assert r.body == b"ok WorkerTimeout", r.body
    assert took < 5.0, "the worker was free only after %.2fs" % took
    assert "raising WorkerTimeout" in srv.stderr()


def test_an_app_that_catches_it_gets_it_again(server, tmp_path):
    srv = _start(server, tmp_path)
    t0 = time.monotonic()
    assert http(srv.port, "GET", "/stubborn?2", timeout=10).status == 504
    # /hello queues behind the stubborn request until its second WorkerTimeout (one `timeout`
    # later): on a loaded machine it may wait past `timeout` itself and get 504; then again.
    while True:
        r = http(srv.port, "GET", "/hello", timeout=15)
        if r.status == 200 or time.monotonic() - t0 > 20:
            break
    assert r.status == 200 and r.body == b"ok again,again", r.body


def test_a_sleeping_request_stops_after_the_sleep(server, tmp_path):
    srv = _start(server, tmp_path)
    t0 = time.monotonic()
    assert http(srv.port, "GET", "/sleep?2", timeout=10).status == 504
    assert time.monotonic() - t0 < 1.8
    # time.sleep is not interrupted: the exception comes when it returns and stops the request
    # before its next line. Requests sent meanwhile wait behind it (and get 504 too); it is
    # not raised in the next request either.
    while True:
        r = http(srv.port, "GET", "/hello", timeout=10)
        if r.status == 200 or time.monotonic() - t0 > 20:
            break
    assert r.status == 200 and r.body == b"ok sleep-WorkerTimeout", r.body
    assert time.monotonic() - t0 >= 1.9


def test_a_response_that_started_in_time_is_not_interrupted(server, tmp_path):
    srv = _start(server, tmp_path)
    r = http(srv.port, "GET", "/stream", timeout=10)
    assert r.status == 200
    assert r.body == b"".join(b"%d," % i for i in range(15))
    assert "WorkerTimeout" not in srv.stderr()
