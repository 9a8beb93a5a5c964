"""Lifecycle and worker model: graceful shutdown, keep-alive idle timeout, workers/threads
concurrency, max_requests, interpreter=main, access log."""
import os
import re
import signal
import socket
import threading
import time

import pytest
import requests

from hbtest import (HTTPReader, assert_interpreters_replaced, assert_served, connect, http, request_bytes,
                    wait_for, whoami_through_swaps, read_file)


def _in_thread(fn, *args):
    out = {}

    def run():
        try:
            out["value"] = fn(*args)
        except Exception as e:  # noqa: BLE001
            out["error"] = e
    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t, out


def test_sigterm_lets_in_flight_request_finish(server, tmp_path):
    reqlog = tmp_path / "req.log"
    s = server("wsgi_apps:app", "--graceful-timeout", "10", env={"HB_REQ_LOG": str(reqlog)})
    t, out = _in_thread(http, s.port, "GET", "/sleep?secs=1", None, b"", "HTTP/1.1", 10.0)
    assert wait_for(lambda: "/sleep" in read_file(reqlog), 5), "the request never reached the app: %r" % out
    time.sleep(0.1)
    s.signal(signal.SIGTERM)
    time.sleep(0.2)
    assert t.is_alive(), "the in-flight request ended right after SIGTERM: %r" % out
    # new connections are refused while the in-flight request drains
    with pytest.raises((ConnectionRefusedError, ConnectionResetError)):
        c = socket.create_connection(("127.0.0.1", s.port), timeout=2)
        try:
            c.sendall(request_bytes("GET", "/echo", [("Connection", "close")]))
            data = c.recv(100)
            if not data:
                raise ConnectionResetError("accepted, then closed unserved")
            raise AssertionError("a new connection was served after SIGTERM: %r" % data)
        finally:
            c.close()
    t.join(10)
    assert "error" not in out, out
    r = out["value"]
    assert r.status == 200, r
    assert r.json()["slept"] >= 0.9
    rc = s.wait_exit(10)
    assert rc == 0, "exit status %r after SIGTERM\n%s" % (rc, s.describe())


def test_sigterm_closes_idle_keepalive_connections(server):
    s = server("wsgi_apps:app", "--keepalive", "30")
    with connect(s.port) as c:
        c.sendall(request_bytes("GET", "/echo"))
        rd = HTTPReader(c)
        assert rd.read_response().status == 200
        assert rd.is_open(0.2)
        t0 = time.monotonic()
        s.signal(signal.SIGTERM)
        rd.expect_closed(timeout=5)
        assert time.monotonic() - t0 < 5
    rc = s.wait_exit(10)
    assert rc == 0, "exit status %r after SIGTERM\n%s" % (rc, s.describe())


def test_sigint_also_stops_cleanly(server):
    s = server("wsgi_apps:app")
    assert_served(s.port)
    s.signal(signal.SIGINT)
    rc = s.wait_exit(10)
    assert rc == 0, "exit status %r after SIGINT\n%s" % (rc, s.describe())


def test_keepalive_idle_timeout(server):
    s = server("wsgi_apps:app", "--keepalive", "1")
    with connect(s.port) as c:
        c.sendall(request_bytes("GET", "/echo"))
        rd = HTTPReader(c)
        assert rd.read_response().status == 200
        t0 = time.monotonic()
        assert rd.is_open(0.5), "closed before the keep-alive timeout"
        rd.expect_closed(timeout=4)
        took = time.monotonic() - t0
    assert 0.5 <= took < 3.5, took


def _concurrent(port, path, n):
    barrier = threading.Barrier(n)
    results = [None] * n

    def one(i):
        barrier.wait()
        try:
            results[i] = http(port, "GET", path, timeout=20)
        except Exception as e:  # noqa: BLE001 - reported below
            results[i] = e
    ts = [threading.Thread(target=one, args=(i,)) for i in range(n)]
    t0 = time.monotonic()
    for t in ts:
        t.start()
    for t in ts:
        t.join(30)
    wall = time.monotonic() - t0
    for r in results:
        assert r is not None and not isinstance(r, Exception) and r.status == 200, (path, results)
    _concurrent.last = results
    return wall


