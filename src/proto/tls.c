/* tls.c: wolfSSL engine over memory buffers (see tls.h): one hb_tls_t per connection, its
 * memory I/O, the handshake, records both ways, and what it tells of the peer. Contexts (pairs,
 * SNI, ALPN, ticket keys, reload) are tls_ctx.c's; the structures are in tls_priv.h.
 */
#include "proto/tls_priv.h"

#include <ctype.h>
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#define RECORD_MAX 16384 /* plaintext bytes per TLS record */

/* ---- memory I/O ---- */

int tls_io_recv(WOLFSSL *ssl, char *dst, int sz, void *arg)
{
	hb_tls_t *t = arg;
	size_t avail = t->in.len - t->in.off;
	(void)ssl;
	if (avail == 0)
		return WOLFSSL_CBIO_ERR_WANT_READ;
	size_t n = avail < (size_t)sz ? avail : (size_t)sz;
	memcpy(dst, t->in.p + t->in.off, n);
	t->in.off += n;
	if (t->in.off == t->in.len)
		t->in.off = t->in.len = 0;
	return (int)n;
}

int tls_buf_append(struct buf *b, const void *p, size_t n)
{
	if (b->off && b->len + n > b->cap) { /* compact before growing */
		memmove(b->p, b->p + b->off, b->len - b->off);
		b->len -= b->off;
		b->off = 0;
	}
	if (b->len + n > b->cap) {
		size_t cap = b->cap ? b->cap : 4096;
		while (cap < b->len + n)
			cap *= 2;
		uint8_t *q = realloc(b->p, cap);
		if (!q)
			return -1;
		b->p = q;
		b->cap = cap;
	}
	memcpy(b->p + b->len, p, n);
	b->len += n;
	return 0;
}

int tls_io_send(WOLFSSL *ssl, char *src, int sz, void *arg)
{
	hb_tls_t *t = arg;
	(void)ssl;
	if (tls_buf_append(&t->out, src, (size_t)sz) < 0) {
		t->nomem = true;
		return WOLFSSL_CBIO_ERR_GENERAL;
	}
	return sz;
}

/* ---- the engine ---- */

static hb_tls_t *engine_new(hb_tls_ctx_t *ctx, WOLFSSL_CTX *w, bool client)
{
	hb_tls_t *t = calloc(1, sizeof *t);
	if (!t)
		return NULL;
	t->ssl = wolfSSL_new(w);
	if (!t->ssl) {
		free(t);
		return NULL;
	}
	t->client = client;
	t->ctx = hb_tls_ctx_ref(ctx);
	wolfSSL_SSLSetIORecv(t->ssl, tls_io_recv);
	wolfSSL_SSLSetIOSend(t->ssl, tls_io_send);
	wolfSSL_SetIOReadCtx(t->ssl, t);
	wolfSSL_SetIOWriteCtx(t->ssl, t);
	/* alpn_cb picks in server order; when it finds no overlap wolfSSL falls back to this list,
	 * which then fails the handshake with no_application_protocol (the callback's own
	 * ALERT_FATAL is ignored by wolfSSL 5.5). */
	char csv[sizeof ctx->alpn_csv];
	memcpy(csv, ctx->alpn_csv, sizeof csv);
	if (wolfSSL_UseALPN(t->ssl, csv, (unsigned)strlen(csv), WOLFSSL_ALPN_FAILED_ON_MISMATCH) !=
	    WOLFSSL_SUCCESS) {
		hb_tls_free(t);
		return NULL;
	}
	return t;
}

hb_tls_t *hb_tls_new(hb_tls_ctx_t *ctx)
{
	return engine_new(ctx, ctx->pairs[ctx->dflt].wctx, false);
}

hb_tls_t *hb_tls_new_client(hb_tls_ctx_t *ctx)
{
	return ctx->client ? engine_new(ctx, ctx->client, true) : NULL;
}

void hb_tls_free(hb_tls_t *t)
{
	if (!t)
		return;
	wolfSSL_free(t->ssl);
	hb_tls_ctx_unref(t->ctx);
	free(t->in.p);
	free(t->out.p);
	free(t);
}

static int fail(hb_tls_t *t, int err, const char *why, const char **whyp)
{
	if (!t->err) {
		t->err = err;
		t->why = why;
	}
	if (whyp)
		*whyp = t->why;
	return t->err;
}

