"""WebSocket over HTTP/2 (RFC 8441 extended CONNECT) against the real server, with python3-h2 as
the HTTP/2 client and wsproto for the (masked) client frames: the SETTINGS, echo of text and
binary over h2c and over TLS with ALPN h2, permessage-deflate, subprotocols, denials (ASGI close
before accept, a WSGI app that knows no WebSocket, a wrong version), close codes both ways,
RST_STREAM and END_STREAM as disconnects for the app, many WebSocket streams next to plain
requests on one connection, flow control of a slow reader, malformed extended CONNECTs, and
the per-stream pings (websocket_ping_interval/ping_timeout: a silent stream is reset, its
neighbour that answers pongs lives on).
Apps: apps/asgi_apps.py (ws_app under /ws/), apps/wsgi_apps.py."""
import socket
import ssl
import subprocess
import time

import h2.events
import h2.settings
import pytest
from wsproto.extensions import PerMessageDeflate
from wsproto.frame_protocol import CloseReason, FrameProtocol, Opcode

import h2client
from hbtest import REPO, wait_for

ENABLE_CONNECT_PROTOCOL = 0x8
PROTOCOL_ERROR = 0x1
CERTS_SCRIPT = REPO / "tests" / "tls" / "make_certs.sh"


class Client(h2client.Conn):
    """An HTTP/2 client connection (prior knowledge, or a TLS socket) with WebSocket streams."""

    STEP = 0.2

    def __init__(self, port, tls_ctx=None):
        super().__init__(port, tls_ctx)
        self.remote_settings = {}
        self.streams = {}  # sid -> dict(status, headers, data, ended, reset, frames, proto)
        self.goaway = None
        self.wait(lambda: ENABLE_CONNECT_PROTOCOL in self.remote_settings or
                  h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS in self.remote_settings)

    def on_event(self, ev):
        if isinstance(ev, h2.events.RemoteSettingsChanged):
            for k, v in ev.changed_settings.items():
                self.remote_settings[int(k)] = v.new_value
        elif isinstance(ev, h2.events.ResponseReceived):
            st = self.streams[ev.stream_id]
            st["headers"] = dict(ev.headers)
            st["status"] = int(st["headers"][":status"])
            ext = st["headers"].get("sec-websocket-extensions")
            if st["proto"] is not None and ext:  # negotiated: frames are compressed now
                pmd = PerMessageDeflate()
                pmd.finalize(ext)
                st["proto"] = FrameProtocol(client=True, extensions=[pmd])
        elif isinstance(ev, h2.events.DataReceived):
            st = self.streams[ev.stream_id]
            st["data"] += ev.data
            if st["proto"] is not None and st["status"] == 200:
                st["proto"].receive_bytes(ev.data)
                for f in st["proto"].received_frames():  # pieces: join each message's
                    if st["partial"] is None:
                        st["partial"] = f
                    else:
                        st["partial"] = f._replace(payload=st["partial"].payload + f.payload)
                    if f.message_finished or f.opcode == Opcode.CLOSE:
                        st["frames"].append(st["partial"])
                        st["partial"] = None
            if st["ack"]:
                self.c.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
            elif ev.flow_controlled_length:  # credit the connection, not the stream
                st["unacked"] += ev.flow_controlled_length
                self.c.increment_flow_control_window(ev.flow_controlled_length)
        elif isinstance(ev, h2.events.StreamEnded):
            self.streams[ev.stream_id]["ended"] = True
        elif isinstance(ev, h2.events.StreamReset):
            if ev.stream_id in self.streams:
                self.streams[ev.stream_id]["reset"] = ev.error_code
        elif isinstance(ev, h2.events.ConnectionTerminated):
            self.goaway = ev.error_code

    def state(self):
        return ({k: (v["status"], v["ended"], v["reset"], len(v["frames"]))
                 for k, v in self.streams.items()}, self.goaway)

    def _new(self, sid, ws):
        proto = FrameProtocol(client=True, extensions=[]) if ws else None
        self.streams[sid] = {"status": None, "headers": {}, "data": bytearray(), "ended": False,
                             "reset": None, "frames": [], "proto": proto, "ack": True,
                             "unacked": 0, "partial": None}
        return self.streams[sid]

    def connect_ws(self, path, headers=(), protocol="websocket", deflate=False, pseudo=None):
        sid = self.c.get_next_available_stream_id()
        hdrs = pseudo if pseudo is not None else [
            (":method", "CONNECT"), (":protocol", protocol), (":scheme", self.scheme),
            (":path", path), (":authority", "localhost")]
        hdrs = hdrs + [("sec-websocket-version", "13")] + list(headers)
        if deflate:
            hdrs.append(("sec-websocket-extensions", "permessage-deflate"))
        self._new(sid, True)
        self.c.send_headers(sid, hdrs)
        self.flush()
        return sid

    def wait_status(self, sid):
        st = self.streams[sid]
        self.wait(lambda: st["status"] is not None or st["reset"] is not None)
        return st

    def get(self, path):
        sid = self.c.get_next_available_stream_id()
        self._new(sid, False)
        self.c.send_headers(sid, self.headers(path), end_stream=True)
        self.flush()
        return sid

    def send_text(self, sid, text):
        self.send_frame(sid, self.streams[sid]["proto"].send_data(text, fin=True))

    def send_bytes(self, sid, data):
        self.send_frame(sid, self.streams[sid]["proto"].send_data(data, fin=True))

    def send_frame(self, sid, out):
        self.send_all(sid, out, 0.2)

    def send_close(self, sid, code=1000, reason="", end=True):
        self.c.send_data(sid, self.streams[sid]["proto"].close(code, reason), end_stream=end)
        self.flush()

    def messages(self, sid):
        return [f for f in self.streams[sid]["frames"]
                if f.opcode in (Opcode.TEXT, Opcode.BINARY)]

    def close_frame(self, sid):
        for f in self.streams[sid]["frames"]:
            if f.opcode == Opcode.CLOSE:
                return f
        return None

    def recv_message(self, sid, n=1, timeout=15.0):
        self.wait(lambda: len(self.messages(sid)) >= n, timeout)
        return self.messages(sid)[n - 1].payload


