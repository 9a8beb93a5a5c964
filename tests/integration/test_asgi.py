"""ASGI 3 over HTTP (worker_class asgi): scope, receive/send, streaming both ways, backpressure,
disconnects, errors, concurrency on one worker, timeouts. Apps: apps/asgi_apps.py."""
import json
import os
import socket
import struct
import threading
import time

import pytest
import requests

from hbtest import (HTTPReader, ConnectionClosed, RssSampler, connect, http, read_file,
                    recv_until_close, request_bytes, wait_for, assert_interpreters_replaced,
                    whoami_through_swaps)


@pytest.fixture(scope="module")
def asrv(module_server_factory, tmp_path_factory):
    d = tmp_path_factory.mktemp("asgi")
    log = d / "disconnects.txt"
    pfile = d / "pathsend.bin"
    pfile.write_bytes(os.urandom(200_000))
    s = module_server_factory("asgi_apps:app", "--worker-class", "asgi", "--workers", "1",
                              "--max-body-size", str(64 << 20),
                              env={"HB_DISCONNECT_LOG": str(log), "HB_PATHSEND_FILE": str(pfile)})
    s.dlog = log
    s.pfile = pfile
    return s


@pytest.fixture
def srv(asrv):
    asrv.assert_alive()
    yield asrv
    asrv.assert_alive()


def url(srv, path):
    return "http://127.0.0.1:%d%s" % (srv.port, path)


def no_errors(srv, since):
    bad = srv.error_lines(since)
    assert not bad, "unexpected error log lines:\n" + "\n".join(bad)


# -- basics and the scope ---------------------------------------------------------------------

def test_hello(srv):
    r = requests.get(url(srv, "/hello"), timeout=5)
    assert r.status_code == 200
    assert r.text == "Hello, ASGI!"
    # sent in one piece: the server adds the length instead of chunking
    assert r.headers["content-length"] == "12"
    assert "transfer-encoding" not in r.headers


def test_pipelined_burst_in_order_while_a_held_response_waits_for_credit(srv):
    # One asyncio worker runs the burst at once: /big (2 MiB, past the stream's 512 KiB of
    # unsent output) finishes its sends only once it is written, after the slow /sleep; its
    # coroutine waits for credit meanwhile instead of blocking the worker.
    reqs = ["/sleep?0.5", "/big?2097152", "/stream?3", "/hello"]
    with connect(srv.port, timeout=15) as s:
        s.sendall(b"".join(b"GET %s HTTP/1.1\r\nHost: x\r\n\r\n" % r.encode() for r in reqs))
        rd = HTTPReader(s, timeout=15)
        assert rd.read_response().body == b"slept"
        assert rd.read_response().body == b"x" * 2097152
        assert rd.read_response().body == b"chunk0\nchunk1\nchunk2\n"
        r = rd.read_response()
        assert r.status == 200 and r.body, r
        assert rd.is_open(0.2)


def test_head_has_length_and_no_body(srv):
    r = http(srv.port, "HEAD", "/hello")
    assert r.status == 200
    assert r.header("content-length") == "12"
    assert r.body == b""


def test_scope_http(srv):
    r = http(srv.port, "GET", "/scope/a%20b%C3%A9?x=1&y=%20", [("X-Custom-Header", "Value One"),
                                                               ("Accept", "*/*")])
    assert r.status == 200, r
    sc = r.json()
    assert sc["type"] == "http"
    assert sc["asgi"] == {"version": "3.0", "spec_version": "2.4"}
    assert sc["http_version"] == "1.1"
    assert sc["method"] == "GET"
    assert sc["scheme"] == "http"
    assert sc["path"] == "/scope/a b\u00e9"
    assert sc["raw_path"] == "/scope/a%20b%C3%A9"
    assert sc["query_string"] == "x=1&y=%20"
    assert sc["root_path"] == ""
    assert ["x-custom-header", "Value One"] in sc["headers"]
    assert ["host", "127.0.0.1"] in sc["headers"]
    assert all(n == n.lower() for n, _ in sc["headers"])
    assert sc["client"][0] == "127.0.0.1" and isinstance(sc["client"][1], int)
    assert sc["server"] == ["127.0.0.1", srv.port]
    assert "http.response.pathsend" in sc["extensions"]
    t = sc["_types"]
    assert t["raw_path"] == "bytes" and t["query_string"] == "bytes" and t["headers"] == "list"
    assert t["client"] == "tuple" and t["server"] == "tuple" and t["state"] == "dict"
    assert sc["_header_types"] == ["bytes/bytes"]


