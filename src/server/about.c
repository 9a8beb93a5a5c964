/* about.c: library versions (about.h). */
#include "server/about.h"

#include <llhttp.h>
#include <nghttp2/nghttp2.h>
#include <stdio.h>
#include <wolfssl/options.h>
#include <wolfssl/ssl.h>

/* liburing 2.3 has no version call or macro: CMake passes the pkg-config version. */
#ifndef HB_LIBURING_VERSION
#define HB_LIBURING_VERSION "unknown"
#endif

#define STR2(x) #x
#define STR(x) STR2(x)

void hb_about_libs(char *out, size_t len)
{
	const nghttp2_info *ng = nghttp2_version(0);

	snprintf(out, len, "liburing %s, llhttp %s, nghttp2 %s, wolfSSL %s", HB_LIBURING_VERSION,
		 STR(LLHTTP_VERSION_MAJOR) "." STR(LLHTTP_VERSION_MINOR) "." STR(
			 LLHTTP_VERSION_PATCH),
		 ng ? ng->version_str : NGHTTP2_VERSION, wolfSSL_lib_version());
}
