"""CONFORMANCE.md, HTTP/1.1 table: every row, sent whole, byte by byte, split at a representative
set of points, and pipelined after a valid request. After each bad request a NEW connection must
still be served 200, and the server must still be alive.

One server for the module (limits set low so the limit rows are cheap to hit).
"""
import socket
import struct
import time

import pytest

from hbtest import (HTTPReader, ConnectionClosed, assert_served, connect, readable, recv_until_close,
                    safe_send, send_bytewise, send_split, split_points, read_file, wait_for)

MAX_BODY = 1000
LIMIT_LINE = 2048
LIMIT_FIELDS = 30
LIMIT_FIELD_SIZE = 4096
LIMIT_HEADER_SIZE = 16384
CONF_ARGS = [
    "--workers", "1", "--threads", "2",
    "--max-body-size", str(MAX_BODY),
    "--limit-request-line", str(LIMIT_LINE),
    "--limit-request-fields", str(LIMIT_FIELDS),
    "--limit-request-field-size", str(LIMIT_FIELD_SIZE),
    "--limit-request-header-size", str(LIMIT_HEADER_SIZE),
    "--header-timeout", "2", "--body-timeout", "2", "--write-timeout", "2",
    "--keepalive", "5",
]


@pytest.fixture(scope="module")
def conf(module_server_factory, tmp_path_factory):
    d = tmp_path_factory.mktemp("conf")
    reqlog = d / "reqlog.txt"
    closelog = d / "closelog.txt"
    s = module_server_factory("wsgi_apps:app", *CONF_ARGS,
                              env={"HB_REQ_LOG": str(reqlog), "HB_CLOSE_LOG": str(closelog)})
    s.reqlog = reqlog
    s.closelog = closelog
    for _ in range(20):  # warm up before taking the baseline RSS
        assert_served(s.port)
    s.rss_baseline_kb = s.rss_kb()
    return s


@pytest.fixture
def srv(conf):
    conf.assert_alive()
    yield conf
    conf.assert_alive()


H = b"Host: 127.0.0.1\r\n"
VALID = b"GET /log?id=pipelined-first HTTP/1.1\r\n" + H + b"\r\n"


def post(headers, body=b"", target=b"/echo", version=b"HTTP/1.1", host=True):
    return (b"POST " + target + b" " + version + b"\r\n" + (H if host else b"") + headers + b"\r\n" + body)


def get(headers=b"", target=b"/echo", version=b"HTTP/1.1", host=True):
    return b"GET " + target + b" " + version + b"\r\n" + (H if host else b"") + headers + b"\r\n"


CHUNKED_HELLO = b"5\r\nhello\r\n0\r\n\r\n"
TE = b"Transfer-Encoding: chunked\r\n"

E400 = {400}
E4xx_TE = {400, 501}


def _check_trailer_not_merged(name, value):
    def check(resp):
        if resp.status == 400:
            return
        assert resp.status == 200, resp
        env = resp.json()["environ"]
        assert resp.json()["body"] == "hello"
        for k, v in env.items():
            if isinstance(v, str):
                assert value not in v, "trailer %s merged into %s=%r" % (name, k, v)
    return check


def _check_underscore(resp):
    if resp.status == 400:
        return
    assert resp.status == 200, resp
    env = resp.json()["environ"]
    assert env["_has"]["HTTP_TRANSFER_ENCODING"] is False, env
    assert resp.json()["body"] == "hello"


def _check_underscore_spoof(resp):
    if resp.status == 400:
        return
    assert resp.status == 200, resp
    env = resp.json()["environ"]
    assert env.get("HTTP_X_REAL_IP") == "good", env.get("HTTP_X_REAL_IP")


def _check_reached(method, path, query="", host="127.0.0.1", server_name="127.0.0.1", server_port=None):
    """The request reached the app with this method, PATH_INFO, QUERY_STRING and Host."""
    def check(resp):
        assert resp.status == 200, resp
        env = resp.json()["environ"]
        got = {k: env.get(k) for k in ("REQUEST_METHOD", "PATH_INFO", "QUERY_STRING", "HTTP_HOST", "SERVER_NAME")}
        assert got == {"REQUEST_METHOD": method, "PATH_INFO": path, "QUERY_STRING": query,
                       "HTTP_HOST": host, "SERVER_NAME": server_name}, got
        if server_port is not None:
            assert env.get("SERVER_PORT") == server_port, env.get("SERVER_PORT")
    return check


