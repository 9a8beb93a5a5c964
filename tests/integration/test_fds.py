"""File descriptors: RLIMIT_NOFILE raised to the hard limit at startup (and one warning when
max_connections does not fit); every accepted socket is closed on every path (storms of clients
that reset before they are read), the open-descriptor count returns to its baseline, and SIGTERM
afterwards exits promptly."""
import os
import re
import resource
import signal
import socket
import struct
import subprocess
import time

import pytest

from hbtest import HTTPReader, connect, http, read_file, request_bytes, wait_for

LINGER_RST = struct.pack("ii", 1, 0)  # SO_LINGER on, 0 s: close() sends RST

# kind: (app, args, a path that answers 200, a path that reads the request body)
APPS = {
    "wsgi": ("wsgi_apps:app", (), "/", "/hash"),
    "asgi": ("asgi_apps:app", ("--worker-class", "asgi"), "/hello", "/echo"),
}


def get(path):
    return b"GET %s HTTP/1.1\r\nHost: x\r\n\r\n" % path.encode()


def open_fds(pid):
    return len(os.listdir("/proc/%d/fd" % pid))


def socket_fds(pid):
    out = []
    for fd in os.listdir("/proc/%d/fd" % pid):
        try:
            if os.readlink("/proc/%d/fd/%s" % (pid, fd)).startswith("socket:"):
                out.append(fd)
        except OSError:
            pass
    return out


def warm_baseline(s, path):
    """Serves a few requests so lazily opened descriptors exist, then returns the count."""
    for _ in range(3):
        assert http(s.port, "GET", path).status == 200
    time.sleep(0.3)
    return open_fds(s.worker_pid())


def storm(s, n, payload, rst=True):
    """While the server is stopped, n clients connect, send payload and close (RST or FIN); the
    server then finds them all in its accept queue, already dead."""
    worker = s.worker_pid()  # the process that accepts (the master only supervises)
    os.kill(worker, signal.SIGSTOP)
    socks = []
    try:
        for _ in range(n):
            c = socket.create_connection(("127.0.0.1", s.port), timeout=5)
            if payload:
                c.sendall(payload)
            socks.append(c)
        for c in socks:
            if rst:
                c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, LINGER_RST)
            c.close()
    finally:
        os.kill(worker, signal.SIGCONT)


def assert_back_to(s, base, what):
    worker = s.worker_pid()
    ok = wait_for(lambda: open_fds(worker) <= base, 10)
    assert ok, "%s: %d descriptors open, baseline %d (%d sockets)\n%s" % (
        what, open_fds(worker), base, len(socket_fds(worker)), s.describe())


def assert_prompt_exit(s, limit=5.0):
    t = time.monotonic()
    s.signal(signal.SIGTERM)
    rc = s.wait_exit(limit + 5)
    took = time.monotonic() - t
    assert rc == 0, "exit status %r after SIGTERM\n%s" % (rc, s.describe())
    assert took < limit, "SIGTERM took %.1fs (graceful_timeout 30): a connection stalled it\n%s" % (
        took, s.describe())


@pytest.mark.parametrize("kind", sorted(APPS))
def test_reset_storm_leaves_no_descriptor(server, kind):
    """200 clients send a GET and reset while the server is stopped: the responses queued for
    them fail to send; each connection must still be closed and freed."""
    app, args, ok, _ = APPS[kind]
    s = server(app, *args, "--graceful-timeout", "30")
    base = warm_baseline(s, ok)
    for round_ in range(3):
        storm(s, 200, get(ok))
        assert_back_to(s, base, "%s, round %d of GET+RST" % (kind, round_))
        assert http(s.port, "GET", ok).status == 200
    assert_prompt_exit(s)


@pytest.mark.parametrize("kind", sorted(APPS))
def test_mixed_storms_leave_no_descriptor(server, kind):
    """Resets with nothing sent, half a request, a POST body; and plain FIN closes."""
    app, args, ok, body = APPS[kind]
    s = server(app, *args, "--graceful-timeout", "30")
    base = warm_baseline(s, ok)
    cases = [
        (b"", True),
        (b"GET / HTTP/1.1\r\nHo", True),
        (b"POST %s HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n" % body.encode()
         + b"x" * 5000, True),
        (b"POST %s HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc" % body.encode(), True),
        (get(ok), False),
        (get(ok) * 3, True),
    ]
    for payload, rst in cases:
        storm(s, 100, payload, rst)
        assert_back_to(s, base, "%s, payload %r rst=%s" % (kind, payload[:30], rst))
    assert http(s.port, "GET", ok).status == 200
    assert_prompt_exit(s)


