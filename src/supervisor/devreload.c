/* devreload.c: the --reload watcher's configuration (devreload.h). */
#include "supervisor/devreload.h"

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/log.h"

hb_fswatch_t *hb_devreload_start(const hb_config_t *cfg)
{
	const char **roots;
	char cwd[PATH_MAX];
	size_t n = 0;
	hb_fswatch_t *w = NULL;
	int rc;

	if (!cfg->reload)
		return NULL;
	roots = calloc(cfg->nreload_dirs + cfg->npythonpath + 1, sizeof(*roots));
	if (!roots) {
		hb_error("--reload: out of memory");
		return NULL;
	}
	for (size_t i = 0; i < cfg->nreload_dirs; i++)
		roots[n++] = cfg->reload_dirs[i];
	if (n == 0) { /* uvicorn watches the working directory; the app's paths are ours too */
		for (size_t i = 0; i < cfg->npythonpath; i++)
			roots[n++] = cfg->pythonpath[i];
		if (getcwd(cwd, sizeof(cwd)))
			roots[n++] = cwd;
	}
	hb_fswatch_opts_t o = {
		.roots = roots,
		.nroots = n,
		.include = (const char *const *)cfg->reload_include,
		.ninclude = cfg->nreload_include,
		.exclude = (const char *const *)cfg->reload_exclude,
		.nexclude = cfg->nreload_exclude,
		.debounce_ms = (int)cfg->reload_delay_ms,
	};
	rc = hb_fswatch_new(&o, &w);
	if (rc < 0)
		hb_error("--reload: cannot watch the source directories: %s%s", strerror(-rc),
			 rc == -ENOSPC ? " (raise fs.inotify.max_user_watches)" : "");
	else
		hb_info("--reload: watching %zu directories under %zu roots", hb_fswatch_dirs(w),
			n);
	free(roots);
	return w;
}
