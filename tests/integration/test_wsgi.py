"""PEP 3333 behaviour of the WSGI worker, plus keep-alive, pipelining, big bodies both ways."""
import hashlib
import os
import threading
import time

import pytest
import requests

from hbtest import (HTTPReader, ConnectionClosed, RssSampler, assert_served, chunked, connect, http,
                    large_pattern, read_file, recv_until_close, request_bytes, wait_for)


@pytest.fixture(scope="module")
def wsrv(module_server_factory, tmp_path_factory):
    d = tmp_path_factory.mktemp("wsgi")
    closelog = d / "closelog.txt"
    s = module_server_factory("wsgi_apps:app", "--workers", "1", "--threads", "2",
                              "--max-body-size", str(256 << 20),
                              env={"HB_CLOSE_LOG": str(closelog)})
    s.closelog = closelog
    return s


@pytest.fixture(scope="module")
def input_srv(module_server_factory):
    """A separate server for the wsgi.input tests, so an app thread stuck in a read cannot
    starve the rest of this module."""
    return module_server_factory("wsgi_apps:app", "--workers", "1", "--threads", "4")


@pytest.fixture
def isrv(input_srv):
    input_srv.assert_alive()
    yield input_srv
    input_srv.assert_alive()


@pytest.fixture
def srv(wsrv):
    wsrv.assert_alive()
    yield wsrv
    wsrv.assert_alive()


def env_of(resp):
    assert resp.status == 200, resp
    return resp.json()["environ"]


# -- validator ---------------------------------------------------------------------------

def _no_validator_complaints(srv, before):
    err = srv.stderr()[before:]
    for bad in ("AssertionError", "WSGIWarning", "Iterator garbage collected", "Traceback"):
        assert bad not in err, "wsgiref.validate complained:\n%s" % err[-4000:]


def test_validator_get(srv):
    before = len(srv.stderr())
    r = http(srv.port, "GET", "/validate?x=1")
    assert r.status == 200, r
    assert r.body == b"validated:"
    time.sleep(0.2)
    _no_validator_complaints(srv, before)


def test_validator_post(srv):
    before = len(srv.stderr())
    r = http(srv.port, "POST", "/validate", [("Content-Type", "text/plain")], b"payload-123")
    assert r.status == 200, r
    assert r.body == b"validated:payload-123"
    time.sleep(0.2)
    _no_validator_complaints(srv, before)


def test_validator_with_requests_library(srv):
    before = len(srv.stderr())
    with requests.Session() as s:
        for _ in range(3):
            r = s.post("http://127.0.0.1:%d/validate" % srv.port, data=b"abc", timeout=5)
            assert r.status_code == 200 and r.content == b"validated:abc"
    time.sleep(0.2)
    _no_validator_complaints(srv, before)


# -- environ -----------------------------------------------------------------------------

def test_environ_core_keys(srv):
    host = "127.0.0.1:%d" % srv.port
    r = http(srv.port, "GET", "/some/path?x=1&y=%20z", [("User-Agent", "hb-agent/1"), ("X-Custom-Thing", "v1")],
             host=host)
    env = env_of(r)
    assert env["REQUEST_METHOD"] == "GET"
    assert env["SCRIPT_NAME"] == ""
    assert env["PATH_INFO"] == "/some/path"
    assert env["QUERY_STRING"] == "x=1&y=%20z"
    assert env["SERVER_PROTOCOL"] == "HTTP/1.1"
    assert env["SERVER_PORT"] == str(srv.port)
    assert env["SERVER_NAME"] in ("127.0.0.1", "localhost"), env["SERVER_NAME"]
    assert env["HTTP_HOST"] == host
    assert env["HTTP_USER_AGENT"] == "hb-agent/1"
    assert env["HTTP_X_CUSTOM_THING"] == "v1"
    assert env["wsgi.url_scheme"] == "http"
    assert env["wsgi.version"] == [1, 0]
    for k in ("wsgi.multithread", "wsgi.multiprocess", "wsgi.run_once"):
        assert isinstance(env[k], bool), (k, env[k])
    assert env["wsgi.run_once"] is False
    for k in ("wsgi.input", "wsgi.errors", "wsgi.file_wrapper"):
        assert env["_has"][k], k
    assert not env["_has"]["HTTP_CONTENT_LENGTH"] and not env["_has"]["HTTP_CONTENT_TYPE"]