def test_scope_dicts_are_per_request(srv):
    """scope["extensions"] (and each extension's dict) and scope["asgi"] are the request's own:
    an app that writes into them changes nothing the next request sees."""
    clean = http(srv.port, "GET", "/scope").json()
    r = http(srv.port, "GET", "/scope/taint")
    assert r.status == 200, r
    for _ in range(3):  # the worker's next requests, whichever copy they would share
        sc = http(srv.port, "GET", "/scope").json()
        assert sc["extensions"] == clean["extensions"], sc["extensions"]
        assert sc["extensions"]["http.response.pathsend"] == {}
        assert sc["asgi"] == {"version": "3.0", "spec_version": "2.4"}


def test_scope_values_of_consecutive_requests(srv):
    """The immutable values that repeat (method, path, raw_path, query_string, header pairs,
    http_version) are shared with the previous request's scope; each request still sees its own
    values, and its own headers list."""
    reqs = (("GET", "/scope/x%41", "X-A: 1\r\nX-B: b", "HTTP/1.1"),
            ("GET", "/scope/x%41", "X-A: 1\r\nX-B: b", "HTTP/1.1"),
            ("PURGE", "/scope/xA?q=1", "x-a: 2\r\nX-B: b", "HTTP/1.1"),
            ("GET", "/scope/x%41?q=1", "X-B: b\r\nX-A: 1", "HTTP/1.1"),
            ("GET", "/scope/x%41", "X-B: b\r\nX-A: 1", "HTTP/1.0"))
    with connect(srv.port) as c:
        rd = HTTPReader(c)
        seen = []
        for method, target, fields, version in reqs:
            c.sendall(("%s %s %s\r\nHost: h\r\n%s\r\n\r\n"
                       % (method, target, version, fields)).encode())
            r = rd.read_response()
            assert r.status == 200, r
            sc = json.loads(r.body)
            seen.append((sc["method"], sc["path"], sc["raw_path"], sc["query_string"],
                         sc["http_version"], sc["headers"]))
    ab, ba = [["host", "h"], ["x-a", "1"], ["x-b", "b"]], [["host", "h"], ["x-b", "b"], ["x-a", "1"]]
    assert seen == [
        ("GET", "/scope/xA", "/scope/x%41", "", "1.1", ab),
        ("GET", "/scope/xA", "/scope/x%41", "", "1.1", ab),
        ("PURGE", "/scope/xA", "/scope/xA", "q=1", "1.1", [["host", "h"], ["x-a", "2"], ["x-b", "b"]]),
        ("GET", "/scope/xA", "/scope/x%41", "q=1", "1.1", ba),
        ("GET", "/scope/xA", "/scope/x%41", "", "1.0", ba),
    ]


def test_awaitables_held_by_the_app(srv):
    """receive is called with no arguments; an awaitable the app still holds is never the one
    its next send() returns (the server reuses only those nobody else holds)."""
    r = http(srv.port, "GET", "/ops")
    assert r.status == 200, r
    assert json.loads(r.body) == [{"msg": "http.request", "bad_args": "TypeError",
                                   "distinct": True}]


def test_scope_absolute_form_and_any_method(srv):
    """RFC 9112 3.2.2: the target's host wins over Host (the scope's host header follows it;
    `server` stays the listening socket, as the ASGI spec defines it); any method token reaches
    the app (RFC 9110 9.1)."""
    r = http(srv.port, "PURGE", "http://example.com:8080/scope/x?q=1")
    assert r.status == 200, r
    sc = r.json()
    assert sc["method"] == "PURGE"
    assert sc["path"] == "/scope/x" and sc["raw_path"] == "/scope/x" and sc["query_string"] == "q=1"
    assert [v for n, v in sc["headers"] if n == "host"] == ["example.com:8080"]
    assert sc["server"] == ["127.0.0.1", srv.port]
    r = http(srv.port, "-BLARGH", "/scope")
    assert r.status == 200 and r.json()["method"] == "-BLARGH", r
    with connect(srv.port) as c:
        c.sendall(b"GET * HTTP/1.1\r\nHost: x\r\n\r\n")
        rd = HTTPReader(c)
        assert rd.read_response().status == 400
        rd.expect_closed()


