"""HTTP/2 against the real server: prior knowledge (curl, nghttp, httpx, python-h2), multiplexing
across workers, bodies and flow control both ways, client resets reaching the app, graceful
shutdown with streams in flight, floods, and frameworks over h2c."""
import json
import os
import shutil
import signal
import socket
import subprocess
import threading
import time

import h2.config
import h2.connection
import h2.events
import h2.exceptions
import h2.settings
import httpx
import pytest

import h2client
from h2client import PREFACE, block, frame, lit, split_frames
from hbtest import EXAMPLES, wait_for

ENHANCE_YOUR_CALM = 11


class H2(h2client.Conn):
    """A python-h2 client on a plain socket (prior knowledge), collecting responses by stream."""

    def __init__(self, port, settings=None):
        super().__init__(port, settings=settings)
        self.responses = {}  # sid -> {"status":, "headers":, "body": bytearray, "ended":, "reset":}
        self.goaways = []

    def request(self, path, method="GET", body=None, headers=(), end=True):
        sid = self.c.get_next_available_stream_id()
        self.c.send_headers(sid, self.headers(path, method) + list(headers),
                            end_stream=body is None and end)
        self.responses[sid] = {"status": None, "headers": {}, "body": bytearray(),
                               "ended": False, "reset": None}
        if body is not None:
            self.send_body(sid, body, end)
        self.flush()
        return sid

    def send_body(self, sid, body, end=True):
        self.send_all(sid, body, 0.5, end)

    def on_event(self, ev):
        if isinstance(ev, h2.events.ResponseReceived):
            r = self.responses.setdefault(ev.stream_id, {"body": bytearray(), "ended": False,
                                                         "reset": None, "headers": {}})
            hd = dict(ev.headers)
            r["status"] = int(hd[":status"])
            r["headers"] = hd
        elif isinstance(ev, h2.events.DataReceived):
            self.responses[ev.stream_id]["body"] += ev.data
            self.c.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
        elif isinstance(ev, h2.events.StreamEnded):
            self.responses[ev.stream_id]["ended"] = True
        elif isinstance(ev, h2.events.StreamReset):
            if ev.stream_id in self.responses:
                self.responses[ev.stream_id]["reset"] = ev.error_code
        elif isinstance(ev, h2.events.ConnectionTerminated):
            self.goaways.append((ev.error_code, ev.last_stream_id))

    def state(self):
        return ({k: (v["status"], len(v["body"]), v["ended"], v["reset"])
                 for k, v in self.responses.items()}, self.goaways)

    def get(self, path, **kw):
        sid = self.request(path, **kw)
        self.wait(lambda: self.responses[sid]["ended"] or self.responses[sid]["reset"] is not None)
        return self.responses[sid]


@pytest.fixture(scope="module")
def asrv(module_server_factory, tmp_path_factory):
    d = tmp_path_factory.mktemp("h2asgi")
    s = module_server_factory("asgi_apps:app", "--worker-class", "asgi", "--workers", "2",
                              env={"HB_DISCONNECT_LOG": str(d / "disc.log")})
    s.disc_log = d / "disc.log"
    return s


@pytest.fixture(scope="module")
def wsrv(module_server_factory):
    return module_server_factory("wsgi_apps:app", "--workers", "2", "--threads", "4")


def curl(*args):
    return subprocess.run(["curl", "-sS", "--max-time", "20"] + list(args), capture_output=True,
                          timeout=30)


# -- clients ------------------------------------------------------------------------------

def test_curl_prior_knowledge(asrv):
    r = curl("--http2-prior-knowledge", "-w", "\n%{http_version} %{response_code}",
             "http://127.0.0.1:%d/hello" % asrv.port)
    assert r.returncode == 0, r.stderr
    body, meta = r.stdout.decode().rsplit("\n", 1)
    assert body == "Hello, ASGI!" and meta == "2 200"


def test_h2c_upgrade(asrv):
    base = "http://127.0.0.1:%d" % asrv.port
    r = curl("--http2", "-w", "\n%{http_version} %{response_code}", base + "/hello",
             base + "/stream?2")
    assert r.returncode == 0, r.stderr
    out = r.stdout.decode()
    assert out.startswith("Hello, ASGI!\n2 200"), out
    assert out.endswith("chunk1\n\n2 200"), out
    # a request with a body is served as HTTP/1.1 (the upgrade ignored)
    r = curl("--http2", "-d", "abc", "-w", "\n%{http_version}", base + "/echo")
    assert r.stdout.decode() == "abc\n1.1"


