"""test_cluster_tls.py: mutual TLS on the links between real hornbeam-uring nodes (cluster_tls).

Two nodes with certificates from one CA (tests/tls/make_certs.sh) form a cluster and rpc_call
each other while every byte between them goes through recording TCP proxies (each node
advertises its proxy's address, so every link crosses one), a 3 MiB argument included: a marker
in the call's argument and the node names never appear in the recording, which starts with a TLS handshake record.
The same run without cluster_tls shows the marker in the recording (so the check can fail).
A node whose certificate comes from another CA, and a node without TLS, do not join, cannot
call, and both sides' logs say why; a plain TCP client and TLS clients without a certificate or
with a foreign one are refused at the cluster port, while one with a node certificate gets
through the TLS handshake (the cookie handshake is what comes next).
An encrypted node key works with cluster_keyfile_password (from the environment); a wrong or
missing password stops the start naming the key and the file. SIGHUP after the files were
replaced by a pair and a CA of another CA: links made after the reload present the new
certificate and a node that trusts only the new CA joins; a broken file then fails the next
reload with the error in the log while the node keeps its pair, its CA and its links.
"""
import json
import selectors
import shutil
import signal
import socket
import ssl
import subprocess
import threading
import time
import uuid
from urllib.parse import quote

import pytest

from hbtest import REPO, free_port, http, run_binary

COOKIE = "tls-cookie"
CERTS_SCRIPT = REPO / "tests" / "tls" / "make_certs.sh"


@pytest.fixture(scope="module")
def certs(tmp_path_factory):
    d = tmp_path_factory.mktemp("certs")
    subprocess.run([str(CERTS_SCRIPT), str(d)], check=True)
    return d


class Proxy:
    """A TCP relay on a free port to target that keeps every byte it relays, per connection
    and direction."""

    def __init__(self, target_port):
        self.target = target_port
        self.lsock = socket.create_server(("127.0.0.1", 0))
        self.port = self.lsock.getsockname()[1]
        self.streams = []  # [client->target bytes, target->client bytes] per connection
        self.lock = threading.Lock()
        self.stop = False
        self.th = threading.Thread(target=self._run, daemon=True)
        self.th.start()

    def _run(self):
        sel = selectors.DefaultSelector()
        self.lsock.setblocking(False)
        sel.register(self.lsock, selectors.EVENT_READ, None)
        while not self.stop:
            for key, _ in sel.select(0.05):
                if key.data is None:
                    try:
                        c, _ = self.lsock.accept()
                        t = socket.create_connection(("127.0.0.1", self.target), 2)
                    except OSError:
                        continue
                    rec = [bytearray(), bytearray()]
                    with self.lock:
                        self.streams.append(rec)
                    sel.register(c, selectors.EVENT_READ, (t, rec[0]))
                    sel.register(t, selectors.EVENT_READ, (c, rec[1]))
                    continue
                peer, rec = key.data
                try:
                    data = key.fileobj.recv(65536)
                    if data:
                        with self.lock:
                            rec += data
                        peer.sendall(data)
                        continue
                except OSError:
                    pass
                for s in (key.fileobj, peer):
                    try:
                        sel.unregister(s)
                    except (KeyError, ValueError):
                        pass
                    s.close()
        sel.close()

    def recorded(self):
        with self.lock:
            return [(bytes(a), bytes(b)) for a, b in self.streams]

    def close(self):
        self.stop = True
        self.th.join(2)
        self.lsock.close()


def node(server, name, certs, pem="node1", ca="ca.pem", tls=True, seeds=(), advertise=None,
         port=None, key=None, env=None):
    port = port or free_port()
    args = ["--node-name", name, "--cluster-enabled", "--cluster-bind", "127.0.0.1:%d" % port,
            "--cluster-probe-interval", "200ms", "--cluster-probe-timeout", "100ms",
            "--threads", "2"]
    if tls:
        args += ["--cluster-certfile", str(certs / (pem + ".pem")),
                 "--cluster-keyfile", str(certs / (key or pem + ".key")),
                 "--cluster-cacertfile", str(certs / ca)]
    if advertise:
        args += ["--cluster-advertise", advertise]
    for s in seeds:
        args += ["--cluster-seeds", s]
    s = server("cluster_apps:wsgi", *args, env=dict(env or {}, HORNBEAM_CLUSTER_COOKIE=COOKIE))
    s.cluster_port = port
    s.seed = "127.0.0.1:%d" % port
    return s