def test_scope_http10(srv):
    r = http(srv.port, "GET", "/scope", version="HTTP/1.0")
    assert r.json()["http_version"] == "1.0"


def test_root_path(server):
    s = server("asgi_apps:app", "--worker-class", "asgi", "--root-path", "/mount")
    sc = http(s.port, "GET", "/mount/scope").json()
    assert sc["root_path"] == "/mount"
    assert sc["path"] == "/mount/scope"


# -- request bodies ---------------------------------------------------------------------------

def test_post_body(srv):
    r = requests.post(url(srv, "/echo"), data=b"hello body", timeout=5)
    assert r.content == b"hello body"


def test_streaming_request_body_more_body(srv):
    body = os.urandom(3 << 20)

    def gen():
        for i in range(0, len(body), 100_000):
            yield body[i:i + 100_000]
            time.sleep(0.002)

    r = requests.post(url(srv, "/echo"), data=gen(), timeout=20)  # chunked upload
    assert r.status_code == 200
    assert r.content == body
    assert int(r.headers["x-messages"]) > 1  # several http.request messages (more_body)


def _slow_upload(srv, total):
    block = b"u" * (1 << 20)
    with connect(srv.port, timeout=30) as s:
        s.sendall(request_bytes("POST", "/slow-upload", [("Content-Length", str(total)),
                                                          ("Connection", "close")]))
        with RssSampler(srv) as rss:
            for _ in range(total // len(block)):
                s.sendall(block)
        r = HTTPReader(s, timeout=30).read_response()
    return r, rss.growth_mb()


def _late_reader_upload(srv, total, use_chunked):
    """The app starts reading after 1 s, then reads as fast as it can."""
    body = b"L" * total
    hdrs = [("Connection", "close")]
    if use_chunked:
        from hbtest import chunked
        hdrs.append(("Transfer-Encoding", "chunked"))
        body = chunked(body, 1 << 16)
    with connect(srv.port, timeout=30) as s:
        s.sendall(request_bytes("POST", "/slow-upload?fast", hdrs, body))
        return HTTPReader(s, timeout=30).read_response()


def test_late_reader_gets_whole_upload(srv):
    assert _late_reader_upload(srv, 8 << 20, False).body == str(8 << 20).encode()


def test_late_reader_gets_whole_chunked_upload(srv):
    assert _late_reader_upload(srv, 8 << 20, True).body == str(8 << 20).encode()


def test_slow_reader_gets_whole_upload(srv):
    r, _ = _slow_upload(srv, 16 << 20)
    assert r.body == str(16 << 20).encode()


def test_request_body_flow_control(srv):
    """The app reads slowly: the server does not buffer the upload (memory stays bounded)."""
    r, growth = _slow_upload(srv, 64 << 20)
    assert r.body == str(64 << 20).encode()
    assert growth < 40, "RSS grew %.1f MiB during a 64 MiB upload" % growth


def test_chunked_request_raw(srv):
    from hbtest import chunked
    r = http(srv.port, "POST", "/echo", [("Transfer-Encoding", "chunked")], chunked(b"abcdefghij", 3))
    assert r.body == b"abcdefghij"


def test_expect_continue(srv):
    with connect(srv.port) as s:
        s.sendall(request_bytes("POST", "/echo", [("Content-Length", "5"), ("Expect", "100-continue"),
                                                  ("Connection", "close")]))
        rd = HTTPReader(s)
        head = rd.read_response(skip_1xx=False)
        assert head.status == 100
        s.sendall(b"12345")
        r = rd.read_response()
        assert r.body == b"12345"


# -- responses --------------------------------------------------------------------------------

def test_streaming_response_is_chunked(srv):
    r = http(srv.port, "GET", "/stream?4")
    assert r.status == 200
    assert r.header("transfer-encoding") == "chunked"
    assert r.body == b"chunk0\nchunk1\nchunk2\nchunk3\n"


def test_streaming_response_http10_closes(srv):
    r = http(srv.port, "GET", "/stream?2", version="HTTP/1.0")
    assert r.body == b"chunk0\nchunk1\n"


def test_big_response(srv):
    r = requests.get(url(srv, "/big?%d" % (20 << 20)), timeout=20)
    assert len(r.content) == 20 << 20


def test_backpressure_slow_reader(srv):
    """send() waits while the client does not read: the server's memory stays bounded."""
    total = 200 << 20
    with connect(srv.port, rcvbuf=16384) as s:
        s.sendall(request_bytes("GET", "/big?%d" % total, [("Connection", "close")]))
        with RssSampler(srv) as rss:
            time.sleep(1.5)  # the app would have produced everything by now without backpressure
        assert rss.growth_mb() < 40, "RSS grew %.1f MiB while the client did not read" % rss.growth_mb()
        got = 0
        s.settimeout(10)
        while True:
            b = s.recv(1 << 20)
            if not b:
                break
            got += len(b)
    assert got > total  # head + body


def test_keepalive_reuse(srv):
    with requests.Session() as ses:
        for _ in range(20):
            assert ses.get(url(srv, "/hello"), timeout=5).text == "Hello, ASGI!"


def test_pathsend(srv):
    r = requests.get(url(srv, "/pathsend"), timeout=5)
    assert r.status_code == 200
    assert r.content == srv.pfile.read_bytes()


# -- errors -----------------------------------------------------------------------------------

def test_exception_before_start_is_500_and_logged(srv):
    before = len(srv.stderr())
    r = http(srv.port, "GET", "/raise")
    assert r.status == 500
    assert wait_for(lambda: "boom before start" in srv.stderr()[before:])
    assert "Traceback" in srv.stderr()[before:]


def test_exception_after_start_aborts(srv):
    before = len(srv.stderr())
    with connect(srv.port) as s:
        s.sendall(request_bytes("GET", "/raise-after", [("Connection", "keep-alive")]))
        data, closed = recv_until_close(s, timeout=5)
    assert closed
    assert data.startswith(b"HTTP/1.1 200")
    assert not data.endswith(b"0\r\n\r\n")  # the chunked body never completes
    assert wait_for(lambda: "boom after start" in srv.stderr()[before:])


def test_no_response_is_500(srv):
    assert http(srv.port, "GET", "/no-response").status == 500


def test_body_before_start_is_500(srv):
    assert http(srv.port, "GET", "/body-before-start").status == 500


def test_informational_final_status_is_500(srv):
    assert http(srv.port, "GET", "/bad-status").status == 500


def test_send_after_complete_raises(srv):
    assert http(srv.port, "GET", "/send-after-complete").body == b"first"
    assert wait_for(lambda: "after-complete-send RuntimeError" in read_file(srv.dlog), 5)


def test_invalid_header_is_500(srv):
    r = http(srv.port, "GET", "/bad-header")
    assert r.status == 500
    assert b"\r\nb" not in r.body


# -- disconnects ------------------------------------------------------------------------------

def reset_close(s):
    """Closes with RST (SO_LINGER 0): the client is gone for sure. A plain FIN after a complete
    request may be a half-close, which the io side keeps answering."""
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    s.close()


def test_disconnect_mid_response(srv):
    """A streaming response to a client that left: send() raises ClientDisconnected (an
    OSError), a concurrent receive() gets http.disconnect, nothing is logged as an error."""
    before = len(srv.stderr())
    s = connect(srv.port)
    s.sendall(request_bytes("GET", "/disconnect"))
    HTTPReader(s).read_head()
    time.sleep(0.2)
    reset_close(s)
    assert wait_for(lambda: "disconnect http.disconnect" in read_file(srv.dlog), 5), read_file(srv.dlog)
    assert "disconnect http.disconnect ClientDisconnected/True" in read_file(srv.dlog)
    time.sleep(0.2)
    no_errors(srv, before)


def test_disconnect_while_waiting_in_receive(srv):
    s = connect(srv.port)
    s.sendall(request_bytes("GET", "/disconnect-idle"))
    HTTPReader(s).read_head()
    time.sleep(0.2)
    reset_close(s)
    assert wait_for(lambda: "disconnect-idle http.disconnect" in read_file(srv.dlog), 3), read_file(srv.dlog)


def test_disconnect_mid_request_body(srv):
    before = len(srv.stderr())
    with connect(srv.port) as s:
        s.sendall(request_bytes("POST", "/disconnect-body", [("Content-Length", "100000")], b"x" * 10))
        time.sleep(0.3)
    assert wait_for(lambda: "body-disconnect True" in read_file(srv.dlog), 5), read_file(srv.dlog)
    no_errors(srv, before)


def test_receive_after_response_is_disconnect(srv):
    r = http(srv.port, "GET", "/after-complete")
    assert r.body == b"done"
    assert wait_for(lambda: "after-complete http.disconnect" in read_file(srv.dlog), 5)


# -- concurrency and timeouts -----------------------------------------------------------------

def test_concurrent_slow_requests_overlap(srv):
    n = 50
    results = []
    barrier = threading.Barrier(n)

    def one():
        barrier.wait()
        results.append(http(srv.port, "GET", "/sleep?0.5", timeout=10).body)

    threads = [threading.Thread(target=one) for _ in range(n)]
    t0 = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.monotonic() - t0
    assert results == [b"slept"] * n
    assert elapsed < 2.0, "50 x 0.5 s on one worker took %.2f s: requests did not overlap" % elapsed


def test_timeout_gives_504_and_logs_stack(server):
    s = server("asgi_apps:app", "--worker-class", "asgi", "--timeout", "500ms")
    t0 = time.monotonic()
    r = http(s.port, "GET", "/hang", timeout=10)
    assert r.status == 504
    assert time.monotonic() - t0 < 3
    assert wait_for(lambda: "timeout" in s.stderr() and "asgi_apps.py" in s.stderr())
    # the worker still serves
    assert http(s.port, "GET", "/hello").body == b"Hello, ASGI!"


def test_timeout_after_start_closes_connection(server):
    s = server("asgi_apps:app", "--worker-class", "asgi", "--timeout", "500ms")
    with connect(s.port) as c:
        c.sendall(request_bytes("GET", "/hang-after-start"))
        t0 = time.monotonic()
        data, closed = recv_until_close(c, timeout=5)
    assert closed and time.monotonic() - t0 < 3
    assert data.startswith(b"HTTP/1.1 200") and not data.endswith(b"0\r\n\r\n")
    assert wait_for(lambda: "hang-after-start" in s.stderr() and "asgi_apps.py" in s.stderr())


def test_timeout_does_not_cut_progressing_stream(server):
    s = server("asgi_apps:app", "--worker-class", "asgi", "--timeout", "300ms")
    r = http(s.port, "GET", "/sleep?0.1")
    assert r.status == 200


# -- worker classes ---------------------------------------------------------------------------

def test_auto_detects_asgi(server):
    s = server("asgi_apps:app", "--worker-class", "auto")
    assert http(s.port, "GET", "/hello").body == b"Hello, ASGI!"


def test_auto_keeps_wsgi(server):
    s = server("wsgi_apps:app", "--worker-class", "auto")
    r = http(s.port, "GET", "/")
    assert r.status < 500


@pytest.mark.parametrize("app,body", [
    ("async_function", b"asgi"), ("async_instance", b"asgi-instance"),
    ("partial_app", b"asgi-partial"), ("wsgi_function", b"wsgi"), ("wsgi_instance", b"wsgi")])
def test_auto_detection(server, app, body):
    s = server("asgi_detect_apps:" + app, "--worker-class", "auto")
    assert http(s.port, "GET", "/").body == body


def test_several_workers(server):
    s = server("asgi_apps:app", "--worker-class", "asgi", "--workers", "3")
    with requests.Session() as ses:
        for _ in range(30):
            assert ses.get(url(s, "/hello"), timeout=5).status_code == 200


def test_max_requests_replaces_asgi_worker(server):
    s = server("asgi_apps:app", "--worker-class", "asgi", "--max-requests", "5")
    seqs, failures = whoami_through_swaps(s.port, least=4)
    tokens = assert_interpreters_replaced(seqs, failures, least=4)
    assert wait_for(lambda: s.stderr().count("max_requests reached, replaced by worker") >= len(tokens) - 1, 5), \
        s.stderr()[-3000:]
    assert "replacement failed" not in s.stderr(), s.stderr()[-3000:]