def test_environ_no_query_string(srv):
    env = env_of(http(srv.port, "GET", "/plain"))
    assert env.get("QUERY_STRING", "") == ""
    assert env.get("CONTENT_LENGTH", "") in ("", "0")


def test_environ_content_type_and_length(srv):
    r = http(srv.port, "POST", "/echo", [("Content-Type", "application/x-test; charset=utf-8")], b"abcdef")
    env = env_of(r)
    assert env["REQUEST_METHOD"] == "POST"
    assert env["CONTENT_TYPE"] == "application/x-test; charset=utf-8"
    assert env["CONTENT_LENGTH"] == "6"
    assert not env["_has"]["HTTP_CONTENT_TYPE"]
    assert not env["_has"]["HTTP_CONTENT_LENGTH"]
    assert r.json()["body"] == "abcdef"


def test_path_info_percent_decoded_latin1(srv):
    env = env_of(http(srv.port, "GET", "/a%20b/%C3%A9/%7E/x%25y?q=%C3%A9"))
    assert env["PATH_INFO"] == "/a b/\u00c3\u00a9/~/x%y"
    assert env["QUERY_STRING"] == "q=%C3%A9"


def test_server_protocol_http10(srv):
    r = http(srv.port, "GET", "/echo", version="HTTP/1.0")
    env = env_of(r)
    assert env["SERVER_PROTOCOL"] == "HTTP/1.0"


def test_remote_addr_and_port(srv):
    with connect(srv.port) as s:
        s.sendall(request_bytes("GET", "/echo", [("Connection", "close")]))
        r = HTTPReader(s).read_response()
        local_port = s.getsockname()[1]
    env = env_of(r)
    assert env["REMOTE_ADDR"] == "127.0.0.1"
    assert env["REMOTE_PORT"] == str(local_port)


def test_repeated_headers_joined(srv):
    env = env_of(http(srv.port, "GET", "/echo", [("X-Multi", "a"), ("X-Multi", "b"), ("X-Multi", "c d")]))
    assert env["HTTP_X_MULTI"] == "a, b, c d"


def test_header_value_whitespace_trimmed_and_case(srv):
    with connect(srv.port) as s:
        s.sendall(b"GET /echo HTTP/1.1\r\nhost: 127.0.0.1\r\nx-LoWeR:   padded value \t \r\nConnection: close\r\n\r\n")
        env = env_of(HTTPReader(s).read_response())
    assert env["HTTP_X_LOWER"] == "padded value"
    assert env["HTTP_HOST"] == "127.0.0.1"


def test_script_name_with_root_path(server):
    s = server("wsgi_apps:app", "--root-path", "/mount")
    env = env_of(http(s.port, "GET", "/mount/inner/x?y=1"))
    assert env["SCRIPT_NAME"] == "/mount"
    assert env["PATH_INFO"] == "/inner/x"
    assert env["QUERY_STRING"] == "y=1"


# -- wsgi.input --------------------------------------------------------------------------

def test_wsgi_input_empty_body(isrv):
    srv = isrv
    r = http(srv.port, "POST", "/body?mode=readn", [("Content-Length", "0")])
    assert r.status == 200 and r.json()["len"] == 0, r


def test_wsgi_input_get_without_body_reads_empty(isrv):
    srv = isrv
    r = http(srv.port, "GET", "/body?mode=read")
    assert r.status == 200 and r.json()["len"] == 0, r


BODY = (b"first line\nsecond line\r\n" + bytes(range(256)) * 64 + b"\nno newline at end")
READ_MODES = ["read", "read_none", "read_neg", "readn", "read1", "readline", "readline_n", "readlines", "iter"]