def nofile(soft, hard):
    """A preexec_fn giving the server these RLIMIT_NOFILE limits."""
    return lambda: resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def limits_of(pid):
    with open("/proc/%d/limits" % pid) as f:
        for line in f:
            if line.startswith("Max open files"):
                soft, hard = line.split()[3:5]
                return int(soft), int(hard)
    raise AssertionError("no 'Max open files' in /proc/%d/limits" % pid)


FD_WARNING = re.compile(r"\[WARNING\] max_connections = (\d+) needs about (\d+) descriptors .* "
                        r"RLIMIT_NOFILE is (\d+) \(hard limit (\d+)\)")


def test_soft_nofile_limit_is_raised_to_the_hard_limit(server):
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    if hard == resource.RLIM_INFINITY or hard < 2048:
        hard = 2048
    s = server("simple:app", "--max-connections", "500", preexec_fn=nofile(256, hard))
    assert limits_of(s.pid) == (hard, hard)
    assert limits_of(s.worker_pid()) == (hard, hard)
    assert not FD_WARNING.search(s.stderr()), s.describe()
    assert http(s.port, "GET", "/").status == 200


def test_max_connections_past_the_hard_limit_is_warned_once_with_numbers(server):
    s = server("simple:app", "--workers", "2", preexec_fn=nofile(256, 1024))
    assert limits_of(s.worker_pid()) == (1024, 1024)
    found = FD_WARNING.findall(s.stderr())
    assert len(found) == 1, "expected one descriptor warning:\n%s" % s.describe()
    maxc, need, soft, hard = map(int, found[0])
    assert (maxc, soft, hard) == (10000, 1024, 1024), found
    assert need > 10000, found
    assert http(s.port, "GET", "/").status == 200
    # fits: no warning
    t = server("simple:app", "--max-connections", "500", preexec_fn=nofile(1024, 1024))
    assert not FD_WARNING.search(t.stderr()), t.describe()


# -- out of descriptors: accept backs off, reclaims idle keep-alive connections ---------------