def _while_a_gil_is_held(port, n=24):
    """Sends /gil (holds its interpreter's GIL for ~1.5 s) and, meanwhile, /now requests one
    after another. Returns the /gil answer and the /now answers whose Python ran in the first
    half of the /gil call: well before the match ended, so no GIL hand-over at its end counts."""
    out = {}
    t = threading.Thread(target=lambda: out.update(a=http(port, "GET", "/gil?n=%d" % n, timeout=60)))
    t.start()
    answers = []
    while t.is_alive():
        r = http(port, "GET", "/now", timeout=60)
        assert r.status == 200, r
        answers.append(r.json())
    t.join()
    a = out["a"].json()
    mid = (a["t0"] + a["t1"]) / 2
    return a, [b for b in answers if a["t0"] < b["t"] < mid], answers


def test_workers_run_python_in_parallel_with_their_own_gils(server):
    """While one worker's interpreter holds its GIL (a regex match, which never releases it),
    another worker runs Python: each worker has its own GIL. Proven by the app's own clock
    (CLOCK_MONOTONIC), so machine load cannot fake or hide it, unlike wall-time comparisons.
    The control, two threads of one interpreter, shares one GIL: nothing runs meanwhile."""
    s2 = server("wsgi_apps:app", "--workers", "2")
    a, inside, answers = _while_a_gil_is_held(s2.port)
    others = [b for b in inside if b["interp"] != a["interp"]]
    assert others, "no request ran in another worker while one held its GIL for %.2fs (%d answers)" % (
        a["t1"] - a["t0"], len(answers))
    s1 = server("wsgi_apps:app", "--workers", "1", "--threads", "2")
    a, inside, answers = _while_a_gil_is_held(s1.port)
    assert answers and not inside, \
        "the control (one interpreter, two threads, one GIL) ran Python while its GIL was held: %r" % inside


def test_concurrent_requests_go_to_different_idle_workers(server):
    """Load-independent half of the overlap test: two concurrent CPU-bound requests on
    --workers 2 run in two different interpreters (not queued behind each other on one)."""
    s = server("wsgi_apps:app", "--workers", "2")
    _concurrent(s.port, "/cpu?secs=0.02", 2)
    rounds = []
    for _ in range(4):
        _concurrent(s.port, "/cpu?secs=0.2", 2)
        rounds.append(len({r.json()["interp"] for r in _concurrent.last}))
    assert rounds.count(2) >= 3, "rounds using 2 interpreters: %s of 4 (%s)" % (rounds.count(2), rounds)


def test_threads_overlap_blocking_requests_on_one_worker(server):
    s = server("wsgi_apps:app", "--workers", "1", "--threads", "4")
    _concurrent(s.port, "/sleep?secs=0.01", 4)
    wall = min(_concurrent(s.port, "/sleep?secs=0.3", 4) for _ in range(2))
    assert wall < 0.65, "4 x sleep(0.3) on 4 threads took %.2fs (serial would be 1.2 s)" % wall


def test_single_thread_serialises_blocking_requests(server):
    s = server("wsgi_apps:app", "--workers", "1", "--threads", "1")
    wall = _concurrent(s.port, "/sleep?secs=0.2", 3)
    assert wall >= 0.55, "3 x sleep(0.2) on one thread took only %.2fs" % wall


def test_max_requests_replaces_worker(server):
    """Each interpreter serves about max_requests requests, then another one (a new import of
    the app: a new /whoami token) takes over, while clients keep sending: none of their
    requests fails during the swaps."""
    s = server("wsgi_apps:app", "--workers", "1", "--max-requests", "5", "--threads", "2")
    seqs, failures = whoami_through_swaps(s.port, least=4)
    tokens = assert_interpreters_replaced(seqs, failures, least=4)
    assert wait_for(lambda: s.stderr().count("max_requests reached, replaced by worker") >= len(tokens) - 1, 5), \
        s.stderr()[-3000:]
    assert "replacement failed" not in s.stderr(), s.stderr()[-3000:]


def test_interpreter_main(server):
    s = server("wsgi_apps:app", "--interpreter", "main", "--workers", "1")
    for i in range(5):
        r = http(s.port, "POST", "/echo?i=%d" % i, None, b"main-%d" % i)
        assert r.status == 200 and r.json()["body"] == "main-%d" % i
    r = http(s.port, "GET", "/validate")
    assert r.status == 200 and r.body == b"validated:"


def test_two_workers_serve(server):
    s = server("wsgi_apps:app", "--workers", "2")
    with requests.Session() as sess:
        for i in range(20):
            assert sess.get("http://127.0.0.1:%d/echo" % s.port, timeout=5).status_code == 200
    wall = _concurrent(s.port, "/echo", 8)
    assert wall < 5


