"""What HTTP/2 (and HTTP/1.1 where it applies) offers the Python side beyond request/response:
ASGI http.response.trailers (h2 HEADERS after DATA; h1 chunked trailer section only with
TE: trailers), http.response.early_hint (103 before the final head, h2 and HTTP/1.1 but not
1.0), and server push (ASGI http.response.push, WSGI environ["hornbeam.push"]): a PUSH_PROMISE
whose GET the app serves like a request, only with h2_push on and the client's
SETTINGS_ENABLE_PUSH 1, within the client's concurrent-stream limit."""
import json
import socket
import struct
import subprocess
import time

import h2.events
import h2.settings
import pytest

import h2client

CSS = b"body { color: green }\n"  # as apps/h2_extras.py serves them
JS = b"console.log('pushed')\n"

ENABLE_PUSH = h2.settings.SettingCodes.ENABLE_PUSH
MAX_STREAMS = h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS


class Client(h2client.Conn):
    """python-h2 over a plain socket (prior knowledge): responses, 1xx heads, trailers and
    pushes by stream id (header names and values as bytes)."""

    def __init__(self, port, settings=None):
        super().__init__(port, settings=settings, header_encoding=None)
        self.s = {}
        self.promises = []  # (parent, pushed sid, request headers)

    def stream(self, sid):
        return self.s.setdefault(sid, {"status": None, "headers": {}, "info": [],
                                       "trailers": None, "body": b"", "ended": False,
                                       "reset": None})

    def get(self, path, wait=True):
        sid = self.c.get_next_available_stream_id()
        self.c.send_headers(sid, self.headers(path), end_stream=True)
        self.flush()
        self.stream(sid)
        if wait:
            self.wait(lambda: self.s[sid]["ended"] or self.s[sid]["reset"] is not None)
        return sid

    def on_event(self, ev):
        if isinstance(ev, h2.events.InformationalResponseReceived):
            self.stream(ev.stream_id)["info"].append(ev.headers)
        elif isinstance(ev, h2.events.ResponseReceived):
            st = self.stream(ev.stream_id)
            st["headers"] = dict(ev.headers)
            st["status"] = int(st["headers"][b":status"])
        elif isinstance(ev, h2.events.TrailersReceived):
            self.stream(ev.stream_id)["trailers"] = ev.headers
        elif isinstance(ev, h2.events.DataReceived):
            self.stream(ev.stream_id)["body"] += ev.data
            self.c.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
        elif isinstance(ev, h2.events.StreamEnded):
            self.stream(ev.stream_id)["ended"] = True
        elif isinstance(ev, h2.events.StreamReset):
            self.stream(ev.stream_id)["reset"] = ev.error_code
        elif isinstance(ev, h2.events.PushedStreamReceived):
            self.promises.append((ev.parent_stream_id, ev.pushed_stream_id, dict(ev.headers)))
            self.stream(ev.pushed_stream_id)

    def state(self):
        return self.s

    def settle(self, secs=0.3):
        """Reads for a moment more (what the server sends after the last awaited event)."""
        end = time.monotonic() + secs
        try:
            self.wait(lambda: time.monotonic() > end, timeout=secs + 5)
        except AssertionError:
            pass


def h1(port, head, timeout=10.0):
    """One raw HTTP/1.x exchange with Connection: close; returns every byte the server sent."""
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    s.sendall(head)
    data = b""
    while True:
        d = s.recv(65536)
        if not d:
            break
        data += d
    s.close()
    return data


@pytest.fixture(scope="module")
def push_srv(module_server_factory):
    return module_server_factory("h2_extras:app", "--worker-class", "asgi", "--h2-push")


@pytest.fixture(scope="module")
def asrv(module_server_factory):
    return module_server_factory("h2_extras:app", "--worker-class", "asgi")


@pytest.fixture(scope="module")
def wsgi_push_srv(module_server_factory):
    return module_server_factory("h2_extras:wsgi", "--threads", "2", "--h2-push")


# -- trailers -------------------------------------------------------------------------------

def test_trailers_on_h2_follow_the_data(asrv):
    c = Client(asrv.port)
    st = c.s[c.get("/trailers")]
    assert st["status"] == 200 and st["body"] == b"hello world"
    assert dict(st["trailers"]) == {b"x-checksum": b"abc123", b"x-count": b"2"}
    c.close()


def test_trailers_on_h2_with_a_content_length(asrv):
    c = Client(asrv.port)
    st = c.s[c.get("/trailers-cl")]
    assert st["body"] == b"12345" and st["headers"][b"content-length"] == b"5"
    assert dict(st["trailers"]) == {b"x-done": b"yes"}
    c.close()