@pytest.fixture(scope="module")
def asrv(module_server_factory, tmp_path_factory):
    d = tmp_path_factory.mktemp("h2ws")
    s = module_server_factory("asgi_apps:app", "--worker-class", "asgi", "--workers", "2",
                              env={"HB_DISCONNECT_LOG": str(d / "disc.log")})
    s.disc_log = d / "disc.log"
    return s


@pytest.fixture
def cli(asrv):
    asrv.assert_alive()
    c = Client(asrv.port)
    yield c
    c.close()
    asrv.assert_alive()


def disconnects(srv):
    try:
        return srv.disc_log.read_text().split("\n")
    except FileNotFoundError:
        return []


def test_settings_enable_connect_protocol(cli):
    assert cli.remote_settings.get(ENABLE_CONNECT_PROTOCOL) == 1


def test_echo_text_and_binary_h2c(cli):
    sid = cli.connect_ws("/ws/echo")
    st = cli.wait_status(sid)
    assert st["status"] == 200, st
    assert st["headers"].get("x-ws") == "yes"
    assert "sec-websocket-accept" not in st["headers"]
    cli.send_text(sid, "hello \u00e9\U0001F600")
    assert cli.recv_message(sid) == "hello \u00e9\U0001F600"
    blob = bytes(range(256)) * 1024  # 256 KiB: more than the stream windows both ways
    cli.send_bytes(sid, blob)
    assert cli.recv_message(sid, 2) == blob
    cli.send_close(sid, 1000)
    cli.wait(lambda: st["ended"])
    assert cli.close_frame(sid).payload[0] == 1000
    assert st["reset"] is None


def test_scope_is_a_websocket_scope_over_http2(cli):
    sid = cli.connect_ws("/ws/scope?a=1", headers=[("sec-websocket-protocol", "chat, v2")])
    st = cli.wait_status(sid)
    assert st["status"] == 200
    assert st["headers"].get("sec-websocket-protocol") == "chat"
    import json
    scope = json.loads(cli.recv_message(sid))
    assert scope["type"] == "websocket"
    assert scope["http_version"] == "2"
    assert scope["scheme"] == "ws"
    assert scope["path"] == "/ws/scope"
    assert scope["query_string"] == "a=1"
    assert scope["subprotocols"] == ["chat", "v2"]
    cli.send_close(sid)
    cli.wait(lambda: st["ended"])


