/* about.h: what this binary was built with, for --version and the startup log: the versions of
 * the C libraries it links (liburing, llhttp, nghttp2, wolfSSL). The embedded Python is
 * described by the python layer (hb_py_describe in pyhost.h). Any thread; no state.
 */
#ifndef HB_SERVER_ABOUT_H
#define HB_SERVER_ABOUT_H

#include <stddef.h>

/* Writes "liburing 2.3, llhttp 8.1.0, nghttp2 1.52.0, wolfSSL 5.5.4" into out (the run-time
 * versions where the library reports one, else the ones built against). */
void hb_about_libs(char *out, size_t len);

#endif
