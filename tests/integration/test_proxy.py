"""Behind a proxy: forwarding headers (X-Forwarded-*, RFC 7239 Forwarded) applied only for a
trusted peer (forwarded_allow_ips), over HTTP/1.1 and HTTP/2, for WSGI and ASGI, with Debian's
nginx as the real proxy in front; and the PROXY protocol (v1, v2, malformed headers closed).

Loopback has a whole /8: a client that binds 127.0.0.2 as its source is "another machine", not
trusted by the default forwarded_allow_ips (127.0.0.1, ::1)."""
import asyncio
import json
import shutil
import socket
import ssl
import struct
import subprocess
import time
from pathlib import Path

import pytest
import websockets

from hbtest import REPO, ConnectionClosed, HTTPReader, free_port, run_binary

NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
STREAM_MODULE = Path("/usr/lib/nginx/modules/ngx_stream_module.so")


def get(port, path="/", headers=(), src="127.0.0.1", host="127.0.0.1"):
    """One HTTP/1.1 request from source address src; returns (status, json body)."""
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as s:
        s.settimeout(10)
        s.bind((src, 0))
        s.connect((host, port))
        req = "GET %s HTTP/1.1\r\nHost: app.test:%d\r\nConnection: close\r\n" % (path, port)
        req += "".join("%s: %s\r\n" % h for h in headers) + "\r\n"
        s.sendall(req.encode("latin-1"))
        r = HTTPReader(s, timeout=10).read_response()
        return r.status, json.loads(r.body)


# -- forwarding headers, straight from a client ---------------------------------------------

def test_wsgi_trusted_peer_headers_applied(server):
    s = server("proxy_apps:wsgi")
    st, e = get(s.port, headers=[("X-Forwarded-For", "6.6.6.6, 203.0.113.7"),
                                 ("X-Forwarded-Proto", "https"),
                                 ("X-Forwarded-Host", "shop.example.com"),
                                 ("X-Forwarded-Port", "8443")])
    assert st == 200
    assert e["REMOTE_ADDR"] == "203.0.113.7"  # the rightmost hop that is not trusted
    assert e["REMOTE_PORT"] == "0"
    assert e["wsgi.url_scheme"] == "https"
    assert e["HTTP_HOST"] == "shop.example.com:8443"
    assert e["SERVER_NAME"] == "shop.example.com"
    assert e["SERVER_PORT"] == "8443"
    assert e["HTTP_X_FORWARDED_FOR"] == "6.6.6.6, 203.0.113.7"  # kept for the app


def test_wsgi_proto_alone_gives_default_port(server):
    s = server("proxy_apps:wsgi")
    _, e = get(s.port, headers=[("X-Forwarded-Proto", "https"), ("X-Forwarded-Host", "a.test")])
    assert e["wsgi.url_scheme"] == "https"
    assert (e["SERVER_NAME"], e["SERVER_PORT"]) == ("a.test", "443")
    assert e["REMOTE_ADDR"] == "127.0.0.1"


def test_wsgi_untrusted_peer_headers_untouched(server):
    s = server("proxy_apps:wsgi")
    _, e = get(s.port, src="127.0.0.2", headers=[("X-Forwarded-For", "203.0.113.7"),
                                                 ("X-Forwarded-Proto", "https"),
                                                 ("X-Forwarded-Host", "evil.test")])
    assert e["REMOTE_ADDR"] == "127.0.0.2"
    assert e["wsgi.url_scheme"] == "http"
    assert e["HTTP_HOST"].startswith("app.test:")
    assert e["HTTP_X_FORWARDED_FOR"] == "203.0.113.7"


