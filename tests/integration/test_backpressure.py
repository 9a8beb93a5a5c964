"""Backpressure a user sets: limit_concurrency (past it a new request is answered 503 with
Retry-After at once, by the io thread, the connection kept) and max_queue_wait (a request that
waited longer for a worker is answered 503 instead of running late). A slow app under many
concurrent clients: some 503s, the rest 200, and the server keeps serving. WSGI, ASGI, HTTP/2."""
import re
import socket
import subprocess
import threading
import time

from hbtest import HTTPReader


def request(port, path, sock=None, keep=False):
    """(status, Retry-After, seconds, sock) for one GET; sock kept open when keep."""
    s = sock or socket.create_connection(("127.0.0.1", port), timeout=30)
    t0 = time.monotonic()
    s.sendall(("GET %s HTTP/1.1\r\nHost: t\r\n%s\r\n" % (path, "" if keep else "Connection: close\r\n")).encode())
    r = HTTPReader(s, timeout=30).read_response()
    dt = time.monotonic() - t0
    if not keep:
        s.close()
    return r.status, r.header("retry-after"), dt, r


def burst(port, path, n):
    """n clients at once, each on its own connection; returns [(status, retry_after, secs)]."""
    out = [None] * n
    socks = [socket.create_connection(("127.0.0.1", port), timeout=30) for _ in range(n)]
    go = threading.Event()

    def one(i):
        go.wait()
        st, ra, dt, _ = request(port, path, socks[i])
        out[i] = (st, ra, dt)
    ts = [threading.Thread(target=one, args=(i,)) for i in range(n)]
    for t in ts:
        t.start()
    go.set()
    for t in ts:
        t.join(60)
    assert all(out), out
    return out


def check_limit(s, path, n, limit, slow):
    res = burst(s.port, path, n)
    ok = [r for r in res if r[0] == 200]
    busy = [r for r in res if r[0] == 503]
    assert len(ok) + len(busy) == n, res
    assert len(ok) <= limit and len(ok) >= 1, res
    assert len(busy) >= n - limit, res
    assert all(r[1] == "1" for r in busy), res  # Retry-After: 1 (the default)
    # the 503s come at once, not after the slow app
    assert max(r[2] for r in busy) < slow * 0.8, res
    # and the server keeps serving
    st, _, _, _ = request(s.port, "/")
    assert st == 200


def test_limit_concurrency_wsgi(server):
    s = server("proxy_apps:wsgi", "--limit-concurrency", "2", "--threads", "2")
    check_limit(s, "/slow?s=2", 10, 2, 2.0)


def test_limit_concurrency_asgi(server):
    s = server("proxy_apps:asgi", "--worker-class", "asgi", "--limit-concurrency", "3")
    check_limit(s, "/slow?s=2", 12, 3, 2.0)


def test_limit_503_keeps_the_connection(server):
    s = server("proxy_apps:wsgi", "--limit-concurrency", "1", "--access-log", "-")
    c = socket.create_connection(("127.0.0.1", s.port), timeout=30)
    for _ in range(5):  # the slow request must be in flight first (retried if it was not)
        hold = threading.Thread(target=request, args=(s.port, "/slow?s=1.5"))
        hold.start()
        time.sleep(0.3)
        st, ra, _, r = request(s.port, "/", c, keep=True)
        hold.join(30)
        if st == 503:
            break
    assert st == 503 and ra == "1"
    assert (r.header("connection") or "").lower() != "close"
    assert r.body == b"Service Unavailable\n"
    st, _, _, _ = request(s.port, "/", c, keep=True)  # the same connection, served now
    assert st == 200
    c.close()
    s.stop()
    assert re.search(r'"GET / HTTP/1.1" 503 20 ', s.stdout()), s.stdout()  # logged as any response


def test_limit_concurrency_h2(server):
    s = server("proxy_apps:asgi", "--worker-class", "asgi", "--limit-concurrency", "2")
    out = subprocess.run(["h2load", "-n", "10", "-c", "1", "-m", "10",
                          "http://127.0.0.1:%d/slow?s=1.5" % s.port],
                         capture_output=True, timeout=60, text=True)
    m = re.search(r"status codes: (\d+) 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx", out.stdout)
    assert m, out.stdout + out.stderr
    ok, busy = int(m.group(1)), int(m.group(4))
    assert ok == 2 and busy == 8, out.stdout


def test_max_queue_wait_wsgi(server):
    s = server("proxy_apps:wsgi", "--max-queue-wait", "1", "--retry-after", "7")
    res = burst(s.port, "/slow?s=2.5", 5)
    ok = [r for r in res if r[0] == 200]
    late = [r for r in res if r[0] == 503]
    assert len(ok) == 1 and len(late) == 4, res
    assert all(r[1] == "7" for r in late), res
    st, _, _, _ = request(s.port, "/")
    assert st == 200


def test_max_queue_wait_asgi(server):
    # /block holds the event loop (time.sleep): requests behind it wait in the worker's queue
    s = server("proxy_apps:asgi", "--worker-class", "asgi", "--max-queue-wait", "1")
    first = []
    hold = threading.Thread(target=lambda: first.append(request(s.port, "/block?s=2.5")))
    hold.start()
    time.sleep(0.8)  # the loop is blocked in the first request now
    res = burst(s.port, "/block?s=2.5", 3)
    hold.join(30)
    assert first and first[0][0] == 200
    assert [r[0] for r in res] == [503] * 3, res
    st, _, _, _ = request(s.port, "/")
    assert st == 200
