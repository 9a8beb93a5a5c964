"""The master process and its worker processes (docs/production.md): a worker process that dies
(kill -9, a segfault in the app, os._exit) is logged and replaced while the others keep serving;
a crash loop at boot backs off; SIGTERM refuses new connections at once while requests in flight
finish; SIGTTIN/SIGTTOU; SIGUSR1 reopens the access log; --pid, --chdir, --user."""
import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time

import pytest

from hbtest import APPS, BINARY, HTTPReader, free_port, http, read_file, request_bytes, run_binary, wait_for

APP = "supervisor_apps:app"


class Load:
    """`clients` threads sending GET / (a new connection each) until stopped."""

    def __init__(self, port, clients=4, path="/"):
        self.port, self.path = port, path
        self.ok = 0
        self.failed = []
        self.lock = threading.Lock()
        self.running = True
        self.threads = [threading.Thread(target=self._run, daemon=True) for _ in range(clients)]
        for t in self.threads:
            t.start()

    def _run(self):
        while self.running:
            try:
                r = http(self.port, "GET", self.path, timeout=10)
                good = r.status == 200
                why = "status %d" % r.status
            except Exception as e:  # noqa: BLE001 - every failure counts
                good, why = False, "%s: %s" % (type(e).__name__, e)
            with self.lock:
                if good:
                    self.ok += 1
                else:
                    self.failed.append(why)

    def count(self):
        with self.lock:
            return self.ok

    def stop(self):
        self.running = False
        for t in self.threads:
            t.join(15)
        return self.ok, list(self.failed)


def master_fds(s):
    return len(os.listdir("/proc/%d/fd" % s.pid))


def master_mem(s):
    """The master's mappings (one more per leaked in-flight table) and resident KiB."""
    with open("/proc/%d/maps" % s.pid) as f:
        maps = len(f.readlines())
    with open("/proc/%d/status" % s.pid) as f:
        return maps, int(re.search(r"VmRSS:\s+(\d+)", f.read()).group(1))


def wait_replaced(s, old, n):
    """Waits until `n` worker processes run and none of `old` is among them."""
    ok = wait_for(lambda: len(s.worker_pids()) == n and not set(old) & set(s.worker_pids()), 20)
    assert ok, "worker processes %r not replaced (now %r)\n%s" % (old, s.worker_pids(), s.describe())


def wait_serving(s, pids, timeout=20):
    """Waits until every pid in `pids` has answered /pid (each process is serving)."""
    seen = set()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not set(pids) <= seen:
        try:
            seen.add(int(http(s.port, "GET", "/pid", timeout=5).body))
        except (OSError, ValueError):
            time.sleep(0.05)
    assert set(pids) <= seen, "processes %r never answered (saw %r)\n%s" % (pids, seen, s.describe())


def test_kill_9_worker_under_load_is_replaced_without_leaks(server):
    """20 times: SIGKILL one of 2 worker processes under load. Only the requests it held fail
    (at most one per client), it is replaced, the master's descriptors, mappings and memory do
    not grow."""
    s = server(APP, "--processes", "2")
    assert wait_for(lambda: len(s.worker_pids()) == 2, 10)
    wait_serving(s, s.worker_pids())
    base, (base_maps, base_rss) = master_fds(s), master_mem(s)
    load = Load(s.port, clients=4)
    try:
        for cycle in range(20):
            # Both processes, the replacement included, before choosing the next victim.
            assert wait_for(lambda: len(s.worker_pids()) == 2, 20), s.describe()
            pids = s.worker_pids()
            victim = pids[cycle % 2]
            served = load.count()
            assert wait_for(lambda: load.count() > served + 5, 15), s.describe()
            os.kill(victim, signal.SIGKILL)
            wait_replaced(s, [victim], 2)
    finally:
        ok, failed = load.stop()
    assert ok > 100, (ok, failed)
    assert len(failed) <= 20 * 4, "%d failures over 20 kills: %r" % (len(failed), failed[:10])
    assert http(s.port, "GET", "/").status == 200
    assert wait_for(lambda: master_fds(s) <= base, 5), "master descriptors %d, were %d" % (master_fds(s), base)
    maps, rss = master_mem(s)
    assert maps <= base_maps + 2 and rss - base_rss < 8192, "master mappings %d, were %d; RSS %d KiB, was %d" % (
        maps, base_maps, rss, base_rss)
    err = s.stderr()
    assert len(re.findall(r"\[ERROR\] worker process \d \(pid \d+\) was killed by signal 9", err)) == 20, err[-3000:]