def test_permessage_deflate(cli):
    sid = cli.connect_ws("/ws/echo", deflate=True)
    st = cli.wait_status(sid)
    assert st["status"] == 200
    assert "permessage-deflate" in st["headers"].get("sec-websocket-extensions", "")
    text = "compress me " * 2000
    cli.send_text(sid, text)
    assert cli.recv_message(sid) == text
    assert len(st["data"]) < len(text) // 4, "the reply went out compressed"
    cli.send_close(sid)
    cli.wait(lambda: st["ended"])


def test_app_close_code_reaches_the_client(cli):
    sid = cli.connect_ws("/ws/close")
    st = cli.wait_status(sid)
    assert st["status"] == 200
    cli.wait(lambda: cli.close_frame(sid) is not None)
    f = cli.close_frame(sid)
    assert f.payload[0] == 4001 and f.payload[1] == "app says bye"
    cli.send_close(sid, 4001)
    cli.wait(lambda: st["ended"])


def test_client_close_code_reaches_the_app(asrv, cli):
    sid = cli.connect_ws("/ws/echo")
    assert cli.wait_status(sid)["status"] == 200
    cli.send_close(sid, 4321, "bye")
    cli.wait(lambda: cli.streams[sid]["ended"])
    assert cli.close_frame(sid).payload[0] == 4321, "the code is echoed"
    wait_for(lambda: "ws-disconnect 4321" in disconnects(asrv), timeout=10)


def test_app_error_after_accept_closes_1011(cli):
    sid = cli.connect_ws("/ws/raise")
    assert cli.wait_status(sid)["status"] == 200
    cli.wait(lambda: cli.close_frame(sid) is not None)
    assert cli.close_frame(sid).payload[0] == 1011


def test_denials(cli):
    sid = cli.connect_ws("/ws/deny")
    st = cli.wait_status(sid)
    assert st["status"] == 403
    sid = cli.connect_ws("/ws/deny-http")
    st = cli.wait_status(sid)
    cli.wait(lambda: st["ended"])
    assert st["status"] == 401 and bytes(st["data"]) == b"no entry"
    # a version other than 13: 426 naming the one we speak, without the app
    sid = cli.c.get_next_available_stream_id()
    cli._new(sid, True)
    cli.c.send_headers(sid, [(":method", "CONNECT"), (":protocol", "websocket"),
                             (":scheme", "http"), (":path", "/ws/echo"),
                             (":authority", "localhost"), ("sec-websocket-version", "8")])
    cli.flush()
    st = cli.wait_status(sid)
    assert st["status"] == 426 and st["headers"]["sec-websocket-version"] == "13"
    # a protocol we do not speak
    sid = cli.connect_ws("/ws/echo", protocol="not-websocket")
    assert cli.wait_status(sid)["status"] == 501
    # the connection goes on
    sid = cli.get("/hello")
    cli.wait(lambda: cli.streams[sid]["ended"])
    assert cli.streams[sid]["status"] == 200


def test_rst_stream_is_a_disconnect_for_the_app(asrv, cli):
    before = disconnects(asrv).count("ws-disconnect 1006")
    sid = cli.connect_ws("/ws/echo")
    assert cli.wait_status(sid)["status"] == 200
    cli.send_text(sid, "x")
    assert cli.recv_message(sid) == "x"
    cli.c.reset_stream(sid, 0x8)  # CANCEL
    cli.flush()
    wait_for(lambda: disconnects(asrv).count("ws-disconnect 1006") > before, timeout=10)
    sid = cli.get("/hello")
    cli.wait(lambda: cli.streams[sid]["ended"])


def test_end_stream_without_close_is_a_disconnect(asrv, cli):
    before = disconnects(asrv).count("ws-disconnect 1006")
    sid = cli.connect_ws("/ws/echo")
    assert cli.wait_status(sid)["status"] == 200
    cli.send_text(sid, "last words")
    cli.c.end_stream(sid)
    cli.flush()
    cli.wait(lambda: cli.streams[sid]["ended"])
    assert cli.recv_message(sid) == "last words", "messages before the end reach the app"
    wait_for(lambda: disconnects(asrv).count("ws-disconnect 1006") > before, timeout=10)


