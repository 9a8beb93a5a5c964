"""Rules for the suite itself: nothing in it can turn a failure into a pass or a skip.

- No skip or xfail path: a missing dependency, a server that does not start, an unimplemented
  feature are failures (the CI machine is set up by scripts/setup.sh, which installs them all).
- No assertion that cannot fail (`assert ... or True`).
- Every third-party Python module the suite, its apps and the examples import, and every
  program it runs by absolute path, comes from a Debian package scripts/setup.sh installs.
"""
import ast
import importlib.util
import re
import subprocess
import sys
from pathlib import Path

from hbtest import EXAMPLES, HERE, REPO

SETUP = REPO / "scripts" / "setup.sh"
# Spelled in pieces so this file does not match its own rules.
FORBIDDEN = [re.compile(p) for p in (
    r"importor" r"skip\(",
    r"pytest\.sk" r"ip\(",
    r"mark\.sk" r"ip(if)?\b",
    r"\bxfa" r"il\b",
    r"\bor Tr" r"ue\s*(,|$)",
)]
# Modules of this project (python/) and the server's own extension module.
OWN_MODULES = {"_hornbeam", "hornbeam_erlang", "hornbeam_ml", "hbtest", "conftest"}
# Imports that are optional by design, each with its fallback.
OPTIONAL = {
    "sentence_transformers",  # examples/embedding_service: falls back to its HashEmbedder
    "venv_marker",  # apps/cli_apps.py: only in the virtualenv test_cli.py makes and writes it into
}


def _suite_files():
    return sorted(p for p in HERE.rglob("*.py") if "__pycache__" not in p.parts)


def _example_files():
    return sorted(p for p in EXAMPLES.rglob("*.py") if "__pycache__" not in p.parts)


def _setup_packages(var):
    text = SETUP.read_text()
    m = re.search(r'^%s="([^"]*)"' % var, text, re.M)
    assert m, "scripts/setup.sh has no %s" % var
    return set(m.group(1).split())


def _installed_by_setup():
    """The packages setup.sh names for building and testing, and their direct dependencies."""
    pkgs = _setup_packages("BUILD_PKGS") | _setup_packages("TEST_PKGS")
    out = set(pkgs)
    r = subprocess.run(["dpkg-query", "-W", "-f", "${Depends},${Pre-Depends}\n"] + sorted(pkgs),
                       capture_output=True, text=True)
    for dep in re.split(r"[,|\n]", r.stdout):
        dep = dep.strip().split(" ")[0].split(":")[0]
        if dep:
            out.add(dep)
    return out


def _owner_package(path):
    r = subprocess.run(["dpkg", "-S", str(path)], capture_output=True, text=True)
    if r.returncode != 0:
        r = subprocess.run(["dpkg", "-S", str(Path(path).resolve())], capture_output=True, text=True)
    assert r.returncode == 0, "%s belongs to no Debian package (installed by hand?)" % path
    return r.stdout.split(":")[0].strip()


def _local_names(files):
    names = set(OWN_MODULES)
    for c in (HERE / "ext").glob("*.c"):  # extension modules the suite builds itself
        names.update(re.findall(r"PyInit_(\w+)", c.read_text()))
    for f in files:
        names.add(f.stem)
        for parent in f.parents:
            if (parent / "__init__.py").exists():
                names.add(parent.name)
    return names


def _top_level_imports(path):
    """Module names imported by `path`, except inside a try (an optional import, with a
    fallback, such as examples/embedding_service's sentence_transformers)."""
    def walk(node):
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.Try):
                for part in child.handlers + child.orelse + child.finalbody:
                    yield from walk(part)
                continue
            if isinstance(child, ast.Import):
                for a in child.names:
                    yield a.name.split(".")[0]
            elif isinstance(child, ast.ImportFrom) and child.level == 0 and child.module:
                yield child.module.split(".")[0]
            yield from walk(child)
    yield from walk(ast.parse(path.read_text(), str(path)))


def test_no_skip_xfail_or_unfailable_assertion():
    me = Path(__file__).resolve()
    bad = []
    for f in _suite_files():
        if f.resolve() == me:
            continue
        for n, line in enumerate(f.read_text().splitlines(), 1):
            if any(p.search(line) for p in FORBIDDEN):
                bad.append("%s:%d: %s" % (f.relative_to(REPO), n, line.strip()))
    assert not bad, "the suite may not skip, xfail, or assert `or True`:\n" + "\n".join(bad)


def test_rules_catch_what_they_forbid():
    """The patterns above match each forbidden spelling (so the rule itself can fail)."""
    samples = ["ws = pytest." + "importor" + "skip('websockets')", "    pytest." + "skip('no asgi')",
               "@pytest.mark." + "skipif(True, reason='x')", "@pytest.mark." + "xfail",
               "assert f() == 1 or " + "True"]
    for s in samples:
        assert any(p.search(s) for p in FORBIDDEN), s
    assert not any(p.search("assert ok or Truex") for p in FORBIDDEN)


def test_every_test_dependency_is_installed_by_setup_sh():
    files = _suite_files() + _example_files()
    local = _local_names(files)
    allowed = _installed_by_setup()
    missing = []
    seen = set()
    for f in files:
        for mod in _top_level_imports(f):
            if mod in seen or mod in local or mod in OPTIONAL or mod in sys.stdlib_module_names:
                continue
            seen.add(mod)
            spec = importlib.util.find_spec(mod)
            assert spec is not None and spec.origin, \
                "%s imports %s, which this python3 cannot import (run scripts/setup.sh)" % (f, mod)
            pkg = _owner_package(spec.origin)
            if pkg not in allowed:
                missing.append("%s (module %s, imported by %s)" % (pkg, mod, f.relative_to(REPO)))
    programs = set()
    for f in _suite_files():
        programs.update(re.findall(r"[\"'](/usr/s?bin/[\w.+-]+)[\"']", f.read_text()))
    for prog in sorted(programs):
        assert Path(prog).exists(), "the suite runs %s, which is not installed (run scripts/setup.sh)" % prog
        pkg = _owner_package(prog)
        if pkg not in allowed:
            missing.append("%s (program %s)" % (pkg, prog))
    assert "pytest" in seen and "websockets" in seen, "the import scan found nothing: %s" % sorted(seen)
    assert not missing, "scripts/setup.sh does not install:\n" + "\n".join(missing)