@pytest.mark.parametrize("path,how", [("/segv", r"was killed by signal 11 \(Segmentation fault\)"),
                                      ("/exit", r"exited with status 3")])
def test_app_that_kills_its_process_leaves_the_other_serving(server, path, how):
    s = server(APP, "--processes", "2", env={"HB_HANG_SECS": "30"})
    wait_for(lambda: len(s.worker_pids()) == 2, 10)
    before = s.worker_pids()
    wait_serving(s, before)
    load = Load(s.port, clients=2)
    try:
        with pytest.raises(Exception):  # noqa: B017 - the connection dies with the process
            r = http(s.port, "GET", path, timeout=10)
            raise AssertionError("%s answered %r" % (path, r))
        assert wait_for(lambda: re.search(how, s.stderr()), 10), s.describe()
        # The master names the request the dead process was running (its in-flight table).
        assert re.search(r"\[ERROR\] worker process \d \(pid \d+\) %s while running GET %s "
                         r"\(running \d+\.\d s\)" % (how, path), s.stderr()), s.stderr()[-3000:]
        wait_for(lambda: len(s.worker_pids()) == 2 and s.worker_pids() != before, 20)
        served = load.count()
        assert wait_for(lambda: load.count() >= served + 5, 15), s.describe()
    finally:
        ok, failed = load.stop()
    assert len(failed) <= 2, (ok, failed)  # only what the dead process held
    after = s.worker_pids()
    assert len(after) == 2 and len(set(after) & set(before)) == 1, (before, after)
    wait_serving(s, after)
    s.assert_alive()


def test_an_asgi_app_that_kills_its_process_is_named_in_the_log(server):
    """The ASGI twin of the test above, both deaths on one server: an async handler that
    segfaults, then one that calls os._exit; the master names the request each process was
    running (ASGI requests are in the in-flight table too) and the other process serves on."""
    s = server("supervisor_apps:asgi_app", "--worker-class", "asgi", "--lifespan", "off", "--processes", "2")
    wait_for(lambda: len(s.worker_pids()) == 2, 10)
    wait_serving(s, s.worker_pids())
    load = Load(s.port, clients=2)
    try:
        for n, (path, how) in enumerate([("/segv", r"was killed by signal 11 \(Segmentation fault\)"),
                                         ("/exit", r"exited with status 3")]):
            before = s.worker_pids()
            with pytest.raises(Exception):  # noqa: B017 - the connection dies with the process
                r = http(s.port, "GET", path + "?asgi=%d" % n, timeout=10)
                raise AssertionError("%s answered %r" % (path, r))
            assert wait_for(lambda: re.search(r"\[ERROR\] worker process \d \(pid \d+\) %s while running "
                                              r"GET %s\?asgi=%d \(running \d+\.\d s\)" % (how, path, n),
                                              s.stderr()), 10), s.stderr()[-3000:]
            wait_for(lambda: len(s.worker_pids()) == 2 and s.worker_pids() != before, 20)
            served = load.count()
            assert wait_for(lambda: load.count() >= served + 5, 15), s.describe()
    finally:
        ok, failed = load.stop()
    assert len(failed) <= 4, (ok, failed)  # only what the dead processes held
    wait_serving(s, s.worker_pids())
    s.assert_alive()


def test_hung_request_does_not_stop_the_others(server):
    s = server(APP, "--processes", "2", "--threads", "2", "--timeout", "1", "--graceful-timeout", "1",
               env={"HB_HANG_SECS": "30"})
    wait_for(lambda: len(s.worker_pids()) == 2, 10)
    r = http(s.port, "GET", "/hang", timeout=10)
    assert r.status == 504, r
    load = Load(s.port, clients=3)
    time.sleep(1.5)
    ok, failed = load.stop()
    # Requests the hub queued behind the stuck thread time out (504); everything else is served.
    assert ok > 10 and set(failed) <= {"status 504"} and len(failed) * 20 < ok, (ok, failed[:5])


