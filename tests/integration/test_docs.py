"""The reference documentation cannot drift from the code.

docs/configuration.md: its key table is compared with the options `hornbeam-uring --help` prints
(the help is generated from the code's one table of keys, src/core/config.c): every option is a
documented key (with its CLI spelling and HORNBEAM_ variable), no documented key is missing from the
binary, and a default the help shows is the one the table gives.

docs/python-api.md: every public name of hornbeam_erlang and hornbeam_ml (their ``__all__``) and of
the native ``_hornbeam`` module's stubs is described.
"""
import ast
import re

from hbtest import REPO, run_binary

CONFIG_MD = REPO / "docs" / "configuration.md"
PYAPI_MD = REPO / "docs" / "python-api.md"
# Options of the command line that are not keys of the file.
NOT_KEYS = {"help", "version", "config", "check_config", "print_config"}
OPTION_LINE = re.compile(r"^  (?:-\w, |    )--(\[no-\])?([a-z0-9][a-z0-9-]*)(.*)$")


def _help_entries():
    """[(key, [long options], description)] from --help, in order."""
    res = run_binary(["--help"], timeout=10)
    text = res.stdout.decode() + res.stderr.decode()
    assert res.returncode == 0, text
    entries = []
    for line in text.splitlines():
        m = OPTION_LINE.match(line)
        if m:
            negatable, name, rest = m.groups()
            longs = ["--" + name] + re.findall(r"--([a-z0-9][a-z0-9-]*)", rest)
            if negatable:
                longs.append("--no-" + name)
            entries.append([name.replace("-", "_"), longs, ""])
        elif entries and line.startswith("        "):
            entries[-1][2] += " " + line.strip()
    assert len(entries) > 20, "could not parse --help:\n%s" % text
    return [(k, longs, " ".join(d.split())) for k, longs, d in entries]


def _doc_table():
    """{key: (cli cell, env cell, default cell)} from the `## Keys` table."""
    rows = {}
    in_keys = False
    for line in CONFIG_MD.read_text().splitlines():
        if line.startswith("## "):
            in_keys = line.strip() == "## Keys"
            continue
        if not in_keys or not line.startswith("| `"):
            continue
        cells = [c.strip() for c in re.split(r"(?<!\\)\|", line)[1:-1]]
        m = re.fullmatch(r"`([a-z0-9_]+)`", cells[0])
        assert m, "a key cell that is not one `key`: %r" % line
        assert m.group(1) not in rows, "key %s documented twice" % m.group(1)
        rows[m.group(1)] = (cells[1], cells[2], cells[3])
    assert rows, "no key table under '## Keys' in %s" % CONFIG_MD
    return rows


def _is_alias(desc):
    return re.match(r"(alias|same as|an alias)\b", desc, re.I) is not None


def test_every_option_is_a_documented_key():
    rows = _doc_table()
    doc = CONFIG_MD.read_text()
    missing = []
    for key, longs, desc in _help_entries():
        if key in NOT_KEYS:
            continue
        if _is_alias(desc):  # an alias spelling: documented somewhere, not its own key
            for opt in longs:
                if "`%s" % opt not in doc:
                    missing.append("%s (alias) is not mentioned" % opt)
            continue
        if key not in rows:
            missing.append("%s (--help: %s) has no row in the key table" % (key, ", ".join(longs)))
            continue
        cli, env, _ = rows[key]
        for opt in longs:
            if re.search(r"`%s\b" % re.escape(opt), cli) is None and "`%s" % opt not in doc:
                missing.append("%s: its option %s is not in the CLI column" % (key, opt))
        if "HORNBEAM_%s" % key.upper() not in env:
            missing.append("%s: its variable HORNBEAM_%s is not in the environment column" % (key, key.upper()))
    assert not missing, "docs/configuration.md is behind the binary:\n  " + "\n  ".join(missing)


def test_no_documented_key_is_missing_from_the_binary():
    keys = {k for k, _, d in _help_entries() if not _is_alias(d)}
    gone = sorted(k for k in _doc_table() if k not in keys and k != "app")
    assert not gone, "documented keys the binary does not have (not in --help): %s" % gone
    # `app` is the positional argument; --help lists it as --app.
    assert "app" in keys


def _norm_default(s):
    s = s.strip().strip("`").strip()
    return re.sub(r"[`\s]", "", s.split("(")[0]) if not s.startswith("%(") else s


def test_documented_defaults_match_the_help():
    rows = _doc_table()
    wrong = []
    for key, _, desc in _help_entries():
        m = re.search(r"\[default: (.*)\]$", desc)
        if key not in rows or not m:
            continue
        shown = m.group(1).strip()
        cell = rows[key][2]
        if shown in ("true", "false"):
            ok = ("`%s`" % shown) in cell
        elif re.fullmatch(r"-?\d+", shown):
            ok = re.search(r"`%s`" % re.escape(shown), cell) is not None
        else:  # strings and lists: the same words
            ok = re.sub(r"\W", "", shown) in re.sub(r"\W", "", cell)
        if not ok:
            wrong.append("%s: --help says %r, the table says %r" % (key, shown, cell))
    assert not wrong, "defaults differ:\n  " + "\n  ".join(wrong)


# -- docs/python-api.md --------------------------------------------------------------------

def _all(path):
    tree = ast.parse(path.read_text())
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "__all__" for t in node.targets):
            return [ast.literal_eval(e) for e in node.value.elts]
    raise AssertionError("%s has no __all__" % path)


def _stub_names(path):
    tree = ast.parse(path.read_text())
    out = []
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and not node.name.startswith("_"):
            out.append(node.name)
    return out


def test_python_api_guide_covers_every_public_name():
    assert PYAPI_MD.exists(), "docs/python-api.md is missing"
    doc = PYAPI_MD.read_text()
    names = set(_all(REPO / "python" / "hornbeam_erlang.py")) | set(_all(REPO / "python" / "hornbeam_ml.py"))
    names |= set(_stub_names(REPO / "python" / "_hornbeam.pyi"))
    missing = sorted(n for n in names if re.search(r"`(await )?(\w+\.)?%s\b" % re.escape(n), doc) is None)
    assert not missing, "docs/python-api.md does not describe: %s" % missing