/* Classifies a wolfSSL failure: would-block is 0, anything else is fatal and sticky. */
static int ssl_error(hb_tls_t *t, int ret, int fatal, const char **why)
{
	int e = wolfSSL_get_error(t->ssl, ret);
	if (e == WOLFSSL_ERROR_WANT_READ || e == WOLFSSL_ERROR_WANT_WRITE)
		return 0;
	if (t->nomem)
		return fail(t, HB_TLS_E_NOMEM, "out of memory", why);
	if (e == WOLFSSL_ERROR_ZERO_RETURN)
		return fail(t, HB_TLS_EOF, "close_notify", why);
	const char *s = wolfSSL_ERR_reason_error_string((unsigned long)e);
	return fail(t, fatal, s ? s : "TLS error", why);
}

int hb_tls_feed(hb_tls_t *t, const void *p, size_t len, const char **why)
{
	if (t->err)
		return fail(t, t->err, t->why, why);
	if (len && tls_buf_append(&t->in, p, len) < 0)
		return fail(t, HB_TLS_E_NOMEM, "out of memory", why);
	return HB_TLS_OK;
}

static void note_result(hb_tls_t *t)
{
	char *proto = NULL;
	unsigned short plen = 0;
	if (wolfSSL_ALPN_GetProtocol(t->ssl, &proto, &plen) == WOLFSSL_SUCCESS && proto &&
	    plen < sizeof t->alpn) {
		memcpy(t->alpn, proto, plen);
		t->alpn[plen] = '\0';
	}
	const char *name = wolfSSL_get_servername(t->ssl, WOLFSSL_SNI_HOST_NAME);
	if (name) {
		size_t n = 0;
		for (; name[n] && n + 1 < sizeof t->sni; n++)
			t->sni[n] = (char)tolower((unsigned char)name[n]);
		t->sni[n] = '\0';
	}
}

int hb_tls_handshake(hb_tls_t *t, const char **why)
{
	if (t->err)
		return fail(t, t->err, t->why, why);
	if (t->done)
		return 1;
	int ret = t->client ? wolfSSL_connect(t->ssl) : wolfSSL_accept(t->ssl);
	if (t->err) /* set by a callback (alpn_cb) */
		return fail(t, t->err, t->why, why);
	if (ret != WOLFSSL_SUCCESS)
		return ssl_error(t, ret, HB_TLS_E_HANDSHAKE, why);
	t->done = true;
	note_result(t);
	return 1;
}

ssize_t hb_tls_read(hb_tls_t *t, void *buf, size_t cap, const char **why)
{
	if (!t->done) {
		int rc = hb_tls_handshake(t, why);
		if (rc <= 0)
			return rc;
	}
	if (t->err)
		return fail(t, t->err, t->why, why);
	int n = wolfSSL_read(t->ssl, buf, cap > INT32_MAX ? INT32_MAX : (int)cap);
	if (n > 0)
		return n;
	return ssl_error(t, n, HB_TLS_E_PROTOCOL, why);
}

int hb_tls_write(hb_tls_t *t, const void *p, size_t len, const char **why)
{
	const uint8_t *b = p;
	if (t->err)
		return fail(t, t->err, t->why, why);
	if (!t->done || t->shut) { /* the caller's mistake, not the peer's: not sticky */
		if (why)
			*why = "write before the handshake or after shutdown";
		return HB_TLS_E_STATE;
	}
	while (len) {
		int n = len > RECORD_MAX ? RECORD_MAX : (int)len;
		int w = wolfSSL_write(t->ssl, b, n);
		if (w <= 0) {
			int rc = ssl_error(t, w, HB_TLS_E_PROTOCOL, why);
			return rc ? rc : fail(t, HB_TLS_E_PROTOCOL, "write would block", why);
		}
		b += w;
		len -= (size_t)w;
	}
	return HB_TLS_OK;
}

/* Small pieces (a response head, chunk framing) are gathered into whole records: one record per
 * piece would cost 22+ bytes and an AEAD call each. */
