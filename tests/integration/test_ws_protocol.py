"""WebSocket at the frame level against the real server (raw sockets, no client library to
smooth things over): CONFORMANCE.md's protocol errors (1002, 1007, 1009), handshake refusals
(400, 426), and the io thread's timers: websocket_ping_interval/ping_timeout close a peer that
never answers pings, websocket_timeout closes an idle socket with 1001, websocket_deflate off
negotiates no extension. App: apps/asgi_apps.py, /ws/echo."""
import os
import socket
import struct
import time

from hbtest import connect

KEY = b"dGhlIHNhbXBsZSBub25jZQ=="


def handshake(port, extra=b"", version=b"13", key=KEY, path=b"/ws/echo"):
    """Sends an upgrade request; returns (socket, response head bytes, bytes after the head)."""
    s = connect(port)
    req = (b"GET " + path + b" HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
           b"Connection: Upgrade\r\n" + (b"Sec-WebSocket-Key: " + key + b"\r\n" if key else b"") +
           b"Sec-WebSocket-Version: " + version + b"\r\n" + extra + b"\r\n")
    s.sendall(req)
    buf = b""
    while b"\r\n\r\n" not in buf:
        d = s.recv(4096)
        if not d:
            break
        buf += d
    head, _, rest = buf.partition(b"\r\n\r\n")
    return s, head, rest


def frame(opcode, payload, mask=True, fin=True, rsv=0):
    b0 = (0x80 if fin else 0) | (rsv << 4) | opcode
    n = len(payload)
    if n < 126:
        hdr = struct.pack("!BB", b0, (0x80 if mask else 0) | n)
    elif n < 65536:
        hdr = struct.pack("!BBH", b0, (0x80 if mask else 0) | 126, n)
    else:
        hdr = struct.pack("!BBQ", b0, (0x80 if mask else 0) | 127, n)
    if not mask:
        return hdr + payload
    key = os.urandom(4)
    return hdr + key + bytes(c ^ key[i & 3] for i, c in enumerate(payload))


class Reader:
    def __init__(self, sock, buf=b""):
        self.s, self.buf = sock, buf

    def _need(self, n, timeout):
        self.s.settimeout(timeout)
        while len(self.buf) < n:
            d = self.s.recv(65536)
            if not d:
                raise EOFError("connection closed")
            self.buf += d

    def frame(self, timeout=5.0):
        """(opcode, payload) of the next server frame (unmasked, as servers send)."""
        self._need(2, timeout)
        op, n = self.buf[0] & 0x0F, self.buf[1] & 0x7F
        h = 2
        if n == 126:
            self._need(4, timeout)
            n, h = struct.unpack("!H", self.buf[2:4])[0], 4
        elif n == 127:
            self._need(10, timeout)
            n, h = struct.unpack("!Q", self.buf[2:10])[0], 10
        self._need(h + n, timeout)
        payload, self.buf = self.buf[h:h + n], self.buf[h + n:]
        return op, payload

    def close_code(self, timeout=5.0):
        """Reads frames until a close frame; returns its code."""
        while True:
            op, payload = self.frame(timeout)
            if op == 0x8:
                return struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else None


def opened(port, **kw):
    s, head, rest = handshake(port, **kw)
    assert head.startswith(b"HTTP/1.1 101"), head
    return s, Reader(s, rest)


def asgi(server, *args):
    return server("asgi_apps:app", "--worker-class", "asgi", *args)


