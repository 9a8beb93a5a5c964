/* test_fswatch.c: the --reload watcher on a temporary tree: matching files, globs, new
 * directories, the debounce, a missing root. */
#include "core/fswatch.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static char root[64];

static void make_root(void)
{
	snprintf(root, sizeof(root), "/tmp/hb-fswatch-XXXXXX");
	cr_assert_not_null(mkdtemp(root));
}

static void rm_root(void)
{
	char cmd[128];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", root);
	cr_assert_eq(system(cmd), 0);
}

static void write_file(const char *rel, const char *text)
{
	char p[256];
	FILE *f;

	snprintf(p, sizeof(p), "%s/%s", root, rel);
	f = fopen(p, "w");
	cr_assert_not_null(f, "%s", p);
	fputs(text, f);
	fclose(f);
}

static void make_dir(const char *rel)
{
	char p[256];

	snprintf(p, sizeof(p), "%s/%s", root, rel);
	cr_assert_eq(mkdir(p, 0700), 0, "%s", p);
}

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static hb_fswatch_t *watch(const char *const *inc, size_t ninc, const char *const *exc, size_t nexc,
			   int debounce)
{
	const char *roots[] = {root};
	hb_fswatch_opts_t o = {roots, 1, inc, ninc, exc, nexc, debounce};
	hb_fswatch_t *w;

	cr_assert_eq(hb_fswatch_new(&o, &w), 0);
	return w;
}

Test(fswatch, python_files_and_not_others, .init = make_root, .fini = rm_root)
{
	hb_fswatch_t *w;
	char got[512], want[512];

	make_dir("pkg");
	make_dir(".git");
	make_dir("pkg/__pycache__");
	w = watch(NULL, 0, NULL, 0, 50);
	cr_assert_eq(hb_fswatch_dirs(w), 3, "root, pkg, __pycache__ (not .git)");
	write_file("notes.txt", "x");
	write_file(".git/a.py", "x");
	write_file("pkg/__pycache__/m.cpython-313.pyc", "x");
	write_file(".hidden.py", "x");
	cr_assert_eq(hb_fswatch_wait(w, 300, got, sizeof(got)), 0);
	write_file("pkg/m.py", "x = 1\n");
	cr_assert_eq(hb_fswatch_wait(w, 2000, got, sizeof(got)), 1);
	snprintf(want, sizeof(want), "%s/pkg/m.py", root);
	cr_assert_str_eq(got, want);
	/* Reported once. */
	cr_assert_eq(hb_fswatch_wait(w, 200, got, sizeof(got)), 0);
	/* Renamed into place (how editors save) and deleted count too. */
	write_file("tmp.txt", "y");
	{
		char a[256], b[256];

		snprintf(a, sizeof(a), "%s/tmp.txt", root);
		snprintf(b, sizeof(b), "%s/pkg/n.py", root);
		cr_assert_eq(rename(a, b), 0);
		cr_assert_eq(hb_fswatch_wait(w, 2000, got, sizeof(got)), 1);
		cr_assert_str_eq(got, b);
		cr_assert_eq(unlink(b), 0);
		cr_assert_eq(hb_fswatch_wait(w, 2000, got, sizeof(got)), 1);
	}
	hb_fswatch_free(w);
}

Test(fswatch, new_directories_are_watched, .init = make_root, .fini = rm_root)
{
	hb_fswatch_t *w = watch(NULL, 0, NULL, 0, 50);
	char got[512];

	make_dir("newpkg");
	cr_assert_eq(hb_fswatch_wait(w, 200, got, sizeof(got)), 0);
	cr_assert_eq(hb_fswatch_dirs(w), 2);
	write_file("newpkg/views.py", "x");
	cr_assert_eq(hb_fswatch_wait(w, 2000, got, sizeof(got)), 1);
	cr_assert(strstr(got, "newpkg/views.py"));
	hb_fswatch_free(w);
}

Test(fswatch, include_and_exclude_globs, .init = make_root, .fini = rm_root)
{
	const char *inc[] = {"*.html", "conf/*.toml"};
	const char *exc[] = {"skip", "*.tmp.html"};
	hb_fswatch_t *w;
	char got[512];

	make_dir("skip");
	make_dir("conf");
	w = watch(inc, 2, exc, 2, 50);
	write_file("skip/a.html", "x");
	write_file("b.tmp.html", "x");
	write_file("c.py", "x");
	write_file("d.toml", "x"); /* not under conf/ */
	cr_assert_eq(hb_fswatch_wait(w, 300, got, sizeof(got)), 0);
	write_file("conf/e.toml", "x");
	cr_assert_eq(hb_fswatch_wait(w, 2000, got, sizeof(got)), 1);
	cr_assert(strstr(got, "conf/e.toml"));
	write_file("index.html", "x");
	cr_assert_eq(hb_fswatch_wait(w, 2000, got, sizeof(got)), 1);
	cr_assert(strstr(got, "index.html"));
	hb_fswatch_free(w);
}

Test(fswatch, a_burst_is_one_change_after_the_debounce, .init = make_root, .fini = rm_root)
{
	hb_fswatch_t *w = watch(NULL, 0, NULL, 0, 300);
	char got[512], name[32];
	int64_t last;

	for (int i = 0; i < 5; i++) {
		snprintf(name, sizeof(name), "f%d.py", i);
		write_file(name, "x");
		usleep(50 * 1000);
	}
	last = now_ms() - 50;
	cr_assert_eq(hb_fswatch_wait(w, 5000, got, sizeof(got)), 1);
	cr_assert_geq(now_ms() - last, 250, "not before the debounce after the last write");
	cr_assert(strstr(got, "f4.py"), "the last change is named: %s", got);
	cr_assert_eq(hb_fswatch_wait(w, 400, got, sizeof(got)), 0, "one burst, one change");
	hb_fswatch_free(w);
}

Test(fswatch, missing_root)
{
	const char *roots[] = {"/nonexistent/hb-fswatch"};
	hb_fswatch_opts_t o = {roots, 1, NULL, 0, NULL, 0, 0};
	hb_fswatch_t *w = (hb_fswatch_t *)1;

	cr_assert_eq(hb_fswatch_new(&o, &w), -ENOENT);
	cr_assert_null(w);
}

Test(fswatch, in_a_poll_loop, .init = make_root, .fini = rm_root)
{
	hb_fswatch_t *w = watch(NULL, 0, NULL, 0, 100);
	struct pollfd p = {.fd = hb_fswatch_fd(w), .events = POLLIN};
	char got[512];
	int due;

	cr_assert_eq(hb_fswatch_due_ms(w), -1);
	cr_assert_eq(hb_fswatch_wait(w, 0, got, sizeof(got)), 0);
	write_file("app.py", "x");
	cr_assert_eq(poll(&p, 1, 2000), 1);
	cr_assert_eq(hb_fswatch_wait(w, 0, got, sizeof(got)), 0, "seen, not yet due");
	due = hb_fswatch_due_ms(w);
	cr_assert(due >= 0 && due <= 100, "due in %d ms", due);
	usleep((useconds_t)(due + 10) * 1000);
	cr_assert_eq(hb_fswatch_wait(w, 0, got, sizeof(got)), 1);
	cr_assert_eq(hb_fswatch_due_ms(w), -1);
	hb_fswatch_free(w);
}