def req_line(method, target, headers=H):
    return method + b" " + target + b" HTTP/1.1\r\n" + headers + b"\r\n"


# (id, request bytes, accepted statuses, check(resp) or None). Error statuses must close.
ROWS = [
    # request targets (RFC 9112 3.2: origin-, absolute-, authority- (CONNECT), asterisk-form (OPTIONS))
    ("target_scheme_garbage", req_line(b"PUT", b"s://]ufd/:", H + b"Content-Length: 0\r\n"), E400, None),
    ("target_ftp_scheme", req_line(b"GET", b"ftp://x/y"), E400, None),
    ("target_asterisk_get", req_line(b"GET", b"*"), E400, None),
    ("target_asterisk_post", req_line(b"POST", b"*", H + b"Content-Length: 0\r\n"), E400, None),
    ("target_relative_path", req_line(b"GET", b"echo"), E400, None),
    ("target_query_only", req_line(b"GET", b"?a=1"), E400, None),
    ("target_authority_form_get", req_line(b"GET", b"127.0.0.1:80"), E400, None),
    ("target_fragment", req_line(b"GET", b"/echo#frag"), E400, None),
    ("target_fragment_after_query", req_line(b"GET", b"/echo?a=1#frag"), E400, None),
    ("target_absolute_fragment", req_line(b"GET", b"http://127.0.0.1/echo#f"), E400, None),
    ("target_absolute_userinfo", req_line(b"GET", b"http://user@127.0.0.1/echo"), E400, None),
    ("target_absolute_empty_host", req_line(b"GET", b"http:///echo"), E400, None),
    ("target_absolute_bad_port", req_line(b"GET", b"http://127.0.0.1:8o/echo"), E400, None),
    ("connect_authority_form", req_line(b"CONNECT", b"127.0.0.1:443", b"Host: 127.0.0.1:443\r\n"), {501}, None),
    ("connect_origin_form", req_line(b"CONNECT", b"/echo"), E400, None),
    ("connect_no_port", req_line(b"CONNECT", b"127.0.0.1"), E400, None),
    ("options_asterisk", req_line(b"OPTIONS", b"*"), {200}, _check_reached("OPTIONS", "*")),
    ("options_origin_form", req_line(b"OPTIONS", b"/echo"), {200}, _check_reached("OPTIONS", "/echo")),
    ("absolute_form_host_wins",
     req_line(b"GET", b"http://example.com/foo?x=1"), {200},
     _check_reached("GET", "/foo", "x=1", "example.com", "example.com", "80")),
    ("absolute_form_port_and_no_path",
     req_line(b"POST", b"HTTP://Example.COM:8443?x=2", H + b"Content-Length: 0\r\n"), {200},
     _check_reached("POST", "/", "x=2", "Example.COM:8443", "Example.COM", "8443")),
    ("absolute_form_unknown_method",
     req_line(b"PURGE", b"https://[::1]:9000/p"), {200},
     _check_reached("PURGE", "/p", "", "[::1]:9000", "[::1]", "9000")),
    # methods: any token reaches the app (RFC 9110 9.1, 5.6.2)
    ("method_purge", req_line(b"PURGE", b"/echo"), {200}, _check_reached("PURGE", "/echo")),
    ("method_foo", req_line(b"FOO", b"/echo?a=b"), {200}, _check_reached("FOO", "/echo", "a=b")),
    ("method_dash_blargh", req_line(b"-BLARGH", b"/echo"), {200}, _check_reached("-BLARGH", "/echo")),
    ("method_lowercase_get", req_line(b"get", b"/echo"), {200}, _check_reached("get", "/echo")),
    ("method_all_tchars", req_line(b"!#$%&'*+-.^_`|~09azAZ", b"/echo"), {200},
     _check_reached("!#$%&'*+-.^_`|~09azAZ", "/echo")),
    ("method_bad_char_at", req_line(b"G@T", b"/echo"), E400, None),
    ("method_bad_char_colon", req_line(b"GET:", b"/echo"), E400, None),
    ("method_non_ascii", req_line(b"G\xc3\xa9T", b"/echo"), E400, None),

    # Content-Length / Transfer-Encoding
    ("cl_and_te", post(b"Content-Length: 5\r\n" + TE, CHUNKED_HELLO), E400, None),
    ("te_and_cl", post(TE + b"Content-Length: 5\r\n", CHUNKED_HELLO), E400, None),
    ("cl_5_comma_5", post(b"Content-Length: 5, 5\r\n", b"hello"), E400, None),
    ("cl_plus_1", post(b"Content-Length: +1\r\n", b"h"), E400, None),
    ("cl_minus_0", post(b"Content-Length: -0\r\n"), E400, None),
    ("cl_0x10", post(b"Content-Length: 0x10\r\n", b"0123456789abcdef"), E400, None),
    ("cl_1_underscore_0", post(b"Content-Length: 1_0\r\n", b"0123456789"), E400, None),
    ("cl_empty", post(b"Content-Length: \r\n"), E400, None),
    ("cl_inner_space", post(b"Content-Length: 1 0\r\n", b"0123456789"), E400, None),
    ("cl_two_different", post(b"Content-Length: 5\r\nContent-Length: 6\r\n", b"hello!"), E400, None),
    ("cl_over_body_limit", post(b"Content-Length: %d\r\n" % (MAX_BODY + 1)), {413}, None),
    ("cl_2_pow_63", post(b"Content-Length: 9223372036854775808\r\n"), {413}, None),
    ("cl_2_pow_64", post(b"Content-Length: 18446744073709551616\r\n"), {413}, None),
    ("cl_huge", post(b"Content-Length: 999999999999999999999999999999\r\n"), {413}, None),
    ("chunked_total_over_body_limit",
     post(TE, b"258\r\n" + b"a" * 600 + b"\r\n258\r\n" + b"b" * 600 + b"\r\n0\r\n\r\n"), {413}, None),
    ("te_chunked_gzip", post(b"Transfer-Encoding: chunked, gzip\r\n", CHUNKED_HELLO), E4xx_TE, None),
    ("te_gzip_chunked", post(b"Transfer-Encoding: gzip, chunked\r\n", CHUNKED_HELLO), E4xx_TE, None),
    ("te_gzip", post(b"Transfer-Encoding: gzip\r\n", b"hello"), E4xx_TE, None),
    ("te_identity", post(b"Transfer-Encoding: identity\r\n", b"hello"), E4xx_TE, None),
    ("te_chunked_twice", post(b"Transfer-Encoding: chunked, chunked\r\n", CHUNKED_HELLO), E4xx_TE, None),
    ("te_two_lines", post(TE + TE, CHUNKED_HELLO), E4xx_TE, None),
    ("te_two_lines_gzip", post(b"Transfer-Encoding: gzip\r\n" + TE, CHUNKED_HELLO), E4xx_TE, None),
    ("te_vtab", post(b"Transfer-Encoding: \x0bchunked\r\n", CHUNKED_HELLO), E4xx_TE, None),
    ("te_x85", post(b"Transfer-Encoding: chunked\x85\r\n", CHUNKED_HELLO), E4xx_TE, None),
    ("te_xchunked", post(b"Transfer-Encoding: xchunked\r\n", CHUNKED_HELLO), E4xx_TE, None),
    ("te_leading_space_name",
     b"POST /echo HTTP/1.1\r\n Transfer-Encoding: chunked\r\n" + H + b"\r\n" + CHUNKED_HELLO, E4xx_TE, None),
    ("te_folded_after_host", post(b" Transfer-Encoding: chunked\r\n", CHUNKED_HELLO), E4xx_TE, None),
    ("te_space_before_colon", post(b"Transfer-Encoding : chunked\r\n", CHUNKED_HELLO), E4xx_TE, None),
    ("te_http10", post(TE, CHUNKED_HELLO, version=b"HTTP/1.0"), E400, None),
    # chunk syntax
    ("chunk_size_0x", post(TE, b"0x5\r\nhello\r\n0\r\n\r\n"), E400, None),
    ("chunk_size_plus", post(TE, b"+5\r\nhello\r\n0\r\n\r\n"), E400, None),
    ("chunk_size_leading_space", post(TE, b" 5\r\nhello\r\n0\r\n\r\n"), E400, None),
    ("chunk_size_negative", post(TE, b"-5\r\nhello\r\n0\r\n\r\n"), E400, None),
    ("chunk_size_empty", post(TE, b"\r\nhello\r\n0\r\n\r\n"), E400, None),
    ("chunk_size_overflow", post(TE, b"1" + b"0" * 16 + b"5\r\nhello\r\n0\r\n\r\n"), E400, None),
    ("chunk_size_overflow_f", post(TE, b"f" * 20 + b"\r\nhello\r\n0\r\n\r\n"), E400, None),
    ("chunk_bad_terminator", post(TE, b"5\r\nhelloXX0\r\n\r\n"), E400, None),
    ("chunk_data_too_long", post(TE, b"5\r\nhello!\r\n0\r\n\r\n"), E400, None),
    ("chunk_bare_lf_size", post(TE, b"5\nhello\r\n0\r\n\r\n"), E400, None),
    ("chunk_bare_lf_data", post(TE, b"5\r\nhello\n0\r\n\r\n"), E400, None),
    ("chunk_bare_lf_last", post(TE, b"5\r\nhello\r\n0\n\n"), E400, None),
    ("chunk_bare_cr", post(TE, b"5\rhello\r\n0\r\n\r\n"), E400, None),
    ("chunk_ext_oversized", post(TE, b"5;" + b"a" * 16384 + b"\r\nhello\r\n0\r\n\r\n"), E400, None),
    ("chunk_ext_many", post(TE, b"5" + b";a=b" * 4096 + b"\r\nhello\r\n0\r\n\r\n"), E400, None),
    # trailers
    ("trailer_content_length", post(TE, b"5\r\nhello\r\n0\r\nContent-Length: 77777\r\n\r\n"),
     {200, 400}, _check_trailer_not_merged("Content-Length", "77777")),
    ("trailer_transfer_encoding", post(TE, b"5\r\nhello\r\n0\r\nTransfer-Encoding: trailerte\r\n\r\n"),
     {200, 400}, _check_trailer_not_merged("Transfer-Encoding", "trailerte")),
    ("trailer_host", post(TE, b"5\r\nhello\r\n0\r\nHost: trailer-host.invalid\r\n\r\n"),
     {200, 400}, _check_trailer_not_merged("Host", "trailer-host.invalid")),
    # line endings, folding, header syntax
    ("lf_only", b"GET /echo HTTP/1.1\nHost: 127.0.0.1\n\n", E400, None),
    ("lf_request_line", b"GET /echo HTTP/1.1\n" + H + b"\r\n", E400, None),
    ("lf_header_line", b"GET /echo HTTP/1.1\r\nHost: 127.0.0.1\nX-A: b\r\n\r\n", E400, None),
    ("lf_final", b"GET /echo HTTP/1.1\r\nHost: 127.0.0.1\r\n\n", E400, None),
    ("bare_cr_in_value", get(b"X-A: a\rb\r\n"), E400, None),
    ("bare_cr_request_line", b"GET /echo HTTP/1.1\rX-A: b\r\n" + H + b"\r\n", E400, None),
    ("bare_cr_in_target", b"GET /ec\rho HTTP/1.1\r\n" + H + b"\r\n", E400, None),
    ("bare_cr_line_end", get(b"X-A: b\r\r\n"), E400, None),
    ("obs_fold_space", get(b"X-A: a\r\n b\r\n"), E400, None),
    ("obs_fold_tab", get(b"X-A: a\r\n\tb\r\n"), E400, None),
    ("space_before_colon", get(b"X-A : b\r\n"), E400, None),
    ("tab_before_colon", get(b"X-A\t: b\r\n"), E400, None),
    ("empty_header_name", get(b": b\r\n"), E400, None),
    ("header_without_colon", get(b"X-A b\r\n"), E400, None),
    ("bad_char_in_name", get(b"X(A): b\r\n"), E400, None),
    ("nul_in_value", get(b"X-A: a\x00b\r\n"), E400, None),
    ("ctl_in_value", get(b"X-A: a\x01b\r\n"), E400, None),
    ("del_in_value", get(b"X-A: a\x7fb\r\n"), E400, None),
    ("nul_in_name", get(b"X-\x00A: b\r\n"), E400, None),
    # underscores
    ("underscore_transfer_encoding", post(b"Transfer_Encoding: chunked\r\nContent-Length: 5\r\n", b"hello"),
     {200, 400}, _check_underscore),
    ("underscore_spoof", get(b"X-Real-IP: good\r\nX_Real_IP: evil\r\n"), {200, 400}, _check_underscore_spoof),
    # Host
    ("host_missing", get(host=False), E400, None),
    ("host_twice", get(b"Host: other.example\r\n"), E400, None),
    ("host_space", get(b"Host: a b\r\n", host=False), E400, None),
    ("host_slash", get(b"Host: a/b\r\n", host=False), E400, None),
    ("host_open_bracket", get(b"Host: [::1\r\n", host=False), E400, None),
    ("host_bad_port", get(b"Host: example.com:http\r\n", host=False), E400, None),
    ("host_userinfo", get(b"Host: user@example.com\r\n", host=False), E400, None),
    # request line
    ("rl_double_space", b"GET  /echo HTTP/1.1\r\n" + H + b"\r\n", E400, None),
    ("rl_lf_before_version", b"GET /echo\nHTTP/1.1\r\n" + H + b"\r\n", E400, None),
    ("rl_nul_in_target", b"GET /ec\x00ho HTTP/1.1\r\n" + H + b"\r\n", E400, None),
    ("rl_space_in_target", b"GET /a b HTTP/1.1\r\n" + H + b"\r\n", E400, None),
    ("rl_trailing_space", b"GET /echo HTTP/1.1 \r\n" + H + b"\r\n", E400, None),
    ("rl_lowercase_version", b"GET /echo http/1.1\r\n" + H + b"\r\n", E400, None),
    ("rl_http09", b"GET /echo\r\n" + H + b"\r\n", E400, None),
    ("rl_bad_method", b"G(T /echo HTTP/1.1\r\n" + H + b"\r\n", E400, None),
    ("rl_version_1_32", b"GET /echo HTTP/1.32\r\n" + H + b"\r\n", E400, None),
    ("rl_version_2_0", b"GET /echo HTTP/2.0\r\n" + H + b"\r\n", {505}, None),
    # limits
    ("target_too_long", b"GET /" + b"a" * (LIMIT_LINE + 500) + b" HTTP/1.1\r\n" + H + b"\r\n", {414}, None),
    ("too_many_headers", get(b"".join(b"X-H%d: v\r\n" % i for i in range(LIMIT_FIELDS + 10))), {431}, None),
    ("header_field_too_big", get(b"X-Big: " + b"a" * (LIMIT_FIELD_SIZE + 100) + b"\r\n"), {431}, None),
    ("header_section_too_big",
     get(b"".join(b"X-S%d: %s\r\n" % (i, b"b" * 3000) for i in range(7))), {431}, None),
]

