"""ASGI lifespan: lifespan = auto|on|off, startup failure exits non-zero with the app's message,
scope["state"] copied into each request, shutdown after draining. Apps: apps/asgi_lifespan_apps.py."""
import json
import os
import signal
import time

import pytest

from hbtest import APPS, DIST_PACKAGES, free_port, http, read_file, run_binary, wait_for


def start_args(app, *extra):
    return [app, "--worker-class", "asgi", "--pythonpath", str(APPS), "--pythonpath", DIST_PACKAGES,
            "--bind", "127.0.0.1:%d" % free_port(), "--workers", "2"] + list(extra)


def test_startup_failed_exits_nonzero_with_message():
    r = run_binary(start_args("asgi_lifespan_apps:failing_startup"))
    assert r.returncode != 0
    err = r.stderr.decode()
    assert "database unreachable at db:5432" in err, err


@pytest.mark.parametrize("mode", ["on", "auto"])
def test_startup_failed_in_any_mode(mode):
    r = run_binary(start_args("asgi_lifespan_apps:failing_startup", "--lifespan", mode))
    assert r.returncode != 0
    assert "database unreachable" in r.stderr.decode()


def test_startup_exception_with_on_exits_nonzero():
    r = run_binary(start_args("asgi_lifespan_apps:raising_startup", "--lifespan", "on"))
    assert r.returncode != 0
    err = r.stderr.decode()
    assert "startup exploded" in err and "Traceback" in err, err


def test_on_with_app_without_lifespan_exits_nonzero():
    r = run_binary(start_args("asgi_lifespan_apps:no_lifespan", "--lifespan", "on"))
    assert r.returncode != 0
    assert "only http here" in r.stderr.decode()


def test_auto_tolerates_app_without_lifespan(server):
    s = server("asgi_lifespan_apps:no_lifespan", "--worker-class", "asgi")
    r = http(s.port, "GET", "/")
    assert r.body == b"http only"
    assert "lifespan" in s.stderr() and "unsupported" in s.stderr()
    assert not s.error_lines()


def test_auto_tolerates_startup_exception(server):
    s = server("asgi_lifespan_apps:raising_startup", "--worker-class", "asgi", "--lifespan", "auto")
    assert http(s.port, "GET", "/").body == b"served"


def test_off_skips_lifespan(server, tmp_path):
    log = tmp_path / "ls.txt"
    s = server("asgi_lifespan_apps:stateful", "--worker-class", "asgi", "--lifespan", "off",
               env={"HB_LIFESPAN_LOG": str(log)})
    body = http(s.port, "GET", "/").json()
    assert body["state"] == {}
    s.stop()
    assert read_file(log) == ""


def test_state_copied_into_each_request(server):
    s = server("asgi_lifespan_apps:stateful", "--worker-class", "asgi", "--workers", "1")
    st = http(s.port, "GET", "/").json()["state"]
    assert st == {"db": "connected", "items": []}
    http(s.port, "GET", "/set")
    st = http(s.port, "GET", "/").json()["state"]
    assert "new_key" not in st          # each request gets its own (shallow) copy
    assert st["items"] == ["x"]         # of the same objects


def test_startup_in_every_worker_and_shutdown(server, tmp_path):
    log = tmp_path / "ls.txt"
    s = server("asgi_lifespan_apps:stateful", "--worker-class", "asgi", "--workers", "3",
               env={"HB_LIFESPAN_LOG": str(log)})
    assert wait_for(lambda: read_file(log).count("startup") == 3), read_file(log)
    assert http(s.port, "GET", "/").status == 200
    assert s.stop() == 0
    assert read_file(log).count("shutdown") == 3


def test_startup_timeout():
    t0 = time.monotonic()
    r = run_binary(start_args("asgi_lifespan_apps:slow_startup", "--lifespan-timeout", "1"))
    assert r.returncode != 0
    assert "timed out" in r.stderr.decode()
    assert time.monotonic() - t0 < 15


def test_lifespan_keys_in_toml(server, tmp_path):
    cfg = tmp_path / "hb.toml"
    cfg.write_text('worker_class = "asgi"\nlifespan = "off"\nlifespan_timeout = 5\n')
    s = server("asgi_lifespan_apps:stateful", "--config", str(cfg))
    assert http(s.port, "GET", "/").json()["state"] == {}


def test_bad_lifespan_value_is_an_error():
    r = run_binary(["asgi_lifespan_apps:stateful", "--lifespan", "sometimes"])
    assert r.returncode != 0
    assert "lifespan" in r.stderr.decode()
