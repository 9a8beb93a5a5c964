"""SIGHUP reload (docs/production.md): a new generation of worker processes imports the app's
current code and takes over with no failed request under load, while a WebSocket opened before
stays on the old code; a broken app or configuration file keeps the old generation serving;
reload_websocket_timeout closes the old WebSockets with 1012. SIGUSR2: a binary upgrade under
load with no failed request; a broken new binary keeps the old master serving."""
import os
import re
import shutil
import signal
import socket
import struct
import time

import hbtest
from hbtest import http, wait_for
from test_supervisor import Load
from test_ws_protocol import Reader, frame, handshake

APP = '''
import os

from asgi_util import lifespan

VERSION = %d


async def app(scope, receive, send):
    if scope["type"] == "lifespan":
        await lifespan(receive, send)
    elif scope["type"] == "http":
        body = ("v%%d %%d" %% (VERSION, os.getpid())).encode()
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"text/plain"), (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})
    elif scope["type"] == "websocket":
        await receive()
        await send({"type": "websocket.accept"})
        while True:
            m = await receive()
            if m["type"] == "websocket.disconnect":
                return
            await send({"type": "websocket.send", "text": "v%%d:%%s" %% (VERSION, m.get("text"))})
'''


def write_app(d, version, text=None):
    (d / "reload_app.py").write_text(text if text is not None else APP % version)


def version(s):
    return int(re.match(rb"v(\d+) ", http(s.port, "GET", "/v", timeout=10).body).group(1))


def start(server, tmp_path, *args):
    write_app(tmp_path, 1)
    s = server("reload_app:app", "--worker-class", "asgi", "--pythonpath", str(tmp_path), *args)
    assert version(s) == 1
    return s


def ws_echo(sock, reader, text):
    sock.sendall(frame(0x1, text.encode()))
    op, payload = reader.frame(10)
    assert op == 0x1, (op, payload)
    return payload.decode()


def test_hup_under_load_serves_new_code_with_no_failure_and_keeps_websockets(server, tmp_path):
    s = start(server, tmp_path, "--processes", "2")
    old = s.worker_pids()
    ws, head, rest = handshake(s.port, path=b"/ws")
    assert head.startswith(b"HTTP/1.1 101"), head
    rd = Reader(ws, rest)
    assert ws_echo(ws, rd, "a") == "v1:a"
    load = Load(s.port, clients=4, path="/v")
    try:
        assert wait_for(lambda: load.count() > 20, 10)
        write_app(tmp_path, 2)
        s.signal(signal.SIGHUP)
        assert wait_for(lambda: version(s) == 2 and "Reloaded: generation 2" in s.stderr(), 20), s.describe()
        # once the old processes have seen their retirement (within a tick), every answer
        # comes from the new code
        assert wait_for(lambda: all(version(s) == 2 for _ in range(10)), 10), s.describe()
        served = load.count()
        assert wait_for(lambda: load.count() > served + 20, 10)
    finally:
        ok, failed = load.stop()
    assert not failed, "%d failed requests during the reload: %r\n%s" % (len(failed), failed[:5], s.describe())
    # The WebSocket opened before stays on the old code; its process retires when it closes.
    assert ws_echo(ws, rd, "b") == "v1:b"
    new = [p for p in s.worker_pids() if p not in old]
    assert len(new) == 2 and len(set(old) & set(s.worker_pids())) >= 1, (old, s.worker_pids())
    ws.sendall(frame(0x8, struct.pack("!H", 1000)))
    assert rd.close_code(10) == 1000
    ws.close()
    assert wait_for(lambda: sorted(s.worker_pids()) == sorted(new), 15), (new, s.worker_pids(), s.describe())


def test_hup_with_a_broken_app_keeps_the_old_generation(server, tmp_path):
    s = start(server, tmp_path)
    old = s.worker_pids()
    write_app(tmp_path, 0, "this is not python(\n")
    s.signal(signal.SIGHUP)
    assert wait_for(lambda: "reload failed" in s.stderr(), 20), s.describe()
    assert "SyntaxError" in s.stderr()
    assert version(s) == 1 and wait_for(lambda: s.worker_pids() == old, 10)
    write_app(tmp_path, 3)  # fixed: the next HUP works
    s.signal(signal.SIGHUP)
    assert wait_for(lambda: version(s) == 3, 20), s.describe()


def test_hup_with_a_broken_config_file_keeps_serving(server, tmp_path):
    conf = tmp_path / "hb.toml"
    conf.write_text("timeout = 10\n")
    s = start(server, tmp_path, "--config", str(conf))
    conf.write_text("timeout = [\n")
    s.signal(signal.SIGHUP)
    assert wait_for(lambda: re.search(r"\[ERROR\] reload failed: .*hb.toml", s.stderr()), 10), s.describe()
    assert version(s) == 1
    conf.write_text("timeout = 10\nprocesses = 2\n")
    write_app(tmp_path, 4)
    s.signal(signal.SIGHUP)
    assert wait_for(lambda: version(s) == 4 and len(s.worker_pids()) == 2, 20), s.describe()