def _io_policies(pid):
    """The scheduling policies of a process's io threads (hb-io*)."""
    out = set()
    for tid in os.listdir("/proc/%d/task" % pid):
        with open("/proc/%d/task/%s/comm" % (pid, tid)) as f:
            if f.read().startswith("hb-io"):
                out.add(os.sched_getscheduler(int(tid)))
    return out


def _policies_under_backlog(s):
    """The io threads' policies seen while one worker thread has requests queued (three 0.25 s
    sleeps at once), and once they are answered."""
    pid = s.worker_pid()
    seen = set()
    t, out = _in_thread(_concurrent, s.port, "/sleep?secs=0.25", 3)
    while t.is_alive():
        seen |= _io_policies(pid)
        time.sleep(0.01)
    assert "error" not in out, out
    return seen, pid


def test_io_threads_sleep_as_sched_batch_only_while_workers_are_backlogged(server):
    """io_sched_batch (the default): an io thread is SCHED_OTHER while a worker is idle (its
    wakeups preempt whatever runs, so an idle worker gets a request at once) and SCHED_BATCH
    while every worker has a request queued behind the one it runs (its wakeups then wait, and
    do not preempt the worker on every packet); back to SCHED_OTHER once they are answered.
    Off, the io threads stay SCHED_OTHER."""
    s = server("wsgi_apps:app", "--workers", "1", "--threads", "1")
    assert _io_policies(s.worker_pid()) == {os.SCHED_OTHER}
    seen, pid = _policies_under_backlog(s)
    assert os.SCHED_BATCH in seen, seen
    assert wait_for(lambda: _io_policies(pid) == {os.SCHED_OTHER}, 5), _io_policies(pid)
    s = server("wsgi_apps:app", "--workers", "1", "--threads", "1", "--no-io-sched-batch")
    seen, pid = _policies_under_backlog(s)
    assert seen == {os.SCHED_OTHER}, seen


GUNICORN_ACCESS = re.compile(
    r'^127\.0\.0\.1 - (-|\S+) \[\d{2}/[A-Z][a-z]{2}/\d{4}:\d{2}:\d{2}:\d{2} [+-]\d{4}\] '
    r'"GET /echo\?access=1 HTTP/1\.1" 200 (\d+|-) "http://referer\.example/" "hb-access-agent/2"$')


def test_access_log_file_gunicorn_format(server, tmp_path):
    path = tmp_path / "access.log"
    s = server("wsgi_apps:app", "--access-log", str(path))
    r = http(s.port, "GET", "/echo?access=1", [("User-Agent", "hb-access-agent/2"), ("Referer", "http://referer.example/")])
    assert r.status == 200
    line = wait_for(lambda: [l for l in read_file(path).splitlines() if "access=1" in l], 3)
    assert line, "no access log line in %s: %r" % (path, read_file(path))
    assert GUNICORN_ACCESS.match(line[0]), "not gunicorn's format: %r" % line[0]
    m = GUNICORN_ACCESS.match(line[0])
    assert m.group(2) in (str(len(r.body)), "-")


def test_access_log_stdout(server):
    s = server("wsgi_apps:app", "--access-log", "-")
    r = http(s.port, "GET", "/echo?access=1", [("User-Agent", "hb-access-agent/2"), ("Referer", "http://referer.example/")])
    assert r.status == 200
    lines = wait_for(lambda: [l for l in s.stdout().splitlines() if "access=1" in l], 3)
    assert lines, "no access log line on stdout: %r" % s.stdout()[-2000:]
    assert GUNICORN_ACCESS.match(lines[0]), lines[0]


def test_access_log_on_by_default(server):
    s = server("wsgi_apps:app")
    http(s.port, "GET", "/echo?access=1", [("User-Agent", "hb-access-agent/2"), ("Referer", "http://referer.example/")])
    lines = wait_for(lambda: [l for l in s.stdout().splitlines() if "access=1" in l], 3)
    assert lines and GUNICORN_ACCESS.match(lines[0]), s.stdout()[-2000:]


def test_ready_means_the_app_is_imported(server, tmp_path):
    """The suite's readiness wait (hbtest.Server.wait_ready) returns only once the server
    answers HTTP, which it can only do after the app's import finished. An open port alone
    (listener accepting into the backlog) is not readiness."""
    marker = tmp_path / "imported"
    s = server("slow_import:app", env={"HB_SLOW_IMPORT": "1.5", "HB_IMPORT_MARKER": str(marker)})
    assert marker.exists(), "wait_ready returned before the app's import finished"
    r = http(s.port, "GET", "/", timeout=1.0)
    assert r.status == 200 and r.body == b"ready"