def test_allow_ips_cidr_and_star(server):
    s = server("proxy_apps:wsgi", "--forwarded-allow-ips", "127.0.0.0/30, ::1")
    _, e = get(s.port, src="127.0.0.2", headers=[("X-Forwarded-For", "203.0.113.7")])
    assert e["REMOTE_ADDR"] == "203.0.113.7"
    _, e = get(s.port, src="127.0.0.9", headers=[("X-Forwarded-For", "203.0.113.7")])
    assert e["REMOTE_ADDR"] == "127.0.0.9"
    s2 = server("proxy_apps:wsgi", "--forwarded-allow-ips", "*")
    _, e = get(s2.port, src="127.0.0.9", headers=[("X-Forwarded-For", "198.51.100.1, 203.0.113.7")])
    assert e["REMOTE_ADDR"] == "198.51.100.1"  # all trusted: the leftmost, as uvicorn


def test_bad_allow_ips_is_a_config_error():
    r = run_binary(["proxy_apps:wsgi", "--forwarded-allow-ips", "10.1.2.3/8"])
    assert r.returncode != 0
    err = r.stderr.decode()
    assert "forwarded-allow-ips" in err and "past the prefix" in err, err


def test_no_proxy_headers(server):
    s = server("proxy_apps:wsgi", "--no-proxy-headers")
    _, e = get(s.port, headers=[("X-Forwarded-For", "203.0.113.7"), ("X-Forwarded-Proto", "https")])
    assert (e["REMOTE_ADDR"], e["wsgi.url_scheme"]) == ("127.0.0.1", "http")


def test_forwarded_rfc7239(server):
    s = server("proxy_apps:wsgi")
    _, e = get(s.port, headers=[("Forwarded", 'for="[2001:db8::17]:4711";proto=https;host="f.test:444"')])
    assert (e["REMOTE_ADDR"], e["REMOTE_PORT"]) == ("2001:db8::17", "4711")
    assert e["wsgi.url_scheme"] == "https"
    assert (e["HTTP_HOST"], e["SERVER_NAME"], e["SERVER_PORT"]) == ("f.test:444", "f.test", "444")
    _, e = get(s.port, headers=[("Forwarded", 'for="[2001:db8::17]:4711;proto=https')])  # broken
    assert (e["REMOTE_ADDR"], e["wsgi.url_scheme"]) == ("127.0.0.1", "http")


def test_malformed_values_ignored(server):
    s = server("proxy_apps:wsgi")
    _, e = get(s.port, headers=[("X-Forwarded-For", "not-an-ip"), ("X-Forwarded-Proto", "gopher"),
                                ("X-Forwarded-Host", "a b"), ("X-Forwarded-Port", "99999")])
    assert e["REMOTE_ADDR"] == "127.0.0.1"
    assert e["wsgi.url_scheme"] == "http"
    assert e["HTTP_HOST"].startswith("app.test:")
    assert s.alive()


def test_asgi_client_scheme_host(server):
    s = server("proxy_apps:asgi", "--worker-class", "asgi")
    _, v = get(s.port, headers=[("X-Forwarded-For", "203.0.113.7"), ("X-Forwarded-Proto", "https"),
                                ("X-Forwarded-Host", "shop.example.com")])
    assert v["client"] == ["203.0.113.7", 0]
    assert v["scheme"] == "https"
    assert v["host"] == "shop.example.com"
    assert v["server"] == ["127.0.0.1", s.port]  # the listening socket, as the ASGI spec says
    _, v = get(s.port, src="127.0.0.2", headers=[("X-Forwarded-For", "203.0.113.7")])
    assert v["client"][0] == "127.0.0.2"


def test_asgi_websocket_wss(server):
    s = server("proxy_apps:asgi", "--worker-class", "asgi")

    async def talk():
        async with websockets.connect("ws://127.0.0.1:%d/ws" % s.port,
                                      extra_headers={"X-Forwarded-Proto": "https",
                                                     "X-Forwarded-For": "203.0.113.8"}) as ws:
            return json.loads(await ws.recv())
    v = asyncio.run(talk())
    assert v["scheme"] == "wss"
    assert v["client"][0] == "203.0.113.8"