ROW_IDS = [r[0] for r in ROWS]
ROW_MAP = {r[0]: r for r in ROWS}
MODES = ["whole", "bytewise", "split", "pipelined"]


def _send_mode(sock, data, mode, stop_on_response=True):
    if mode == "bytewise":
        if len(data) <= 1024:
            send_bytewise(sock, data, stop_on_response=stop_on_response)
        else:
            # long inputs: the first 256 bytes one by one, then odd-sized pieces
            n = send_bytewise(sock, data[:256], stop_on_response=stop_on_response)
            if n == 256:
                for i in range(256, len(data), 97):
                    if (stop_on_response and readable(sock)) or not safe_send(sock, data[i:i + 97]):
                        break
    else:
        safe_send(sock, data)


def _one(port, data, statuses, check, mode, at=None):
    with connect(port, timeout=5) as s:
        rd = HTTPReader(s, timeout=5)
        if mode == "pipelined":
            safe_send(s, VALID + data)
            first = rd.read_response()
            assert first.status == 200, "valid request before the bad one: %r" % first
        elif mode == "split":
            send_split(s, data, at)
        else:
            _send_mode(s, data, mode)
        try:
            resp = rd.read_response()
        except ConnectionClosed as e:
            raise AssertionError("connection closed without a response (expected %s): %s" % (sorted(statuses), e))
        assert resp.status in statuses, "expected %s, got %r" % (sorted(statuses), resp)
        if check:
            check(resp)
        if resp.status >= 400:
            rd.expect_closed(timeout=3)
    return resp


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("row", ROW_IDS)
def test_row(srv, row, mode):
    _, data, statuses, check = ROW_MAP[row]
    if mode == "split":
        for at in split_points(data, limit=8):
            _one(srv.port, data, statuses, check, mode, at)
    else:
        _one(srv.port, data, statuses, check, mode)
    assert_served(srv.port)


