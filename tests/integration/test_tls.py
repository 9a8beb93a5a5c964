"""TLS against the real binary with real clients: curl, requests, httpx, `openssl s_client`
(ALPN, SNI, resumption, mutual TLS), python websockets over wss; a plain and a TLS listener in
one server; the handshake timeout; plaintext and garbage on the TLS port; certificate reload on
SIGHUP. Certificates come from tests/tls/make_certs.sh (made once per module, never committed).
"""
import json
import shutil
import signal
import socket
import ssl
import subprocess
import time

import pytest

from hbtest import REPO, connect, free_port

CERTS_SCRIPT = REPO / "tests" / "tls" / "make_certs.sh"
HELLO = b"GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"


@pytest.fixture(scope="module")
def certs(tmp_path_factory):
    d = tmp_path_factory.mktemp("certs")
    subprocess.run([str(CERTS_SCRIPT), str(d)], check=True)
    return d


def tls_server(server, app, *args, probe_cert=None, **kw):
    """server(...) for a server whose --bind is TLS: ready once it answers HTTPS (the suite's
    readiness probe speaks plain HTTP). probe_cert: a certificate directory whose client pair
    the probe presents (verify_client = required)."""
    srv = server(app, *args, wait=False, **kw)
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    if probe_cert:
        ctx.load_cert_chain(str(probe_cert / "client.pem"), str(probe_cert / "client.key"))
    deadline = time.monotonic() + 15
    last = None
    while time.monotonic() < deadline:
        if not srv.alive():
            pytest.fail("server exited with %s\n%s" % (srv.proc.returncode, srv.describe()))
        try:
            with socket.create_connection(("127.0.0.1", srv.port), timeout=1) as raw_sock:
                with ctx.wrap_socket(raw_sock) as s:
                    s.settimeout(10)
                    s.sendall(b"GET /ready HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
                    if s.recv(16).startswith(b"HTTP/1.1 "):
                        return srv
        except (OSError, ssl.SSLError) as e:
            last = e
        time.sleep(0.05)
    pytest.fail("server did not answer HTTPS within 15s (last: %r)\n%s" % (last, srv.describe()))


def tls_args(certs, *extra):
    return ["--certfile", str(certs / "server.pem"), "--keyfile", str(certs / "server.key"),
            *extra]


def client_ctx(certs, **kw):
    ctx = ssl.create_default_context(cafile=str(certs / "ca.pem"))
    if kw.get("alpn"):
        ctx.set_alpn_protocols(kw["alpn"])
    if kw.get("cert"):
        ctx.load_cert_chain(str(certs / (kw["cert"] + ".pem")), str(certs / (kw["cert"] + ".key")))
    if kw.get("version"):
        ctx.minimum_version = ctx.maximum_version = kw["version"]
    return ctx


def https_get(port, certs, path="/", sni="localhost", **kw):
    """One request over a TLS socket; returns (status line, headers+body bytes, ssl socket info)."""
    ctx = client_ctx(certs, **kw)
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw_sock:
        with ctx.wrap_socket(raw_sock, server_hostname=sni) as s:
            s.sendall(b"GET %s HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n" %
                      path.encode())
            data = b""
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    break
                data += chunk
            info = {"alpn": s.selected_alpn_protocol(), "version": s.version(),
                    "cipher": s.cipher()[0],
                    "subject": dict(x[0] for x in s.getpeercert()["subject"])}
    head, _, body = data.partition(b"\r\n\r\n")
    return head.split(b"\r\n")[0].decode(), body, info


def s_client(port, *args, stdin=HELLO, timeout=10):
    cmd = ["openssl", "s_client", "-connect", "127.0.0.1:%d" % port, "-ign_eof", *args]
    res = subprocess.run(cmd, input=stdin, capture_output=True, timeout=timeout)
    return res.returncode, res.stdout.decode(errors="replace") + res.stderr.decode(errors="replace")


# ---- basics ----------------------------------------------------------------------------

def test_curl_and_requests_over_https(server, certs):
    srv = tls_server(server, "tls_apps:wsgi", *tls_args(certs))
    out = subprocess.run(["curl", "-sS", "--cacert", str(certs / "ca.pem"),
                          "https://localhost:%d/x" % srv.port], capture_output=True, timeout=20)
    assert out.returncode == 0, out.stderr
    env = json.loads(out.stdout)
    assert env["wsgi.url_scheme"] == "https"
    assert env["HTTPS"] == "on"
    assert env["SSL_PROTOCOL"] == "TLSv1.3"
    assert env["SSL_CLIENT_S_DN"] is None
    import requests
    r = requests.get("https://localhost:%d/y" % srv.port, verify=str(certs / "ca.pem"), timeout=10)
    assert r.status_code == 200 and r.json()["PATH_INFO"] == "/y"
    import httpx
    with httpx.Client(verify=str(certs / "ca.pem")) as c:
        for i in range(3):  # keep-alive: several requests on one TLS connection
            assert c.get("https://localhost:%d/k%d" % (srv.port, i)).json()["PATH_INFO"] == "/k%d" % i
        big = c.get("https://localhost:%d/big" % srv.port)
        assert big.content == b"x" * 1000000


def test_tls12_and_tls13_and_old_versions_refused(server, certs):
    srv = tls_server(server, "tls_apps:wsgi", *tls_args(certs))
    status, _, info = https_get(srv.port, certs, version=ssl.TLSVersion.TLSv1_2)
    assert status.endswith("200 OK") and info["version"] == "TLSv1.2"
    assert "GCM" in info["cipher"] or "CHACHA20" in info["cipher"], info
    status, _, info = https_get(srv.port, certs, version=ssl.TLSVersion.TLSv1_3)
    assert info["version"] == "TLSv1.3"
    rc, out = s_client(srv.port, "-tls1_1", "-cipher", "DEFAULT@SECLEVEL=0")
    assert rc != 0, out
    srv.assert_alive()


def test_min_version_13(server, certs):
    srv = tls_server(server, "tls_apps:wsgi", *tls_args(certs, "--ssl-min-version", "1.3"))
    with pytest.raises(ssl.SSLError):
        https_get(srv.port, certs, version=ssl.TLSVersion.TLSv1_2)
    assert https_get(srv.port, certs)[2]["version"] == "TLSv1.3"


def test_alpn(server, certs):
    srv = tls_server(server, "tls_apps:wsgi", *tls_args(certs))
    rc, out = s_client(srv.port, "-alpn", "http/1.1")
    assert "ALPN protocol: http/1.1" in out, out
    rc, out = s_client(srv.port)
    assert "No ALPN negotiated" in out, out
    assert "HTTP/1.1 200 OK" in out, "no ALPN means HTTP/1.1"
    rc, out = s_client(srv.port, "-alpn", "spdy/3")
    assert "HTTP/1.1 200" not in out and rc != 0, out
    _, _, info = https_get(srv.port, certs, alpn=["http/1.1"])
    assert info["alpn"] == "http/1.1"


def test_alpn_h2_serves_http2_over_tls(server, certs):
    srv = tls_server(server, "tls_apps:wsgi", *tls_args(certs))
    with socket.create_connection(("127.0.0.1", srv.port), timeout=10) as raw_sock:
        with client_ctx(certs, alpn=["h2", "http/1.1"]).wrap_socket(
                raw_sock, server_hostname="localhost") as s:
            assert s.selected_alpn_protocol() == "h2"
    res = subprocess.run(["curl", "-sS", "--http2", "--cacert", str(certs / "ca.pem"),
                          "--resolve", "localhost:%d:127.0.0.1" % srv.port,
                          "-o", "/dev/null", "-w", "%{http_version} %{http_code}",
                          "https://localhost:%d/" % srv.port],
                         capture_output=True, timeout=20)
    assert res.stdout.decode() == "2 200", res.stdout + res.stderr
    # http_version = h1: h2 is not offered, the same client gets HTTP/1.1
    srv1 = tls_server(server, "tls_apps:wsgi", *tls_args(certs, "--http-version", "h1"))
    rc, out = s_client(srv1.port, "-alpn", "h2,http/1.1")
    assert "ALPN protocol: http/1.1" in out, out


def test_sni_picks_the_pair(server, certs, tmp_path):
    conf = tmp_path / "hb.toml"
    conf.write_text("certfile = '%s'\nkeyfile = '%s'\n\n[[tls.certificate]]\n"
                    "server_name = 'other.test'\ncertfile = '%s'\nkeyfile = '%s'\n" % (
                        certs / "server.pem", certs / "server.key", certs / "other.pem",
                        certs / "other.key"))
    srv = tls_server(server, "tls_apps:wsgi", "--config", str(conf))
    assert https_get(srv.port, certs, sni="other.test")[2]["subject"]["commonName"] == "other.test"
    assert https_get(srv.port, certs, sni="localhost")[2]["subject"]["commonName"] == "localhost"
    rc, out = s_client(srv.port, "-servername", "other.test")
    assert "CN = other.test" in out or "CN=other.test" in out, out
    rc, out = s_client(srv.port, "-noservername")
    assert "CN = localhost" in out or "CN=localhost" in out, out


@pytest.mark.parametrize("version", ["-tls1_2", "-tls1_3"])
def test_resumption_with_s_client(server, certs, tmp_path, version):
    srv = tls_server(server, "tls_apps:wsgi", *tls_args(certs), "--workers", "2")
    sess = tmp_path / "sess.pem"
    rc, out = s_client(srv.port, version, "-sess_out", str(sess))
    assert "HTTP/1.1 200 OK" in out and sess.exists(), out
    reused = 0
    for _ in range(4):  # connections land on any io thread: tickets are shared
        rc, out = s_client(srv.port, version, "-sess_in", str(sess))
        assert "HTTP/1.1 200 OK" in out, out
        reused += "Reused, TLS" in out
    assert reused == 4, out


def test_mutual_tls(server, certs):
    srv = tls_server(server, "tls_apps:wsgi", *tls_args(certs, "--cacertfile", str(certs / "ca.pem"),
                                                        "--verify-client", "required"),
                     probe_cert=certs)
    _, body, _ = https_get(srv.port, certs, cert="client")
    env = json.loads(body)
    assert "CN=client.test" in env["SSL_CLIENT_S_DN"], env
    assert env["SSL_CLIENT_CERT"].startswith("-----BEGIN CERTIFICATE-----")
    for cert in (None, "rogue"):
        with pytest.raises((ssl.SSLError, ConnectionError)):
            https_get(srv.port, certs, cert=cert)
    rc, out = s_client(srv.port, "-cert", str(certs / "client.pem"), "-key",
                       str(certs / "client.key"))
    assert "HTTP/1.1 200 OK" in out, out
    srv.assert_alive()


def test_mutual_tls_optional(server, certs):
    srv = tls_server(server, "tls_apps:wsgi", *tls_args(certs, "--cacertfile", str(certs / "ca.pem"),
                                            "--verify-client", "optional"))
    assert json.loads(https_get(srv.port, certs)[1])["SSL_CLIENT_S_DN"] is None
    assert "client.test" in json.loads(https_get(srv.port, certs, cert="client")[1])["SSL_CLIENT_S_DN"]


def test_plain_and_tls_listeners_in_one_server(server, certs):
    tls_port = free_port()
    srv = server("tls_apps:wsgi", *tls_args(certs, "--ssl-bind", "127.0.0.1:%d" % tls_port))
    with connect(srv.port) as s:
        s.sendall(HELLO)
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    env = json.loads(data.partition(b"\r\n\r\n")[2])
    assert env["wsgi.url_scheme"] == "http" and env["HTTPS"] is None
    env = json.loads(https_get(tls_port, certs)[1])
    assert env["wsgi.url_scheme"] == "https"
    assert env["SERVER_PORT"] == "443", "Host without a port: the https default"


# ---- hostile clients -------------------------------------------------------------------

def test_handshake_timeout_closes_a_silent_client(server, certs):
    srv = tls_server(server, "tls_apps:wsgi", *tls_args(certs, "--ssl-handshake-timeout", "1"))
    with connect(srv.port, timeout=10) as s:
        t0 = time.monotonic()
        assert s.recv(100) == b""  # closed without a byte from us
        took = time.monotonic() - t0
    assert 0.5 < took < 5, took
    with connect(srv.port, timeout=10) as s:  # half a ClientHello, then silence
        s.sendall(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03")
        t0 = time.monotonic()
        while s.recv(100):
            pass
        assert time.monotonic() - t0 < 5
    assert https_get(srv.port, certs)[0].endswith("200 OK")


def test_plaintext_http_on_the_tls_port_gets_an_alert_or_close(server, certs):
    srv = tls_server(server, "tls_apps:wsgi", *tls_args(certs))
    with connect(srv.port, timeout=10) as s:
        s.sendall(HELLO)
        data = b""
        try:
            while chunk := s.recv(4096):
                data += chunk
        except ConnectionResetError:
            pass
    assert b"HTTP/1.1" not in data
    assert data == b"" or data[0] == 0x15, data  # nothing, or a TLS alert record
    assert https_get(srv.port, certs)[0].endswith("200 OK")


def test_garbage_and_aborted_handshakes_do_not_hurt(server, certs):
    srv = tls_server(server, "tls_apps:wsgi", *tls_args(certs))
    import random
    rnd = random.Random(5)
    for i in range(30):
        with connect(srv.port, timeout=10) as s:
            junk = bytes(rnd.getrandbits(8) for _ in range(rnd.randint(1, 3000)))
            if i % 2:
                junk = b"\x16\x03\x01" + junk
            try:
                s.sendall(junk)
                if i % 3 == 0:
                    continue  # abort: close right away
                s.shutdown(socket.SHUT_WR)  # a partial record would wait for the timeout
                while s.recv(4096):
                    pass
            except (ConnectionResetError, BrokenPipeError):
                pass
    assert https_get(srv.port, certs)[0].endswith("200 OK")
    srv.assert_alive()


# ---- ASGI and WebSocket ----------------------------------------------------------------

def test_asgi_scope_and_tls_extension(server, certs):
    srv = tls_server(server, "tls_apps:asgi", "--worker-class", "asgi",
                 *tls_args(certs, "--cacertfile", str(certs / "ca.pem"), "--verify-client",
                           "optional"))
    body = json.loads(https_get(srv.port, certs, cert="client", version=ssl.TLSVersion.TLSv1_3)[1])
    assert body["scheme"] == "https"
    tls = body["tls"]
    assert tls["tls_version"] == 0x0304
    assert tls["cipher_suite"] in (0x1301, 0x1302, 0x1303)
    assert "CN=client.test" in tls["client_cert_name"]
    assert tls["client_cert_chain"][0].startswith("-----BEGIN CERTIFICATE-----")
    assert tls["client_cert_error"] is None and tls["server_cert"] is None
    body = json.loads(https_get(srv.port, certs, version=ssl.TLSVersion.TLSv1_2)[1])
    assert body["tls"]["tls_version"] == 0x0303 and body["tls"]["client_cert_chain"] == []


def test_websocket_over_wss(server, certs):
    import asyncio
    import websockets
    srv = tls_server(server, "tls_apps:asgi", "--worker-class", "asgi", *tls_args(certs))

    async def go():
        async with websockets.connect("wss://localhost:%d/ws" % srv.port,
                                      ssl=client_ctx(certs)) as ws:
            hello = json.loads(await ws.recv())
            assert hello["scheme"] == "wss" and hello["tls"]["tls_version"] in (0x0303, 0x0304)
            for msg in ("a", "b" * 70000):
                await ws.send(msg)
                assert await ws.recv() == msg
    asyncio.run(go())


# ---- reload ----------------------------------------------------------------------------

def test_sighup_reloads_certificates_and_keeps_the_old_on_error(server, certs, tmp_path):
    cert, key = tmp_path / "live.pem", tmp_path / "live.key"
    shutil.copy(certs / "server.pem", cert)
    shutil.copy(certs / "server.key", key)
    srv = tls_server(server, "tls_apps:wsgi", "--certfile", str(cert), "--keyfile", str(key))
    assert https_get(srv.port, certs, sni="localhost")[2]["subject"]["commonName"] == "localhost"
    ctx = client_ctx(certs)
    held = ctx.wrap_socket(socket.create_connection(("127.0.0.1", srv.port), timeout=10),
                           server_hostname="localhost")  # an open connection across reloads

    shutil.copy(certs / "other.pem", cert)
    shutil.copy(certs / "other.key", key)
    srv.signal(signal.SIGHUP)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            if https_get(srv.port, certs, sni="other.test")[2]["subject"]["commonName"] == "other.test":
                break
        except ssl.SSLCertVerificationError:  # still the old certificate: not reloaded yet
            pass
        time.sleep(0.1)
    else:
        pytest.fail("the new certificate was not served\n" + srv.describe())

    cert.write_text("not a certificate\n")
    errors_before = len(srv.error_lines())
    srv.signal(signal.SIGHUP)
    deadline = time.monotonic() + 10
    while len(srv.error_lines()) == errors_before and time.monotonic() < deadline:
        time.sleep(0.1)
    assert any(str(cert) in l for l in srv.error_lines()), srv.describe()
    assert https_get(srv.port, certs, sni="other.test")[2]["subject"]["commonName"] == "other.test"

    held.sendall(HELLO)  # the connection from before both reloads still works
    data = b""
    while chunk := held.recv(65536):
        data += chunk
    held.close()
    assert data.startswith(b"HTTP/1.1 200 OK")
    srv.assert_alive()


# ---- frameworks over TLS ---------------------------------------------------------------

def test_flask_over_https(server, certs):
    import requests
    from hbtest import EXAMPLES
    srv = tls_server(server, "app:app", *tls_args(certs), pythonpath=[EXAMPLES / "flask_app"])
    base = "https://localhost:%d" % srv.port
    ca = str(certs / "ca.pem")  # per request: REQUESTS_CA_BUNDLE would override a session's
    with requests.Session() as sess:
        assert "Hello from Flask" in sess.get(base + "/", timeout=10, verify=ca).text
        r = sess.post(base + "/echo", json={"a": [1, 2]}, timeout=10, verify=ca)
        assert r.json()["received"] == {"a": [1, 2]}
        r = sess.get(base + "/info?q=1", timeout=10, verify=ca)
        assert r.json()["args"] == {"q": "1"}


def test_starlette_over_https_and_wss(server, certs):
    import asyncio
    import httpx
    import websockets
    srv = tls_server(server, "asgi_starlette:app", "--worker-class", "asgi", *tls_args(certs))
    with httpx.Client(verify=str(certs / "ca.pem"), base_url="https://localhost:%d" % srv.port) as c:
        assert c.get("/").text == "Hello, Starlette!"
        assert c.get("/items/7?q=z").json()["id"] == 7
        assert c.post("/json", json={"k": "v"}).json()["got"] == {"k": "v"}
        assert c.get("/stream").text == "".join("line %d\n" % i for i in range(5))

    async def ws():
        async with websockets.connect("wss://localhost:%d/ws" % srv.port,
                                      ssl=client_ctx(certs)) as w:
            await w.send("hi")
            assert await w.recv() == "hi"
            await w.send(b"\x00\x01")
            assert await w.recv() == b"\x00\x01"
    asyncio.run(ws())
    assert not srv.error_lines(), srv.describe()