def test_h2_requests(server):
    s = server("proxy_apps:asgi", "--worker-class", "asgi")
    out = subprocess.run(["curl", "-s", "--http2-prior-knowledge", "-H", "X-Forwarded-For: 203.0.113.9",
                          "-H", "X-Forwarded-Proto: https", "http://127.0.0.1:%d/" % s.port],
                         capture_output=True, timeout=20)
    v = json.loads(out.stdout)
    assert v["http_version"] == "2"
    assert v["client"] == ["203.0.113.9", 0]
    assert v["scheme"] == "https"
    out = subprocess.run(["curl", "-s", "--http2-prior-knowledge", "--interface", "127.0.0.2",
                          "-H", "X-Forwarded-For: 203.0.113.9", "http://127.0.0.1:%d/" % s.port],
                         capture_output=True, timeout=20)
    assert json.loads(out.stdout)["client"][0] == "127.0.0.2"


# -- nginx in front ---------------------------------------------------------------------------

class Nginx:
    def __init__(self, workdir, conf_body, stream=False):
        if not Path(NGINX).exists() or (stream and not STREAM_MODULE.exists()):
            pytest.fail("nginx (and libnginx-mod-stream) are needed: run scripts/setup.sh", pytrace=False)
        self.dir = Path(workdir)
        self.dir.mkdir(parents=True, exist_ok=True)
        conf = ("load_module %s;\n" % STREAM_MODULE if stream else "")
        conf += ("daemon off;\nmaster_process off;\nworker_processes 1;\npid %s/nginx.pid;\n"
                 "error_log %s/error.log warn;\nevents { worker_connections 256; }\n"
                 % (self.dir, self.dir))
        conf += conf_body.replace("$TMP", str(self.dir))
        (self.dir / "nginx.conf").write_text(conf)
        self.proc = subprocess.Popen([NGINX, "-p", str(self.dir), "-c", str(self.dir / "nginx.conf"),
                                      "-e", str(self.dir / "error.log")],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

    def wait_port(self, port, timeout=10):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                pytest.fail("nginx exited: %s\n%s" % (self.proc.stderr.read().decode(),
                                                      (self.dir / "error.log").read_text()))
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                return
            except OSError:
                time.sleep(0.05)
        pytest.fail("nginx did not listen on %d" % port)

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


@pytest.fixture
def nginx(tmp_path):
    started = []

    def start(conf_body, ports, stream=False):
        n = Nginx(tmp_path / ("nginx%d" % len(started)), conf_body, stream)
        started.append(n)
        for p in ports:
            n.wait_port(p)
        return n
    yield start
    for n in started:
        n.stop()


HTTP_PROXY = """http {
  access_log off;
  client_body_temp_path $TMP/body; proxy_temp_path $TMP/proxy;
  fastcgi_temp_path $TMP/fcgi; uwsgi_temp_path $TMP/uwsgi; scgi_temp_path $TMP/scgi;
  server {
    listen 127.0.0.1:%(front)d;
    location / {
      proxy_pass http://127.0.0.1:%(back)d;
      proxy_http_version 1.1;
      proxy_set_header Host $host;
      proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
      proxy_set_header X-Forwarded-Proto https;
      proxy_set_header X-Forwarded-Host $host;
      proxy_set_header X-Forwarded-Port 8443;
    }
    location /rfc7239/ {
      proxy_pass http://127.0.0.1:%(back)d/;
      proxy_set_header Forwarded "for=$remote_addr;proto=https;host=\\"$host\\"";
    }
  }
}
"""


@pytest.mark.parametrize("kind", ["wsgi", "asgi"])
def test_behind_nginx(server, nginx, kind):
    s = server("proxy_apps:" + kind, *(["--worker-class", "asgi"] if kind == "asgi" else []))
    front = free_port()
    nginx(HTTP_PROXY % {"front": front, "back": s.port}, [front])
    # the client is 127.0.0.2 and forges an X-Forwarded-For entry: nginx appends its address
    _, v = get(front, src="127.0.0.2", headers=[("X-Forwarded-For", "6.6.6.6")])
    if kind == "wsgi":
        assert v["REMOTE_ADDR"] == "127.0.0.2"
        assert v["HTTP_X_FORWARDED_FOR"] == "6.6.6.6, 127.0.0.2"
        assert v["wsgi.url_scheme"] == "https"
        assert (v["SERVER_NAME"], v["SERVER_PORT"]) == ("app.test", "8443")
    else:
        assert v["client"] == ["127.0.0.2", 0]
        assert v["scheme"] == "https"
        assert v["host"] == "app.test:8443"
    _, v = get(front, "/rfc7239/", src="127.0.0.3")
    if kind == "wsgi":
        assert (v["REMOTE_ADDR"], v["wsgi.url_scheme"], v["HTTP_HOST"]) == ("127.0.0.3", "https", "app.test")
    else:
        assert (v["client"][0], v["scheme"], v["host"]) == ("127.0.0.3", "https", "app.test")


def test_nginx_not_trusted_passes_headers_through(server, nginx):
    s = server("proxy_apps:wsgi", "--forwarded-allow-ips", "10.0.0.1")
    front = free_port()
    nginx(HTTP_PROXY % {"front": front, "back": s.port}, [front])
    _, v = get(front, src="127.0.0.2")
    assert v["REMOTE_ADDR"] == "127.0.0.1"  # nginx itself
    assert v["wsgi.url_scheme"] == "http"
    assert v["HTTP_X_FORWARDED_FOR"] == "127.0.0.2"


# -- the PROXY protocol -------------------------------------------------------------------------

V2_SIG = b"\r\n\r\n\x00\r\nQUIT\n"


def v2_header(src, dst, sport, dport, cmd=0x21, tlv=b""):
    fam = socket.AF_INET6 if ":" in src else socket.AF_INET
    addrs = socket.inet_pton(fam, src) + socket.inet_pton(fam, dst) + struct.pack("!HH", sport, dport)
    body = addrs + tlv
    return V2_SIG + bytes([cmd, 0x21 if fam == socket.AF_INET6 else 0x11]) + struct.pack("!H", len(body)) + body


V2_LOCAL = V2_SIG + b"\x20\x00\x00\x00"


def exchange(port, data, src="127.0.0.1", timeout=10, split=False):
    """Sends data (a PROXY header and a request) from src; returns the response, or None when
    the server closed the connection without one."""
    with socket.socket() as s:
        s.settimeout(timeout)
        s.bind((src, 0))
        s.connect(("127.0.0.1", port))
        if split:
            for i in range(len(data)):
                s.sendall(data[i:i + 1])
                time.sleep(0.001)
        else:
            s.sendall(data)
        try:
            return HTTPReader(s, timeout=timeout).read_response()
        except (ConnectionClosed, ConnectionResetError):
            return None


GET = b"GET / HTTP/1.1\r\nHost: app.test\r\nConnection: close\r\n\r\n"


def wait_ready_pp(s, timeout=15):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert s.alive(), s.describe()
        try:
            r = exchange(s.port, V2_LOCAL + GET, timeout=2)
            if r is not None:
                return
        except OSError:
            pass
        time.sleep(0.05)
    pytest.fail("server with proxy_protocol not ready\n" + s.describe())


def test_pp_v1_v2_wsgi(server):
    s = server("proxy_apps:wsgi", "--proxy-protocol", wait=False)
    wait_ready_pp(s)
    r = exchange(s.port, b"PROXY TCP4 203.0.113.7 192.0.2.1 56324 443\r\n" + GET)
    e = json.loads(r.body)
    assert (e["REMOTE_ADDR"], e["REMOTE_PORT"]) == ("203.0.113.7", "56324")
    r = exchange(s.port, v2_header("2001:db8::7", "2001:db8::1", 4711, 8443, tlv=b"\x01\x00\x02h2") + GET,
                 split=True)
    e = json.loads(r.body)
    assert (e["REMOTE_ADDR"], e["REMOTE_PORT"]) == ("2001:db8::7", "4711")
    r = exchange(s.port, b"PROXY UNKNOWN\r\n" + GET)
    assert json.loads(r.body)["REMOTE_ADDR"] == "127.0.0.1"
    r = exchange(s.port, V2_LOCAL + GET)
    assert json.loads(r.body)["REMOTE_ADDR"] == "127.0.0.1"


def test_pp_asgi_client_and_server(server):
    s = server("proxy_apps:asgi", "--worker-class", "asgi", "--proxy-protocol", wait=False)
    wait_ready_pp(s)
    r = exchange(s.port, v2_header("203.0.113.9", "192.0.2.1", 5000, 443) + GET)
    v = json.loads(r.body)
    assert v["client"] == ["203.0.113.9", 5000]
    assert v["server"] == ["192.0.2.1", 443]  # where the client connected: the proxy's front


MALFORMED = [
    GET,                                                    # no header at all
    b"PROXY TCP4 203.0.113.7 192.0.2.1 56324\r\n" + GET,    # a port missing
    b"PROXY TCP4 203.0.113.7 192.0.2.1 56324 99999\r\n" + GET,  # bad port
    b"PROXY TCP4 203.0.113.7 192.0.2.1 1 2\n" + GET,         # LF without CR
    b"PROXY TCP6 203.0.113.7 192.0.2.1 1 2\r\n" + GET,       # family mismatch
    b"PROXY UNKNOWN " + b"x" * 200 + b"\r\n" + GET,          # longer than 107 bytes
    b"\r\n\r\n\x00\r\nQUIT\x0b\x21\x11\x00\x0c" + b"\x00" * 12 + GET,  # bad v2 signature
    V2_SIG + b"\x21\x11\x00\x08" + b"\x00" * 8 + GET,        # v2 length too short for INET
    V2_SIG + b"\x23\x11\x00\x0c" + b"\x00" * 12 + GET,       # v2 command 3
    V2_SIG + b"\x21\x51\x00\x0c" + b"\x00" * 12 + GET,       # v2 family 5
    v2_header("1.2.3.4", "5.6.7.8", 1, 2, tlv=b"\x01\x00\x09h2") + GET,  # TLV past the end
]


def test_pp_malformed_closed(server):
    s = server("proxy_apps:wsgi", "--proxy-protocol", wait=False)
    wait_ready_pp(s)
    for data in MALFORMED:
        assert exchange(s.port, data) is None, data[:60]
    r = exchange(s.port, b"PROXY TCP4 203.0.113.7 192.0.2.1 56324 443\r\n" + GET)
    assert json.loads(r.body)["REMOTE_ADDR"] == "203.0.113.7"  # still serving


def test_pp_untrusted_peer_and_timeout(server):
    s = server("proxy_apps:wsgi", "--proxy-protocol", "--header-timeout", "1", wait=False)
    wait_ready_pp(s)
    assert exchange(s.port, b"PROXY TCP4 203.0.113.7 192.0.2.1 1 2\r\n" + GET, src="127.0.0.2") is None
    with socket.socket() as c:  # half a header, then nothing: closed at header_timeout
        c.settimeout(10)
        c.connect(("127.0.0.1", s.port))
        c.sendall(b"PROXY TCP4 203.0")
        t0 = time.monotonic()
        assert c.recv(100) == b""
        assert 0.5 < time.monotonic() - t0 < 5


def test_pp_headers_of_the_client_not_trusted(server):
    # the PROXY header names the client; a client is no trusted proxy: its X-Forwarded-For is
    # passed through untouched
    s = server("proxy_apps:wsgi", "--proxy-protocol", wait=False)
    wait_ready_pp(s)
    r = exchange(s.port, b"PROXY TCP4 203.0.113.7 192.0.2.1 1 2\r\n"
                 b"GET / HTTP/1.1\r\nHost: a\r\nX-Forwarded-For: 6.6.6.6\r\nConnection: close\r\n\r\n")
    e = json.loads(r.body)
    assert e["REMOTE_ADDR"] == "203.0.113.7"
    assert e["HTTP_X_FORWARDED_FOR"] == "6.6.6.6"


def test_pp_per_bind(server):
    plain, pp_port = free_port(), free_port()
    s = server("proxy_apps:wsgi", "--bind", "127.0.0.1:%d" % plain, "--bind", "127.0.0.1:%d" % pp_port,
               "--proxy-protocol-bind", "127.0.0.1:%d" % pp_port, port=plain, wait=False)
    s.wait_ready()  # the plain bind (s.port) needs no header
    r = exchange(pp_port, b"PROXY TCP4 203.0.113.7 192.0.2.1 1 2\r\n" + GET)
    assert json.loads(r.body)["REMOTE_ADDR"] == "203.0.113.7"
    assert exchange(pp_port, GET) is None
    r = exchange(s.port, GET)
    assert json.loads(r.body)["REMOTE_ADDR"] == "127.0.0.1"


def test_pp_bind_must_be_a_listener():
    r = run_binary(["proxy_apps:wsgi", "--bind", "127.0.0.1:1", "--proxy-protocol-bind", "127.0.0.1:2"])
    assert r.returncode != 0
    assert "proxy_protocol_bind 127.0.0.1:2 is not one of" in r.stderr.decode()


STREAM_PROXY = """stream {
  server {
    listen 127.0.0.1:%(front)d;
    proxy_pass 127.0.0.1:%(back)d;
    proxy_protocol on;
  }
}
"""


@pytest.mark.parametrize("kind", ["wsgi", "asgi"])
def test_pp_behind_nginx_stream(server, nginx, kind):
    s = server("proxy_apps:" + kind, "--proxy-protocol",
               *(["--worker-class", "asgi"] if kind == "asgi" else []), wait=False)
    wait_ready_pp(s)
    front = free_port()
    nginx(STREAM_PROXY % {"front": front, "back": s.port}, [front], stream=True)
    _, v = get(front, src="127.0.0.2", headers=[("X-Forwarded-For", "6.6.6.6")])
    if kind == "wsgi":
        assert v["REMOTE_ADDR"] == "127.0.0.2"
        assert v["SERVER_PORT"] == str(front)  # Host: app.test:<front>
    else:
        assert v["client"][0] == "127.0.0.2"
        assert v["server"] == ["127.0.0.1", front]


def test_pp_before_tls(server, nginx, tmp_path):
    # the PROXY header comes before the TLS handshake: raw, then through nginx's stream module
    # passing TLS through (the HAProxy "mode tcp" + send-proxy deployment)
    certs = tmp_path / "certs"
    certs.mkdir()
    subprocess.run([str(REPO / "tests" / "tls" / "make_certs.sh"), str(certs)], check=True,
                   capture_output=True)
    s = server("proxy_apps:wsgi", "--certfile", str(certs / "server.pem"), "--keyfile",
               str(certs / "server.key"), "--proxy-protocol", wait=False)
    ctx = ssl.create_default_context(cafile=str(certs / "ca.pem"))

    def tls_get(port, header=b"", src="127.0.0.1"):
        with socket.socket() as raw_sock:
            raw_sock.settimeout(10)
            raw_sock.bind((src, 0))
            raw_sock.connect(("127.0.0.1", port))
            raw_sock.sendall(header)
            with ctx.wrap_socket(raw_sock, server_hostname="localhost") as t:
                t.sendall(GET)
                return HTTPReader(t, timeout=10).read_response()

    deadline = time.monotonic() + 15
    while True:
        assert s.alive(), s.describe()
        try:
            tls_get(s.port, V2_LOCAL)
            break
        except (OSError, ssl.SSLError, ConnectionClosed):
            assert time.monotonic() < deadline, s.describe()
            time.sleep(0.05)
    r = tls_get(s.port, v2_header("203.0.113.5", "192.0.2.1", 999, 443))
    e = json.loads(r.body)
    assert (e["REMOTE_ADDR"], e["wsgi.url_scheme"]) == ("203.0.113.5", "https")
    with pytest.raises((OSError, ssl.SSLError, ConnectionClosed)):
        tls_get(s.port)  # TLS without the header: closed
    front = free_port()
    nginx(STREAM_PROXY % {"front": front, "back": s.port}, [front], stream=True)
    r = tls_get(front, src="127.0.0.2")
    assert json.loads(r.body)["REMOTE_ADDR"] == "127.0.0.2"