def test_a_request_stuck_past_worker_kill_timeout_is_named_in_the_log(server):
    """The master names the stuck request when the process asks to be replaced, and again when
    the old process's forced stop cuts it; a kill -9 names what was running too."""
    s = server(APP, "--timeout", "1", "--worker-kill-timeout", "1", "--graceful-timeout", "1",
               "--threads", "2", env={"HB_HANG_SECS": "30"})
    old = s.worker_pid()
    assert http(s.port, "GET", "/hang?for=test", timeout=10).status == 504
    assert wait_for(lambda: re.search(r"\(pid %d\) has a request stuck past worker_kill_timeout "
                                      r"\(GET /hang\?for=test \(running [1-9]\d*\.\d s\)\)" % old,
                                      s.stderr()), 15), s.stderr()[-3000:]
    assert wait_for(lambda: re.search(r"\(pid %d, generation 1\) exited, cutting GET /hang\?for=test "
                                      r"\(running \d+\.\d s\)" % old, s.stderr()), 20), s.stderr()[-3000:]
    new = s.worker_pid()
    assert new != old
    # kill -9 while two requests run: both named (oldest first); an idle death names none.
    threads = [threading.Thread(target=lambda p=p: _try(s.port, p), daemon=True)
               for p in ("/sleep?secs=20", "/hang")]
    for t in threads:
        t.start()
        time.sleep(0.3)
    time.sleep(0.5)
    os.kill(new, signal.SIGKILL)
    assert wait_for(lambda: re.search(r"\(pid %d\) was killed by signal 9 \(Killed\) while running "
                                      r"GET /sleep\?secs=20 \(running \d+\.\d s\), GET /hang "
                                      r"\(running" % new, s.stderr()), 10), s.stderr()[-3000:]
    wait_replaced(s, [new], 1)
    third = s.worker_pid()
    wait_serving(s, [third])
    # The response leaves (from the io thread) a moment before its Python thread marks the
    # request done in the in-flight table: a kill at once could still see /pid running.
    time.sleep(0.2)
    os.kill(third, signal.SIGKILL)
    assert wait_for(lambda: "(pid %d) was killed by signal 9 (Killed) (no request was running)" % third
                    in s.stderr(), 10), s.stderr()[-3000:]


def test_an_asgi_handler_blocking_its_loop_past_worker_kill_timeout_is_replaced(server):
    """A handler that blocks the event loop (time.sleep in async code) cannot be cancelled at
    `timeout`: the watchdog sees the loop away from its selector, and past worker_kill_timeout
    the process is replaced, the request named, as for a stuck WSGI request."""
    s = server("supervisor_apps:asgi_app", "--worker-class", "asgi", "--lifespan", "off", "--timeout", "1",
               "--worker-kill-timeout", "1", "--graceful-timeout", "1", env={"HB_HANG_SECS": "30"})
    old = s.worker_pid()
    assert http(s.port, "GET", "/hang?for=asgi", timeout=10).status == 504
    assert wait_for(lambda: re.search(r"\(pid %d\) has a request stuck past worker_kill_timeout "
                                      r"\(GET /hang\?for=asgi \(running [1-9]\d*\.\d s\)\)" % old,
                                      s.stderr()), 15), s.stderr()[-3000:]
    assert "its event loop has not returned to its selector" in s.stderr()
    wait_replaced(s, [old], 1)
    assert http(s.port, "GET", "/pid", timeout=10).body == str(s.worker_pid()).encode()


def _try(port, path):
    try:
        http(port, "GET", path, timeout=30)
    except Exception:  # noqa: BLE001 - the process is killed under it
        pass


def test_max_worker_rss_replaces_a_process_gracefully(server):
    s = server(APP, "--max-worker-rss", str(400 << 20))
    old = s.worker_pid()
    load = Load(s.port, clients=2)
    try:
        assert http(s.port, "GET", "/grow?mb=450", timeout=30).status == 200
        assert wait_for(lambda: "past max_worker_rss" in s.stderr(), 10), s.describe()
        assert wait_for(lambda: s.worker_pids() != [old] and len(s.worker_pids()) == 1, 20), s.describe()
        assert "replaced pid %d (max_worker_rss)" % old in s.stderr()
        served = load.count()
        assert wait_for(lambda: load.count() > served + 5, 10)
    finally:
        ok, failed = load.stop()
    assert not failed, failed[:5]


