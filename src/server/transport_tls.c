/* transport_tls.c: the TLS transport (transport.h): records from the socket go through the
 * connection's wolfSSL engine (src/proto/tls.c, memory buffers only) and come out as plaintext
 * for the handler; the handler's output is encrypted into buffers the output queue sends.
 *
 * The engine's context is taken from the server's live TLS context when the connection starts
 * (a SIGHUP reload swaps that context; this connection keeps the one it started with). Until the
 * first plaintext the connection has no handler and enforces its start deadline: this transport
 * sets it to ssl_handshake_timeout, and once the handshake is done to header_timeout again.
 * Bad handshakes (failed, or ended before they finished: timeouts, silent clients) are counted
 * (hb_tls_setup_t) and logged at debug level only: the internet is full of scanners. No splice
 * or send_zc: every byte must pass the cipher.
 */
#include "server/transport_tls.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdlib.h>

#include "core/log.h"
#include "server/conn.h"
#include "server/tls_setup.h"

#define PLAIN_CHUNK 16384 /* one record's worth of plaintext per delivery */

typedef struct tls_conn {
	hb_tls_t *engine;
	hb_tls_setup_t *setup;
	hb_request_tls_t *info; /* after the handshake: what requests are told */
	int counted;		/* this connection's handshake failure was counted */
} tls_conn_t;

static hb_tls_setup_t *setup_of(hb_conn_t *c)
{
	return c->io->srv->tls;
}

static int tls_init(hb_conn_t *c)
{
	hb_tls_setup_t *st = setup_of(c);
	if (!st || !st->live)
		return -EINVAL;
	tls_conn_t *t = calloc(1, sizeof *t);
	if (!t)
		return -ENOMEM;
	hb_tls_ctx_t *ctx = hb_tls_live_acquire(st->live);
	t->engine = hb_tls_new(ctx);
	hb_tls_ctx_unref(ctx); /* the engine holds its own reference */
	if (!t->engine) {
		free(t);
		return -ENOMEM;
	}
	t->setup = st;
	c->start_deadline = hb_conn_after_s(c, c->io->cfg->ssl_handshake_timeout_s);
	c->tls = t;
	return 0;
}

/* Moves the engine's ciphertext to the output queue (the queue frees it once sent). */
static int queue_out(hb_conn_t *c, tls_conn_t *t, hb_stream_t *acct, uint64_t acct_len)
{
	size_t n;
	if (hb_tls_out_pending(t->engine) == 0) {
		if (acct) /* nothing to wait for: the bytes are as good as gone */
			hb_stream_out_done(acct, acct_len);
		return 0;
	}
	void *p = hb_tls_out_take(t->engine, &n);
	if (!p)
		return -ENOMEM;
	hb_conn_out_bytes(c, p, n, p, acct, acct_len);
	return 0;
}

static int failed(hb_conn_t *c, tls_conn_t *t, int rc, const char *why)
{
	queue_out(c, t, NULL, 0); /* an alert, when the engine made one */
	if (!hb_tls_done(t->engine)) {
		t->counted = 1;
		atomic_fetch_add(&t->setup->handshakes_failed, 1);
		hb_debug("TLS handshake with %s failed: %s", c->remote, why ? why : "?");
	} else {
		hb_debug("TLS error from %s: %s", c->remote, why ? why : "?");
	}
	return rc == HB_TLS_E_NOMEM ? -ENOMEM : -EPROTO;
}

static int handshake_done(hb_conn_t *c, tls_conn_t *t)
{
	c->start_deadline = hb_conn_after_s(c, c->io->cfg->header_timeout_s);
	t->info = hb_tls_setup_request_info(t->engine);
	if (!t->info)
		return -ENOMEM;
	c->alpn = hb_tls_alpn(t->engine); /* owned by the engine; NULL: HTTP/1.1 */
	atomic_fetch_add(&t->setup->handshakes_ok, 1);
	return 0;
}

static int tls_recv(hb_conn_t *c, char *p, size_t len)
{
	tls_conn_t *t = c->tls;
	const char *why = NULL;
	char plain[PLAIN_CHUNK];
	int rc = hb_tls_feed(t->engine, p, len, &why);
	if (rc == HB_TLS_OK && !hb_tls_done(t->engine)) {
		rc = hb_tls_handshake(t->engine, &why);
		if (rc == 1)
			rc = handshake_done(c, t) < 0 ? HB_TLS_E_NOMEM : HB_TLS_OK;
	}
	if (rc < 0)
		return failed(c, t, rc, why);
	if (queue_out(c, t, NULL, 0) < 0)
		return -ENOMEM;
	if (!hb_tls_done(t->engine))
		return 0;
	/* Everything decrypted goes to the handler now, paused or not: it keeps what it does not
	 * consume (the plain transport hands it whole buffers the same way). */
	ssize_t n;
	while (c->state != HB_CONN_DEAD &&
	       (n = hb_tls_read(t->engine, plain, sizeof plain, &why)) > 0)
		hb_conn_deliver(c, plain, (size_t)n);
	if (c->state == HB_CONN_DEAD)
		return 0;
	if (queue_out(c, t, NULL, 0) < 0)
		return -ENOMEM;
	if (n == HB_TLS_EOF)
		return HB_TRANSPORT_CLOSED;
	return n < 0 ? failed(c, t, (int)n, why) : 0;
}

static int tls_write(hb_conn_t *c, const char *p, size_t len, void *owned, hb_stream_t *acct,
		     uint64_t acct_len)
{
	tls_conn_t *t = c->tls;
	const char *why = NULL;
	int rc = hb_tls_write(t->engine, p, len, &why);
	free(owned); /* encrypted: the plaintext is not needed any more */
	if (rc < 0) {
		if (acct)
			hb_stream_out_done(acct, acct_len);
		return rc == HB_TLS_E_NOMEM ? -ENOMEM : -EPIPE;
	}
	return queue_out(c, t, acct, acct_len);
}

static void tls_shutdown(hb_conn_t *c)
{
	tls_conn_t *t = c->tls;
	hb_tls_shutdown(t->engine);
	queue_out(c, t, NULL, 0);
}

static void tls_free(hb_conn_t *c)
{
	tls_conn_t *t = c->tls;
	if (!t)
		return;
	if (!t->counted && !hb_tls_done(t->engine)) { /* timed out, or the client went away */
		atomic_fetch_add(&t->setup->handshakes_timed_out, 1);
		hb_debug("TLS handshake with %s did not finish", c->remote);
	}
	hb_tls_free(t->engine);
	hb_request_tls_unref(t->info);
	free(t);
	c->tls = NULL;
}

hb_request_tls_t *hb_transport_tls_info(hb_conn_t *c)
{
	tls_conn_t *t = c->transport == &hb_transport_tls ? c->tls : NULL;
	return t ? t->info : NULL;
}

const hb_transport_t hb_transport_tls = {
	.name = "tls",
	.caps = 0,
	.secure = 1,
	.init = tls_init,
	.on_recv = tls_recv,
	.write = tls_write,
	.shutdown = tls_shutdown,
	.free = tls_free,
};
