"""Helpers for the hornbeam-uring black-box suite: start the real binary, talk HTTP to it over loopback.

Environment:
  HB_BINARY        path of the binary (default <repo>/build/hornbeam-uring); relative paths are
                   taken from the repository root. For an ASan build: HB_BINARY=build-asan/hornbeam-uring
  HB_TEST_TIMEOUT  per-test time guard in seconds (default 60)
  HB_KEEP_LOGS     when set, print each server's stderr at teardown
"""
import json
import os
import re
import select
import signal as _signal
import socket
import subprocess
import time
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
APPS = HERE / "apps"
DIST_PACKAGES = "/usr/lib/python3/dist-packages"
EXAMPLES = REPO / "examples"


def _binary():
    b = os.environ.get("HB_BINARY") or str(REPO / "build" / "hornbeam-uring")
    p = Path(b)
    if not p.is_absolute():
        p = REPO / p
    return p


BINARY = _binary()
SANITIZER_MARKERS = ("ERROR: AddressSanitizer", "runtime error:", "ERROR: LeakSanitizer",
                     "WARNING: ThreadSanitizer", "ERROR: UndefinedBehaviorSanitizer")
# The error log's level tag: "[ts] [pid] [ERROR] ..."
ERROR_LINE = re.compile(r"\[(ERROR|CRITICAL)\]")


# -- ports and processes ------------------------------------------------------------------

def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def server_env(extra=None):
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("HORNBEAM_")
           and k not in ("PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP", "VIRTUAL_ENV")}
    env.setdefault("ASAN_OPTIONS", "detect_leaks=1:abort_on_error=1")
    env.setdefault("LSAN_OPTIONS", "suppressions=%s:print_suppressions=0" % (REPO / "tests" / "lsan-server.supp"))
    env.setdefault("UBSAN_OPTIONS", "print_stacktrace=1")
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    if extra:
        env.update(extra)
    return env


def require_binary():
    if not BINARY.exists():
        pytest.fail("server binary %s does not exist (build it, or set HB_BINARY)" % BINARY, pytrace=False)
    if not os.access(BINARY, os.X_OK):
        pytest.fail("server binary %s is not executable" % BINARY, pytrace=False)


def run_binary(args, env=None, timeout=20, cwd=None):
    """Runs the binary to completion (for --version, config errors, import errors)."""
    require_binary()
    try:
        return subprocess.run([str(BINARY)] + [str(a) for a in args], env=server_env(env), cwd=cwd or str(REPO),
                              stdin=subprocess.DEVNULL, capture_output=True, timeout=timeout)
    except subprocess.TimeoutExpired as e:
        pytest.fail("%s %s did not exit within %ss\nstderr:\n%s" % (
            BINARY, " ".join(map(str, args)), timeout, (e.stderr or b"").decode("utf-8", "replace")[-4000:]))


def assert_no_sanitizer(text, what="server"):
    for m in SANITIZER_MARKERS:
        assert m not in text, "%s: sanitizer report (%r) in stderr:\n%s" % (what, m, text[-8000:])