def test_many_websockets_and_requests_on_one_connection(cli):
    sids = [cli.connect_ws("/ws/echo") for _ in range(20)]
    gets = [cli.get("/hello") for _ in range(10)]
    for sid in sids:
        assert cli.wait_status(sid)["status"] == 200
    for i, sid in enumerate(sids):
        cli.send_text(sid, "stream %d" % i)
    for i, sid in enumerate(sids):
        assert cli.recv_message(sid) == "stream %d" % i
    for sid in gets:
        cli.wait(lambda: cli.streams[sid]["ended"])
        assert cli.streams[sid]["status"] == 200
    for sid in sids:
        cli.send_close(sid)
    cli.wait(lambda: all(cli.streams[s]["ended"] for s in sids))


def test_a_slow_reader_stalls_only_its_own_stream(cli):
    # /ws/flood sends 20 MiB; the client credits nothing on that stream: the server must stop
    # at the stream's window while an echo stream on the same connection keeps working.
    flood = cli.connect_ws("/ws/flood?20")
    cli.streams[flood]["ack"] = False
    assert cli.wait_status(flood)["status"] == 200
    # the flood has filled most of its window before the echo starts (under ASan on a loaded
    # machine the app may not have sent anything yet when the echo is done)
    cli.wait(lambda: cli.streams[flood]["unacked"] >= 32768, timeout=30)
    echo = cli.connect_ws("/ws/echo")
    assert cli.wait_status(echo)["status"] == 200
    for i in range(5):
        cli.send_text(echo, "ping %d" % i)
        assert cli.recv_message(echo, i + 1) == "ping %d" % i
    got = len(cli.streams[flood]["data"])
    assert got <= 65535 + 16384, "the flood respected the stream window (%d)" % got
    cli.c.increment_flow_control_window(cli.streams[flood]["unacked"], flood)
    cli.streams[flood]["ack"] = True
    cli.flush()
    cli.wait(lambda: cli.close_frame(flood) is not None, timeout=60)
    assert sum(len(m.payload) for m in cli.messages(flood)) == 20 << 20
    cli.send_close(echo)
    cli.send_close(flood)


@pytest.mark.parametrize("pseudo", [
    [(":method", "CONNECT"), (":protocol", "websocket"), (":scheme", "http"),
     (":authority", "localhost")],                                   # no :path
    [(":method", "CONNECT"), (":protocol", "websocket"), (":path", "/ws/echo"),
     (":authority", "localhost")],                                   # no :scheme
    [(":method", "GET"), (":protocol", "websocket"), (":scheme", "http"), (":path", "/"),
     (":authority", "localhost")],                                   # :protocol without CONNECT
])
def test_malformed_extended_connect_is_reset(asrv, pseudo):
    assert raw_headers_reset(asrv, pseudo + [("sec-websocket-version", "13")]) == PROTOCOL_ERROR


def test_plain_connect_stays_refused(asrv):
    # a tunnel (no :protocol) is not served: PROTOCOL_ERROR, as before RFC 8441 support
    assert raw_headers_reset(asrv, [(":method", "CONNECT"),
                                    (":authority", "example.org:443")]) == PROTOCOL_ERROR


def raw_headers_reset(srv, fields):
    """Sends one HEADERS frame with fields (python-h2 refuses to send malformed ones itself)
    and returns the RST_STREAM code the server answers with."""
    cli = Client(srv.port)
    try:
        sid = 1
        block = cli.c.encoder.encode(fields)
        hdr = len(block).to_bytes(3, "big") + bytes([0x1, 0x4]) + sid.to_bytes(4, "big")
        cli.sock.sendall(hdr + block)
        deadline = time.monotonic() + 10
        buf = b""
        while time.monotonic() < deadline:
            cli.sock.settimeout(1)
            try:
                data = cli.sock.recv(65536)
            except socket.timeout:
                continue
            assert data, "connection closed"
            buf += data
            rst = _find_rst(buf, sid)
            if rst is not None:
                return rst
        raise AssertionError("no RST_STREAM")
    finally:
        cli.close()


def _find_rst(data, sid):
    off = 0
    while off + 9 <= len(data):
        n = int.from_bytes(data[off:off + 3], "big")
        typ, s = data[off + 3], int.from_bytes(data[off + 5:off + 9], "big") & 0x7fffffff
        if typ == 0x3 and s == sid and off + 13 <= len(data):
            return int.from_bytes(data[off + 9:off + 13], "big")
        off += 9 + n
    return None


