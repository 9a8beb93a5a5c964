/* tls_priv.h: the TLS engine's internals, shared by tls.c (the engine: memory I/O, handshake,
 * records, peer information) and tls_ctx.c (contexts: pairs, CA, ciphers, ALPN, the ticket key
 * store, the live ctx of a listener, the load-time self-test). Not for use outside
 * src/proto/tls*.c. Same thread rules as tls.h.
 */
#ifndef HB_PROTO_TLS_PRIV_H
#define HB_PROTO_TLS_PRIV_H

#include <wolfssl/options.h>

#include <wolfssl/openssl/x509.h>
#include <wolfssl/ssl.h>
#include <wolfssl/wolfcrypt/chacha20_poly1305.h>
#include <wolfssl/wolfcrypt/ecc.h>

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "proto/tls.h"

/* ---- ticket keys ---- */

struct tkey {
	uint8_t name[WOLFSSL_TICKET_NAME_SZ];
	uint8_t key[CHACHA20_POLY1305_AEAD_KEYSIZE];
	uint64_t born, retired; /* seconds on the store's clock; retired 0: current */
};

struct tickets {
	atomic_int refs;
	pthread_mutex_t mu; /* handshakes on every io thread read it; rotation writes it */
	struct tkey cur, prev;
	bool have_prev;
	uint64_t lifetime;
	uint64_t (*clock_s)(void *);
	void *clock_arg;
};

struct pair {
	char *name; /* NULL: the default; lower case; "*.x" matches one label */
	WOLFSSL_CTX *wctx;
};

struct hb_tls_ctx {
	atomic_int refs;
	struct pair *pairs;
	size_t npairs, dflt;
	struct tickets *tk;
	WOLFSSL_CTX *client; /* conf->client: the client side, else NULL */
	char alpn[HB_TLS_MAX_ALPN][256];
	size_t nalpn;
	char alpn_csv[HB_TLS_MAX_ALPN * 256]; /* the same, comma-separated, for wolfSSL_UseALPN */
};

struct hb_tls_live {
	pthread_mutex_t mu;
	hb_tls_ctx_t *cur;
};

struct buf {
	uint8_t *p;
	size_t off, len, cap; /* valid bytes are p[off..len) */
};

struct hb_tls {
	hb_tls_ctx_t *ctx;
	WOLFSSL *ssl;
	struct buf in, out;
	int err; /* sticky fatal error, 0 while alive */
	const char *why;
	bool done, shut, nomem, client;
	char alpn[256];
	char sni[256];
};

/* tls.c: wolfSSL's I/O callbacks over an engine's buffers (arg: the hb_tls_t), and appending to
 * a buffer (-1 on ENOMEM). */
int tls_io_recv(WOLFSSL *ssl, char *dst, int sz, void *arg);
int tls_io_send(WOLFSSL *ssl, char *src, int sz, void *arg);
int tls_buf_append(struct buf *b, const void *p, size_t n);

#endif
