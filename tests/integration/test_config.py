"""CLI, TOML file and HORNBEAM_* environment: errors exit 2 with one message naming the key (and
file and line); a bad app exits non-zero with the module name and traceback."""
import re
import socket
from pathlib import Path

import pytest

from hbtest import APPS, DIST_PACKAGES, assert_no_sanitizer, free_port, http, run_binary, wait_for


def _base(port=None):
    return ["--bind", "127.0.0.1:%d" % (port or free_port()), "--pythonpath", str(APPS), "--workers", "1"]


def _err(res):
    text = (res.stderr + res.stdout).decode("utf-8", "replace")
    assert_no_sanitizer(text, "hornbeam-uring")
    return text


def _config_error(res, *needles):
    text = _err(res)
    assert res.returncode == 2, "exit status %r (expected 2)\n%s" % (res.returncode, text)
    for n in needles:
        assert n in text, "message does not name %r:\n%s" % (n, text)
    assert "Traceback" not in text, "a config error should be one message, not a traceback:\n%s" % text
    assert len(text.strip().splitlines()) <= 5, "expected one message:\n%s" % text
    return text


def _names_line(text, line):
    return re.search(r"(line\s*%d\b|:%d\b)" % (line, line), text)


def test_version():
    res = run_binary(["--version"], timeout=10)
    text = _err(res)
    assert res.returncode == 0, text
    assert re.search(r"hornbeam", text, re.I) and re.search(r"\d+\.\d+", text), text


def test_help():
    res = run_binary(["--help"], timeout=10)
    text = _err(res)
    assert res.returncode == 0, text
    for opt in ("--bind", "--workers", "--threads", "--config", "--max-body-size"):
        assert opt in text, opt


def test_toml_unknown_key(tmp_path):
    cfg = tmp_path / "hb.toml"
    cfg.write_text('app = "simple:app"\nworkers = 1\nbogus_key = 3\n')
    text = _config_error(run_binary(["--config", cfg] + _base(), timeout=10), "bogus_key", str(cfg))
    assert _names_line(text, 3), "message does not name line 3:\n%s" % text


def test_toml_wrong_type(tmp_path):
    cfg = tmp_path / "hb.toml"
    cfg.write_text('app = "simple:app"\n\nworkers = "many"\n')
    text = _config_error(run_binary(["--config", cfg, "--pythonpath", APPS], timeout=10), "workers", str(cfg))
    assert _names_line(text, 3), text


def test_toml_wrong_list_type(tmp_path):
    cfg = tmp_path / "hb.toml"
    cfg.write_text('app = "simple:app"\npythonpath = 5\n')
    text = _config_error(run_binary(["--config", cfg] + _base(), timeout=10), "pythonpath", str(cfg))
    assert _names_line(text, 2), text


def test_toml_bad_value(tmp_path):
    cfg = tmp_path / "hb.toml"
    cfg.write_text('app = "simple:app"\ninterpreter = "shared-ish"\n')
    text = _config_error(run_binary(["--config", cfg] + _base(), timeout=10), "interpreter", str(cfg))
    assert _names_line(text, 2), text


def test_toml_unparseable(tmp_path):
    cfg = tmp_path / "hb.toml"
    cfg.write_text('app = "simple:app"\nworkers = = 1\n')
    text = _config_error(run_binary(["--config", cfg] + _base(), timeout=10), str(cfg))
    assert _names_line(text, 2), text


def test_config_file_missing(tmp_path):
    cfg = tmp_path / "nope.toml"
    _config_error(run_binary(["--config", cfg] + _base(), timeout=10), str(cfg))


@pytest.mark.parametrize("args,key", [
    (["--workers", "abc"], "workers"),
    (["--workers", "-2"], "workers"),
    (["--threads", "0"], "threads"),
    (["--max-body-size", "lots"], "max-body-size"),
    (["--log-level", "loud"], "log-level"),
    (["--interpreter", "bogus"], "interpreter"),
    (["--bind", "127.0.0.1:notaport"], "bind"),
    (["--keepalive", "1.5.2"], "keepalive"),
])
def test_bad_cli_value(args, key):
    res = run_binary(["simple:app", "--pythonpath", APPS] + args + (["--bind", "127.0.0.1:%d" % free_port()] if key != "bind" else []),
                     timeout=10)
    text = _config_error(res)
    assert key in text or key.replace("-", "_") in text, "message does not name %s:\n%s" % (key, text)