def test_wsgi_app_denies_with_403(server):
    srv = server("wsgi_apps:app")
    cli = Client(srv.port)
    try:
        sid = cli.connect_ws("/")
        st = cli.wait_status(sid)
        cli.wait(lambda: st["ended"] or st["reset"] is not None)
        assert st["status"] == 403, "a 2xx from an app that knows no WebSocket is no acceptance"
    finally:
        cli.close()


@pytest.fixture(scope="module")
def certs(tmp_path_factory):
    d = tmp_path_factory.mktemp("certs")
    subprocess.run([str(CERTS_SCRIPT), str(d)], check=True)
    return d


def test_echo_over_tls_alpn_h2(server, certs):
    srv = server("asgi_apps:app", "--worker-class", "asgi", "--certfile",
                 str(certs / "server.pem"), "--keyfile", str(certs / "server.key"), wait=False)
    ctx = ssl.create_default_context(cafile=str(certs / "ca.pem"))
    ctx.set_alpn_protocols(["h2"])
    deadline = time.monotonic() + 15
    while True:
        try:
            cli = Client(srv.port, ctx)
            break
        except (OSError, ssl.SSLError):
            if time.monotonic() > deadline or not srv.alive():
                raise
            time.sleep(0.05)
    try:
        sid = cli.connect_ws("/ws/scope")
        st = cli.wait_status(sid)
        assert st["status"] == 200
        import json
        assert json.loads(cli.recv_message(sid))["scheme"] == "wss"
        cli.send_text(sid, "over tls")
        assert cli.recv_message(sid, 2) == "over tls"
        cli.send_bytes(sid, b"\x00\xff" * 40000)
        assert cli.recv_message(sid, 3) == b"\x00\xff" * 40000
        cli.send_close(sid)
        cli.wait(lambda: st["ended"])
    finally:
        cli.close()


def test_pings_per_stream_and_a_silent_stream_is_reset(server, tmp_path):
    """websocket_ping_interval/ping_timeout run per WebSocket stream, as on HTTP/1.1: a stream
    that never answers the server's ping is reset (CANCEL) and its app hears 1006, while a
    stream on the same connection that answers with pongs stays open."""
    disc = tmp_path / "disc.log"
    srv = server("asgi_apps:app", "--worker-class", "asgi", "--websocket-ping-interval", "1",
                 "--websocket-ping-timeout", "1", env={"HB_DISCONNECT_LOG": str(disc)})
    cli = Client(srv.port)
    try:
        silent = cli.connect_ws("/ws/echo")
        live = cli.connect_ws("/ws/echo")
        assert cli.wait_status(silent)["status"] == 200
        assert cli.wait_status(live)["status"] == 200
        t0 = time.monotonic()
        answered = [0]

        def pings(sid):
            return [f for f in cli.streams[sid]["frames"] if f.opcode == Opcode.PING]

        def answer(stop):
            got = pings(live)
            for f in got[answered[0]:]:
                cli.send_frame(live, cli.streams[live]["proto"].pong(f.payload))
            answered[0] = len(got)
            return stop()

        cli.wait(lambda: answer(lambda: cli.streams[silent]["reset"] is not None), timeout=10)
        took = time.monotonic() - t0
        assert [f.payload for f in pings(silent)] == [b"hb"], "one ping, then the reset"
        assert cli.streams[silent]["reset"] == 0x8  # CANCEL
        assert 1.5 < took < 6.0, "reset after %.2fs (ping 1 s + timeout 1 s)" % took
        wait_for(lambda: "ws-disconnect 1006" in disc.read_text().split("\n")
                 if disc.exists() else False, timeout=10)
        # the other stream answered its pings: still open past two rounds of ping + timeout
        deadline = t0 + 4.5
        cli.wait(lambda: answer(lambda: time.monotonic() > deadline), timeout=10)
        assert answered[0] >= 2, "pings on the live stream: %d" % answered[0]
        assert cli.streams[live]["reset"] is None and not cli.streams[live]["ended"]
        cli.send_text(live, "still here")
        assert cli.recv_message(live) == "still here"
        assert cli.goaway is None
    finally:
        cli.close()