# -- rows that need more than "send it, read one status" -----------------------------------

@pytest.mark.parametrize("mode", ["whole", "bytewise", "split"])
def test_content_length_010_is_ten(srv, mode):
    data = post(b"Content-Length: 010\r\n", b"0123456789") + get(b"Connection: close\r\n", b"/echo?after=1")
    points = split_points(data, limit=8) if mode == "split" else [None]
    for at in points:
        with connect(srv.port) as s:
            if mode == "split":
                send_split(s, data, at, stop_on_response=False)
            else:
                _send_mode(s, data, mode, stop_on_response=False)
            rd = HTTPReader(s)
            r1 = rd.read_response()
            assert r1.status == 200, r1
            assert r1.json()["body"] == "0123456789"
            assert r1.json()["environ"].get("CONTENT_LENGTH") in ("10", "010")
            r2 = rd.read_response()
            assert r2.status == 200, r2
            assert r2.json()["environ"]["QUERY_STRING"] == "after=1"


@pytest.mark.parametrize("framing", ["content-length", "chunked"])
def test_body_exactly_at_limit_is_accepted(srv, framing):
    body = bytes(range(256)) * 3 + b"z" * (MAX_BODY - 768)
    assert len(body) == MAX_BODY
    if framing == "chunked":
        req = post(TE, b"%x\r\n" % 400 + body[:400] + b"\r\n" + b"%x\r\n" % 600 + body[400:] + b"\r\n0\r\n\r\n")
    else:
        req = post(b"Content-Length: %d\r\n" % MAX_BODY, body)
    with connect(srv.port) as s:
        s.sendall(req)
        r = HTTPReader(s).read_response()
    assert r.status == 200, r
    assert r.json()["body_len"] == MAX_BODY
    assert r.json()["body"].encode("latin-1") == body


