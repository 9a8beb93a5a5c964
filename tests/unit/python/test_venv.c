/* test_venv.c: a virtualenv is accepted only when its pyvenv.cfg names the embedded Python's
 * major.minor (venv's "version", virtualenv's "version_info"), and its site-packages is found;
 * every refusal names the directory, where it came from and what is wrong. */
#include <criterion/criterion.h>

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "python/venv.h"

static char dir[PATH_MAX];
static char out[PATH_MAX + 100], err[2048];

static void make_dir(void)
{
	snprintf(dir, sizeof(dir), "/tmp/hbvenvXXXXXX");
	cr_assert_not_null(mkdtemp(dir));
}

static void write_cfg(const char *text)
{
	char p[PATH_MAX + 20];
	FILE *f;

	snprintf(p, sizeof(p), "%s/pyvenv.cfg", dir);
	f = fopen(p, "w");
	cr_assert_not_null(f);
	fputs(text, f);
	fclose(f);
}

static void make_site(const char *ver)
{
	char p[PATH_MAX + 60];

	snprintf(p, sizeof(p), "%s/lib", dir);
	mkdir(p, 0755);
	snprintf(p, sizeof(p), "%s/lib/python%s", dir, ver);
	mkdir(p, 0755);
	snprintf(p, sizeof(p), "%s/lib/python%s/site-packages", dir, ver);
	mkdir(p, 0755);
}

static void cleanup(void)
{
	char cmd[PATH_MAX + 20];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	cr_assert_eq(system(cmd), 0);
}

Test(venv, python_venv_of_the_same_version, .init = make_dir, .fini = cleanup)
{
	char want[PATH_MAX + 60];

	write_cfg("home = /usr/bin\ninclude-system-site-packages = false\nversion = 3.13.0\n");
	make_site("3.13");
	cr_assert_eq(hb_venv_check(dir, "venv", 3, 13, out, sizeof(out), err, sizeof(err)), 0, "%s",
		     err);
	snprintf(want, sizeof(want), "%s/lib/python3.13/site-packages", dir);
	cr_assert_str_eq(out, want);
}

Test(venv, virtualenv_version_info, .init = make_dir, .fini = cleanup)
{
	write_cfg("home = /opt/py/bin\nimplementation = CPython\nversion_info = 3.13.1.final.0\n");
	make_site("3.13");
	cr_assert_eq(hb_venv_check(dir, "venv", 3, 13, out, sizeof(out), err, sizeof(err)), 0, "%s",
		     err);
}

Test(venv, another_python_is_refused_naming_both, .init = make_dir, .fini = cleanup)
{
	write_cfg("home = /usr/bin\nversion = 3.11.2\n");
	make_site("3.11");
	cr_assert_eq(hb_venv_check(dir, "VIRTUAL_ENV", 3, 13, out, sizeof(out), err, sizeof(err)),
		     -EINVAL);
	cr_assert(strstr(err, "VIRTUAL_ENV: the virtualenv '"), "%s", err);
	cr_assert(strstr(err, "is for Python 3.11 (version = 3.11.2), but hornbeam-uring embeds "
			      "Python 3.13"),
		  "%s", err);
	cr_assert(strstr(err, "python3.13 -m venv (or deactivate this one)"), "%s", err);
}

Test(venv, minor_version_must_match_exactly, .init = make_dir, .fini = cleanup)
{
	write_cfg("version = 3.1.0\n"); /* 3.1 is not 3.13's prefix */
	cr_assert_eq(hb_venv_check(dir, "venv", 3, 13, out, sizeof(out), err, sizeof(err)),
		     -EINVAL);
	cr_assert(strstr(err, "is for Python 3.1 "), "%s", err);
}

Test(venv, not_a_venv, .init = make_dir, .fini = cleanup)
{
	cr_assert_eq(hb_venv_check(dir, "venv", 3, 13, out, sizeof(out), err, sizeof(err)),
		     -EINVAL);
	cr_assert(strstr(err, "is not a virtualenv (no pyvenv.cfg"), "%s", err);
	write_cfg("home = /usr/bin\n");
	cr_assert_eq(hb_venv_check(dir, "venv", 3, 13, out, sizeof(out), err, sizeof(err)),
		     -EINVAL);
	cr_assert(strstr(err, "its pyvenv.cfg names no Python version"), "%s", err);
	write_cfg("version = 3.13.0\n");
	cr_assert_eq(hb_venv_check(dir, "venv", 3, 13, out, sizeof(out), err, sizeof(err)),
		     -EINVAL);
	cr_assert(strstr(err, "/lib/python3.13/site-packages"), "%s", err);
}