@pytest.mark.parametrize("framing", ["content-length", "chunked"])
@pytest.mark.parametrize("mode", READ_MODES)
def test_wsgi_input_read_variants(isrv, mode, framing):
    srv = isrv
    body = BODY if mode != "read1" else BODY[:3000]
    if framing == "chunked":
        data = request_bytes("POST", "/body?mode=%s&size=1000" % mode,
                             [("Transfer-Encoding", "chunked"), ("Connection", "close")], chunked(body, 777))
    else:
        data = request_bytes("POST", "/body?mode=%s&size=1000" % mode, [("Connection", "close")], body)
    with connect(srv.port, timeout=5) as s:
        s.sendall(data)
        r = HTTPReader(s, timeout=5).read_response()
    assert r.status == 200, r
    assert r.json() == {"len": len(body), "sha256": hashlib.sha256(body).hexdigest()}


# -- responses ---------------------------------------------------------------------------

def test_write_callable(srv):
    r = http(srv.port, "GET", "/write")
    assert r.status == 200, r
    assert r.body == b"written-1;written-2;returned-1;returned-2"


def test_exc_info_before_headers_sent(srv):
    r = http(srv.port, "GET", "/excinfo?when=before")
    assert r.status == 500, r
    assert r.header("X-Handled") == "1"
    assert r.body == b"handled-error"


def test_exc_info_after_headers_sent_aborts_connection(srv):
    with connect(srv.port) as s:
        s.sendall(request_bytes("GET", "/excinfo?when=after"))
        rd = HTTPReader(s)
        with pytest.raises(ConnectionClosed):
            r = rd.read_response()
            raise AssertionError("response completed normally despite the re-raised exc_info: %r" % r)
    assert_served(srv.port)


def test_chunked_response_without_content_length(srv):
    r = http(srv.port, "GET", "/stream?n=4&size=3")
    assert r.status == 200, r
    assert r.header("Transfer-Encoding") == "chunked"
    assert r.header("Content-Length") is None
    assert r.body == b"000111222333"


def test_http10_response_is_close_delimited(srv):
    with connect(srv.port) as s:
        s.sendall(b"GET /stream?n=4&size=3 HTTP/1.0\r\n\r\n")
        data, closed = recv_until_close(s, timeout=5)
    assert closed
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1."), head
    assert b"transfer-encoding" not in head.lower(), head
    assert body == b"000111222333", body


def test_http10_default_closes(srv):
    with connect(srv.port) as s:
        s.sendall(b"GET /echo HTTP/1.0\r\n\r\n")
        rd = HTTPReader(s)
        r = rd.read_response()
        assert r.status == 200
        rd.expect_closed()


def test_connection_close_honoured(srv):
    with connect(srv.port) as s:
        s.sendall(request_bytes("GET", "/echo", [("Connection", "close")]))
        rd = HTTPReader(s)
        r = rd.read_response()
        assert r.status == 200
        assert (r.header("Connection") or "").lower() == "close"
        rd.expect_closed()


def test_head_has_no_body_and_keeps_sync(srv):
    data = (request_bytes("HEAD", "/stream?n=3&size=4") + request_bytes("HEAD", "/echo")
            + request_bytes("GET", "/stream?n=2&size=2", [("Connection", "close")]))
    with connect(srv.port) as s:
        s.sendall(data)
        rd = HTTPReader(s)
        h1 = rd.read_response("HEAD")
        h2 = rd.read_response("HEAD")
        g = rd.read_response()
        assert (h1.status, h2.status, g.status) == (200, 200, 200)
        assert g.body == b"0011", "HEAD response carried a body (stream out of sync): %r" % g
        rd.expect_closed()


def test_status_204_has_no_body(srv):
    with connect(srv.port) as s:
        s.sendall(request_bytes("GET", "/status?code=204") + request_bytes("GET", "/echo?n=2", [("Connection", "close")]))
        rd = HTTPReader(s)
        r = rd.read_response()
        assert r.status == 204 and r.header("Transfer-Encoding") is None, r
        r2 = rd.read_response()
        assert r2.status == 200 and env_of(r2)["QUERY_STRING"] == "n=2"


