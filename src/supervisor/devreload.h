/* devreload.h: `--reload` in the master: which directories and files to watch (core/fswatch.h),
 * from the configuration. The master polls the watcher's descriptor in its loop and reloads as
 * on SIGHUP once a change is due. Master thread only.
 */
#ifndef HB_SUPERVISOR_DEVRELOAD_H
#define HB_SUPERVISOR_DEVRELOAD_H

#include "core/config.h"
#include "core/fswatch.h"

/* The watcher for cfg (reload_dirs, else the pythonpath directories and the working directory;
 * reload_include, reload_exclude, reload_delay), or NULL when reload is off or the watch could
 * not start (logged: the server runs without it). */
hb_fswatch_t *hb_devreload_start(const hb_config_t *cfg);

#endif