class Server:
    """One running server process."""

    def __init__(self, workdir, app, args=(), env=None, port=None, pythonpath=(), defaults=True,
                 bind=True, test_pythonpath=True, preexec_fn=None):
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.port = port or free_port()
        self.host = "127.0.0.1"
        self.app = app
        cmd = [str(BINARY)]
        if app:
            cmd.append(app)
        args = [str(a) for a in args]
        if bind and "--bind" not in args:
            cmd += ["--bind", "%s:%d" % (self.host, self.port)]
        for p in list(pythonpath) + ([str(APPS), DIST_PACKAGES] if test_pythonpath else []):
            cmd += ["--pythonpath", str(p)]
        if defaults:
            if "--workers" not in args:
                cmd += ["--workers", "1"]
            if "--graceful-timeout" not in args:
                cmd += ["--graceful-timeout", "5"]
        cmd += args
        self.cmd = cmd
        self.stdout_path = self.workdir / "stdout.txt"
        self.stderr_path = self.workdir / "stderr.txt"
        self._out = open(self.stdout_path, "wb")
        self._err = open(self.stderr_path, "wb")
        self.proc = subprocess.Popen(cmd, stdout=self._out, stderr=self._err, stdin=subprocess.DEVNULL,
                                     env=server_env(env), cwd=str(self.workdir), start_new_session=True,
                                     preexec_fn=preexec_fn)
        self.pid = self.proc.pid
        self.returncode = None
        self.stopped = False

    # logs
    def stderr(self):
        try:
            return self.stderr_path.read_bytes().decode("utf-8", "replace")
        except FileNotFoundError:
            return ""

    def stdout(self):
        try:
            return self.stdout_path.read_bytes().decode("utf-8", "replace")
        except FileNotFoundError:
            return ""

    def error_lines(self, since=0):
        return [l for l in self.stderr()[since:].splitlines() if ERROR_LINE.search(l) or "Traceback" in l]

    def describe(self):
        return "command: %s\n--- stderr (tail) ---\n%s\n--- stdout (tail) ---\n%s" % (
            " ".join(self.cmd), self.stderr()[-6000:], self.stdout()[-2000:])

    # state
    def alive(self):
        return self.proc.poll() is None

    def assert_alive(self):
        assert self.alive(), "server died (exit %s)\n%s" % (self.proc.returncode, self.describe())

    READY_PATH = "/hbtest-ready"

    def wait_ready(self, timeout=15.0):
        """Returns once the server answers an HTTP request (any status: the app decides what a
        GET of READY_PATH gives). An open port is not enough: a listener may accept connections
        while the app is still importing."""
        deadline = time.monotonic() + timeout
        probe = request_bytes("GET", self.READY_PATH, [("Connection", "close")])
        last = "no connection"
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                pytest.fail("server exited with %s before answering HTTP\n%s" % (
                    self.proc.returncode, self.describe()), pytrace=False)
            left = max(0.1, deadline - time.monotonic())
            try:
                with socket.create_connection((self.host, self.port), timeout=min(left, 1.0)) as c:
                    c.sendall(probe)
                    HTTPReader(c, timeout=left).read_head()
                    return self
            except (OSError, ConnectionClosed, TimeoutError, AssertionError) as e:
                last = "%s: %s" % (type(e).__name__, e)
                time.sleep(0.05)
        pytest.fail("server did not answer HTTP on %s:%d within %.0fs (last: %s)\n%s" % (
            self.host, self.port, timeout, last, self.describe()), pytrace=False)

    def pids(self):
        """The server's pid and its descendants' (for processes = N)."""
        out = [self.pid]
        try:
            children = {}
            for d in os.listdir("/proc"):
                if not d.isdigit():
                    continue
                try:
                    with open("/proc/%s/stat" % d) as f:
                        st = f.read()
                    ppid = int(st.rsplit(")", 1)[1].split()[1])
                    children.setdefault(ppid, []).append(int(d))
                except (OSError, ValueError, IndexError):
                    pass
            todo = [self.pid]
            while todo:
                p = todo.pop()
                for c in children.get(p, []):
                    out.append(c)
                    todo.append(c)
        except OSError:
            pass
        return out

    def worker_pids(self):
        """The worker processes: the master's direct children."""
        out = []
        for d in os.listdir("/proc"):
            if not d.isdigit():
                continue
            try:
                with open("/proc/%s/stat" % d) as f:
                    st = f.read()
                if int(st.rsplit(")", 1)[1].split()[1]) == self.pid:
                    out.append(int(d))
            except (OSError, ValueError, IndexError):
                pass
        return sorted(out)

    def worker_pid(self, timeout=10.0):
        """The one worker process's pid (processes = 1), once there is exactly one."""
        deadline = time.monotonic() + timeout
        while True:
            pids = self.worker_pids()
            if len(pids) == 1 or time.monotonic() > deadline:
                assert len(pids) == 1, "expected one worker process, found %r\n%s" % (pids, self.describe())
                return pids[0]
            time.sleep(0.05)

    def rss_kb(self):
        total = 0
        for p in self.pids():
            try:
                with open("/proc/%d/status" % p) as f:
                    for line in f:
                        if line.startswith("VmRSS:"):
                            total += int(line.split()[1])
            except OSError:
                pass
        return total

    def signal(self, sig):
        self.proc.send_signal(sig)

    def stop(self, sig=_signal.SIGTERM, timeout=10.0):
        """Stops the server (SIGTERM, SIGKILL after timeout); returns the exit status."""
        if self.stopped:
            return self.returncode
        self.stopped = True
        if self.proc.poll() is None:
            try:
                self.proc.send_signal(sig)
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                try:
                    os.killpg(self.pid, _signal.SIGKILL)
                except ProcessLookupError:
                    pass
                self.proc.wait(5)
                self.returncode = "killed after %.0fs (did not exit on %s)" % (timeout, _signal.Signals(sig).name)
                self._close_files()
                return self.returncode
        self.returncode = self.proc.returncode
        self._close_files()
        return self.returncode

    def wait_exit(self, timeout):
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return None

    def _close_files(self):
        for f in (self._out, self._err):
            try:
                f.close()
            except OSError:
                pass

    def check_clean_exit(self):
        """Stops (if needed) and asserts exit status 0 and no sanitizer report."""
        rc = self.stop()
        err = self.stderr()
        if os.environ.get("HB_KEEP_LOGS"):
            print("\n=== server %s stderr ===\n%s" % (" ".join(self.cmd), err))
        assert_no_sanitizer(err)
        assert rc == 0, "server exit status %r (expected 0)\n%s" % (rc, self.describe())