def test_h2c_upgrade_with_a_bad_settings_value_is_served_as_http1(asrv):
    s = socket.create_connection(("127.0.0.1", asrv.port), timeout=10)
    s.sendall(b"GET /hello HTTP/1.1\r\nHost: x\r\nConnection: Upgrade, HTTP2-Settings\r\n"
              b"Upgrade: h2c\r\nHTTP2-Settings: !!\r\n\r\n")
    data = b""
    while b"Hello, ASGI!" not in data:
        d = s.recv(4096)
        if not d:
            break
        data += d
    s.close()
    assert data.startswith(b"HTTP/1.1 200"), data


def test_nghttp(asrv):
    r = subprocess.run(["nghttp", "-n", "-s", "http://127.0.0.1:%d/hello" % asrv.port,
                        "http://127.0.0.1:%d/stream?3" % asrv.port],
                       capture_output=True, timeout=30)
    assert r.returncode == 0, r.stderr
    assert b"/hello" in r.stdout and b"/stream" in r.stdout


def test_asgi_scope_http_version_2(asrv):
    c = H2(asrv.port)
    r = c.get("/scope?x=1")
    scope = json.loads(bytes(r["body"]))
    assert scope["http_version"] == "2"
    assert scope["path"] == "/scope" and scope["query_string"] == "x=1"
    assert ["host", "localhost"] in scope["headers"]
    c.close()


def test_wsgi_environ_server_protocol(wsrv):
    c = H2(wsrv.port)
    r = c.get("/echo?read=0", headers=[("x-thing", "yes")])
    env = json.loads(bytes(r["body"]))["environ"]
    assert env["SERVER_PROTOCOL"] == "HTTP/2"
    assert env["HTTP_HOST"] == "localhost" and env["HTTP_X_THING"] == "yes"
    assert env["wsgi.url_scheme"] == "http"
    c.close()


# -- multiplexing -----------------------------------------------------------------------------

def test_streams_run_on_several_workers_at_once(wsrv):
    """Eight 1-second WSGI requests on one connection, 2 workers x 4 threads: about 1 s."""
    c = H2(wsrv.port)
    t0 = time.monotonic()
    sids = [c.request("/sleep?secs=1") for _ in range(8)]
    c.wait(lambda: all(c.responses[s]["ended"] for s in sids), timeout=20)
    took = time.monotonic() - t0
    assert all(c.responses[s]["status"] == 200 for s in sids)
    assert took < 3.5, "streams were serialized: %.2fs" % took
    c.close()


def test_slow_stream_does_not_stall_others(asrv):
    """A client that never opens the window of a large response still gets its other streams."""
    c = H2(asrv.port, settings={h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: 65535})
    big = c.request("/big?8388608")
    # never acknowledge the big stream's data: stop reading it by not consuming the window
    c.on_event_orig = c.on_event

    def on_event(ev):
        if isinstance(ev, h2.events.DataReceived) and ev.stream_id == big:
            c.responses[big]["body"] += ev.data
            c.c.acknowledge_received_data(0, big) if False else None
            # connection window only, so the other streams keep flowing
            c.c.increment_flow_control_window(ev.flow_controlled_length)
            return
        c.on_event_orig(ev)
    c.on_event = on_event
    c.wait(lambda: len(c.responses[big]["body"]) >= 65535 - 16384)
    small = [c.request("/hello") for _ in range(5)]
    c.wait(lambda: all(c.responses[s]["ended"] for s in small))
    assert all(bytes(c.responses[s]["body"]) == b"Hello, ASGI!" for s in small)
    assert len(c.responses[big]["body"]) <= 65535
    c.close()


# -- bodies ------------------------------------------------------------------------------------

def test_upload_and_download(asrv):
    c = H2(asrv.port)
    payload = os.urandom(3 << 20)
    r = c.get("/echo", method="POST", body=payload)
    assert r["status"] == 200 and bytes(r["body"]) == payload
    r = c.get("/big?5000000")
    assert len(r["body"]) == 5000000
    c.close()


def test_wsgi_upload_hash_and_file(wsrv, tmp_path):
    c = H2(wsrv.port)
    payload = os.urandom(1 << 20)
    r = c.get("/body", method="POST", body=payload)
    import hashlib
    assert json.loads(bytes(r["body"]))["sha256"] == hashlib.sha256(payload).hexdigest()
    f = tmp_path / "blob"
    f.write_bytes(os.urandom(300000))
    r = c.get("/file?cl=1&path=%s" % f)
    assert bytes(r["body"]) == f.read_bytes()
    c.close()


