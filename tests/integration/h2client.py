"""HTTP/2 client pieces the integration tests share (test_h2*.py).

Conn: a python3-h2 client connection to the server under test, prior knowledge on a plain
socket or ALPN h2 over TLS, with the read-handle-flush loop (pump), wait(cond) and flow-controlled
DATA (send_all); a test's subclass keeps its own per-stream state in on_event and says what a
failed wait shows in state().

Raw frames, for what python-h2 will not send or cannot read (floods, malformed frames, the double
GOAWAY): frame(), lit() (an HPACK literal without indexing), block() (a request's header block
of literals) and split_frames() (complete frames off the front of a byte buffer)."""
import socket
import ssl
import time

import h2.config
import h2.connection

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"


def frame(t, flags, sid, payload=b""):
    return len(payload).to_bytes(3, "big") + bytes([t, flags]) + sid.to_bytes(4, "big") + payload


def lit(name, value):
    return b"\x00" + bytes([len(name)]) + name + bytes([len(value)]) + value


def block(path=b"/hello", method=b"GET", extra=b""):
    return (lit(b":method", method) + lit(b":scheme", b"http") + lit(b":path", path) +
            lit(b":authority", b"localhost") + extra)


def split_frames(buf):
    """The complete frames at the front of buf as (type, flags, sid, payload), and the rest."""
    frames = []
    while len(buf) >= 9 and len(buf) >= 9 + int.from_bytes(buf[:3], "big"):
        n = int.from_bytes(buf[:3], "big")
        frames.append((buf[3], buf[4], int.from_bytes(buf[5:9], "big") & 0x7fffffff,
                       buf[9:9 + n]))
        buf = buf[9 + n:]
    return frames, buf


class Conn:
    """A python-h2 client connection; subclasses handle the events (on_event)."""

    STEP = 1.0  # the longest single read of wait(), seconds

    def __init__(self, port, tls_ctx=None, settings=None, header_encoding="utf-8"):
        sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        if tls_ctx:
            sock = tls_ctx.wrap_socket(sock, server_hostname="localhost")
            assert sock.selected_alpn_protocol() == "h2"
        self.sock = sock
        self.scheme = "https" if tls_ctx else "http"
        self.closed = False
        self.c = h2.connection.H2Connection(
            h2.config.H2Configuration(client_side=True, header_encoding=header_encoding))
        self.c.initiate_connection()
        if settings:
            self.c.update_settings(settings)
        self.flush()

    def on_event(self, ev):
        raise NotImplementedError

    def state(self):
        """What a failed wait() reports."""
        return None

    def flush(self):
        data = self.c.data_to_send()
        if data:
            self.sock.sendall(data)

    def pump(self, timeout=1.0):
        """Reads once (up to timeout) and handles the events. False on EOF."""
        self.sock.settimeout(timeout)
        try:
            data = self.sock.recv(65536)
        except (socket.timeout, ssl.SSLWantReadError):
            return True
        if not data:
            self.closed = True
            return False
        for ev in self.c.receive_data(data):
            self.on_event(ev)
        self.flush()
        return True

    def wait(self, cond, timeout=15.0):
        deadline = time.monotonic() + timeout
        while not cond():
            if time.monotonic() > deadline:
                raise AssertionError("timed out: %r" % (self.state(),))
            if not self.pump(min(self.STEP, max(0.05, deadline - time.monotonic()))):
                if not cond():
                    raise AssertionError("connection closed: %r" % (self.state(),))

    def headers(self, path, method="GET"):
        return [(":method", method), (":scheme", self.scheme), (":path", path),
                (":authority", "localhost")]

    def send_all(self, sid, data, step, end=False):
        """DATA on sid as the flow-control windows allow, reading `step` s while they are shut."""
        off = 0
        while off < len(data):
            room = min(self.c.local_flow_control_window(sid), self.c.max_outbound_frame_size)
            if room <= 0:
                self.pump(step)
                continue
            self.c.send_data(sid, data[off:off + room])
            off += room
            self.flush()
        if end:
            self.c.end_stream(sid)
            self.flush()

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass
