"""Shutdown prints no traceback from Python's threading internals (issue 11 §3).

An app that logs makes threading.current_thread() build a _DummyThread on the worker thread; its
cleanup object used to be released after the sub-interpreter's modules were torn down, printing
"Exception ignored in: _DeleteDummyThreadOnDel.__del__" per worker at SIGTERM."""
import requests

from hbtest import EXAMPLES

BAD = ("Exception ignored", "Traceback")


def hit(s, paths):
    for p in paths:
        r = requests.get("http://127.0.0.1:%d%s" % (s.port, p), timeout=10)
        assert r.status_code in (200, 404), s.describe()


def assert_quiet_stop(s):
    rc = s.stop()
    err = s.stderr()
    for bad in BAD:
        assert bad not in err, "%r in stderr at shutdown\n%s" % (bad, s.describe())
    assert rc == 0, s.describe()
    return err


def test_logging_threading_wsgi(server):
    # 2 workers x 2 threads: primary and peer thread states both served requests
    s = server("logging_apps:app", "--workers", "2", "--threads", "2")
    hit(s, ["/a%d" % i for i in range(16)])
    err = assert_quiet_stop(s)
    assert "request /a" in err and "background thread ran" in err


def test_logging_asgi(server):
    s = server("logging_apps:asgi_app", "--worker-class", "asgi", "--workers", "2")
    hit(s, ["/b%d" % i for i in range(8)])
    err = assert_quiet_stop(s)
    assert "asgi request /b" in err and "lifespan lifespan.shutdown" in err


def test_flask(server):
    s = server("app:app", "--workers", "2", pythonpath=[EXAMPLES / "flask_app"])
    hit(s, ["/", "/items", "/items/1", "/items/9"])
    assert_quiet_stop(s)


def test_flask_logging(server):
    s = server("flask_logging_app:app", "--workers", "2")
    hit(s, ["/"] * 6)
    err = assert_quiet_stop(s)
    assert "flask request /" in err