def test_echo_then_protocol_errors(server):
    srv = asgi(server)
    s, r = opened(srv.port)
    s.sendall(frame(0x1, b"hello"))
    assert r.frame() == (0x1, b"hello")
    s.sendall(frame(0x1, b"x", mask=False))  # clients must mask
    assert r.close_code() == 1002
    s.close()

    s, r = opened(srv.port)
    s.sendall(frame(0x1, b"\xc3\x28"))  # invalid UTF-8 in a text message
    assert r.close_code() == 1007
    s.close()

    s, r = opened(srv.port)
    s.sendall(frame(0x1, "é".encode()[:1], fin=False) + frame(0x0, b"\xff"))  # split and bad
    assert r.close_code() == 1007
    s.close()

    for bad in (frame(0x3, b"x"), frame(0x9, b"p" * 126), frame(0x9, b"p", fin=False),
                frame(0x0, b"stray"), frame(0x1, b"x", rsv=4), frame(0x8, b"\x03")):
        s, r = opened(srv.port)
        s.sendall(bad)
        assert r.close_code() == 1002, bad[:4]
        s.close()

    s, r = opened(srv.port)  # the server still serves after all that
    s.sendall(frame(0x2, b"\x00\x01"))
    assert r.frame() == (0x2, b"\x00\x01")
    s.close()


def test_message_over_max_frame_size_is_1009(server):
    srv = asgi(server, "--websocket-max-frame-size", "1000")
    s, r = opened(srv.port)
    s.sendall(frame(0x2, b"a" * 1000))
    assert r.frame() == (0x2, b"a" * 1000)
    s.sendall(frame(0x2, b"a" * 2000))
    assert r.close_code() == 1009
    s.close()
    s, r = opened(srv.port)  # fragments adding up past the limit
    s.sendall(frame(0x2, b"a" * 600, fin=False) + frame(0x0, b"a" * 600))
    assert r.close_code() == 1009
    s.close()


def test_handshake_refusals(server):
    srv = asgi(server)
    s, head, _ = handshake(srv.port, version=b"8")
    assert head.startswith(b"HTTP/1.1 426") and b"Sec-WebSocket-Version: 13" in head, head
    s.close()
    s, head, _ = handshake(srv.port, key=None)
    assert head.startswith(b"HTTP/1.1 400"), head
    s.close()
    s, head, _ = handshake(srv.port, key=b"c2hvcnQ=")  # base64 of 5 bytes, not 16
    assert head.startswith(b"HTTP/1.1 400"), head
    s.close()


def test_deflate_can_be_turned_off(server):
    offer = b"Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n"
    on = asgi(server)
    s, head, _ = handshake(on.port, extra=offer)
    assert b"permessage-deflate" in head.lower(), head
    s.close()
    off = asgi(server, "--no-websocket-deflate")
    s, head, _ = handshake(off.port, extra=offer)
    assert head.startswith(b"HTTP/1.1 101") and b"permessage-deflate" not in head.lower(), head
    s.close()


def test_peer_that_never_answers_pings_is_closed(server):
    srv = asgi(server, "--websocket-ping-interval", "1", "--websocket-ping-timeout", "1")
    s, r = opened(srv.port)
    t0 = time.monotonic()
    op, _ = r.frame(timeout=4)
    assert op == 0x9, "expected a server ping after 1 s of silence, got opcode %d" % op
    try:  # never answer: the server gives up after the ping timeout
        while True:
            r.frame(timeout=5)
    except (EOFError, ConnectionResetError):
        pass
    took = time.monotonic() - t0
    assert 1.5 < took < 5.0, "closed after %.2fs (ping 1 s + timeout 1 s)" % took


def test_pong_keeps_the_socket_open(server):
    srv = asgi(server, "--websocket-ping-interval", "1", "--websocket-ping-timeout", "1")
    s, r = opened(srv.port)
    deadline = time.monotonic() + 3.5
    while time.monotonic() < deadline:
        op, payload = r.frame(timeout=4)
        if op == 0x9:
            s.sendall(frame(0xA, payload))
    s.sendall(frame(0x1, b"still here"))
    while True:
        op, payload = r.frame(timeout=4)
        if op == 0x1:
            assert payload == b"still here"
            break


def test_idle_socket_closed_by_websocket_timeout(server):
    srv = asgi(server, "--websocket-timeout", "1", "--websocket-ping-interval", "0")
    s, r = opened(srv.port)
    t0 = time.monotonic()
    assert r.close_code(timeout=5) == 1001
    assert time.monotonic() - t0 < 3.5
    s.close()
