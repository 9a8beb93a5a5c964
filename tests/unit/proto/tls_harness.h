/* tls_harness.h: the certificate directory the TLS engine tests (test_tls.c,
 * test_tls_client.c) share: tests/tls/make_certs.sh run into a fresh temporary directory in a
 * suite's .init, its files named by cert(), the directory removed (and the thread's wolfSSL
 * state freed) in .fini. Single-threaded, as Criterion runs a suite's init and tests; the
 * statics belong to the including test file (each is its own executable). Header-only. */
#ifndef HB_TESTS_UNIT_PROTO_TLS_HARNESS_H
#define HB_TESTS_UNIT_PROTO_TLS_HARNESS_H

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "proto/tls.h"

static char dir[64];
static char path_buf[16][160];
static int npath;

/* A file of the test's certificate directory (the string lives until 16 more are named). */
static inline const char *cert(const char *name)
{
	char *p = path_buf[npath++ % 16];
	snprintf(p, sizeof path_buf[0], "%s/%s", dir, name);
	return p;
}

/* Makes the certificates in a new directory from the mkdtemp template tmpl. */
static inline void make_certs_in(const char *tmpl)
{
	char cmd[512];
	snprintf(dir, sizeof dir, "%s", tmpl);
	cr_assert_not_null(mkdtemp(dir));
	snprintf(cmd, sizeof cmd, "%s/tests/tls/make_certs.sh %s", HB_SOURCE_DIR, dir);
	cr_assert_eq(system(cmd), 0, "make_certs.sh failed");
}

static inline void remove_certs(void)
{
	hb_tls_thread_cleanup();
	char cmd[128];
	snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
	if (system(cmd) != 0)
		fprintf(stderr, "could not remove %s\n", dir);
}

#endif