def test_date_and_status_line(srv):
    r = http(srv.port, "GET", "/status?code=201")
    assert r.status == 201 and r.reason == "Created"
    assert r.header("Date"), r.headers
    assert r.body == b"status-body"


def test_keep_alive_reuses_connection(srv):
    with requests.Session() as sess:
        ports = set()
        for i in range(5):
            r = sess.get("http://127.0.0.1:%d/echo?i=%d" % (srv.port, i), timeout=5)
            assert r.status_code == 200
            ports.add(r.json()["environ"]["REMOTE_PORT"])
    assert len(ports) == 1, "keep-alive not reused: %s" % ports


def test_keep_alive_raw_mixed_methods(srv):
    with connect(srv.port) as s:
        rd = HTTPReader(s)
        for i in range(5):
            s.sendall(request_bytes("POST", "/echo?i=%d" % i, [], b"body%d" % i))
            r = rd.read_response()
            assert r.status == 200 and r.json()["body"] == "body%d" % i
            s.sendall(request_bytes("GET", "/stream?n=2&size=1"))
            r = rd.read_response()
            assert r.body == b"01"


def test_pipelining_100_requests_in_one_send(srv):
    data = b"".join(request_bytes("GET", "/echo?i=%d" % i) for i in range(100))
    with connect(srv.port, timeout=15) as s:
        s.sendall(data)
        rd = HTTPReader(s, timeout=15)
        for i in range(100):
            r = rd.read_response()
            assert r.status == 200, (i, r)
            assert env_of(r)["QUERY_STRING"] == "i=%d" % i, "response %d out of order" % i
        assert rd.is_open(0.2)


def test_pipelined_posts_with_bodies(srv):
    data = b"".join(request_bytes("POST", "/echo?i=%d" % i, [], b"b%03d" % i) for i in range(30))
    data += b"".join(request_bytes("POST", "/echo?c=%d" % i, [("Transfer-Encoding", "chunked")], chunked(b"c%03d" % i, 2))
                     for i in range(20))
    with connect(srv.port, timeout=15) as s:
        s.sendall(data)
        rd = HTTPReader(s, timeout=15)
        for i in range(30):
            assert rd.read_response().json()["body"] == "b%03d" % i
        for i in range(20):
            assert rd.read_response().json()["body"] == "c%03d" % i


def test_pipelined_responses_keep_order_behind_a_slow_first(srv):
    # Two app threads: the burst is handed on at once, so the second (shorter) sleep runs
    # beside the first and ends first; the responses still leave in request order.
    data = (request_bytes("GET", "/sleep?secs=1") + request_bytes("GET", "/sleep?secs=0.8")
            + request_bytes("GET", "/echo?i=2"))
    with connect(srv.port, timeout=15) as s:
        t0 = time.monotonic()
        s.sendall(data)
        rd = HTTPReader(s, timeout=15)
        first, second = rd.read_response().json(), rd.read_response().json()
        assert first["slept"] >= 1.0 and second["slept"] < 1.0, (first, second)
        assert env_of(rd.read_response())["QUERY_STRING"] == "i=2"
        took = time.monotonic() - t0
        assert rd.is_open(0.2)
    assert took < 1.6, "the sleeps ran one after the other (%.2f s): not handed on together" % took


def test_pipelined_large_response_behind_a_slow_one(srv):
    # The second app thread's 4 MiB response is held (past the stream's 512 KiB of unsent
    # output its thread waits) until the first, slower, response is written; then it flows.
    size = 4 << 20
    data = (request_bytes("GET", "/sleep?secs=0.3") + request_bytes("GET", "/large?size=%d&cl=1" % size)
            + request_bytes("GET", "/echo?i=2"))
    with connect(srv.port, timeout=15) as s:
        s.sendall(data)
        rd = HTTPReader(s, timeout=15)
        assert "slept" in rd.read_response().json()
        assert rd.read_response().body == large_pattern(size)
        assert env_of(rd.read_response())["QUERY_STRING"] == "i=2"
        assert rd.is_open(0.2)