class ServerFactory:
    def __init__(self, basedir):
        self.basedir = Path(basedir)
        self.servers = []

    def __call__(self, app="wsgi_apps:app", *args, env=None, wait=True, pythonpath=(), port=None,
                 defaults=True, bind=True, test_pythonpath=True, ready_timeout=15.0, preexec_fn=None):
        require_binary()
        s = Server(self.basedir / ("server%d" % len(self.servers)), app, args, env=env, port=port,
                   pythonpath=pythonpath, defaults=defaults, bind=bind, test_pythonpath=test_pythonpath,
                   preexec_fn=preexec_fn)
        self.servers.append(s)
        if wait:
            s.wait_ready(ready_timeout)
        return s

    def finish(self):
        problems = []
        for s in self.servers:
            try:
                s.check_clean_exit()
            except AssertionError as e:
                problems.append(str(e))
        if problems:
            pytest.fail("\n\n".join(problems), pytrace=False)


# -- raw HTTP helpers ---------------------------------------------------------------------

def connect(port, timeout=5.0, host="127.0.0.1", rcvbuf=None):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    if rcvbuf:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    s.settimeout(timeout)
    s.connect((host, port))
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s


def readable(sock, timeout=0.0):
    r, _, _ = select.select([sock], [], [], timeout)
    return bool(r)


def safe_send(sock, data):
    """sendall that reports (rather than raises) a peer that already closed."""
    try:
        sock.sendall(data)
        return True
    except (BrokenPipeError, ConnectionResetError):
        return False


def recv_until_close(sock, timeout=5.0, limit=64 << 20):
    """Reads until EOF (or reset) or `timeout` without data. Returns (bytes, closed)."""
    buf = bytearray()
    deadline = time.monotonic() + timeout
    while len(buf) < limit:
        left = deadline - time.monotonic()
        if left <= 0:
            return bytes(buf), False
        sock.settimeout(left)
        try:
            b = sock.recv(65536)
        except socket.timeout:
            return bytes(buf), False
        except ConnectionResetError:
            return bytes(buf), True
        if not b:
            return bytes(buf), True
        buf += b
    return bytes(buf), False


def raw(port, data, timeout=5.0, shutdown_write=False):
    """Sends `data` on a new connection and returns everything received until the server closes
    (or `timeout` passes without the close). Use Connection: close for keep-alive requests."""
    with connect(port, timeout) as s:
        safe_send(s, data)
        if shutdown_write:
            try:
                s.shutdown(socket.SHUT_WR)
            except OSError:
                pass
        out, _ = recv_until_close(s, timeout)
        return out


