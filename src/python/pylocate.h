/* pylocate.h: where the binary finds its Python package and, when installed with one, its own
 * Python runtime, relative to where the binary itself is (so an installed tree can be moved).
 *
 * The installed layout (CMakeLists.txt, `cmake --install`):
 *   PREFIX/bin/hornbeam-uring
 *   PREFIX/share/hornbeam-uring/python/          hornbeam_erlang.py, hornbeam_ml.py, stubs
 *   PREFIX/lib/hornbeam-uring/python/            the embedded Python's home (optional):
 *       lib/libpython3.X.so.1.0, lib/python3.X/  its shared library and standard library
 * A binary in a build directory has neither and falls back to the source tree's python/
 * (HB_SOURCE_DIR). Pure path logic: no Python calls, called from the main thread at start-up.
 * Functions return 0 or -errno (-ENOENT: not there; -ENAMETOOLONG: out too small).
 */
#ifndef HB_PYTHON_PYLOCATE_H
#define HB_PYTHON_PYLOCATE_H

#include <stddef.h>

/* The directory of the running binary (/proc/self/exe without its last component). */
int hb_pylocate_exe_dir(char *out, size_t len);

/* The hornbeam Python package directory for a binary in exe_dir: EXE/../share/hornbeam-uring/
 * python when it holds hornbeam_erlang.py, else src_dir/python when that does (src_dir may be
 * NULL). */
int hb_pylocate_package(const char *exe_dir, const char *src_dir, char *out, size_t len);

/* The bundled Python home for a binary in exe_dir: EXE/../lib/hornbeam-uring/python when its
 * lib/python<pyver>/os.py exists (pyver: "3.13"). */
int hb_pylocate_home(const char *exe_dir, const char *pyver, char *out, size_t len);

#endif
