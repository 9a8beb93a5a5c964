/* fswatch.c: inotify watches over directory trees (fswatch.h). */
#include "core/fswatch.h"

#include <dirent.h>
#include <errno.h>
#include <fnmatch.h>
#include <limits.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define DIR_MASK                                                                                   \
	(IN_CLOSE_WRITE | IN_MOVED_TO | IN_MOVED_FROM | IN_DELETE | IN_CREATE | IN_ONLYDIR |       \
	 IN_DONT_FOLLOW | IN_EXCL_UNLINK)

static const char *const default_include[] = {"*.py"};
static const char *const default_exclude[] = {".*", "*.py[cod]", "*.sw.*", "~*"};

struct dir {
	int wd;
	int root;   /* index of its root */
	char *path; /* absolute or as given */
};

struct hb_fswatch {
	int fd;
	struct dir *dirs;
	size_t ndirs, cap;
	char **roots; /* copies of the options' lists */
	size_t nroots;
	char **include, **exclude;
	size_t ninclude, nexclude;
	int debounce_ms;
	int pending;	     /* a change was seen, not yet reported */
	int64_t last_ms;     /* when the last change was seen */
	char last[PATH_MAX]; /* its path */
};

static void free_list(char **v, size_t n)
{
	for (size_t i = 0; v && i < n; i++)
		free(v[i]);
	free(v);
}

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Does a glob list match? rel is the path relative to its root, name the last component. */
static int matches(char *const *globs, size_t n, const char *rel, const char *name)
{
	for (size_t i = 0; i < n; i++)
		if (fnmatch(globs[i], strchr(globs[i], '/') ? rel : name, 0) == 0)
			return 1;
	return 0;
}

/* The path relative to root r (no leading '/'). */
static const char *relative(const hb_fswatch_t *w, int r, const char *path)
{
	size_t n = strlen(w->roots[r]);

	if (strncmp(path, w->roots[r], n) == 0) {
		path += n;
		while (*path == '/')
			path++;
	}
	return path;
}

static struct dir *find_dir(hb_fswatch_t *w, int wd)
{
	for (size_t i = 0; i < w->ndirs; i++)
		if (w->dirs[i].wd == wd)
			return &w->dirs[i];
	return NULL;
}

/* Watches path and every directory below it that is not excluded. */
static int add_tree(hb_fswatch_t *w, int root, const char *path)
{
	DIR *d;
	struct dirent *e;
	int wd = inotify_add_watch(w->fd, path, DIR_MASK);
	char sub[PATH_MAX];
	struct dir *slot;

	if (wd < 0)
		return errno == ENOTDIR ? -ENOENT : -errno;
	if (!(slot = find_dir(w, wd))) {
		if (w->ndirs == w->cap) {
			size_t cap = w->cap ? w->cap * 2 : 16;
			struct dir *nd = realloc(w->dirs, cap * sizeof(*nd));

			if (!nd)
				return -ENOMEM;
			w->dirs = nd;
			w->cap = cap;
		}
		slot = &w->dirs[w->ndirs];
		slot->path = strdup(path);
		if (!slot->path)
			return -ENOMEM;
		w->ndirs++;
	}
	slot->wd = wd;
	slot->root = root;
	d = opendir(path);
	if (!d)
		return 0; /* gone already, or unreadable: its watch is enough */
	while ((e = readdir(d))) {
		struct stat st;
		int rc;

		if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
			continue;
		if (snprintf(sub, sizeof(sub), "%s/%s", path, e->d_name) >= (int)sizeof(sub))
			continue;
		if (e->d_type != DT_DIR &&
		    (e->d_type != DT_UNKNOWN || lstat(sub, &st) < 0 || !S_ISDIR(st.st_mode)))
			continue;
		if (matches(w->exclude, w->nexclude, relative(w, root, sub), e->d_name))
			continue;
		rc = add_tree(w, root, sub);
		if (rc < 0 && rc != -ENOENT && rc != -EACCES) {
			closedir(d);
			return rc;
		}
	}
	closedir(d);
	return 0;
}

/* A malloc'd copy of a string list (n may be 0). NULL on ENOMEM. */
static char **copy_list(const char *const *v, size_t n)
{
	char **c = calloc(n + 1, sizeof(*c));

	for (size_t i = 0; c && i < n; i++) {
		if (!(c[i] = strdup(v[i]))) {
			free_list(c, i);
			return NULL;
		}
	}
	return c;
}

