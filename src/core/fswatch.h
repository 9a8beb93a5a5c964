/* fswatch.h: watches source trees for `--reload` (inotify), with include/exclude globs and a
 * debounce, as uvicorn's reloader does.
 *
 * hb_fswatch_new adds an inotify watch on every directory under each root (recursively,
 * skipping directories whose name matches an exclude glob); directories created later are
 * watched as they appear. A change is a file written and closed, created by a rename, renamed
 * away or deleted, whose name matches an include glob and no exclude glob (a glob holding '/'
 * is matched against the path relative to its root, any other against the file name).
 * hb_fswatch_wait returns once a change was seen and no further change came for debounce_ms,
 * so an editor's save or a `git checkout` of many files is one reload.
 *
 * Threads: one owner thread (the master's poll loop) calls everything; nothing is shared.
 * Errors are 0 / -errno; nothing prints.
 */
#ifndef HB_CORE_FSWATCH_H
#define HB_CORE_FSWATCH_H

#include <stddef.h>

#define HB_FSWATCH_DEBOUNCE_MS 200

typedef struct hb_fswatch hb_fswatch_t;

typedef struct hb_fswatch_opts {
	const char *const *roots; /* directories to watch (recursively) */
	size_t nroots;
	const char *const *include; /* NULL/0: "*.py" */
	size_t ninclude;
	const char *const *exclude; /* NULL/0: ".*", "*.py[cod]", "*.sw.*", "~*" (uvicorn's) */
	size_t nexclude;
	int debounce_ms; /* 0: HB_FSWATCH_DEBOUNCE_MS */
} hb_fswatch_opts_t;

/* Starts watching. Returns 0 with *out set, -ENOENT (a root does not exist or is no
 * directory), -ENOSPC (out of inotify watches: fs.inotify.max_user_watches) or another -errno.
 */
int hb_fswatch_new(const hb_fswatch_opts_t *o, hb_fswatch_t **out);
void hb_fswatch_free(hb_fswatch_t *w);

/* Waits at most timeout_ms (-1: no limit) for a debounced change. Returns 1 with the path of
 * the last changed file in changed[0..len) (truncated, NUL-terminated), 0 when the time ran
 * out, or -errno. */
int hb_fswatch_wait(hb_fswatch_t *w, int timeout_ms, char *changed, size_t len);

/* For a poll loop (the master's): the inotify descriptor, readable when events wait, and the
 * milliseconds until a seen change is due (-1: none seen). When either says so, call
 * hb_fswatch_wait(w, 0, ...). */
int hb_fswatch_fd(const hb_fswatch_t *w);
int hb_fswatch_due_ms(const hb_fswatch_t *w);

/* Directories watched now. */
size_t hb_fswatch_dirs(const hb_fswatch_t *w);

#endif
