"""--reload (issue 9): the master watches the app's source files and reloads as SIGHUP does when
one changes (debounced); files the globs leave out change nothing."""
import time

from hbtest import http, wait_for

APP = '''
VERSION = "%s"

def app(environ, start_response):
    body = VERSION.encode()
    start_response("200 OK", [("Content-Type", "text/plain"),
                              ("Content-Length", str(len(body)))])
    return [body]
'''


def _body(port):
    try:
        r = http(port, "GET", "/", timeout=5)
        return r.body.decode() if r.status == 200 else None
    except OSError:
        return None


def test_touching_a_file_reloads_with_the_new_code(server, tmp_path):
    d = tmp_path / "src"
    (d / "pkg").mkdir(parents=True)
    (d / "rw_app.py").write_text(APP % "v1")
    # Default roots: the pythonpath directory and the working directory.
    srv = server("rw_app:app", "--pythonpath", str(d), "--reload", "--reload-delay", "100ms",
                 test_pythonpath=False)
    assert _body(srv.port) == "v1"
    assert "--reload: watching 3 directories under 2 roots" in srv.stderr()  # src, pkg, cwd
    # Not a watched file: no reload.
    (d / "notes.txt").write_text("x")
    (d / "pkg" / "data.json").write_text("{}")
    time.sleep(0.6)
    assert "changed: reloading" not in srv.stderr()
    (d / "rw_app.py").write_text(APP % "v2")
    assert wait_for(lambda: _body(srv.port) == "v2", 20), srv.stderr()[-3000:]
    assert "rw_app.py changed: reloading" in srv.stderr()
    # A new module in a subdirectory reloads too.
    (d / "pkg" / "__init__.py").write_text("")
    (d / "rw_app.py").write_text(APP % "v3")
    assert wait_for(lambda: _body(srv.port) == "v3", 20)


def test_reload_dirs_include_and_exclude(server, tmp_path):
    """--reload-dir, --reload-include and --reload-exclude, as uvicorn's: only the given directory
    is watched, a file the include glob names reloads, one the exclude glob names does not."""
    app, tpl = tmp_path / "app", tmp_path / "templates"
    app.mkdir()
    tpl.mkdir()
    (app / "rw_dirs_app.py").write_text(APP % "v1")
    srv = server("rw_dirs_app:app", "--pythonpath", str(app), "--reload", "--reload-delay", "100ms",
                 "--reload-dir", str(tpl), "--reload-include", "*.html", "--reload-exclude", "skip_*",
                 test_pythonpath=False)
    assert _body(srv.port) == "v1"
    assert "--reload: watching 1 directories under 1 roots" in srv.stderr(), srv.stderr()
    (tpl / "skip_me.html").write_text("x")  # excluded
    (app / "rw_dirs_app.py").write_text(APP % "v2")  # not under a watched directory
    time.sleep(0.6)
    assert "changed: reloading" not in srv.stderr()
    (tpl / "page.html").write_text("<p>")  # included: reloads, and the new code is read then
    assert wait_for(lambda: _body(srv.port) == "v2", 20), srv.stderr()[-3000:]
    assert "page.html changed: reloading" in srv.stderr()