def test_unknown_cli_option():
    _config_error(run_binary(["simple:app", "--no-such-option", "1"] + _base(), timeout=10), "no-such-option")


def test_missing_app():
    res = run_binary(_base(), timeout=10)
    text = _err(res)
    assert res.returncode == 2, text
    assert "app" in text.lower(), text


def test_bad_env_value():
    text = _config_error(run_binary(["simple:app"] + _base(), env={"HORNBEAM_WORKERS": "abc"}, timeout=10))
    assert "HORNBEAM_WORKERS" in text or "workers" in text, text


def test_address_in_use():
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        port = busy.getsockname()[1]
        res = run_binary(["simple:app", "--bind", "127.0.0.1:%d" % port, "--pythonpath", APPS, "--workers", "1"], timeout=15)
    text = _err(res)
    assert res.returncode == 2, "exit status %r (expected 2)\n%s" % (res.returncode, text)
    assert "127.0.0.1:%d" % port in text, text


def test_app_module_not_found():
    res = run_binary(["no_such_module_hbx:app"] + _base(), timeout=20)
    text = _err(res)
    assert res.returncode != 0, text
    assert "no_such_module_hbx" in text, text


def test_app_import_raises_shows_traceback():
    res = run_binary(["broken_import:app"] + _base(), timeout=20)
    text = _err(res)
    assert res.returncode != 0, text
    assert "broken_import" in text and "Traceback" in text, text
    assert "broken_import-marker" in text, text


def test_app_callable_missing():
    res = run_binary(["simple:does_not_exist"] + _base(), timeout=20)
    text = _err(res)
    assert res.returncode != 0, text
    assert "does_not_exist" in text, text


def test_app_not_callable():
    res = run_binary(["simple:not_callable"] + _base(), timeout=20)
    text = _err(res)
    assert res.returncode != 0, text
    assert "not_callable" in text, text


# -- working configurations --------------------------------------------------------------

def test_toml_config_serves(server, tmp_path):
    port = free_port()
    cfg = tmp_path / "hb.toml"
    cfg.write_text('app = "simple:app"\nbind = ["127.0.0.1:%d"]\nworkers = 1\nthreads = 2\n'
                   'pythonpath = ["%s", "%s"]\nkeepalive = 2\nmax_body_size = 1000\n' % (port, APPS, DIST_PACKAGES))
    s = server(None, "--config", str(cfg), bind=False, test_pythonpath=False, port=port)
    r = http(s.port, "GET", "/")
    assert r.status == 200 and r.body == b"hello"
    # max_body_size from the file applies
    r = http(s.port, "POST", "/", None, b"x" * 1001)
    assert r.status == 413


def test_cli_overrides_file(server, tmp_path):
    file_port, cli_port = free_port(), free_port()
    cfg = tmp_path / "hb.toml"
    cfg.write_text('app = "simple:app"\nbind = ["127.0.0.1:%d"]\nworkers = 1\n' % file_port)
    s = server(None, "--config", str(cfg), "--bind", "127.0.0.1:%d" % cli_port, port=cli_port)
    assert http(s.port, "GET", "/").body == b"hello"
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", file_port), timeout=1).close()


def test_env_sets_keys(server):
    port = free_port()
    s = server(None, bind=False, port=port,
               env={"HORNBEAM_APP": "simple:app", "HORNBEAM_BIND": "127.0.0.1:%d" % port})
    assert http(s.port, "GET", "/").body == b"hello"


# -- durations -----------------------------------------------------------------------------

def test_bare_timeout_is_seconds_as_gunicorn(server):
    """--timeout 2 is two seconds (the seed read it as 2 ms): a 0.5 s request is answered, with no
    sub-second warning."""
    s = server("wsgi_apps:app", "--timeout", "2", "--threads", "2")
    r = http(s.port, "GET", "/sleep?secs=0.5", timeout=10)
    assert r.status == 200, r
    assert "below 1 s" not in s.stderr(), s.stderr()


def test_timeout_with_unit_and_the_sub_second_warning(server):
    s = server("wsgi_apps:app", "--timeout", "300ms", "--threads", "2")
    assert "timeout is 300 ms, below 1 s" in s.stderr(), s.stderr()
    r = http(s.port, "GET", "/sleep?secs=2", timeout=10)
    assert r.status == 504, r