def test_trailers_on_http11_with_te_trailers(asrv):
    raw = h1(asrv.port, b"GET /trailers HTTP/1.1\r\nHost: x\r\nTE: trailers\r\n"
                        b"Connection: close\r\n\r\n")
    head, _, body = raw.partition(b"\r\n\r\n")
    assert b"transfer-encoding: chunked" in head.lower(), raw
    assert body.endswith(b"0\r\nx-checksum: abc123\r\nx-count: 2\r\n\r\n"), raw
    assert b"6\r\nhello \r\n5\r\nworld\r\n" in body


def test_trailers_on_http11_replace_content_length_by_chunks(asrv):
    raw = h1(asrv.port, b"GET /trailers-cl HTTP/1.1\r\nHost: x\r\nTE: gzip, trailers\r\n"
                        b"Connection: close\r\n\r\n")
    head, _, body = raw.partition(b"\r\n\r\n")
    assert b"content-length" not in head.lower() and b"chunked" in head.lower(), raw
    assert body == b"5\r\n12345\r\n0\r\nx-done: yes\r\n\r\n", raw


def test_no_trailers_on_http11_without_te(asrv):
    raw = h1(asrv.port, b"GET /trailers HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert raw.endswith(b"0\r\n\r\n") and b"abc123" not in raw, raw
    raw = h1(asrv.port, b"GET /trailers-cl HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    head, _, body = raw.partition(b"\r\n\r\n")
    assert b"content-length: 5" in head.lower() and body == b"12345", raw
    # HTTP/1.0 has no chunked framing: no trailers even when asked
    raw = h1(asrv.port, b"GET /trailers HTTP/1.0\r\nHost: x\r\nTE: trailers\r\n\r\n")
    assert raw.endswith(b"hello world") and b"abc123" not in raw, raw


def test_head_request_gets_neither_body_nor_trailers(asrv):
    c = Client(asrv.port)
    sid = c.c.get_next_available_stream_id()
    c.c.send_headers(sid, [(":method", "HEAD"), (":scheme", "http"), (":path", "/trailers"),
                           (":authority", "localhost")], end_stream=True)
    c.sock.sendall(c.c.data_to_send())
    c.stream(sid)
    c.wait(lambda: c.s[sid]["ended"] or c.s[sid]["reset"] is not None)
    st = c.s[sid]
    assert st["status"] == 200 and st["body"] == b"" and st["trailers"] is None, st
    c.close()


def test_misused_extensions_fail_the_app_not_the_connection(asrv):
    c = Client(asrv.port)
    for path in ("/trailers-undeclared", "/bad-hint"):
        st = c.s[c.get(path)]
        assert st["status"] == 500 and st["info"] == [] and st["trailers"] is None, (path, st)
    assert c.s[c.get("/trailers")]["trailers"], "the connection serves on"
    c.close()
    raw = h1(asrv.port, b"GET /bad-hint HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert raw.startswith(b"HTTP/1.1 500 ") and b"x-evil" not in raw, raw


def test_scope_lists_the_extensions(asrv, push_srv):
    assert json.loads(h1(asrv.port, b"GET /ext HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                      .partition(b"\r\n\r\n")[2]) == [
        "http.response.early_hint", "http.response.pathsend", "http.response.trailers"]
    c = Client(push_srv.port)
    assert "http.response.push" in json.loads(c.s[c.get("/ext")]["body"])
    c.close()
    # push needs HTTP/2: an HTTP/1.1 request to the same server has no push extension
    body = h1(push_srv.port, b"GET /ext HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert "http.response.push" not in json.loads(body.partition(b"\r\n\r\n")[2])


# -- early hints ----------------------------------------------------------------------------

def test_early_hints_on_http11(asrv):
    raw = h1(asrv.port, b"GET /hints HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert raw.startswith(b"HTTP/1.1 103 Early Hints\r\n"
                          b"link: </style.css>; rel=preload; as=style\r\n"
                          b"link: </app.js>; rel=preload; as=script\r\n\r\n"
                          b"HTTP/1.1 200 OK\r\n"), raw
    assert raw.endswith(b"hinted")


def test_no_early_hints_for_http10(asrv):
    raw = h1(asrv.port, b"GET /hints HTTP/1.0\r\nHost: x\r\n\r\n")
    assert raw.startswith(b"HTTP/1.1 200 OK\r\n") and b"103" not in raw.split(b"\r\n")[0], raw


def test_early_hints_on_h2(asrv):
    c = Client(asrv.port)
    st = c.s[c.get("/hints")]
    assert st["status"] == 200 and st["body"] == b"hinted"
    assert len(st["info"]) == 1
    info = st["info"][0]
    assert (b":status", b"103") in info
    assert [v for k, v in info if k == b"link"] == [b"</style.css>; rel=preload; as=style",
                                                   b"</app.js>; rel=preload; as=script"]
    c.close()


def test_early_hints_with_curl_over_h2(asrv):
    r = subprocess.run(["curl", "-sS", "-v", "--max-time", "20", "--http2-prior-knowledge",
                        "http://127.0.0.1:%d/hints" % asrv.port],
                       capture_output=True, timeout=30)
    assert r.returncode == 0, r.stderr
    err = r.stderr.decode()
    assert "< HTTP/2 103" in err and "< link: </style.css>" in err, err
    assert "< HTTP/2 200" in err and r.stdout == b"hinted"


def test_wsgi_early_hint(wsgi_push_srv):
    raw = h1(wsgi_push_srv.port, b"GET /hints HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert raw.startswith(b"HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload; "
                          b"as=style\r\n\r\nHTTP/1.1 200 OK\r\n"), raw
    assert raw.endswith(b"8\r\nhinted 1\r\n0\r\n\r\n"), raw


# -- server push ----------------------------------------------------------------------------

def test_push_promises_and_the_app_serves_the_pushed_get(push_srv):
    c = Client(push_srv.port)
    sid = c.get("/push")
    c.wait(lambda: len(c.promises) == 2 and all(c.s[p]["ended"] for _, p, _ in c.promises))
    assert c.s[sid]["body"] == b"page push=1"
    by_path = {h[b":path"]: (parent, p, h) for parent, p, h in c.promises}
    assert set(by_path) == {b"/style.css", b"/app.js?v=1"}
    parent, css, req = by_path[b"/style.css"]
    assert parent == sid and css % 2 == 0
    assert req[b":method"] == b"GET" and req[b":authority"] == b"localhost"
    assert req[b":scheme"] == b"http" and req[b"accept"] == b"text/css"
    st = c.s[css]
    assert st["status"] == 200 and st["body"] == CSS
    assert st["headers"][b"x-seen-accept"] == b"text/css"
    assert st["headers"][b"x-seen-method"] == b"GET"
    js = c.s[by_path[b"/app.js?v=1"][1]]
    assert js["body"] == JS
    c.close()


def test_no_push_when_the_client_disables_it(push_srv):
    c = Client(push_srv.port, settings={ENABLE_PUSH: 0})
    sid = c.get("/push")
    c.settle()
    assert c.s[sid]["body"] == b"page push=0" and c.promises == []
    c.close()


def test_no_push_when_h2_push_is_off(asrv):
    c = Client(asrv.port)
    sid = c.get("/push")
    c.settle()
    assert c.s[sid]["body"] == b"page push=0" and c.promises == []
    c.close()


def test_pushes_over_the_clients_stream_limit_are_dropped(push_srv):
    c = Client(push_srv.port, settings={MAX_STREAMS: 2})
    sid = c.get("/push-many?6")
    c.wait(lambda: all(c.s[p]["ended"] for _, p, _ in c.promises))
    c.settle()
    assert c.s[sid]["body"] == b"many"
    # the app asked for 6 before its own response: at most 2 promised streams open at once
    assert 1 <= len(c.promises) <= 2, c.promises
    for _, p, h in c.promises:
        assert c.s[p]["body"] == CSS
    c.close()


def test_client_refusing_a_push_keeps_the_connection(push_srv):
    c = Client(push_srv.port)
    orig = c.on_event

    def on(ev):
        orig(ev)
        if isinstance(ev, h2.events.PushedStreamReceived):
            # a raw RST_STREAM(CANCEL): python-h2 would refuse the frames already in flight
            c.sock.sendall(struct.pack(">I", 4)[1:] + b"\x03\x00" +
                           struct.pack(">II", ev.pushed_stream_id, 8))
    c.on_event = on
    sid = c.get("/push")
    assert c.s[sid]["body"] == b"page push=1" and len(c.promises) >= 1
    sid2 = c.get("/ext")
    assert c.s[sid2]["status"] == 200
    c.close()


def test_wsgi_push(wsgi_push_srv):
    c = Client(wsgi_push_srv.port)
    sid = c.get("/push")
    c.wait(lambda: len(c.promises) == 1 and c.s[c.promises[0][1]]["ended"])
    assert c.s[sid]["body"] == b"page push=1"
    parent, p, req = c.promises[0]
    assert parent == sid and req[b":path"] == b"/style.css" and req[b"accept"] == b"text/css"
    assert c.s[p]["body"] == CSS and c.s[p]["headers"][b"x-seen-accept"] == b"text/css"
    c.close()
    # no push over HTTP/1.1: the environ has no hornbeam.push
    raw = h1(wsgi_push_srv.port, b"GET /push HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert raw.endswith(b"b\r\npage push=0\r\n0\r\n\r\n"), raw


def test_nghttp_sees_the_push(push_srv):
    r = subprocess.run(["nghttp", "-nv", "http://127.0.0.1:%d/push" % push_srv.port],
                       capture_output=True, timeout=30)
    assert r.returncode == 0, r.stderr
    out = r.stdout.decode()
    assert "recv PUSH_PROMISE frame" in out and ":path: /style.css" in out, out
