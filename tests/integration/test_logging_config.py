"""--error-logfile (error_log) and --log-config (log_config), issue 11 §1/§3: where the error log
and Python's logging go. App: apps/logging_apps.py (logs a record per request)."""
import json

import requests

from hbtest import read_file, run_binary, wait_for

APP = "logging_apps:app"


def get(s, path):
    assert requests.get("http://127.0.0.1:%d%s" % (s.port, path), timeout=10).status_code == 200


def test_error_logfile_takes_the_error_log_and_pythons_stderr(server, tmp_path):
    path = tmp_path / "error.log"
    s = server(APP, "--error-logfile", str(path), "--no-access-log")
    get(s, "/e1")
    assert wait_for(lambda: "request /e1" in read_file(path), 5), read_file(path)
    s.stop()
    text = read_file(path)
    assert "[INFO] Starting hornbeam-uring" in text and "[INFO] Shutdown complete" in text
    assert "Starting hornbeam-uring" not in s.stderr()
    assert "request /e1" not in s.stderr()


def test_error_logfile_that_cannot_be_opened():
    r = run_binary([APP, "--error-logfile", "/nonexistent-dir/e.log"])
    assert r.returncode == 2 and b"error_log: cannot open '/nonexistent-dir/e.log'" in r.stderr


def test_log_config_format_string(server):
    s = server(APP, "--log-config", "HBFMT %(levelname)s|%(name)s|%(message)s")
    get(s, "/f1")
    assert wait_for(lambda: "HBFMT INFO|logging_apps|request /f1" in s.stderr(), 5), s.describe()


def test_log_config_json_file_and_inline(server, tmp_path):
    out = tmp_path / "app.log"
    conf = {
        "version": 1,
        "formatters": {"f": {"format": "JSONCONF %(name)s %(message)s"}},
        "handlers": {"h": {"class": "logging.FileHandler", "filename": str(out), "formatter": "f"}},
        "root": {"level": "INFO", "handlers": ["h"]},
    }
    path = tmp_path / "logging.json"
    path.write_text(json.dumps(conf))
    s = server(APP, "--log-config", str(path))
    get(s, "/j1")
    assert wait_for(lambda: "JSONCONF logging_apps request /j1" in read_file(out), 5), read_file(out)
    conf["formatters"]["f"]["format"] = "INLINE %(message)s"
    t = server(APP, "--log-config", json.dumps(conf))
    get(t, "/j2")
    assert wait_for(lambda: "INLINE request /j2" in read_file(out), 5), read_file(out)


def test_log_config_error_stops_startup(tmp_path):
    r = run_binary([APP, "--pythonpath", "tests/integration/apps", "--log-config",
                    str(tmp_path / "missing.json")])
    assert r.returncode != 0 and b"log_config" in r.stderr, r.stderr