def test_duration_units_from_env_and_file(server, tmp_path):
    cfg = tmp_path / "hb.toml"
    cfg.write_text('keepalive = "1m"\ntimeout = 0.4\n')
    s = server("wsgi_apps:app", "--config", str(cfg), env={"HORNBEAM_HEADER_TIMEOUT": "2s"})
    assert "timeout is 400 ms" in s.stderr(), s.stderr()


@pytest.mark.parametrize("args,needle", [
    (["--timeout", "30x"], "--timeout: expected a duration (30, 30s, 250ms, 2m, 1h), got '30x'"),
    (["--keepalive", "1500ms"], "--keepalive: expected whole seconds, got '1500ms'"),
    (["--keepalive", "2h"], "--keepalive: expected a duration <= 3600s, got '2h'"),
])
def test_bad_duration(args, needle):
    _config_error(run_binary(["simple:app"] + _base() + args, timeout=10), needle)


# -- gunicorn/uvicorn spellings, --check-config, --print-config ---------------------------------

def test_check_config_ok_and_error(tmp_path):
    res = run_binary(["simple:app", "--check-config"] + _base(), timeout=10)
    assert res.returncode == 0 and res.stdout.decode().strip() == "ok", _err(res)
    cfg = tmp_path / "hb.toml"
    cfg.write_text('app = "simple:app"\nkeepalive = "1500ms"\n')
    _config_error(run_binary(["--config", str(cfg), "--check-config"], timeout=10),
                  "%s:2: key 'keepalive': expected whole seconds" % cfg)


def test_print_config_names_each_source(tmp_path):
    cfg = tmp_path / "hb.toml"
    cfg.write_text('app = "simple:app"\n\nthreads = 3\n')
    res = run_binary(["--config", str(cfg), "--print-config", "--timeout-keep-alive", "1m", "--port", "9123"],
                     env={"HORNBEAM_TIMEOUT": "250ms"}, timeout=10)
    out = _err(res)
    assert res.returncode == 0, out
    for line in ('app = "simple:app"  # %s:1' % cfg, "threads = 3  # %s:3" % cfg,
                 'timeout = "250ms"  # env HORNBEAM_TIMEOUT', "keepalive = 60  # cli --keepalive",
                 'bind = ["127.0.0.1:9123"]  # cli --bind', "max_requests = 0  # default"):
        assert line + "\n" in out, "no %r in:\n%s" % (line, out)
    # what it prints is a configuration the binary reads back
    back = tmp_path / "back.toml"
    back.write_text(res.stdout.decode())
    again = run_binary(["--config", str(back), "--print-config"], timeout=10)
    assert again.returncode == 0, _err(again)
    assert 'keepalive = 60  # %s:' % back in again.stdout.decode()


def test_host_port_and_aliases_serve(server):
    port = free_port()
    s = server("simple:app", "--host", "127.0.0.1", "--port", str(port), "--keep-alive", "1",
               "--access-logfile", "-", bind=False, port=port)
    r = http(s.port, "GET", "/")
    assert r.status == 200 and r.body == b"hello"
    assert wait_for(lambda: '"GET / HTTP/1.1" 200' in s.stdout()), s.stdout()


def test_missing_pythonpath_is_an_error_naming_it(tmp_path):
    gone = tmp_path / "no_such_dir"
    _config_error(run_binary(["simple:app", "--pythonpath", str(gone)] + _base(), timeout=10),
                  "pythonpath: '%s' is not a directory" % gone, "from cli --pythonpath")


def test_alias_typo_gets_a_hint():
    _config_error(run_binary(["simple:app", "--timeout-keep-alvie", "5"] + _base(), timeout=10),
                  "did you mean '--timeout-keep-alive'?")


def test_shipped_example_config_serves(server):
    """examples/hornbeam.toml stays valid: it loads and serves the hello app it names."""
    cfg = Path(__file__).resolve().parent.parent.parent / "examples" / "hornbeam.toml"
    s = server(None, "--config", str(cfg), test_pythonpath=False)
    r = http(s.port, "GET", "/")
    assert r.status == 200 and r.body == b"Hello, World!", r