def test_limits_just_below_are_accepted(srv):
    """The limit rows must not fire early: a request line, a header count, one field and a
    header section a little under each limit are served."""
    target = b"/echo?" + b"q" * (LIMIT_LINE - 40)
    r = _one_ok(srv.port, b"GET " + target + b" HTTP/1.1\r\n" + H + b"\r\n")
    assert r.json()["environ"]["QUERY_STRING"] == "q" * (LIMIT_LINE - 40)
    r = _one_ok(srv.port, get(b"".join(b"X-H%d: v\r\n" % i for i in range(LIMIT_FIELDS - 5))))
    assert r.json()["environ"]["HTTP_X_H0"] == "v"
    r = _one_ok(srv.port, get(b"X-Big: " + b"a" * (LIMIT_FIELD_SIZE - 100) + b"\r\n"))
    assert len(r.json()["environ"]["HTTP_X_BIG"]) == LIMIT_FIELD_SIZE - 100
    r = _one_ok(srv.port, get(b"".join(b"X-S%d: %s\r\n" % (i, b"b" * 3000) for i in range(4))))
    assert r.json()["environ"]["HTTP_X_S3"] == "b" * 3000


def _one_ok(port, data):
    with connect(port) as s:
        s.sendall(data)
        r = HTTPReader(s).read_response()
    assert r.status == 200, r
    return r