int hb_tls_writev(hb_tls_t *t, const struct iovec *iov, int n, const char **why)
{
	uint8_t stage[RECORD_MAX];
	size_t used = 0;
	int rc = HB_TLS_OK;
	for (int i = 0; i < n && rc == HB_TLS_OK; i++) {
		const uint8_t *p = iov[i].iov_base;
		size_t len = iov[i].iov_len;
		while (len && rc == HB_TLS_OK) {
			if (used == 0 && len >= RECORD_MAX) { /* whole records straight through */
				size_t whole = len - len % RECORD_MAX;
				rc = hb_tls_write(t, p, whole, why);
				p += whole;
				len -= whole;
				continue;
			}
			size_t k = RECORD_MAX - used < len ? RECORD_MAX - used : len;
			memcpy(stage + used, p, k);
			used += k;
			p += k;
			len -= k;
			if (used == RECORD_MAX) {
				rc = hb_tls_write(t, stage, used, why);
				used = 0;
			}
		}
	}
	if (rc == HB_TLS_OK && used)
		rc = hb_tls_write(t, stage, used, why);
	return rc;
}

void hb_tls_shutdown(hb_tls_t *t)
{
	if (t->shut || t->err)
		return;
	t->shut = true;
	if (t->done)
		wolfSSL_shutdown(t->ssl); /* queues close_notify; we do not wait for the peer's */
}

size_t hb_tls_out_pending(const hb_tls_t *t)
{
	return t->out.len - t->out.off;
}

void *hb_tls_out_take(hb_tls_t *t, size_t *len)
{
	size_t n = t->out.len - t->out.off;
	*len = 0;
	if (n == 0)
		return NULL;
	void *p;
	if (t->out.off == 0) { /* hand over the buffer itself; the next output gets a new one */
		p = t->out.p;
		memset(&t->out, 0, sizeof t->out);
	} else {
		p = malloc(n);
		if (!p)
			return NULL;
		memcpy(p, t->out.p + t->out.off, n);
		t->out.off = t->out.len = 0;
	}
	*len = n;
	return p;
}

const char *hb_tls_alpn(const hb_tls_t *t)
{
	return t->done && t->alpn[0] ? t->alpn : NULL;
}

const char *hb_tls_sni(const hb_tls_t *t)
{
	return t->done && t->sni[0] ? t->sni : NULL;
}

int hb_tls_resumed(const hb_tls_t *t)
{
	return t->done && wolfSSL_session_reused(t->ssl) == 1;
}

int hb_tls_done(const hb_tls_t *t)
{
	return t->done;
}

int hb_tls_get_info(hb_tls_t *t, hb_tls_info_t *info)
{
	if (!t->done)
		return HB_TLS_E_STATE;
	info->version = wolfSSL_version(t->ssl);
	info->cipher_suite = wolfSSL_get_current_cipher_suite(t->ssl);
	info->version_name = wolfSSL_get_version(t->ssl);
	info->cipher_name = wolfSSL_get_cipher_name(t->ssl);
	return HB_TLS_OK;
}

static char *bio_string(WOLFSSL_BIO *bio)
{
	char *data = NULL;
	int n = wolfSSL_BIO_get_mem_data(bio, &data);
	char *s = n >= 0 ? malloc((size_t)n + 1) : NULL;
	if (s) {
		memcpy(s, data, (size_t)n);
		s[n] = '\0';
	}
	return s;
}

int hb_tls_peer_cert(hb_tls_t *t, char **subject, char **pem)
{
	*subject = *pem = NULL;
	if (!t->done)
		return 0;
	WOLFSSL_X509 *x = wolfSSL_get_peer_certificate(t->ssl);
	if (!x)
		return 0;
	WOLFSSL_BIO *b1 = wolfSSL_BIO_new(wolfSSL_BIO_s_mem());
	WOLFSSL_BIO *b2 = wolfSSL_BIO_new(wolfSSL_BIO_s_mem());
	int rc = HB_TLS_E_NOMEM;
	if (b1 && b2 &&
	    wolfSSL_X509_NAME_print_ex(b1, wolfSSL_X509_get_subject_name(x), 0, XN_FLAG_RFC2253) ==
		    WOLFSSL_SUCCESS &&
	    wolfSSL_PEM_write_bio_X509(b2, x) == WOLFSSL_SUCCESS) {
		*subject = bio_string(b1);
		*pem = bio_string(b2);
		if (*subject && *pem)
			rc = 1;
	}
	if (rc != 1) {
		free(*subject);
		free(*pem);
		*subject = *pem = NULL;
	}
	wolfSSL_BIO_free(b1);
	wolfSSL_BIO_free(b2);
	wolfSSL_X509_free(x);
	return rc;
}
