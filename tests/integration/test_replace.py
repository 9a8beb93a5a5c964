"""A worker process with a request stuck past worker_kill_timeout is replaced by the master
(issue 9): WorkerTimeout cannot interrupt time.sleep, so the process asks the master, which starts
a successor in its slot first, then stops the old one gracefully (it exits within
graceful_timeout, leaving the stuck thread behind); requests keep being answered throughout.
(max_worker_rss, replaced the same way: test_supervisor.py.)"""
import json
import re
import time

from hbtest import http, wait_for

APP = r'''
import os, time

def app(environ, start_response):
    path = environ["PATH_INFO"]
    arg = environ.get("QUERY_STRING") or "0"
    if path == "/sleep":
        time.sleep(float(arg))
    with open("/proc/self/statm") as f:
        rss = int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    body = ('{"pid": %d, "rss": %d}' % (os.getpid(), rss)).encode()
    start_response("200 OK", [("Content-Type", "application/json"),
                              ("Content-Length", str(len(body)))])
    return [body]
'''


def _app_dir(tmp_path):
    d = tmp_path / "app"
    d.mkdir(exist_ok=True)
    (d / "rp_app.py").write_text(APP)
    return d


def _get(port, path, timeout=10):
    r = http(port, "GET", path, timeout=timeout)
    assert r.status == 200, r
    return json.loads(r.body)


def _new_pid(port, old, timeout):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            p = _get(port, "/pid", timeout=5)["pid"]
            if p != old:
                return p
        except (AssertionError, OSError):
            pass
        time.sleep(0.1)
    return None


def test_a_request_stuck_past_worker_kill_timeout_replaces_its_process(server, tmp_path):
    srv = server("rp_app:app", "--pythonpath", str(_app_dir(tmp_path)), "--timeout", "1",
                 "--worker-kill-timeout", "1", "--graceful-timeout", "2", "--workers", "1",
                 "--threads", "2")
    old = _get(srv.port, "/pid")["pid"]
    assert http(srv.port, "GET", "/sleep?60", timeout=10).status == 504
    new = _new_pid(srv.port, old, 20)
    assert new, "the process was not replaced"
    assert wait_for(lambda: "asks to be replaced" in srv.stderr(), 5)
    # The old one stops (its sleeping thread cannot finish: forced after graceful_timeout).
    assert wait_for(lambda: re.search(r"pid %d, generation \d+\) exited" % old, srv.stderr()), 30)
    assert _get(srv.port, "/pid")["pid"] == new