int hb_fswatch_new(const hb_fswatch_opts_t *o, hb_fswatch_t **out)
{
	hb_fswatch_t *w = calloc(1, sizeof(*w));
	int rc = 0;

	*out = NULL;
	if (!w)
		return -ENOMEM;
	w->fd = -1;
	w->nroots = o->nroots;
	w->ninclude = o->ninclude ? o->ninclude : 1;
	w->nexclude =
		o->nexclude ? o->nexclude : sizeof(default_exclude) / sizeof(*default_exclude);
	w->roots = copy_list(o->roots, o->nroots);
	w->include = copy_list(o->ninclude ? o->include : default_include, w->ninclude);
	w->exclude = copy_list(o->nexclude ? o->exclude : default_exclude, w->nexclude);
	w->debounce_ms = o->debounce_ms > 0 ? o->debounce_ms : HB_FSWATCH_DEBOUNCE_MS;
	if (!w->roots || !w->include || !w->exclude) {
		hb_fswatch_free(w);
		return -ENOMEM;
	}
	w->fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
	if (w->fd < 0) {
		rc = -errno;
		hb_fswatch_free(w);
		return rc;
	}
	for (size_t r = 0; r < o->nroots && rc == 0; r++)
		rc = add_tree(w, (int)r, o->roots[r]);
	if (rc < 0) {
		hb_fswatch_free(w);
		return rc;
	}
	*out = w;
	return 0;
}

void hb_fswatch_free(hb_fswatch_t *w)
{
	if (!w)
		return;
	for (size_t i = 0; i < w->ndirs; i++)
		free(w->dirs[i].path);
	free(w->dirs);
	free_list(w->roots, w->nroots);
	free_list(w->include, w->ninclude);
	free_list(w->exclude, w->nexclude);
	if (w->fd >= 0)
		close(w->fd);
	free(w);
}

int hb_fswatch_fd(const hb_fswatch_t *w)
{
	return w->fd;
}

int hb_fswatch_due_ms(const hb_fswatch_t *w)
{
	int64_t left;

	if (!w->pending)
		return -1;
	left = w->last_ms + w->debounce_ms - now_ms();
	return left < 0 ? 0 : left > INT_MAX ? INT_MAX : (int)left;
}

size_t hb_fswatch_dirs(const hb_fswatch_t *w)
{
	return w->ndirs;
}

/* Handles one event. */
static void on_event(hb_fswatch_t *w, const struct inotify_event *ev)
{
	struct dir *d = find_dir(w, ev->wd);
	char path[PATH_MAX];
	const char *rel;

	if (ev->mask & IN_Q_OVERFLOW) { /* events were lost: assume something changed */
		w->pending = 1;
		w->last_ms = now_ms();
		snprintf(w->last, sizeof(w->last), "(inotify queue overflow)");
		return;
	}
	if (ev->mask & IN_IGNORED) { /* the directory went away */
		if (d) {
			free(d->path);
			*d = w->dirs[--w->ndirs];
		}
		return;
	}
	if (!d || !ev->len ||
	    snprintf(path, sizeof(path), "%s/%s", d->path, ev->name) >= (int)sizeof(path))
		return;
	rel = relative(w, d->root, path);
	if (matches(w->exclude, w->nexclude, rel, ev->name))
		return;
	if (ev->mask & IN_ISDIR) {
		if (ev->mask & (IN_CREATE | IN_MOVED_TO))
			(void)add_tree(w, d->root, path); /* files written in it from now on */
		return;
	}
	if (!(ev->mask & (IN_CLOSE_WRITE | IN_MOVED_TO | IN_MOVED_FROM | IN_DELETE)) ||
	    !matches(w->include, w->ninclude, rel, ev->name))
		return;
	w->pending = 1;
	w->last_ms = now_ms();
	snprintf(w->last, sizeof(w->last), "%s", path);
}

/* Reads what is queued. Returns 0 or -errno. */
static int drain(hb_fswatch_t *w)
{
	char buf[16384] __attribute__((aligned(__alignof__(struct inotify_event))));

	for (;;) {
		ssize_t n = read(w->fd, buf, sizeof(buf));

		if (n < 0)
			return errno == EAGAIN ? 0 : errno == EINTR ? 0 : -errno;
		for (char *p = buf; p < buf + n;) {
			const struct inotify_event *ev = (const struct inotify_event *)p;

			on_event(w, ev);
			p += sizeof(*ev) + ev->len;
		}
	}
}

int hb_fswatch_wait(hb_fswatch_t *w, int timeout_ms, char *changed, size_t len)
{
	int64_t deadline = timeout_ms >= 0 ? now_ms() + timeout_ms : -1;

	for (;;) {
		struct pollfd p = {.fd = w->fd, .events = POLLIN};
		int64_t now, wait = -1;
		int rc = drain(w);

		if (rc < 0)
			return rc;
		now = now_ms();
		if (w->pending && now - w->last_ms >= w->debounce_ms) {
			w->pending = 0;
			if (changed && len)
				snprintf(changed, len, "%s", w->last);
			return 1;
		}
		if (w->pending)
			wait = w->last_ms + w->debounce_ms - now;
		if (deadline >= 0) {
			if (now >= deadline)
				return 0;
			if (wait < 0 || deadline - now < wait)
				wait = deadline - now;
		}
		if (poll(&p, 1, wait > INT_MAX ? INT_MAX : (int)wait) < 0 && errno != EINTR)
			return -errno;
	}
}
