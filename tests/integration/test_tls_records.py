"""How many TLS records a response takes, seen from the wire: a raw socket whose bytes are cut at
the TLS record headers and fed one record at a time to Python's ssl through a MemoryBIO, so
each application-data record is told apart (TLS 1.3 sends session tickets as application-data
records too: those decrypt to no bytes). Each TLS record costs the server a wolfSSL call, an
AEAD pass and its 22-byte overhead, and the client a wakeup: a small ASGI response
(http.response.start, then one http.response.body) leaves as ONE record, and so does a WSGI
one; a streamed ASGI response's head leaves with its first body piece, and the pieces sent back to
back after it leave with the end in one more record. Apps: apps/asgi_apps.py,
apps/wsgi_apps.py."""
import socket
import ssl
import subprocess
import time

import pytest

from hbtest import REPO

CERTS_SCRIPT = REPO / "tests" / "tls" / "make_certs.sh"
APP_DATA = 23


@pytest.fixture(scope="module")
def certs(tmp_path_factory):
    d = tmp_path_factory.mktemp("certs")
    subprocess.run([str(CERTS_SCRIPT), str(d)], check=True)
    return d


class RecordClient:
    """One keep-alive HTTPS/1.1 connection whose responses are read record by record."""

    def __init__(self, port, certs):
        ctx = ssl.create_default_context(cafile=str(certs / "ca.pem"))
        ctx.set_alpn_protocols(["http/1.1"])
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.inc, self.out = ssl.MemoryBIO(), ssl.MemoryBIO()
        self.tls = ctx.wrap_bio(self.inc, self.out, server_hostname="localhost")
        self.raw = b""
        while True:
            try:
                self.tls.do_handshake()
                break
            except ssl.SSLWantReadError:
                self._send_out()
                self._recv()
        self._send_out()

    def _send_out(self):
        data = self.out.read()
        if data:
            self.sock.sendall(data)

    def _recv(self):
        data = self.sock.recv(65536)
        if not data:
            raise EOFError("connection closed")
        self.inc.write(data)

    def _record(self):
        """The next whole record from the socket: (content type, plaintext it decrypts to)."""
        while len(self.raw) < 5 or len(self.raw) < 5 + int.from_bytes(self.raw[3:5], "big"):
            data = self.sock.recv(65536)
            if not data:
                raise EOFError("connection closed")
            self.raw += data
        n = 5 + int.from_bytes(self.raw[3:5], "big")
        rec, self.raw = self.raw[:n], self.raw[n:]
        self.inc.write(rec)
        plain = b""
        while True:
            try:
                plain += self.tls.read(65536)
            except ssl.SSLWantReadError:
                break
        self._send_out()  # key updates and the like
        return rec[0], plain

    def get(self, path):
        """Sends GET path; returns (records carrying response bytes, the response bytes)."""
        self.tls.write(b"GET %s HTTP/1.1\r\nHost: localhost\r\n\r\n" % path.encode())
        self._send_out()
        got, records = b"", 0
        while not complete(got):
            ctype, plain = self._record()
            assert ctype == APP_DATA, "record type %d mid-response" % ctype
            if plain:
                records += 1
                got += plain
        return records, got

    def close(self):
        self.sock.close()


def complete(resp):
    head, sep, body = resp.partition(b"\r\n\r\n")
    if not sep:
        return False
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return len(body) >= int(value)
    return body.endswith(b"0\r\n\r\n")  # chunked


def tls_server(server, certs, app, *args):
    srv = server(app, "--certfile", str(certs / "server.pem"), "--keyfile",
                 str(certs / "server.key"), *args, wait=False)
    deadline = time.monotonic() + 15
    while True:
        try:
            return srv, RecordClient(srv.port, certs)
        except (OSError, ssl.SSLError, EOFError):
            if time.monotonic() > deadline or not srv.alive():
                raise
            time.sleep(0.05)


ROUNDS = 40


def test_asgi_start_and_body_leave_as_one_record(server, certs):
    srv, cli = tls_server(server, certs, "asgi_apps:app", "--worker-class", "asgi")
    try:
        counts = []
        for _ in range(ROUNDS):
            n, resp = cli.get("/hello")
            assert resp.startswith(b"HTTP/1.1 200") and resp.endswith(b"Hello, ASGI!"), resp
            counts.append(n)
        assert counts == [1] * ROUNDS, "records per response: %r" % counts
    finally:
        cli.close()


def test_asgi_streamed_head_leaves_with_its_first_body(server, certs):
    srv, cli = tls_server(server, certs, "asgi_apps:app", "--worker-class", "asgi")
    try:
        for _ in range(ROUNDS // 4):
            cli.tls.write(b"GET /stream?3 HTTP/1.1\r\nHost: localhost\r\n\r\n")
            cli._send_out()
            ctype, first = cli._record()
            while not first:  # a session ticket before the response
                ctype, first = cli._record()
            assert first.startswith(b"HTTP/1.1 200"), first
            assert b"chunk0" in first, "the head's record carries no body: %r" % first
            got = first
            while not got.endswith(b"0\r\n\r\n"):
                got += cli._record()[1]
            assert b"chunk2" in got
    finally:
        cli.close()


def test_wsgi_response_is_one_record(server, certs):
    srv, cli = tls_server(server, certs, "wsgi_apps:app")
    try:
        counts = [cli.get("/")[0] for _ in range(ROUNDS)]
        assert counts == [1] * ROUNDS, "records per response: %r" % counts
    finally:
        cli.close()


def test_asgi_streamed_tail_leaves_with_its_end(server, certs):
    """/stream?3: start, three pieces with more_body and an empty last body, back to back: the
    head with the first piece, then the other two with the chunked end: at most 2 records (1 when
    the io thread took it all at once; each piece alone with the end apart made 3 to 4)."""
    srv, cli = tls_server(server, certs, "asgi_apps:app", "--worker-class", "asgi")
    try:
        counts = []
        for _ in range(ROUNDS // 2):
            n, resp = cli.get("/stream?3")
            assert resp.startswith(b"HTTP/1.1 200") and resp.endswith(b"chunk2\n\r\n0\r\n\r\n"), resp
            counts.append(n)
        assert max(counts) <= 2, "records per response: %r" % counts
    finally:
        cli.close()
