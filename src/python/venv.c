/* venv.c: finding and checking the virtualenv (venv.h). Plain C: it runs before any app code,
 * and its answer does not depend on the interpreter asking. */
#include "python/venv.h"

#include <errno.h>
#include <patchlevel.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static int is_dir(const char *p)
{
	struct stat st;

	return stat(p, &st) == 0 && S_ISDIR(st.st_mode);
}

/* The "version" (venv) or "version_info" (virtualenv) line of pyvenv.cfg: its major.minor. */
static int cfg_version(FILE *f, int *major, int *minor, char *line, size_t len)
{
	while (fgets(line, (int)len, f)) {
		char *eq = strchr(line, '=');
		size_t k = strcspn(line, " =");

		if (!eq ||
		    (strncmp(line, "version", k) != 0 && strncmp(line, "version_info", k) != 0))
			continue;
		line[strcspn(line, "\r\n")] = '\0';
		if (sscanf(eq + 1, " %d.%d", major, minor) == 2)
			return 0;
	}
	return -ENOENT;
}

int hb_venv_check(const char *dir, const char *source, int major, int minor, char *out, size_t len,
		  char *err, size_t errlen)
{
	char path[4200], line[512];
	int vmaj = 0, vmin = 0, rc;
	FILE *f;

	snprintf(path, sizeof(path), "%s/pyvenv.cfg", dir);
	if (!(f = fopen(path, "r"))) {
		snprintf(err, errlen, "%s: '%s' is not a virtualenv (no pyvenv.cfg: %s)", source,
			 dir, strerror(errno));
		return -EINVAL;
	}
	rc = cfg_version(f, &vmaj, &vmin, line, sizeof(line));
	fclose(f);
	if (rc < 0) {
		snprintf(err, errlen, "%s: '%s': its pyvenv.cfg names no Python version", source,
			 dir);
		return -EINVAL;
	}
	if (vmaj != major || vmin != minor) {
		snprintf(err, errlen,
			 "%s: the virtualenv '%s' is for Python %d.%d (%s), but hornbeam-uring "
			 "embeds Python %d.%d: its packages would not load. Make the venv with "
			 "python%d.%d -m venv%s, or build hornbeam-uring against Python %d.%d "
			 "(HB_PYTHON_CONFIG)",
			 source, dir, vmaj, vmin, line, major, minor, major, minor,
			 strcmp(source, "VIRTUAL_ENV") == 0 ? " (or deactivate this one)" : "",
			 vmaj, vmin);
		return -EINVAL;
	}
	snprintf(path, sizeof(path), "%s/lib/python%d.%d/site-packages", dir, major, minor);
	if (!is_dir(path)) {
		snprintf(err, errlen, "%s: '%s' has no %s", source, dir, path);
		return -EINVAL;
	}
	snprintf(out, len, "%s", path);
	return 0;
}

int hb_venv_site_packages(const hb_config_t *cfg, char *out, size_t len, char *err, size_t errlen)
{
	const char *dir = cfg->venv, *source = "venv";

	out[0] = '\0';
	if (!dir) {
		dir = getenv("VIRTUAL_ENV");
		source = "VIRTUAL_ENV";
	}
	if (!dir || !*dir)
		return 0;
	return hb_venv_check(dir, source, PY_MAJOR_VERSION, PY_MINOR_VERSION, out, len, err,
			     errlen);
}