def test_crash_loop_at_boot_backs_off_and_recovers(server, tmp_path):
    marker = tmp_path / "fail-import"
    s = server(APP, "--respawn-backoff-max", "1", env={"HB_FAIL_IMPORT": str(marker)})
    pid = s.worker_pid()
    marker.write_text("x")
    os.kill(pid, signal.SIGKILL)
    # The replacement fails to import, again and again: 0.1 s, 0.2 s, 0.4 s, 0.8 s, then 1 s.
    pat = re.compile(r"before it was ready \((\d+) times? in a row\); restarting it in ([\d.]+)s")
    assert wait_for(lambda: len(pat.findall(s.stderr())) >= 6, 30), s.describe()
    delays = [float(d) for _, d in pat.findall(s.stderr())]
    assert delays[:6] == [0.1, 0.2, 0.4, 0.8, 1.0, 1.0], delays
    s.assert_alive()
    marker.unlink()
    assert wait_for(lambda: _ok(s.port), 15), s.describe()


def _ok(port):
    try:
        return http(port, "GET", "/", timeout=2).status == 200
    except OSError:
        return False


def test_first_boot_failure_exits_with_its_status(server, tmp_path):
    marker = tmp_path / "fail-import"
    marker.write_text("x")
    s = server(APP, "--processes", "2", env={"HB_FAIL_IMPORT": str(marker)}, wait=False)
    assert s.wait_exit(20) == 1, s.describe()
    assert "refusing to import" in s.stderr()
    s.stopped = True  # nothing left to stop at teardown
    s.returncode = 0


def test_sigterm_refuses_new_connections_while_in_flight_finish(server):
    s = server(APP, "--processes", "2", "--graceful-timeout", "10")
    wait_for(lambda: len(s.worker_pids()) == 2, 10)
    out = {}
    t = threading.Thread(target=lambda: out.setdefault("r", http(s.port, "GET", "/sleep?secs=1.5", timeout=10)))
    t.start()
    time.sleep(0.5)
    t0 = time.monotonic()
    s.signal(signal.SIGTERM)
    # refused at once: poll until a connect fails, which must come quickly
    def refused():
        try:
            socket.create_connection(("127.0.0.1", s.port), timeout=1).close()
            return False
        except (ConnectionRefusedError, ConnectionResetError):  # reset: queued as it closed
            return True
    assert wait_for(refused, 2, 0.01), "connections still accepted after SIGTERM\n" + s.describe()
    assert time.monotonic() - t0 < 1.0
    assert t.is_alive(), "the in-flight request ended at SIGTERM"
    t.join(10)
    assert out["r"].status == 200, out
    assert s.wait_exit(10) == 0, s.describe()


def test_ttin_ttou_add_and_remove_a_process(server, tmp_path):
    """On a unix socket, which every process shares, one fewer process closes nothing that holds
    queued connections (a TCP bind's own sockets per process: refused unless the kernel migrates
    their queue, test_reload.py: test_hup_changes_workers_and_binds)."""
    path = tmp_path / "hb.sock"
    s = server(APP, "--uds", str(path), bind=False, wait=False)

    def serving(pids):
        ok, seen = _unix_pids_until(path, lambda seen: set(pids) <= seen, 5)
        assert ok, "processes %r never answered (saw %r)\n%s" % (pids, seen, s.describe())
    assert wait_for(lambda: len(s.worker_pids()) == 1, 20), s.describe()
    one = s.worker_pids()
    serving(one)
    s.signal(signal.SIGTTIN)
    assert wait_for(lambda: len(s.worker_pids()) == 2, 15), s.describe()
    new = (set(s.worker_pids()) - set(one)).pop()
    # The kernel hands a unix socket's connections to the oldest waiter: the new process is
    # seen serving with the first one stopped (test_a_unix_socket_spreads_over_the_processes...).
    os.kill(one[0], signal.SIGSTOP)
    try:
        assert wait_for(lambda: _stopped(one[0]), 10), "process %d did not stop" % one[0]
        serving([new])
    finally:
        os.kill(one[0], signal.SIGCONT)
    s.signal(signal.SIGTTOU)
    assert wait_for(lambda: len(s.worker_pids()) == 1, 15), s.describe()
    assert s.worker_pids() == one, "TTOU retired the original process instead of the newest"
    s.signal(signal.SIGTTOU)  # never below one
    time.sleep(0.3)
    assert s.worker_pids() == one
    assert "keeping 1 worker processes" in s.stderr()
    s.assert_alive()
    serving(one)