def test_pipelined_connection_close_in_the_middle(srv):
    data = (request_bytes("GET", "/sleep?secs=0.2") + request_bytes("GET", "/echo?i=1", [("Connection", "close")])
            + request_bytes("GET", "/echo?i=2"))
    with connect(srv.port, timeout=15) as s:
        s.sendall(data)
        rd = HTTPReader(s, timeout=15)
        assert "slept" in rd.read_response().json()
        r = rd.read_response()
        assert env_of(r)["QUERY_STRING"] == "i=1" and r.header("connection") == "close", r
        rd.expect_closed()  # the third request is not served


def test_pipelined_bad_request_in_the_middle_answered_after_the_earlier_ones(srv):
    data = (request_bytes("GET", "/sleep?secs=0.2") + request_bytes("GET", "/echo?i=1")
            + b"GET /echo?i=2 HTTP/1.1\r\nHost: x\r\nBad Header: y\r\n\r\n" + request_bytes("GET", "/echo?i=3"))
    with connect(srv.port, timeout=15) as s:
        s.sendall(data)
        rd = HTTPReader(s, timeout=15)
        assert "slept" in rd.read_response().json()
        assert env_of(rd.read_response())["QUERY_STRING"] == "i=1"
        r = rd.read_response()
        assert r.status == 400 and r.header("connection") == "close", r
        rd.expect_closed()


# -- large bodies ------------------------------------------------------------------------

UPLOAD = 32 << 20


def _upload(port, total, use_chunked):
    block = os.urandom(1 << 16)
    h = hashlib.sha256()
    headers = [("Connection", "close")]
    headers.append(("Transfer-Encoding", "chunked") if use_chunked else ("Content-Length", str(total)))
    with connect(port, timeout=30) as s:
        s.sendall(request_bytes("POST", "/hash?size=65536", headers))
        sent = 0
        while sent < total:
            part = block[:min(len(block), total - sent)]
            h.update(part)
            s.sendall((b"%x\r\n" % len(part) + part + b"\r\n") if use_chunked else part)
            sent += len(part)
        if use_chunked:
            s.sendall(b"0\r\n\r\n")
        r = HTTPReader(s, timeout=30).read_response()
    return r, h.hexdigest()


@pytest.mark.parametrize("use_chunked", [False, True], ids=["content-length", "chunked"])
def test_large_upload_streamed_memory_bounded(srv, use_chunked):
    with RssSampler(srv) as rss:
        r, digest = _upload(srv.port, UPLOAD, use_chunked)
    assert r.status == 200, r
    assert r.json() == {"len": UPLOAD, "sha256": digest}
    assert rss.growth_mb() < 150, "server RSS grew %.0f MiB for a %d MiB upload" % (rss.growth_mb(), UPLOAD >> 20)


@pytest.mark.parametrize("with_cl", [False, True], ids=["chunked", "content-length"])
def test_large_download_memory_bounded(srv, with_cl):
    size = 32 << 20
    expect = hashlib.sha256(large_pattern(size)).hexdigest()
    with RssSampler(srv) as rss:
        with connect(srv.port, timeout=30) as s:
            s.sendall(request_bytes("GET", "/large?size=%d&cl=%d" % (size, int(with_cl)), [("Connection", "close")]))
            r = HTTPReader(s, timeout=30).read_response(max_body=64 << 20)
    assert r.status == 200, r
    assert len(r.body) == size
    assert hashlib.sha256(r.body).hexdigest() == expect
    if with_cl:
        assert r.header("Content-Length") == str(size)
    assert rss.growth_mb() < 150, "server RSS grew %.0f MiB for a 32 MiB download" % rss.growth_mb()


def test_large_download_with_requests_streaming(srv):
    size = 8 << 20
    with requests.get("http://127.0.0.1:%d/large?size=%d" % (srv.port, size), stream=True, timeout=30) as r:
        assert r.status_code == 200
        n = 0
        h = hashlib.sha256()
        for part in r.iter_content(1 << 16):
            n += len(part)
            h.update(part)
    assert n == size
    assert h.hexdigest() == hashlib.sha256(large_pattern(size)).hexdigest()