def test_absolute_form_target(srv):
    """RFC 9112 3.2.2: a server MUST accept the absolute form."""
    with connect(srv.port) as s:
        s.sendall(b"GET http://127.0.0.1/echo/abs?q=1 HTTP/1.1\r\n" + H + b"Connection: close\r\n\r\n")
        r = HTTPReader(s).read_response()
    assert r.status == 200, r
    env = r.json()["environ"]
    assert env["PATH_INFO"] == "/echo/abs" and env["QUERY_STRING"] == "q=1", env


def test_cl_over_limit_answered_before_body(srv):
    """413 arrives while the client has sent only the head (the body is never read)."""
    with connect(srv.port) as s:
        s.sendall(post(b"Content-Length: 1000000\r\n"))
        rd = HTTPReader(s, timeout=3)
        r = rd.read_response()
        assert r.status == 413, r
        rd.expect_closed()
    assert_served(srv.port)


def test_expect_continue_when_app_reads_body(srv):
    with connect(srv.port) as s:
        s.sendall(post(b"Content-Length: 5\r\nExpect: 100-continue\r\n"))
        rd = HTTPReader(s, timeout=3)
        r = rd.read_response(skip_1xx=False)
        assert r.status == 100, "expected 100 Continue before sending the body, got %r" % r
        s.sendall(b"hello")
        r = rd.read_response()
        assert r.status == 200, r
        assert r.json()["body"] == "hello"