def test_expect_100_continue(wsrv):
    c = H2(wsrv.port)
    sid = c.request("/body", method="POST", headers=[("expect", "100-continue")], end=False)
    c.send_body(sid, b"abc")
    c.wait(lambda: c.responses[sid]["ended"])
    assert json.loads(bytes(c.responses[sid]["body"]))["len"] == 3
    c.close()


# -- resets and shutdown --------------------------------------------------------------------------

def test_client_reset_reaches_the_asgi_app(asrv):
    before = asrv.disc_log.read_text() if asrv.disc_log.exists() else ""
    c = H2(asrv.port)
    sid = c.request("/disconnect")
    c.wait(lambda: c.responses[sid]["status"] == 200)
    c.c.reset_stream(sid, error_code=8)
    c.flush()
    wait_for(lambda: asrv.disc_log.exists() and
             len(asrv.disc_log.read_text()) > len(before), timeout=10)
    line = asrv.disc_log.read_text()[len(before):]
    assert "http.disconnect" in line
    # the connection lives on
    assert bytes(c.get("/hello")["body"]) == b"Hello, ASGI!"
    c.close()


def _read_frames(sock, until, timeout=15.0):
    """Reads raw frames (type, flags, sid, payload) until until(frames) or EOF."""
    frames, buf = [], b""
    deadline = time.monotonic() + timeout
    sock.settimeout(1.0)
    while not until(frames) and time.monotonic() < deadline:
        try:
            d = sock.recv(65536)
        except socket.timeout:
            continue
        if not d:
            break
        got, buf = split_frames(buf + d)
        frames += got
    return frames


def test_graceful_shutdown_finishes_streams_in_flight(server):
    """python-h2 treats the first GOAWAY as the end, so this one reads raw frames: the double
    GOAWAY (2^31-1, then the last stream), and the stream in flight still completes."""
    s = server("asgi_apps:app", "--worker-class", "asgi", "--graceful-timeout", "10")
    sock = socket.create_connection(("127.0.0.1", s.port), timeout=10)
    sock.sendall(PREFACE + frame(4, 0, 0) + frame(1, 5, 1, block(b"/sleep?1.5")))
    time.sleep(0.3)
    s.signal(signal.SIGTERM)

    def acks(frames):  # answer the server's PING so the final GOAWAY follows
        for t, fl, sid, pl in frames:
            if t == 6 and not fl & 1 and pl not in acked:
                acked.append(pl)
                sock.sendall(frame(6, 1, 0, pl))
        return any(t == 0 and fl & 1 and sid == 1 for t, fl, sid, pl in frames)
    acked = []
    frames = _read_frames(sock, acks)
    goaways = [(int.from_bytes(pl[:4], "big") & 0x7fffffff, int.from_bytes(pl[4:8], "big"))
               for t, fl, sid, pl in frames if t == 7]
    body = b"".join(pl for t, fl, sid, pl in frames if t == 0 and sid == 1)
    assert body == b"slept", frames
    assert goaways[0] == (2**31 - 1, 0), goaways
    assert (1, 0) in goaways, goaways
    sock.close()
    s.wait_exit(15)
    s.check_clean_exit()


# -- floods ---------------------------------------------------------------------------------------

def _raw_flood(port, frames):
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    c = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
    c.initiate_connection()
    sock.sendall(c.data_to_send())
    try:
        sock.sendall(frames)
    except OSError:
        pass
    got = b""
    sock.settimeout(5)
    try:
        while True:
            d = sock.recv(65536)
            if not d:
                break
            got += d
    except (socket.timeout, OSError):
        pass
    sock.close()
    return got


def _goaway_code(data):
    i = 0
    code = None
    while i + 9 <= len(data):
        n = int.from_bytes(data[i:i + 3], "big")
        if data[i + 3] == 7:
            code = int.from_bytes(data[i + 13:i + 17], "big")
        i += 9 + n
    return code


HEADERS_BLOCK = block(b"/hello")


