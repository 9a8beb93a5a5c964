/* pylocate.c: the binary's package and Python home, found relative to /proc/self/exe
 * (pylocate.h). */
#include "python/pylocate.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static int put(char *out, size_t len, const char *s)
{
	int n = snprintf(out, len, "%s", s);

	return n < 0 || (size_t)n >= len ? -ENAMETOOLONG : 0;
}

/* dir/rel, canonical (symlinks and .. resolved), when it exists and dir/rel/probe is a file. */
static int probe(const char *dir, const char *rel, const char *probe_file, char *out, size_t len)
{
	char path[PATH_MAX], real[PATH_MAX];
	struct stat st;
	int n = snprintf(path, sizeof(path), "%s/%s", dir, rel);

	if (n < 0 || (size_t)n >= sizeof(path))
		return -ENAMETOOLONG;
	if (!realpath(path, real))
		return -errno;
	n = snprintf(path, sizeof(path), "%s/%s", real, probe_file);
	if (n < 0 || (size_t)n >= sizeof(path))
		return -ENAMETOOLONG;
	if (stat(path, &st) < 0)
		return -errno;
	if (!S_ISREG(st.st_mode))
		return -ENOENT;
	return put(out, len, real);
}

int hb_pylocate_exe_dir(char *out, size_t len)
{
	char buf[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", buf, sizeof(buf) - 1);
	char *slash;

	if (n < 0)
		return -errno;
	if ((size_t)n >= sizeof(buf) - 1)
		return -ENAMETOOLONG;
	buf[n] = '\0';
	slash = strrchr(buf, '/');
	if (!slash)
		return -ENOENT;
	*slash = '\0';
	return put(out, len, slash == buf ? "/" : buf);
}

int hb_pylocate_package(const char *exe_dir, const char *src_dir, char *out, size_t len)
{
	int rc = -ENOENT;

	if (exe_dir)
		rc = probe(exe_dir, "../share/hornbeam-uring/python", "hornbeam_erlang.py", out,
			   len);
	if (rc < 0 && src_dir)
		rc = probe(src_dir, "python", "hornbeam_erlang.py", out, len);
	return rc;
}

int hb_pylocate_home(const char *exe_dir, const char *pyver, char *out, size_t len)
{
	char os_py[64];
	int n = snprintf(os_py, sizeof(os_py), "lib/python%s/os.py", pyver);

	if (n < 0 || (size_t)n >= sizeof(os_py))
		return -ENAMETOOLONG;
	return probe(exe_dir, "../lib/hornbeam-uring/python", os_py, out, len);
}