def test_reload_websocket_timeout_closes_old_websockets_with_1012(server, tmp_path):
    s = start(server, tmp_path, "--reload-websocket-timeout", "1")
    ws, head, rest = handshake(s.port, path=b"/ws")
    rd = Reader(ws, rest)
    assert ws_echo(ws, rd, "a") == "v1:a"
    write_app(tmp_path, 2)
    t0 = time.monotonic()
    s.signal(signal.SIGHUP)
    assert rd.close_code(15) == 1012
    assert time.monotonic() - t0 >= 1.0
    ws.close()
    assert version(s) == 2
    assert wait_for(lambda: len(s.worker_pids()) == 1, 10)


# ---- USR2: binary upgrade ------------------------------------------------------------------

def _gone(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    with open("/proc/%d/stat" % pid) as f:  # a zombie waiting for init counts as gone
        return f.read().rsplit(")", 1)[1].split()[0] == "Z"


def _own_binary(tmp_path, monkeypatch):
    exe = tmp_path / "bin" / "hornbeam-uring"
    exe.parent.mkdir()
    shutil.copy(hbtest.BINARY, exe)
    monkeypatch.setattr(hbtest, "BINARY", exe)
    return exe


def test_usr2_binary_upgrade_under_load(server, tmp_path, monkeypatch):
    exe = _own_binary(tmp_path, monkeypatch)
    pidfile = tmp_path / "hb.pid"
    s = server("supervisor_apps:app", "--processes", "2", "--pid", str(pidfile))
    load = Load(s.port, clients=4)
    new = None
    try:
        assert wait_for(lambda: load.count() > 20, 10)
        exe.unlink()  # install a new binary over the running one
        shutil.copy(hbtest._binary(), exe)
        s.signal(signal.SIGUSR2)
        assert s.wait_exit(30) == 0, "the old master did not hand over and exit\n" + s.describe()
        new = int(pidfile.read_text())
        assert new != s.pid and not _gone(new), s.describe()
        assert not os.readlink("/proc/%d/exe" % new).endswith("(deleted)")
        served = load.count()
        assert wait_for(lambda: load.count() > served + 20, 10), s.describe()
    finally:
        ok, failed = load.stop()
        if new:
            os.kill(new, signal.SIGTERM)
            assert wait_for(lambda: _gone(new), 15), "the new master did not stop\n" + s.describe()
    assert not failed, "%d failed requests across the upgrade: %r\n%s" % (len(failed), failed[:5], s.describe())
    assert "handing the listeners over" in s.stderr() and "adopted the listeners" in s.stderr()


def test_usr2_hands_the_shared_map_to_the_new_master(server, tmp_path):
    """state_* values set before the upgrade are read (and counted on) by the new master's
    processes: the map's memfd goes over with the listeners."""
    import json
    pidfile = tmp_path / "hb.pid"
    s = server("api_wsgi:app", "--processes", "2", "--pid", str(pidfile))
    assert json.loads(http(s.port, "GET", "/incr?key=up&delta=41").body)["value"] == 41
    s.signal(signal.SIGUSR2)
    new = None
    try:
        assert s.wait_exit(30) == 0, "the old master did not hand over and exit\n" + s.describe()
        new = int(pidfile.read_text())
        assert new != s.pid and not _gone(new), s.describe()
        assert "adopted the shared map of master %d" % s.pid in s.stderr(), s.describe()
        assert json.loads(http(s.port, "GET", "/incr?key=up").body)["value"] == 42
        assert json.loads(http(s.port, "GET", "/get?key=up").body)["value"] == 42
    finally:
        if new:
            os.kill(new, signal.SIGTERM)
            assert wait_for(lambda: _gone(new), 15), "the new master did not stop\n" + s.describe()


def test_usr2_with_a_broken_binary_keeps_serving(server, tmp_path, monkeypatch):
    exe = _own_binary(tmp_path, monkeypatch)
    s = server("supervisor_apps:app")
    exe.unlink()
    exe.write_text("#!/bin/sh\nexit 3\n")
    exe.chmod(0o755)
    s.signal(signal.SIGUSR2)
    assert wait_for(lambda: "binary upgrade failed" in s.stderr(), 15), s.describe()
    assert "exited with status 3" in s.stderr()
    assert http(s.port, "GET", "/").status == 200


def test_hup_with_the_cluster_on_moves_the_node_to_the_new_generation(server, tmp_path):
    """The node (in worker process 0) leaves with the old generation; the new one's binds the
    same cluster address once it is free (it retries while the old one still holds it)."""
    port = hbtest.free_port()
    s = start(server, tmp_path, "--node-name", "r@it", "--cluster-enabled", "--cluster-cookie", "c",
              "--cluster-bind", "127.0.0.1:%d" % port)
    old = s.worker_pids()
    write_app(tmp_path, 2)
    s.signal(signal.SIGHUP)
    assert wait_for(lambda: version(s) == 2 and not set(old) & set(s.worker_pids()), 20), s.describe()

    def node_listens():
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return True
        except OSError:
            return False
    assert wait_for(node_listens, 15), s.describe()
    assert "cluster: cannot start" not in s.stderr(), s.describe()
    s.assert_alive()


def _refused(port):
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
        return False
    except ConnectionRefusedError:
        return True


def test_hup_changes_workers_and_binds(server, tmp_path):
    """A reload that adds io threads and a bind under load fails nothing (the sockets kept are
    the same, the new ones listen once ready); one that removes a bind closes it; fewer
    io threads or processes park the sockets that go (test_supervisor_fewer.py)."""
    p1, p2 = hbtest.free_port(), hbtest.free_port()
    conf = tmp_path / "hb.toml"
    conf.write_text('bind = ["127.0.0.1:%d"]\nworkers = 1\nprocesses = 2\n' % p1)
    write_app(tmp_path, 1)
    s = server("reload_app:app", "--worker-class", "asgi", "--pythonpath", str(tmp_path), "--config", str(conf),
               "--graceful-timeout", "5", bind=False, defaults=False, port=p1)
    assert wait_for(lambda: "Listening at" in s.stderr(), 10)  # both readiness pipes read
    fds = len(os.listdir("/proc/%d/fd" % s.pid))  # 2 processes x 1 socket x 1 bind
    load = Load(p1, clients=4, path="/v")
    try:
        assert wait_for(lambda: load.count() > 20, 10)
        conf.write_text('bind = ["127.0.0.1:%d", "127.0.0.1:%d"]\nworkers = 2\nprocesses = 2\n' % (p1, p2))
        write_app(tmp_path, 2)
        s.signal(signal.SIGHUP)
        assert wait_for(lambda: "Reloaded: generation 2" in s.stderr(), 20), s.describe()
        assert http(p2, "GET", "/v", timeout=10).body.startswith(b"v2 ")
        # on through the old generation's retirement
        assert wait_for(lambda: len(s.worker_pids()) == 2, 15), s.describe()
        served = load.count()
        assert wait_for(lambda: load.count() > served + 50, 10)
    finally:
        ok, failed = load.stop()
    assert not failed, "%d failed requests during the reload: %r\n%s" % (len(failed), failed[:5], s.describe())
    assert "2 io threads each (generation 2)" in s.stderr(), s.describe()
    assert "Listeners reshaped: 2 sockets per bind and process (was 1), 2 binds (was 1)" in s.stderr()
    # p1 removed: refused once generation 3 serves; p2 serves on.
    conf.write_text('bind = ["127.0.0.1:%d"]\nworkers = 2\nprocesses = 2\n' % p2)
    s.signal(signal.SIGHUP)
    assert wait_for(lambda: "Reloaded: generation 3" in s.stderr(), 20), s.describe()
    assert wait_for(lambda: _refused(p1), 5), s.describe()
    assert http(p2, "GET", "/v", timeout=10).status == 200
    # the master holds 2 x 2 x 1 sockets now and a copy of each as a member of its SO_REUSEPORT
    # group (steer.h), nothing of the shapes before
    assert len(os.listdir("/proc/%d/fd" % s.pid)) == fds + 4, (fds, os.listdir("/proc/%d/fd" % s.pid))
    # Fewer io threads, then fewer processes: the sockets that go are parked.
    conf.write_text('bind = ["127.0.0.1:%d"]\nworkers = 1\nprocesses = 2\n' % p2)
    s.signal(signal.SIGHUP)
    assert wait_for(lambda: "Reloaded: generation 4" in s.stderr(), 20), s.describe()
    assert http(p2, "GET", "/v", timeout=10).status == 200
    conf.write_text('bind = ["127.0.0.1:%d"]\nworkers = 1\nprocesses = 1\n' % p2)
    s.signal(signal.SIGHUP)
    assert wait_for(lambda: "Reloaded: generation 5 serves (1 processes)" in s.stderr(), 20), s.describe()
    assert wait_for(lambda: len(s.worker_pids()) == 1, 15), s.describe()
    assert http(p2, "GET", "/v", timeout=10).status == 200
    s.assert_alive()
