/* fuzz_tls.c: libFuzzer target for the TLS server engine (src/proto/tls.c) over memory.
 *
 * Input: byte 0 is the feed step (0: everything at once, else that many bytes per feed), the
 * rest is what a client sends. The engine is driven as the transport drives it: feed, advance
 * the handshake, read plaintext, take the ciphertext out. Invariants checked: a fatal error
 * carries a reason and is sticky (later calls return it again), reads never return more than
 * asked, the ciphertext the engine produces stays bounded (a handshake flight and alerts, never
 * proportional to repeated junk). Certificates are made once by tests/tls/make_certs.sh.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "proto/tls.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static hb_tls_ctx_t *ctx;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	char dir[] = "/tmp/hb-fuzz-tls-XXXXXX", cmd[512], cert[128], key[128], err[256];
	(void)argc;
	(void)argv;
	if (!mkdtemp(dir))
		abort();
	snprintf(cmd, sizeof cmd, "%s/tests/tls/make_certs.sh %s >/dev/null", HB_SOURCE_DIR, dir);
	if (system(cmd) != 0)
		abort();
	snprintf(cert, sizeof cert, "%s/server.pem", dir);
	snprintf(key, sizeof key, "%s/server.key", dir);
	hb_tls_cert_conf_t certs[1] = {{NULL, cert, key, NULL}};
	hb_tls_conf_t conf = {.certs = certs, .ncerts = 1};
	ctx = hb_tls_ctx_new(&conf, NULL, err, sizeof err);
	if (!ctx) {
		fprintf(stderr, "fuzz_tls: %s\n", err);
		abort();
	}
	snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
	if (system(cmd) != 0)
		fprintf(stderr, "fuzz_tls: could not remove %s\n", dir);
	return 0;
}

static void check_error(hb_tls_t *t, int rc, const char *why)
{
	if (rc >= 0)
		return;
	if (!why || !*why)
		abort();
	const char *again = NULL;
	if (hb_tls_feed(t, "x", 1, &again) != rc || !again)
		abort(); /* errors are sticky */
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	size_t step = data[0] ? data[0] : size;
	hb_tls_t *t = hb_tls_new(ctx);
	char plain[4096];
	size_t out_total = 0;
	if (!t)
		return 0;
	for (size_t off = 1; off < size;) {
		size_t n = size - off < step ? size - off : step;
		const char *why = NULL;
		int rc = hb_tls_feed(t, data + off, n, &why);
		off += n;
		if (rc == HB_TLS_OK && !hb_tls_done(t))
			rc = hb_tls_handshake(t, &why);
		ssize_t r = 0;
		while (rc >= 0 && hb_tls_done(t) &&
		       (r = hb_tls_read(t, plain, sizeof plain, &why)) > 0)
			if ((size_t)r > sizeof plain)
				abort();
		if (r < 0)
			rc = (int)r;
		size_t len;
		free(hb_tls_out_take(t, &len));
		out_total += len;
		if (rc < 0) {
			check_error(t, rc, why);
			break;
		}
	}
	if (out_total > 64 * 1024)
		abort(); /* one server flight and an alert; nothing grows with the input */
	hb_tls_free(t);
	return 0;
}