def test_other_signals_do_not_stop_the_server(server):
    s = server(APP)
    deadly = (signal.SIGALRM, signal.SIGVTALRM, signal.SIGPROF, signal.SIGIO, signal.SIGPWR)
    for sig in (signal.SIGWINCH, signal.SIGTTIN, signal.SIGTTOU) + deadly:  # USR2: test_reload.py
        s.signal(sig)
    for pid in s.worker_pids():  # sent to a worker process too
        for sig in (signal.SIGUSR2, signal.SIGWINCH, signal.SIGTTIN, signal.SIGTTOU, signal.SIGCHLD) + deadly:
            os.kill(pid, sig)
    time.sleep(0.5)
    s.assert_alive()
    assert _ok(s.port)
    assert "worker process" not in "".join(s.error_lines()), s.describe()  # none died


def test_usr1_reopens_the_access_log(server, tmp_path):
    log = tmp_path / "access.log"
    s = server(APP, "--access-log", str(log))
    assert http(s.port, "GET", "/before").status == 200
    assert wait_for(lambda: "/before" in read_file(log), 5)
    rotated = tmp_path / "access.log.1"
    shutil.move(log, rotated)
    s.signal(signal.SIGUSR1)
    assert wait_for(lambda: log.exists(), 5), s.describe()
    assert http(s.port, "GET", "/after").status == 200
    assert wait_for(lambda: "/after" in read_file(log), 5), s.describe()
    assert "/after" not in read_file(rotated) and "/before" not in read_file(log)


def test_pidfile_and_chdir(server, tmp_path):
    pidfile = tmp_path / "run" / "hb.pid"
    pidfile.parent.mkdir()
    appdir = tmp_path / "app"
    appdir.mkdir()
    shutil.copy(APPS / "supervisor_apps.py", appdir / "supervisor_apps.py")
    # relative pythonpath: taken from --chdir's directory
    s = server(APP, "--pid", str(pidfile), "--chdir", str(appdir), "--pythonpath", ".", test_pythonpath=False)
    assert pidfile.read_text().strip() == str(s.pid)
    assert os.readlink("/proc/%d/cwd" % s.worker_pid()) == str(appdir)
    assert http(s.port, "GET", "/").status == 200
    assert s.stop() == 0
    assert not pidfile.exists()


def _readable_as(uid, gid, path):
    """Whether `path` (and the directories above it) can be read by uid/gid."""
    def drop():
        os.setgroups([])
        os.setgid(gid)
        os.setuid(uid)
    probe = "import os, sys; sys.exit(0 if os.access(sys.argv[1], os.R_OK) else 1)"
    return subprocess.run([sys.executable, "-c", probe, path], preexec_fn=drop).returncode == 0


def _python_runtime():
    """The prefix of the Python the binary embeds (from --version)."""
    out = run_binary(["--version"], timeout=10).stdout.decode()
    m = re.search(r"^Python \S+ \(prefix (\S+)\)$", out, re.M)
    return m.group(1) if m else None