def test_expect_continue_chunked_when_app_reads_body(srv):
    with connect(srv.port) as s:
        s.sendall(post(TE + b"Expect: 100-continue\r\n"))
        rd = HTTPReader(s, timeout=3)
        r = rd.read_response(skip_1xx=False)
        assert r.status == 100, r
        s.sendall(CHUNKED_HELLO)
        r = rd.read_response()
        assert r.status == 200 and r.json()["body"] == "hello", r


def test_expect_continue_not_sent_when_app_does_not_read(srv):
    with connect(srv.port) as s:
        s.sendall(post(b"Content-Length: 5\r\nExpect: 100-continue\r\n", target=b"/noread"))
        rd = HTTPReader(s, timeout=3)
        r = rd.read_response(skip_1xx=False)
        assert r.status == 200, "the app never read the body: expected the final 200 and no 100, got %r" % r
        assert r.body == b"noread"
    assert_served(srv.port)


def test_expect_continue_too_large_gets_413_without_100(srv):
    with connect(srv.port) as s:
        s.sendall(post(b"Content-Length: %d\r\nExpect: 100-continue\r\n" % (MAX_BODY * 5)))
        rd = HTTPReader(s, timeout=3)
        r = rd.read_response(skip_1xx=False)
        assert r.status == 413, "expected 413 and no 100 Continue, got %r" % r
        rd.expect_closed()
    assert_served(srv.port)


@pytest.mark.parametrize("mode", ["whole", "bytewise"])
def test_valid_then_invalid_pipelined(srv, mode):
    tag = "pv%s%d" % (mode, time.monotonic_ns())
    data = (b"GET /log?id=%s-first HTTP/1.1\r\n" % tag.encode() + H + b"\r\n"
            + b"GET /log?id=%s-bad HTTP/1.1\r\n" % tag.encode() + H + b"X-A: a\x00b\r\n\r\n"
            + b"GET /log?id=%s-third HTTP/1.1\r\n" % tag.encode() + H + b"\r\n")
    with connect(srv.port) as s:
        _send_mode(s, data, mode, stop_on_response=False)
        rd = HTTPReader(s)
        r1 = rd.read_response()
        assert r1.status == 200, r1
        r2 = rd.read_response()
        assert r2.status == 400, r2
        rd.expect_closed()
    time.sleep(0.2)
    log = read_file(srv.reqlog)
    assert "id=%s-first" % tag in log
    assert "%s-bad" % tag not in log, "the bad request reached the app"
    assert "%s-third" % tag not in log, "a request after the bad one reached the app"
    assert_served(srv.port)


INJECTION_KINDS = ["crlf", "lf", "cr", "name_crlf", "name_colon", "nonlatin1_value", "nonlatin1_name",
                   "status_crlf", "status_nonlatin1", "status_bad"]


@pytest.mark.parametrize("kind", INJECTION_KINDS)
def test_app_header_injection_is_500_and_close(srv, kind):
    req = (b"GET /badheader?kind=%s HTTP/1.1\r\n" % kind.encode() + H + b"\r\n"
           + b"GET /echo?after=1 HTTP/1.1\r\n" + H + b"\r\n")
    with connect(srv.port) as s:
        s.sendall(req)
        data, closed = recv_until_close(s, timeout=5)
    assert closed, "connection not closed after the app's bad header: %r" % data[:500]
    assert data.startswith(b"HTTP/1.1 500"), data[:500]
    assert b"Injected" not in data, "injected header line reached the wire: %r" % data[:500]
    assert b"should-not-be-sent" not in data
    assert data.count(b"HTTP/1.1 ") == 1, "served the pipelined request after a 500+close: %r" % data[:800]
    assert_served(srv.port)


@pytest.mark.parametrize("n", [3, 60])
def test_app_content_length_mismatch_closes(srv, n):
    req = (b"GET /clmismatch?n=%d HTTP/1.1\r\n" % n + H + b"\r\n"
           + b"GET /echo?after=1 HTTP/1.1\r\n" + H + b"\r\n")
    with connect(srv.port) as s:
        s.sendall(req)
        data, closed = recv_until_close(s, timeout=5)
    assert closed, "connection not closed after a Content-Length mismatch: %r" % data[:500]
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200"), data[:300]
    assert len(body) <= 10, "more bytes than the declared Content-Length: %r" % body[:200]
    assert b"HTTP/1.1" not in body, "keep-alive desynchronised: %r" % body
    assert_served(srv.port)


