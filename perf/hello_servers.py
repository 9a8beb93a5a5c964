"""The hello servers of the single-purpose benches (perf/tls_bench.py, perf/h2load_bench.py):
nginx ('return 200', perf/nginx.conf.tmpl) and hornbeam-uring (perf/apps/hello_wsgi.py,
hello_asgi.py), one worker each, pinned to opts.server_cpu, over plain TCP or TLS with the
make_certs.sh pair in opts.certs. Processes are started and stopped with perf/bench.py's
spawn/stop: a process group in this session (its scheduler autogroup, perf/README.md), the whole
tree killed at the end; their CPU time comes from bench.tree_cpu.
"""
import os
import subprocess
from pathlib import Path

import bench

CERTS_SCRIPT = bench.REPO / "tests" / "tls" / "make_certs.sh"
SERVERS = "nginx,hornbeam-wsgi,hornbeam-asgi"

# the suite wolfSSL picks (AES-128-GCM first), so both sides encrypt alike
NGINX_TLS = ("ssl_certificate {certs}/server.pem;", "ssl_certificate_key {certs}/server.key;",
             "ssl_protocols TLSv1.2 TLSv1.3;", "ssl_prefer_server_ciphers on;",
             "ssl_conf_command Ciphersuites "
             "TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256;")


def make_certs(directory):
    """tests/tls/make_certs.sh into directory: server.pem/server.key (EC P-256) and the CA."""
    subprocess.run([str(CERTS_SCRIPT), str(directory)], check=True, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL)


def command(name, opts, port, tmp, tls, http2=False):
    """The command line of server `name` on 127.0.0.1:port (nginx writes its conf into tmp)."""
    if name == "nginx":
        listen = " ".join((["ssl"] if tls else []) + (["http2"] if http2 else []))
        extra = [line.format(certs=opts.certs) for line in NGINX_TLS] if tls else []
        Path(tmp, "nginx.conf").write_text(bench.nginx_conf(port, tmp, 1, listen, extra))
        return bench.nginx_command(tmp)
    app, cls = ("hello_wsgi:application", "wsgi") if name == "hornbeam-wsgi" else \
        ("hello_asgi:app", "asgi")
    cmd = [opts.hornbeam_bin, app, "--bind", "%s:%d" % (bench.LOOPBACK, port), "--workers", "1",
           "--worker-class", cls, "--pythonpath", str(bench.APPS), "--log-level", "warning",
           "--no-access-log"]
    if tls:
        cmd += ["--certfile", str(Path(opts.certs) / "server.pem"),
                "--keyfile", str(Path(opts.certs) / "server.key")]
    return cmd


def start(name, opts, port, tmp, tls, http2=False):
    """Starts server `name` pinned to opts.server_cpu, its output discarded; the caller waits
    for it to answer and stops it with stop()."""
    cmd = bench.pin_prefix(opts.server_cpu) + command(name, opts, port, tmp, tls, http2)
    return bench.spawn(cmd, log_path=os.devnull)


stop = bench.stop
free_port = bench.free_port


def cpu_seconds(p, before):
    """CPU seconds p's tree used since before = bench.tree_cpu(p.pid)."""
    return bench.cpu_seconds(before, bench.tree_cpu(p.pid))
