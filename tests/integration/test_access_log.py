"""Access log (issue 11 §3): on by default to stdout, off with --no-access-log / access_log =
false, gunicorn's atoms (request and response headers, Basic-auth user, times in several units,
environment), a JSON format, the server's own error answers and HTTP/2 requests logged."""
import base64
import json
import re
import socket
import subprocess

import requests

from hbtest import wait_for

APP = "wsgi_apps:app"


def lines(s, marker):
    return [l for l in s.stdout().splitlines() if marker in l]


def wait_line(s, marker, timeout=5):
    got = wait_for(lambda: lines(s, marker), timeout)
    assert got, "no access log line with %r on stdout:\n%s" % (marker, s.describe())
    return got[0]


def raw(port, data):
    with socket.create_connection(("127.0.0.1", port), timeout=5) as c:
        c.sendall(data)
        return c.recv(200)


def test_on_by_default_in_gunicorns_format(server):
    s = server(APP)
    r = requests.get("http://127.0.0.1:%d/echo?dflt=1" % s.port, timeout=10,
                     headers={"User-Agent": "agent/1", "Referer": "http://r.example/"})
    assert r.status_code == 200
    line = wait_line(s, "dflt=1")
    assert re.fullmatch(r'127\.0\.0\.1 - - \[\d\d/\w{3}/\d{4}:\d\d:\d\d:\d\d \+0000\] '
                        r'"GET /echo\?dflt=1 HTTP/1\.1" 200 \d+ "http://r\.example/" "agent/1"', line), line


def test_off_with_the_flag_and_in_a_file(server, tmp_path):
    s = server(APP, "--no-access-log")
    requests.get("http://127.0.0.1:%d/echo?off=1" % s.port, timeout=10)
    conf = tmp_path / "hb.toml"
    conf.write_text("access_log = false\n")
    t = server(APP, "--config", str(conf))
    requests.get("http://127.0.0.1:%d/echo?off=2" % t.port, timeout=10)
    # a request that is logged on a third server proves lines would have had time to appear
    u = server(APP)
    requests.get("http://127.0.0.1:%d/echo?on=3" % u.port, timeout=10)
    wait_line(u, "on=3")
    for srv in (s, t):
        srv.stop()
        assert "/echo" not in srv.stdout(), srv.stdout()


def test_every_atom(server):
    fmt = "|".join(["%(h)s", "%(l)s", "%(u)s", "%(t)s", "%(r)s", "%(m)s", "%(U)s", "%(q)s", "%(H)s",
                    "%(s)s", "%(b)s", "%(B)s", "%(f)s", "%(a)s", "%(T)s", "%(M)s", "%(D)s", "%(L)s",
                    "%(p)s", "%({X-Req}i)s", "%({content-type}o)s", "%({x-none}o)s",
                    "%({HB_ACCESS_ENV}e)s", "%(zz)s"])
    s = server(APP, "--access-logformat", fmt, env={"HB_ACCESS_ENV": "env-value"})
    auth = base64.b64encode(b"alice:secret").decode()
    r = requests.get("http://127.0.0.1:%d/sleep?secs=0.3&atoms=1" % s.port, timeout=10,
                     headers={"X-Req": "req-value", "Authorization": "Basic " + auth,
                              "User-Agent": "ua/2"})
    assert r.status_code == 200
    f = wait_line(s, "atoms=1").split("|")
    assert f[0] == "127.0.0.1" and f[1] == "-" and f[2] == "alice"
    assert re.fullmatch(r"\[\d\d/\w{3}/\d{4}:\d\d:\d\d:\d\d \+0000\]", f[3])
    assert f[4] == "GET /sleep?secs=0.3&atoms=1 HTTP/1.1"
    assert (f[5], f[6], f[7], f[8], f[9]) == ("GET", "/sleep", "secs=0.3&atoms=1", "HTTP/1.1", "200")
    assert f[10] == f[11] == str(len(r.content))
    assert (f[12], f[13]) == ("-", "ua/2")
    secs, ms, us, dec = int(f[14]), int(f[15]), int(f[16]), float(f[17])
    assert secs == 0 and 300 <= ms < 5000 and 300000 <= us < 5000000
    assert abs(dec - us / 1e6) < 1e-5 and ms == us // 1000
    assert f[18] == "<%d>" % s.worker_pid()  # the worker process that served it, as gunicorn
    assert (f[19], f[20], f[21], f[22], f[23]) == ("req-value", "application/json", "-", "env-value", "-")


def test_json_lines(server):
    s = server(APP, "--access-log-format", "json")
    auth = base64.b64encode(b"bob:pw").decode()
    requests.get("http://127.0.0.1:%d/echo?js=%%22q" % s.port, timeout=10,
                 headers={"User-Agent": 'say "hi"\\', "Authorization": "Basic " + auth})
    assert raw(s.port, b"GARBAGE\r\n\r\n").startswith(b"HTTP/1.1 400")
    rec = json.loads(wait_line(s, "js="))
    assert rec["method"] == "GET" and rec["path"] == "/echo" and rec["query"] == "js=%22q"
    assert rec["status"] == 200 and rec["protocol"] == "HTTP/1.1" and rec["bytes"] > 0
    assert rec["user_agent"] == 'say "hi"\\' and rec["referer"] is None and rec["user"] == "bob"
    assert rec["remote_addr"] == "127.0.0.1" and rec["pid"] == s.worker_pid()
    assert isinstance(rec["duration"], float) and rec["duration"] >= 0
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", rec["time"])
    bad = json.loads(wait_line(s, '"status":400'))
    assert bad["method"] is None and bad["protocol"] is None and bad["remote_addr"] == "127.0.0.1"


def test_the_servers_own_answers_are_logged(server):
    s = server(APP, "--limit-request-line", "100", "--limit-request-field-size", "200",
               "--max-body-size", "10", "--timeout", "300ms")
    assert raw(s.port, b"GARBAGE\r\n\r\n").startswith(b"HTTP/1.1 400")
    assert raw(s.port, b"GET /" + b"a" * 200 + b" HTTP/1.1\r\nHost: x\r\n\r\n").startswith(b"HTTP/1.1 414")
    assert raw(s.port, b"GET / HTTP/1.1\r\nX-Big: " + b"b" * 300 + b"\r\n\r\n").startswith(b"HTTP/1.1 431")
    assert raw(s.port, b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n").startswith(b"HTTP/1.1 413")
    r = requests.get("http://127.0.0.1:%d/sleep?secs=2&late=1" % s.port, timeout=10)
    assert r.status_code == 504
    for status in ("400", "414", "431", "413"):
        wait_line(s, '"-" %s ' % status)
    assert '"GET /sleep?secs=2&late=1 HTTP/1.1" 504' in wait_line(s, "late=1")


def test_h2_requests_are_logged(server):
    s = server(APP)
    out = subprocess.run(["curl", "-s", "--http2-prior-knowledge", "-o", "/dev/null", "-w", "%{http_code}",
                          "http://127.0.0.1:%d/echo?h2=1" % s.port], capture_output=True, timeout=20)
    assert out.stdout == b"200", out
    assert '"GET /echo?h2=1 HTTP/2" 200' in wait_line(s, "h2=1")