def test_user_and_group_after_binding(server, tmp_path):
    if os.geteuid() != 0:
        # Not root: switching to another user must fail, with a message, before serving.
        res = run_binary([APP, "--user", "nobody", "--bind", "127.0.0.1:%d" % free_port()])
        assert res.returncode == 2 and b"cannot switch" in res.stderr, res.stderr
        return
    nobody = pwd.getpwnam("nobody")
    tmp_path.chmod(0o755)
    tmp_path.parent.chmod(0o755)
    appdir = tmp_path / "app"
    appdir.mkdir()
    shutil.copy(APPS / "supervisor_apps.py", appdir / "supervisor_apps.py")
    for p in (appdir, appdir / "supervisor_apps.py"):
        p.chmod(0o755)
    args = (APP, "--user", "nobody", "--group", str(nobody.pw_gid), "--pythonpath", str(appdir))
    runtime = _python_runtime()
    if runtime and not _readable_as(nobody.pw_uid, nobody.pw_gid, runtime):
        # This build's Python (a pyenv under /root, say) is closed to nobody: the worker process,
        # already switched, cannot start it (as root it could). The install tree has its own.
        s = server(*args, test_pythonpath=False, wait=False)
        assert s.wait_exit(20) == 1, s.describe()
        assert "cannot initialize Python" in s.stderr(), s.describe()
        s.stopped, s.returncode = True, 0
        return
    s = server(*args, test_pythonpath=False)
    for pid in [s.pid] + s.worker_pids():
        with open("/proc/%d/status" % pid) as f:
            ids = {l.split(":")[0]: l.split()[1:] for l in f if l.startswith(("Uid", "Gid"))}
        assert ids["Uid"][0] == str(nobody.pw_uid) and ids["Gid"][0] == str(nobody.pw_gid), ids
    assert http(s.port, "GET", "/").status == 200


def _stopped(pid):
    """Every thread of pid is stopped (state T in /proc/PID/task/*/stat)."""
    tids = os.listdir("/proc/%d/task" % pid)
    for tid in tids:
        with open("/proc/%d/task/%s/stat" % (pid, tid)) as f:
            if f.read().rsplit(")", 1)[1].split()[0] not in ("T", "t"):
                return False
    return bool(tids)


def _unix_pid(path, timeout):
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as c:
        c.settimeout(timeout)
        c.connect(str(path))
        c.sendall(request_bytes("GET", "/pid", [("Connection", "close")]))
        r = HTTPReader(c, timeout=timeout).read_response()
        assert r.status == 200, r
        return int(r.body)


def _unix_pids_until(path, done, probe_timeout, timeout=20):
    """Asks /pid over the unix socket until done(the pids that answered) holds or timeout;
    returns (whether it held, those pids). A probe that fails is tried again."""
    seen = set()

    def step():
        try:
            seen.add(_unix_pid(path, probe_timeout))
        except OSError:
            pass
        return done(seen)
    return wait_for(step, timeout), seen


def test_a_unix_socket_spreads_over_the_processes_and_a_stopped_one_holds_nothing(server, tmp_path):
    """Every process accepts on a unix socket, and io_uring waits for its connections as an
    EPOLLEXCLUSIVE waiter: the kernel wakes the oldest waiter only. So accepts there are single-
    shot (a multishot accept kept every connection in one process), and a stopped process,
    whose waiter takes wakeups it cannot act on (as does one being cancelled or torn down across
    a reload or a binary upgrade: CI saw clients wait 10 s across USR2), holds no connection:
    the other process serves it within a tick or two (io.c: accept_watch)."""
    path = tmp_path / "hb.sock"
    s = server(APP, "--uds", str(path), "--processes", "2", bind=False, wait=False)
    ok, seen = _unix_pids_until(path, lambda seen: len(seen) == 2, 2)
    assert ok, "one process took every connection (saw %r)\n%s" % (seen, s.describe())
    for victim in sorted(seen):
        os.kill(victim, signal.SIGSTOP)
        # Stopped means every thread stopped: until then its io thread may still accept (the
        # kill returns first), and a connection it took as it stopped would wait for it.
        assert wait_for(lambda: _stopped(victim), 10), "process %d did not stop" % victim
        try:
            for _ in range(3):
                t0 = time.monotonic()
                try:
                    pid = _unix_pid(path, 6)
                except OSError as e:
                    raise AssertionError("a connection waited for the stopped process %d: %r\n%s"
                                         % (victim, e, s.describe()))
                assert pid != victim and time.monotonic() - t0 < 6
        finally:
            os.kill(victim, signal.SIGCONT)
    assert s.stop() == 0, s.describe()