@pytest.mark.parametrize("cl", [0, 1], ids=["no-cl", "cl"])
def test_file_wrapper(srv, tmp_path, cl):
    data = os.urandom(3 * (1 << 20) + 123)
    p = tmp_path / "blob.bin"
    p.write_bytes(data)
    r = http(srv.port, "GET", "/file?path=%s&cl=%d" % (p, cl), timeout=30)
    assert r.status == 200, r
    assert len(r.body) == len(data)
    assert r.body == data


# -- close() and errors ------------------------------------------------------------------

def _closed(srv, tag, timeout=5):
    return wait_for(lambda: ("close %s" % tag) in read_file(srv.closelog).splitlines(), timeout)


def test_close_called_on_normal_response(srv):
    tag = "norm%d" % time.monotonic_ns()
    r = http(srv.port, "GET", "/track?id=%s&n=3&size=2" % tag)
    assert r.status == 200 and r.body == b"xxxxxx", r
    assert _closed(srv, tag), read_file(srv.closelog)


def test_close_called_on_head(srv):
    tag = "head%d" % time.monotonic_ns()
    with connect(srv.port) as s:
        s.sendall(request_bytes("HEAD", "/track?id=%s" % tag, [("Connection", "close")]))
        r = HTTPReader(s).read_response("HEAD")
    assert r.status == 200
    assert _closed(srv, tag), read_file(srv.closelog)


def test_close_called_when_iteration_raises(srv):
    tag = "raise%d" % time.monotonic_ns()
    with connect(srv.port) as s:
        s.sendall(request_bytes("GET", "/track?id=%s&raise=1&n=3" % tag, [("Connection", "close")]))
        recv_until_close(s, timeout=5)
    assert _closed(srv, tag), read_file(srv.closelog)
    assert_served(srv.port)


def test_exception_gives_500_and_traceback_in_log(srv):
    marker = "hb-boom-%d" % time.monotonic_ns()
    r = http(srv.port, "GET", "/raise?msg=%s" % marker)
    assert r.status == 500, r
    assert marker.encode() not in r.body, "traceback/exception text leaked to the client"
    assert wait_for(lambda: marker in srv.stderr(), 3), "exception not logged:\n%s" % srv.stderr()[-3000:]
    err = srv.stderr()
    assert "Traceback" in err and "RuntimeError" in err, err[-3000:]
    assert_served(srv.port)


def test_exception_during_iteration_closes_and_logs(srv):
    marker = "hb-iterboom-%d" % time.monotonic_ns()
    with connect(srv.port) as s:
        s.sendall(request_bytes("GET", "/raise_iter?msg=%s" % marker))
        rd = HTTPReader(s)
        with pytest.raises(ConnectionClosed):
            r = rd.read_response()
            raise AssertionError("response completed despite the exception: %r" % r)
    assert wait_for(lambda: marker in srv.stderr(), 3), srv.stderr()[-3000:]
    assert_served(srv.port)


def test_wsgi_errors_goes_to_log(srv):
    marker = "hb-errors-%d" % time.monotonic_ns()
    r = http(srv.port, "GET", "/errors?msg=%s" % marker)
    assert r.status == 200
    assert wait_for(lambda: marker in srv.stderr(), 3), srv.stderr()[-3000:]


def test_concurrent_clients(srv):
    errors = []

    def worker(i):
        try:
            with requests.Session() as sess:
                for j in range(10):
                    r = sess.post("http://127.0.0.1:%d/echo?w=%d&j=%d" % (srv.port, i, j), data=b"d%d" % j, timeout=10)
                    assert r.status_code == 200 and r.json()["body"] == "d%d" % j
        except Exception as e:  # noqa: BLE001
            errors.append(repr(e))

    ts = [threading.Thread(target=worker, args=(i,)) for i in range(8)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(30)
    assert not errors, errors
