"""Limits and lifecycle edges of issue 2 not covered elsewhere (max_connections: test_fds.py): the
request timeout (504), forced shutdown (second signal, SIGQUIT, graceful_timeout expiring), and
the automatic fallback to the main interpreter for single-phase extension modules."""
import os
import signal
import subprocess
import threading
import time
from pathlib import Path

from hbtest import assert_served, http

HERE = Path(__file__).resolve().parent


def _binary_dir():
    b = os.environ.get("HB_BINARY") or str(HERE.parent.parent / "build" / "hornbeam-uring")
    return Path(b).resolve().parent


def _python_config():
    """The python3.X-config the binary was built with (from its CMake cache)."""
    cache = _binary_dir() / "CMakeCache.txt"
    for line in cache.read_text().splitlines():
        if line.startswith("HB_PYTHON_CONFIG:"):
            return line.split("=", 1)[1]
    raise AssertionError("HB_PYTHON_CONFIG not in %s" % cache)


def test_request_timeout_answers_504_and_server_goes_on(server):
    srv = server("wsgi_apps:app", "--timeout", "500ms", "--workers", "1", "--threads", "2")
    t0 = time.monotonic()
    r = http(srv.port, "GET", "/sleep?secs=3", timeout=10)
    took = time.monotonic() - t0
    assert r.status == 504, r
    assert took < 2.0, "504 came after %.2fs (timeout 0.5s)" % took
    assert "request timeout" in srv.stderr()
    assert_served(srv.port)


def _in_flight(port, secs):
    box = {}

    def go():
        try:
            box["r"] = http(port, "GET", "/sleep?secs=%s" % secs, timeout=15)
        except Exception as e:  # the server may close it: that is what these tests cause
            box["err"] = e
    t = threading.Thread(target=go)
    t.start()
    time.sleep(0.5)
    return t, box


def test_second_sigterm_stops_at_once(server):
    srv = server("wsgi_apps:app", "--graceful-timeout", "30")
    t, _ = _in_flight(srv.port, 8)
    srv.signal(signal.SIGTERM)
    time.sleep(0.3)
    assert srv.alive(), "graceful stop did not wait for the request in flight"
    t0 = time.monotonic()
    srv.signal(signal.SIGTERM)
    assert srv.wait_exit(5) is not None, "a second SIGTERM did not stop the server"
    assert time.monotonic() - t0 < 3.0
    t.join(10)


def test_sigquit_stops_at_once(server):
    srv = server("wsgi_apps:app", "--graceful-timeout", "30")
    t, _ = _in_flight(srv.port, 8)
    t0 = time.monotonic()
    srv.signal(signal.SIGQUIT)
    assert srv.wait_exit(5) is not None, "SIGQUIT did not stop the server"
    assert time.monotonic() - t0 < 3.0
    t.join(10)


def test_graceful_timeout_expires(server):
    srv = server("wsgi_apps:app", "--graceful-timeout", "1")
    t, box = _in_flight(srv.port, 8)
    t0 = time.monotonic()
    srv.signal(signal.SIGTERM)
    rc = srv.wait_exit(6)
    assert rc == 0, "server did not exit 0 within 6s of SIGTERM with graceful_timeout=1 (rc %r)" % rc
    assert 0.8 < time.monotonic() - t0 < 5.0
    t.join(10)
    assert "r" not in box or box["r"].status != 200, "the 8s request cannot have completed"


def test_single_phase_extension_falls_back_to_main_interpreter(server, tmp_path):
    ext = tmp_path / "ext"
    subprocess.run(["sh", str(HERE / "ext" / "build.sh"), str(ext)], check=True,
                   env=dict(os.environ, PYTHON_CONFIG=_python_config()), stdout=subprocess.DEVNULL)
    srv = server("singlephase_app:application", "--workers", "2", pythonpath=(str(ext),))
    r = http(srv.port, "GET", "/")
    assert r.status == 200, r
    err = srv.stderr()
    assert "hbtest_singlephase" in err and "WARNING" in err, err