def get(s, path, **q):
    qs = "&".join("%s=%s" % (k, quote(v if isinstance(v, str) else json.dumps(v)))
                  for k, v in q.items())
    r = http(s.port, "GET", path + ("?" + qs if qs else ""), [], b"", timeout=20)
    assert r.status == 200, r
    return r.json()


def until(fn, timeout=10.0, what="condition"):
    end = time.monotonic() + timeout
    last = None
    while time.monotonic() < end:
        last = fn()
        if last:
            return last
        time.sleep(0.05)
    raise AssertionError("%s not reached in %.0fs (last: %r)" % (what, timeout, last))


@pytest.mark.parametrize("tls", [True, False], ids=["tls", "plaintext-control"])
def test_rpc_between_two_nodes_crosses_the_wire_encrypted(server, certs, tls):
    pa_port, pb_port = free_port(), free_port()
    a_port, b_port = free_port(), free_port()
    pa, pb = Proxy(a_port), Proxy(b_port)
    try:
        a = node(server, "a@tls", certs, "node1", tls=tls, port=a_port,
                 advertise="127.0.0.1:%d" % pa.port)
        b = node(server, "b@tls", certs, "node2", tls=tls, port=b_port,
                 advertise="127.0.0.1:%d" % pb.port, seeds=["127.0.0.1:%d" % pa.port])
        until(lambda: get(a, "/nodes")["nodes"] == ["b@tls"], what="a sees b")
        until(lambda: get(b, "/nodes")["nodes"] == ["a@tls"], what="b sees a")
        marker = "plaintext-marker-" + uuid.uuid4().hex
        r = until(lambda: get(a, "/rpc", node="b@tls", fn="echo", args=[marker]).get("ok"),
                  what="a's call to b")
        assert r == ["b@tls", [marker]], r
        r = get(b, "/rpc", node="a@tls", fn="echo", args=[marker, 2])
        assert r.get("ok") == ["a@tls", [marker, 2]], r
        big = 3 << 20  # many TLS records, frames cut into chunks
        assert get(a, "/rpc", node="b@tls", fn="length", big=str(big))["ok"] == [big, "<x", "x>"]
        streams = pa.recorded() + pb.recorded()
        wire = b"".join(x + y for x, y in streams)
        assert len(wire) > big, "the links did not cross the proxies (%d bytes)" % len(wire)
        seen = marker.encode() in wire
        if tls:
            assert not seen, "the call's argument crossed the wire in plaintext"
            assert b"a@tls" not in wire and b"b@tls" not in wire, "node names in plaintext"
            for up, _ in streams:  # every link opens with a TLS handshake record
                if up:
                    assert up[:3] == b"\x16\x03\x01" or up[:3] == b"\x16\x03\x03", up[:16]
            assert "TLS handshake" not in a.stderr() + b.stderr()
        else:
            assert seen, "control: without TLS the marker is on the wire"
    finally:
        pa.close()
        pb.close()