@pytest.mark.parametrize("name", ["rapid_reset", "ping", "settings", "continuation", "empty_data"])
def test_floods_end_in_enhance_your_calm(asrv, name):
    if name == "rapid_reset":
        frames = b"".join(frame(1, 5, sid, HEADERS_BLOCK) + frame(3, 0, sid, b"\0\0\0\x08")
                          for sid in range(1, 2000, 2))
    elif name == "ping":
        frames = frame(6, 0, 0, b"12345678") * 5000
    elif name == "settings":
        frames = frame(4, 0, 0) * 5000
    elif name == "continuation":
        frames = frame(1, 1, 1, lit(b":method", b"GET")) + \
            frame(9, 0, 1, lit(b"x-a", b"b")) * 1000
    else:
        frames = frame(1, 4, 1, lit(b":method", b"POST") + HEADERS_BLOCK[13:]) + \
            frame(0, 0, 1) * 5000
    out = _raw_flood(asrv.port, frames)
    assert _goaway_code(out) == ENHANCE_YOUR_CALM
    asrv.assert_alive()
    c = H2(asrv.port)
    assert bytes(c.get("/hello")["body"]) == b"Hello, ASGI!"
    c.close()


def test_concurrent_stream_limit(server):
    s = server("asgi_apps:app", "--worker-class", "asgi", "--h2-max-concurrent-streams", "3")
    c = H2(s.port)
    c.wait(lambda: c.c.remote_settings.max_concurrent_streams == 3)
    c.close()


# -- frameworks ------------------------------------------------------------------------------------

def test_flask_over_h2(server):
    s = server("app:app", pythonpath=[EXAMPLES / "flask_app"])
    with httpx.Client(http1=False, http2=True, base_url="http://127.0.0.1:%d" % s.port) as cl:
        r = cl.get("/items/2")
        assert r.http_version == "HTTP/2" and r.json() == {"id": 2, "name": "uring"}
        r = cl.post("/echo", json={"a": 1})
        assert r.json()["received"] == {"a": 1}


def test_django_over_h2(server):
    s = server("djsite.wsgi:application", pythonpath=[EXAMPLES / "django_app"])
    with httpx.Client(http1=False, http2=True, base_url="http://127.0.0.1:%d" % s.port) as cl:
        r = cl.get("/")
        assert r.http_version == "HTTP/2" and r.status_code in (200, 302, 404)


def test_starlette_over_h2(server):
    s = server("asgi_starlette:app", "--worker-class", "asgi")
    with httpx.Client(http1=False, http2=True, base_url="http://127.0.0.1:%d" % s.port) as cl:
        r = cl.get("/")
        assert r.http_version == "HTTP/2" and r.status_code < 500


# -- http_version ------------------------------------------------------------------------------------

def test_http_version_h1_only_refuses_the_preface(server):
    s = server("asgi_apps:app", "--worker-class", "asgi", "--http-version", "h1")
    url = "http://127.0.0.1:%d/hello" % s.port
    assert curl("--http2-prior-knowledge", url).returncode != 0
    r = curl("-w", "\n%{http_version}", url)
    assert r.returncode == 0 and r.stdout.decode().endswith("\n1.1")


def test_http_version_h2_only_closes_http1(server):
    # the suite's readiness probe speaks HTTP/1.1, which this server refuses: probe with h2
    s = server("asgi_apps:app", "--worker-class", "asgi", "--http-version", "h2", wait=False)
    url = "http://127.0.0.1:%d/hello" % s.port
    wait_for(lambda: curl("--http2-prior-knowledge", url).returncode == 0, timeout=15)
    r = curl("--http2-prior-knowledge", "-w", "\n%{http_version}", url)
    assert r.returncode == 0 and r.stdout.decode().endswith("\n2")
    assert curl("--http1.1", url).returncode != 0


def test_stalled_request_body_resets_only_its_stream(server):
    s = server("asgi_apps:app", "--worker-class", "asgi", "--body-timeout", "1")
    c = H2(s.port)
    sid = c.request("/echo", method="POST", body=b"abc", end=False)
    time.sleep(0.2)
    other = c.get("/hello")
    assert bytes(other["body"]) == b"Hello, ASGI!"
    c.wait(lambda: c.responses[sid]["reset"] is not None, timeout=10)
    assert c.responses[sid]["reset"] == 8  # CANCEL
    assert bytes(c.get("/hello")["body"]) == b"Hello, ASGI!"
    c.close()


def test_client_reset_closes_the_wsgi_iterator(wsrv, tmp_path):
    log = tmp_path / "close.log"
    c = H2(wsrv.port)
    sid = c.request("/track?id=h2rst&n=400&delay=0.02&size=1000&log=%s" % log)
    c.wait(lambda: c.responses[sid]["status"] == 200)
    c.c.reset_stream(sid, error_code=8)
    c.flush()
    wait_for(lambda: log.exists() and "close h2rst" in log.read_text(), timeout=10)
    assert bytes(c.get("/noread")["body"]) == b"noread"
    c.close()
