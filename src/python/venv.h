/* venv.h: the virtualenv whose packages the app imports: the `venv` key, else an activated one
 * ($VIRTUAL_ENV). Its Python must be the embedded one's major.minor (its pyvenv.cfg says which),
 * else its compiled packages would not load, or silently be missing: that is an error at start.
 * Main thread at startup (the check), then each interpreter as it sets up sys.path; no state.
 */
#ifndef HB_PYTHON_VENV_H
#define HB_PYTHON_VENV_H

#include <stddef.h>

#include "core/config.h"

/* Writes the venv's site-packages directory into out ("" when no venv is configured or active).
 * Returns 0, or -EINVAL with err naming the venv, where it came from and what is wrong (no
 * pyvenv.cfg, another Python version, no site-packages). */
int hb_venv_site_packages(const hb_config_t *cfg, char *out, size_t len, char *err, size_t errlen);

/* The same check on a given directory and embedded version (for tests): source names where the
 * directory came from ("venv", "VIRTUAL_ENV"). */
int hb_venv_check(const char *dir, const char *source, int major, int minor, char *out, size_t len,
		  char *err, size_t errlen);

#endif