def tls_client(port, certs, pem=None, ca="ca.pem"):
    """A TLS 1.3 client to the cluster port that trusts ca (the cluster CA), presenting pem (a
    pair's name) or nothing; returns what happened: 'ok' once the server answered a record
    after the handshake, else the error."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.load_verify_locations(str(certs / ca))
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    if pem:
        ctx.load_cert_chain(str(certs / (pem + ".pem")), str(certs / (pem + ".key")))
    with socket.create_connection(("127.0.0.1", port), 5) as raw:
        try:
            with ctx.wrap_socket(raw) as t:
                peer = t.getpeercert()
                # TLS 1.3: a refused client certificate shows as an alert on the next read;
                # an accepted one reaches the cookie handshake, which waits for us to speak
                t.settimeout(1.0)
                try:
                    data = t.recv(100)
                    return "closed" if not data else "data"
                except socket.timeout:
                    return "ok:" + dict(x[0] for x in peer["subject"])["commonName"]
        except (ssl.SSLError, ConnectionError) as e:
            return "refused: %s" % e


def test_untrusted_and_plaintext_peers_are_refused_and_logged(server, certs):
    a = node(server, "a@tls", certs, "node1")
    # a plain TCP peer (a cluster frame as a node without TLS would send it) gets no cluster
    # frame back: the link closes
    with socket.create_connection(("127.0.0.1", a.cluster_port), 5) as s:
        s.sendall(b"\x00\x00\x00\x10\x01\x00\x00\x00\x00\x00\x00\x00" + b"n@plain" * 3)
        s.settimeout(5)
        got = b""
        while True:
            d = s.recv(4096)
            if not d:
                break
            got += d
        assert got == b"", got[:32]
    until(lambda: "it speaks no TLS" in a.stderr(), what="a logs the plain peer")
    # TLS clients: with a node certificate through; with none or a foreign one refused
    assert tls_client(a.cluster_port, certs, "node2") == "ok:node1.cluster.test"
    assert tls_client(a.cluster_port, certs, None).startswith(("refused", "closed"))
    assert tls_client(a.cluster_port, certs, "roguenode").startswith(("refused", "closed"))
    # a node from another CA (trusting ours, so a is the one refusing it) and a node without
    # TLS: neither joins nor can call, and every log says why
    r = node(server, "rogue@tls", certs, "roguenode", ca="ca.pem", seeds=[a.seed])
    p = node(server, "plain@tls", certs, tls=False, seeds=[a.seed])
    until(lambda: "TLS handshake to 127.0.0.1:%d failed" % a.cluster_port in r.stderr(),
          what="the rogue node logs its refusal")
    until(lambda: a.stderr().count("it speaks no TLS") >= 2, what="a logs the plain node")
    until(lambda: "closed by the peer during the handshake" in p.stderr(),
          what="the plain node logs its refusal")
    for n in (a, r, p):
        assert get(n, "/nodes")["nodes"] == [], n.stderr()[-2000:]
    assert get(r, "/rpc", node="a@tls", fn="echo", args=[1])["error"] == "NodeNotConnected"
    assert get(p, "/rpc", node="a@tls", fn="echo", args=[1])["error"] == "NodeNotConnected"
    log = a.stderr()
    assert "failed: peer did not return a certificate" in log, log[-3000:]
    assert log.count("failed: certificate verify failed") >= 2, log[-3000:]  # client, node
    assert "chains to cluster_cacertfile" in log
    assert "join rogue@tls" not in log and "join plain@tls" not in log


def test_bad_certificate_files_are_named_at_start(certs):
    base = ["cluster_apps:wsgi", "--bind", "127.0.0.1:%d" % free_port(), "--cluster-enabled",
            "--cluster-bind", "127.0.0.1:%d" % free_port(), "--cluster-cookie", COOKIE]
    apps = str(REPO / "tests" / "integration" / "apps")
    r = run_binary(base + ["--cluster-certfile", certs / "nope.pem",
                           "--cluster-keyfile", certs / "node1.key",
                           "--cluster-cacertfile", certs / "ca.pem"], cwd=apps)
    err = r.stderr.decode()
    assert r.returncode != 0 and "cluster_certfile %s: No such file" % (certs / "nope.pem") in err, err
    r = run_binary(base + ["--cluster-certfile", certs / "node1.pem",
                           "--cluster-keyfile", certs / "node2.key",
                           "--cluster-cacertfile", certs / "ca.pem"], cwd=apps)
    err = r.stderr.decode()
    assert r.returncode != 0 and "cluster_keyfile %s does not match" % (certs / "node2.key") in err, err
    r = run_binary(base + ["--cluster-tls", "--cluster-certfile", certs / "node1.pem"], cwd=apps)
    err = r.stderr.decode()
    assert r.returncode != 0 and "cluster_keyfile is missing" in err, err
    # an encrypted key: a wrong or missing cluster_keyfile_password names the key and the file
    enc = ["--cluster-certfile", certs / "node1.pem", "--cluster-keyfile", certs / "node1-enc.key",
           "--cluster-cacertfile", certs / "ca.pem"]
    r = run_binary(base + enc, env={"HORNBEAM_CLUSTER_KEYFILE_PASSWORD": "wrong"}, cwd=apps)
    err = r.stderr.decode()
    assert r.returncode != 0 and ("cluster_keyfile %s: cannot decrypt it: wrong "
                                  "cluster_keyfile_password?" % (certs / "node1-enc.key")) in err, err
    r = run_binary(base + enc, cwd=apps)
    err = r.stderr.decode()
    assert r.returncode != 0 and ("cluster_keyfile %s: encrypted, and no cluster_keyfile_password"
                                  % (certs / "node1-enc.key")) in err, err


def test_encrypted_node_key_with_its_password(server, certs):
    a = node(server, "a@tls", certs, "node1", key="node1-enc.key",
             env={"HORNBEAM_CLUSTER_KEYFILE_PASSWORD": "n0de-pw"})
    b = node(server, "b@tls", certs, "node2", seeds=[a.seed])
    until(lambda: get(b, "/nodes")["nodes"] == ["a@tls"], what="b joins a")
    assert get(b, "/rpc", node="a@tls", fn="echo", args=[7])["ok"] == ["a@tls", [7]]
    assert tls_client(a.cluster_port, certs, "node2") == "ok:node1.cluster.test"


def cluster_tls_client(port, certs, pem, ca):
    try:
        return tls_client(port, certs, pem, ca)
    except OSError as e:  # the node is between generations
        return "down: %s" % e


def test_sighup_reloads_node_certificates_and_keeps_the_old_on_error(server, certs, tmp_path):
    live = tmp_path / "live"
    live.mkdir()

    def install(pem, key, ca):
        for src, dst in ((pem, "node.pem"), (key, "node.key"), (ca, "ca.pem")):
            shutil.copy(certs / src, live / dst)
    install("node1.pem", "node1.key", "ca.pem")
    a = node(server, "a@tls", live, "node")
    assert tls_client(a.cluster_port, certs, "node2") == "ok:node1.cluster.test"

    # a new pair from another CA, and that CA: a reload starts a new generation, whose node
    # reads them (the old one leaves first)
    install("roguenode.pem", "roguenode.key", "rogueca.pem")
    a.signal(signal.SIGHUP)
    until(lambda: cluster_tls_client(a.cluster_port, certs, "rogue", "rogueca.pem")
          == "ok:roguenode.cluster.test", timeout=30, what="links present the new certificate")
    # the old CA is no longer trusted either way
    assert cluster_tls_client(a.cluster_port, certs, "node2", "ca.pem").startswith("refused")
    assert cluster_tls_client(a.cluster_port, certs, "node2", "rogueca.pem").startswith(
        ("refused", "closed"))
    # a node that trusts only the new CA joins and calls
    b = node(server, "b@tls", certs, "roguenode", ca="rogueca.pem", seeds=[a.seed])
    until(lambda: get(b, "/nodes")["nodes"] == ["a@tls"], what="b joins the reloaded a")
    until(lambda: get(a, "/nodes")["nodes"] == ["b@tls"], what="a sees b")
    assert get(b, "/rpc", node="a@tls", fn="echo", args=[1])["ok"] == ["a@tls", [1]]

    # a broken certificate: the reload fails, the log names the key and the file, and the
    # node keeps its pair, its CA and its open link to b
    (live / "node.pem").write_text("not a certificate\n")
    since = len(a.stderr())
    a.signal(signal.SIGHUP)
    until(lambda: "reload failed" in a.stderr()[since:], timeout=30, what="the reload fails")
    log = a.stderr()[since:]
    assert "cluster_certfile %s: no PEM certificate in it" % (live / "node.pem") in log, log
    assert cluster_tls_client(a.cluster_port, certs, "rogue", "rogueca.pem") == \
        "ok:roguenode.cluster.test"
    assert get(a, "/rpc", node="b@tls", fn="echo", args=[2])["ok"] == ["b@tls", [2]]
    assert get(b, "/nodes")["nodes"] == ["a@tls"]
    assert "leave a@tls" not in b.stderr() and "dead a@tls" not in b.stderr(), b.stderr()[-2000:]
