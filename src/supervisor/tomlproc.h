/* tomlproc.h: the configuration file parsed in a short-lived child process.
 *
 * The master process must not initialise CPython (its forked worker processes each start their
 * own interpreter, and a Python runtime in the forking process would leave locks, threads and
 * module state behind in every child), but the TOML file is parsed by tomllib. So the master
 * forks a helper that starts Python, parses the file, sends every (key, value, file, line) the
 * loader produced through a pipe and exits; the master replays them into its config through
 * the real setter, in the same order, so an invalid value fails exactly as in-process loading
 * would. Master thread only (it forks), while the master runs no other thread.
 */
#ifndef HB_SUPERVISOR_TOMLPROC_H
#define HB_SUPERVISOR_TOMLPROC_H

#include <stddef.h>

#include "core/config.h"

/* An hb_toml_loader_fn: forks, loads `path` with hb_py_toml_load in the child, replays its keys
 * into cfg with `set`. Returns 0 or -EINVAL / -ENOMEM / -ECHILD with the message in err. */
int hb_tomlproc_load(const char *path, hb_config_t *cfg, hb_config_set_fn set, char *err,
		     size_t errlen);

#endif
