/* pyhost.h: the embedded CPython: the main interpreter and the pool of worker interpreters.
 *
 * Called only from the main thread, in this order: hb_py_init (before the config is loaded,
 * since the TOML file is parsed by tomllib), hb_py_start, then at shutdown hb_py_stop and
 * hb_py_finalize. Workers are sub-interpreters with their own GIL (PEP 684), each on its own
 * thread(s), each importing the app; with `interpreter = "main"` (or the automatic fallback) the
 * app runs in the main interpreter instead. Worker threads take requests from the hub
 * (core/hub.h) and answer through core/stream.h.
 */
#ifndef HB_PYTHON_PYHOST_H
#define HB_PYTHON_PYHOST_H

#include <stddef.h>
#include <stdint.h>

#include "core/config.h"
#include "core/hub.h"

typedef struct hb_pyhost hb_pyhost_t;

/* Initializes the main interpreter. Returns 0 or -1 (message printed on stderr). */
int hb_py_init(void);

/* [after hb_py_init, before hb_py_start] Writes "Python 3.13.1 (prefix /usr/local)" into out:
 * the embedded runtime's version and sys.prefix. */
void hb_py_describe(char *out, size_t len);

/* The hb_toml_loader_fn for hb_config_load (tomllib in the main interpreter). */
int hb_py_toml_load(const char *path, hb_config_t *cfg, hb_config_set_fn set, char *err,
		    size_t errlen);

/* Number of hub worker slots the python layer may use at once (active + replacements). */
int hb_py_max_workers(const hb_config_t *cfg);

/* Creates the worker interpreters, imports the app in each and starts their threads. Returns
 * once every worker accepts requests, with *out set; or -1 after printing why (the app's
 * module name and traceback when its import failed). */
int hb_py_start(const hb_config_t *cfg, hb_hub_t *hub, hb_pyhost_t **out);

/* After hb_py_start: the class the app is served as, HB_WORKER_WSGI or HB_WORKER_ASGI (for
 * worker_class = auto, what the workers detected), with the reason in why. */
hb_worker_class_t hb_py_app_class(const hb_pyhost_t *host, char *why, size_t len);

/* Stops taking new requests, lets workers finish what they hold until deadline_ns
 * (CLOCK_MONOTONIC), then stops them; joins the threads and ends the interpreters. */
void hb_py_stop(hb_pyhost_t *host, uint64_t deadline_ns);

/* Finalizes the main interpreter. */
void hb_py_finalize(void);

#endif