def send_bytewise(sock, data, delay=0.0002, stop_on_response=True):
    """Sends one byte per send() (TCP_NODELAY is set by connect). Stops early when the server
    has already answered (as a real client would). Returns the number of bytes sent."""
    for i in range(len(data)):
        if stop_on_response and readable(sock):
            return i
        try:
            sock.send(data[i:i + 1])
        except (BrokenPipeError, ConnectionResetError):
            return i
        if delay:
            time.sleep(delay)
    return len(data)


def send_split(sock, data, at, pause=0.003, stop_on_response=True):
    """Sends data[:at], pauses, then the rest (unless the server already answered)."""
    if not safe_send(sock, data[:at]):
        return
    time.sleep(pause)
    if stop_on_response and readable(sock):
        return
    safe_send(sock, data[at:])


def split_points(data, limit=10, every_below=80):
    """Split points for send_split: every one for inputs up to `every_below` bytes; otherwise a
    representative subset (both ends, every line boundary and colon, an even spread)."""
    n = len(data)
    if n <= max(limit, every_below):
        return list(range(1, n))
    pts = {1, n - 1}
    for m in re.finditer(rb"\r\n|\n|\r|:", data):
        pts.add(m.start())
        pts.add(m.end())
    step = max(1, n // limit)
    pts.update(range(step, n, step))
    pts = sorted(p for p in pts if 0 < p < n)
    if len(pts) > 3 * limit:
        # keep an even subset
        k = len(pts) / (3 * limit)
        pts = sorted({pts[int(i * k)] for i in range(3 * limit)} | {1, n - 1})
    return pts


class Response:
    def __init__(self, version, status, reason, headers, body, trailers=None):
        self.version = version
        self.status = status
        self.reason = reason
        self.headers = headers  # list of (name, value) as str (latin-1)
        self.body = body
        self.trailers = trailers or []

    def header(self, name):
        vals = [v for k, v in self.headers if k.lower() == name.lower()]
        return ", ".join(vals) if vals else None

    def header_list(self, name):
        return [v for k, v in self.headers if k.lower() == name.lower()]

    def json(self):
        return json.loads(self.body)

    def __repr__(self):
        return "<Response %s %s %r body=%r>" % (self.status, self.reason, self.headers, self.body[:200])


class ConnectionClosed(Exception):
    pass


class HTTPReader:
    """Parses HTTP/1.x responses from a socket, one at a time (for keep-alive and pipelining)."""

    def __init__(self, sock, timeout=5.0):
        self.sock = sock
        self.timeout = timeout
        self.buf = bytearray()
        self.eof = False

    def _fill(self, timeout=None):
        if self.eof:
            raise ConnectionClosed("connection closed by server; buffered: %r" % bytes(self.buf[:300]))
        self.sock.settimeout(self.timeout if timeout is None else timeout)
        try:
            b = self.sock.recv(1 << 20)
        except ConnectionResetError:
            b = b""
        except socket.timeout:
            raise TimeoutError("no response data within %.1fs; buffered: %r" % (
                self.timeout if timeout is None else timeout, bytes(self.buf[:300])))
        if not b:
            self.eof = True
            raise ConnectionClosed("connection closed by server; buffered: %r" % bytes(self.buf[:300]))
        self.buf += b

    def _line(self):
        while True:
            i = self.buf.find(b"\r\n")
            if i >= 0:
                line = bytes(self.buf[:i])
                del self.buf[:i + 2]
                return line
            if len(self.buf) > 1 << 20:
                raise AssertionError("response line too long")
            self._fill()

    def _exact(self, n):
        while len(self.buf) < n:
            self._fill()
        out = bytes(self.buf[:n])
        del self.buf[:n]
        return out

    def read_head(self):
        line = self._line()
        m = re.match(rb"^(HTTP/\d\.\d) (\d{3})(?: (.*))?$", line)
        assert m, "bad status line %r" % line
        headers = []
        while True:
            h = self._line()
            if h == b"":
                break
            assert b":" in h, "bad response header line %r" % h
            k, v = h.split(b":", 1)
            assert k == k.strip() and k, "bad response header name %r" % h
            headers.append((k.decode("latin-1"), v.strip(b" \t").decode("latin-1")))
        return m.group(1).decode(), int(m.group(2)), (m.group(3) or b"").decode("latin-1"), headers

    def read_response(self, method="GET", skip_1xx=True, max_body=256 << 20):
        while True:
            version, status, reason, headers = self.read_head()
            if 100 <= status < 200 and status != 101:
                if skip_1xx:
                    continue
                return Response(version, status, reason, headers, b"")
            break
        resp = Response(version, status, reason, headers, b"")
        te = resp.header("transfer-encoding")
        cl = resp.header("content-length")
        if method == "HEAD" or status in (204, 304) or 100 <= status < 200:
            return resp
        if te is not None:
            assert te.lower().strip() == "chunked", "unexpected response TE %r" % te
            assert cl is None, "response has both Content-Length and Transfer-Encoding"
            parts = []
            total = 0
            while True:
                size_line = self._line()
                size = int(size_line.split(b";")[0].strip(), 16)
                if size == 0:
                    break
                parts.append(self._exact(size))
                total += size
                assert total <= max_body
                assert self._exact(2) == b"\r\n", "bad chunk terminator"
            trailers = []
            while True:
                t = self._line()
                if t == b"":
                    break
                trailers.append(t)
            resp.body = b"".join(parts)
            resp.trailers = trailers
            return resp
        if cl is not None:
            assert re.fullmatch(r"\d+", cl), "bad response Content-Length %r" % cl
            resp.body = self._exact(int(cl))
            return resp
        # close-delimited
        parts = [bytes(self.buf)]
        self.buf.clear()
        while True:
            try:
                self._fill()
            except ConnectionClosed:
                break
            parts.append(bytes(self.buf))
            self.buf.clear()
        resp.body = b"".join(parts)
        return resp

    def expect_closed(self, timeout=3.0):
        """Asserts the server closes the connection (EOF or reset) within timeout, with no
        further bytes."""
        if self.buf:
            raise AssertionError("unexpected bytes after the response: %r" % bytes(self.buf[:300]))
        if self.eof:
            return
        data, closed = recv_until_close(self.sock, timeout)
        assert not data, "unexpected bytes after the response: %r" % data[:300]
        assert closed, "server did not close the connection within %.1fs" % timeout
        self.eof = True

    def is_open(self, wait=0.2):
        """True when nothing arrives and the connection stays open for `wait` seconds."""
        if self.buf or self.eof:
            return False
        if readable(self.sock, wait):
            try:
                self.sock.settimeout(0.5)
                b = self.sock.recv(65536)
            except (ConnectionResetError, socket.timeout):
                b = b""
            if not b:
                self.eof = True
                return False
            self.buf += b
            return False
        return True


def request_bytes(method="GET", target="/", headers=None, body=b"", version="HTTP/1.1", host="127.0.0.1"):
    hs = []
    if host is not None:
        hs.append(("Host", host))
    hs += list(headers or [])
    if body and not any(k.lower() in ("content-length", "transfer-encoding") for k, _ in hs):
        hs.append(("Content-Length", str(len(body))))
    head = "%s %s %s\r\n" % (method, target, version) + "".join("%s: %s\r\n" % kv for kv in hs) + "\r\n"
    return head.encode("latin-1") + body


def http(port, method="GET", target="/", headers=None, body=b"", version="HTTP/1.1", timeout=10.0,
         host="127.0.0.1"):
    """One request on a new connection (Connection: close); returns the parsed Response."""
    hdrs = list(headers or [])
    if not any(k.lower() == "connection" for k, _ in hdrs):
        hdrs.append(("Connection", "close"))
    with connect(port, timeout) as s:
        safe_send(s, request_bytes(method, target, hdrs, body, version, host=host))
        return HTTPReader(s, timeout).read_response(method)


def assert_served(port, timeout=5.0):
    """A new connection gets a 200 for a plain GET (after any bad input on another one)."""
    r = http(port, "GET", "/served-check", timeout=timeout)
    assert r.status == 200, "a new connection was not served: %r" % r
    return r


def chunked(body, size=3):
    out = b""
    for i in range(0, len(body), size):
        part = body[i:i + size]
        out += b"%x\r\n" % len(part) + part + b"\r\n"
    return out + b"0\r\n\r\n"


def readme_code_lines(readme):
    """Lines of a README's code blocks (indented by 4, or fenced), backslash continuations
    joined: the commands test_examples.py and test_example_distributed_rpc.py run as written."""
    out, fenced, cur = [], False, ""
    for line in Path(readme).read_text().splitlines():
        if line.startswith("```"):
            fenced = not fenced
            continue
        if not (fenced or line.startswith("    ")):
            continue
        cur += line.strip()
        if cur.endswith("\\"):
            cur = cur[:-1] + " "
            continue
        out.append(cur)
        cur = ""
    return out


def wait_for(pred, timeout=5.0, interval=0.05):
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v:
            return v
        if time.monotonic() >= deadline:
            return v
        time.sleep(interval)


def read_file(path):
    try:
        return Path(path).read_text()
    except FileNotFoundError:
        return ""




class RssSampler:
    """Samples the server's RSS (all its processes) every `interval` s in a thread:
    with RssSampler(server) as r: ...; r.growth_mb() -> peak minus the starting RSS, in MiB."""

    def __init__(self, srv, interval=0.05):
        import threading
        self.srv = srv
        self.interval = interval
        self.start_kb = srv.rss_kb()
        self.peak_kb = self.start_kb
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self._stop.is_set():
            self.peak_kb = max(self.peak_kb, self.srv.rss_kb())
            self._stop.wait(self.interval)

    def __enter__(self):
        self._t.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._t.join()
        self.peak_kb = max(self.peak_kb, self.srv.rss_kb())

    def growth_mb(self):
        return (self.peak_kb - self.start_kb) / 1024.0


def large_pattern(total):
    """The bytes apps/wsgi_apps.py's /large route sends for size=total."""
    block = bytes(range(256)) * 256
    full, rest = divmod(total, len(block))
    return block * full + block[:rest]


def whoami_through_swaps(port, least=3, clients=3, pause=0.005, duration=20.0, timeout=10.0):
    """Runs `clients` client threads sending GET /whoami (the test apps report a token made once
    per interpreter) every `pause` s, two on keep-alive connections and the rest on a new
    connection each, until `least` distinct tokens were seen (or `duration` passed). An old
    worker serves until its successor is ready, so a client that never pauses may see one
    interpreter only. Returns (sequences, failures): the tokens each client got, in order, and
    every request that did not get a 200 (its status or exception)."""
    import threading

    seqs = [[] for _ in range(clients)]
    failures = []
    done = threading.Event()
    deadline = time.monotonic() + duration

    def client(i):
        keep = i < 2
        sock = rd = None
        n = 0
        while not done.is_set() and time.monotonic() < deadline:
            n += 1
            try:
                if keep:
                    if sock is None:
                        sock = connect(port, timeout)
                        rd = HTTPReader(sock, timeout)
                    sock.sendall(request_bytes("GET", "/whoami"))
                    r = rd.read_response()
                else:
                    r = http(port, "GET", "/whoami", timeout=timeout)
                if r.status != 200:
                    failures.append((i, n, r))
                else:
                    seqs[i].append(r.json()["token"])
                    if len({t for s in seqs for t in s}) >= least:
                        done.set()
            except Exception as e:  # noqa: BLE001 - reported by the caller
                failures.append((i, n, "%s: %s" % (type(e).__name__, e)))
                if sock is not None:
                    sock.close()
                    sock = None
            time.sleep(pause)
        if sock is not None:
            sock.close()

    ts = [threading.Thread(target=client, args=(i,), daemon=True) for i in range(clients)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(duration + 2 * timeout)
    return seqs, failures


def assert_interpreters_replaced(seqs, failures, least):
    """Checks whoami_through_swaps' result: no request failed, at least `least` distinct
    interpreters answered, and none answered again after its successor did (in each client's
    order, a token's requests are one contiguous run)."""
    assert not failures, "requests failed during worker replacement: %r" % failures[:10]
    tokens = {t for s in seqs for t in s}
    assert len(tokens) >= least, "only %d interpreter(s) answered: %r" % (len(tokens), seqs)
    for s in seqs:
        runs = [t for i, t in enumerate(s) if i == 0 or s[i - 1] != t]
        assert len(runs) == len(set(runs)), "a replaced interpreter answered again: %r" % s
    return tokens