def test_slowloris_header_closed_at_header_timeout(srv):
    """One byte every 0.5 s: the connection must be closed near header_timeout (2 s), not served forever."""
    req = get(b"X-Slow: " + b"s" * 40 + b"\r\n")
    t0 = time.monotonic()
    closed_at = None
    with connect(srv.port) as s:
        for i in range(len(req)):
            if readable(s):
                data, closed = recv_until_close(s, timeout=1)
                if closed:
                    closed_at = time.monotonic() - t0
                    break
            try:
                s.send(req[i:i + 1])
            except (BrokenPipeError, ConnectionResetError):
                closed_at = time.monotonic() - t0
                break
            time.sleep(0.5)
            if time.monotonic() - t0 > 8:
                break
    assert closed_at is not None, "slowloris client still connected after 8 s (header timeout is 2 s)"
    assert closed_at < 4.5, "closed only after %.1fs (header timeout is 2 s)" % closed_at
    assert_served(srv.port)


def test_slow_body_closed_at_body_timeout(srv):
    with connect(srv.port) as s:
        s.sendall(post(b"Content-Length: 500\r\n", b"x" * 10, target=b"/hash"))
        t0 = time.monotonic()
        data, closed = recv_until_close(s, timeout=8)
        took = time.monotonic() - t0
    assert closed, "a stalled body was not timed out within 8 s (body timeout is 2 s)"
    assert took < 5.5, "closed only after %.1fs (body timeout 2 s)" % took
    if data:
        assert not data.startswith(b"HTTP/1.1 200"), data[:200]
    assert_served(srv.port)


def test_client_that_never_reads_is_closed_and_memory_bounded(srv):
    """256 MiB streamed to a client that never reads: the server must stall the app (bounded
    memory) and close at write_timeout (2 s)."""
    rss0 = srv.rss_kb()
    with connect(srv.port, rcvbuf=65536) as s:
        s.sendall(get(b"", target=b"/large?size=%d" % (256 << 20)))
        peak = rss0
        t0 = time.monotonic()
        while time.monotonic() - t0 < 4.5:
            peak = max(peak, srv.rss_kb())
            time.sleep(0.1)
        data, closed = recv_until_close(s, timeout=6, limit=300 << 20)
    assert closed, "a client that never reads was not disconnected (write timeout 2 s)"
    assert len(data) < (256 << 20), "the whole response was delivered?"
    growth_mb = (peak - rss0) / 1024
    assert growth_mb < 100, "server RSS grew by %.0f MiB for one stalled client" % growth_mb
    assert_served(srv.port)


def _closelog_has(srv, line, timeout=5):
    return wait_for(lambda: line in read_file(srv.closelog).splitlines(), timeout)


def test_client_closes_mid_body_close_called_no_error(srv):
    tag = "midbody%d" % time.monotonic_ns()
    before = len(srv.stderr())
    with connect(srv.port) as s:
        s.sendall(post(b"Content-Length: 900\r\n", b"y" * 100, target=b"/track?read=1&id=%s" % tag.encode()))
        time.sleep(0.3)
    assert _closelog_has(srv, "close %s" % tag), "close() not called; log: %r" % read_file(srv.closelog)
    time.sleep(0.2)
    errs = srv.error_lines(before)
    assert not errs, "error log lines for a client disconnect: %s" % errs
    assert_served(srv.port)


def test_client_closes_mid_response_close_called_no_error(srv):
    tag = "midresp%d" % time.monotonic_ns()
    before = len(srv.stderr())
    with connect(srv.port) as s:
        s.sendall(get(b"", target=b"/track?id=%s&n=100000&delay=0.005&size=1000" % tag.encode()))
        rd = HTTPReader(s)
        version, status, reason, headers = rd.read_head()
        assert status == 200
        time.sleep(0.2)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # abort: RST
    assert _closelog_has(srv, "close %s" % tag, timeout=8), "close() not called; log: %r" % read_file(srv.closelog)
    time.sleep(0.2)
    errs = srv.error_lines(before)
    assert not errs, "error log lines for a client disconnect: %s" % errs
    assert_served(srv.port)


def test_zz_memory_bounded_after_all_rows(srv):
    """Runs last in this module (file order): after every row above, the server's RSS has not
    grown without bound."""
    for _ in range(20):
        assert_served(srv.port)
    growth_mb = (srv.rss_kb() - srv.rss_baseline_kb) / 1024
    assert growth_mb < 100, "server RSS grew %.0f MiB over the conformance rows" % growth_mb