def cpu_seconds(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def accept_lines(s):
    return [l for l in s.stderr().splitlines() if "accept:" in l]


def closed_by_server(c, timeout=5.0):
    c.settimeout(timeout)
    try:
        return c.recv(1) == b""
    except ConnectionResetError:
        return True
    except socket.timeout:
        return False


def test_out_of_descriptors_backs_off_and_reclaims_idle_connections(server):
    limit = 96
    s = server("simple:app", "--workers", "2", "--keepalive", "60", "--header-timeout", "60",
               preexec_fn=nofile(limit, limit))
    base = warm_baseline(s, "/")
    room = limit - base
    assert room > 40, "baseline %d leaves too little room under %d" % (base, limit)
    idle = []
    for _ in range(16):
        c = connect(s.port)
        c.sendall(get("/"))
        assert HTTPReader(c, 5).read_response("GET").status == 200
        idle.append(c)
    # Fill every descriptor left, and 40 more that must wait in the listen backlog.
    waiting = [connect(s.port) for _ in range(room - 16 + 40)]
    t0 = time.monotonic()
    assert wait_for(lambda: accept_lines(s), 5), "no accept failure was logged\n%s" % s.describe()
    # The idle keep-alive connections are closed to make room for new ones.
    deadline = time.monotonic() + 5
    gone = sum(closed_by_server(c, max(0.05, deadline - time.monotonic())) for c in idle)
    assert gone == len(idle), "%d of %d idle keep-alive connections closed\n%s" % (
        gone, len(idle), s.describe())
    # Still out of descriptors: the server must not spin.
    time.sleep(0.3)
    worker = s.worker_pid()
    cpu0, w0 = cpu_seconds(worker), time.monotonic()
    time.sleep(1.5)
    cpu = (cpu_seconds(worker) - cpu0) / (time.monotonic() - w0)
    assert cpu < 0.2, "server used %.0f%% CPU while out of descriptors" % (cpu * 100)
    lines = accept_lines(s)
    took = time.monotonic() - t0
    # at most one line a second per io thread (2), plus the first ones
    assert len(lines) <= 2 * (took + 2), "%d accept lines in %.1fs:\n%s" % (
        len(lines), took, "\n".join(lines[:20]))
    assert any("Too many open files" in l and re.search(r"\(\d+ times", l) for l in lines), lines
    assert any(re.search(r"[1-9]\d* idle keep-alive connections closed", l) for l in lines), lines
    # Clients leave: the server accepts and serves again, and gives back every descriptor.
    for c in idle + waiting:
        c.close()
    assert wait_for(lambda: _served(s.port), 10), "not served after the clients left\n" + s.describe()
    assert_back_to(s, base, "after the descriptor storm")


def _served(port):
    try:
        return http(port, "GET", "/", timeout=2).status == 200
    except OSError:
        return False


# -- max_connections: connections past it wait in the listen backlog --------------------------

def test_connections_past_max_connections_wait_in_the_backlog(server):
    s = server("simple:app", "--workers", "2", "--max-connections", "3", "--keepalive", "30")
    held = []
    for _ in range(3):
        c = connect(s.port)
        c.sendall(get("/"))
        assert HTTPReader(c, 5).read_response("GET").status == 200
        held.append(c)
    late = connect(s.port)  # the kernel completes the handshake: it waits in the backlog
    late.sendall(get("/"))
    late.settimeout(1.5)
    with pytest.raises(socket.timeout):
        data = late.recv(1)
        raise AssertionError("a connection past max_connections=3 got %r at once" % data)
    held.pop(0).close()
    late.settimeout(5)
    r = HTTPReader(late, 5).read_response("GET")
    assert r.status == 200, r
    late.close()
    for c in held:
        c.close()
    assert wait_for(lambda: _served(s.port), 5)


def listen_queues(port):
    """Send-Q of the listening sockets on port (ss shows the backlog there)."""
    out = subprocess.run(["ss", "-ltnH", "sport = :%d" % port], capture_output=True, text=True,
                         check=True).stdout
    return sorted(int(line.split()[2]) for line in out.splitlines() if line.strip())


def test_backlog_is_a_key(server):
    s = server("simple:app", "--workers", "2", "--backlog", "7")
    assert listen_queues(s.port) == [7, 7]
    t = server("simple:app", env={"HORNBEAM_BACKLOG": "33"})
    assert listen_queues(t.port) == [33]
    u = server("simple:app")
    assert listen_queues(u.port) == [4096]
    assert http(s.port, "GET", "/").status == 200


# -- readiness: no listener before the app is imported and started -----------------------------

def _refused_until_ready(server, tmp_path, app, args, marker, env=None):
    log = tmp_path / "start.log"
    env = dict(env or {}, HB_START_LOG=str(log), HB_IMPORT_SLEEP="3")
    s = server(app, *args, env=env, wait=False)
    assert wait_for(lambda: marker in read_file(log), 10), "the app never started\n" + s.describe()
    t0 = time.monotonic()
    refused = 0
    while time.monotonic() - t0 < 2.0:
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", s.port), timeout=1).close()
        refused += 1
        time.sleep(0.2)
    s.wait_ready(15)
    assert http(s.port, "GET", "/").body == b"ready"
    assert time.monotonic() - t0 >= 2.5, "served before the app was ready"
    return s


def test_no_connection_is_accepted_while_the_app_imports(server, tmp_path):
    _refused_until_ready(server, tmp_path, "slow_start:app", (), "import")


def test_no_connection_is_accepted_during_lifespan_startup(server, tmp_path):
    _refused_until_ready(server, tmp_path, "slow_start:lifespan_app", ("--worker-class", "asgi"),
                         "startup", env={"HB_SLOW_LIFESPAN_ONLY": "1"})


def test_a_response_read_before_the_app_ended_is_logged(server):
    """The client reads the whole Content-Length body and closes before the app's iterable
    ends: the connection dies with the stream still open; the exchange is logged anyway."""
    s = server("slow_start:late_end_app", "--access-log", "-", env={"HB_IMPORT_SLEEP": "0"})
    base = warm_baseline(s, "/")
    with connect(s.port) as c:
        c.sendall(request_bytes("GET", "/late-end", [("Connection", "close")]))
        r = HTTPReader(c, 5).read_response("GET")
        assert r.body == b"ready"
    lines = wait_for(lambda: [l for l in s.stdout().splitlines() if "/late-end" in l], 3)
    assert lines and '" 200 5 ' in lines[0], "no access log line: %r" % s.stdout()[-2000:]
    assert_back_to(s, base, "after the late end")
