/* tls_ctx.c: the TLS contexts of tls.h (the engine is tls.c).
 *
 * One WOLFSSL_CTX per certificate/key pair, all configured alike; engines are made from the
 * default pair's and the SNI callback moves an engine to another pair's with
 * wolfSSL_set_SSL_CTX (the nginx-on-wolfSSL way). Ticket encryption is ours
 * (ChaCha20-Poly1305 under a key store shared by every pair and every io thread) so keys can
 * rotate on a schedule and outlive a reload.
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

static pthread_once_t init_once = PTHREAD_ONCE_INIT;
static int init_rc;

static void lib_init(void)
{
	init_rc = wolfSSL_Init() == WOLFSSL_SUCCESS ? 0 : -1;
}

/* ---- the ticket key store ---- */

static uint64_t mono_s(void *arg)
{
	(void)arg;
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec;
}

static int fill_random(void *p, size_t n)
{
	uint8_t *b = p;
	while (n) {
		ssize_t r = getrandom(b, n, 0);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		b += r;
		n -= (size_t)r;
	}
	return 0;
}

static int new_key(struct tkey *k, uint64_t now)
{
	k->born = now;
	k->retired = 0;
	if (fill_random(k->name, sizeof k->name) < 0 || fill_random(k->key, sizeof k->key) < 0)
		return -1;
	return 0;
}

static struct tickets *tickets_new(const hb_tls_conf_t *conf)
{
	struct tickets *tk = calloc(1, sizeof *tk);
	if (!tk)
		return NULL;
	atomic_init(&tk->refs, 1);
	pthread_mutex_init(&tk->mu, NULL);
	tk->lifetime = conf->ticket_lifetime_s > 0 ? (uint64_t)conf->ticket_lifetime_s
						   : HB_TLS_DEFAULT_TICKET_LIFETIME;
	tk->clock_s = conf->clock_s ? conf->clock_s : mono_s;
	tk->clock_arg = conf->clock_arg;
	if (new_key(&tk->cur, tk->clock_s(tk->clock_arg)) < 0) {
		pthread_mutex_destroy(&tk->mu);
		free(tk);
		return NULL;
	}
	return tk;
}

static void tickets_unref(struct tickets *tk)
{
	if (!tk || atomic_fetch_sub(&tk->refs, 1) != 1)
		return;
	pthread_mutex_destroy(&tk->mu);
	explicit_bzero(tk, sizeof *tk);
	free(tk);
}

/* Under tk->mu: the current key older than a lifetime becomes the previous one (accepted for
 * one more lifetime, as the tickets it made may be that young); a previous one past that goes. */
static void rotate_locked(struct tickets *tk, uint64_t now)
{
	if (tk->have_prev && now >= tk->prev.retired + tk->lifetime) {
		explicit_bzero(&tk->prev, sizeof tk->prev);
		tk->have_prev = false;
	}
	if (now < tk->cur.born + tk->lifetime)
		return;
	struct tkey next;
	if (new_key(&next, now) < 0)
		return; /* keep the old key a little longer rather than fail handshakes */
	tk->prev = tk->cur;
	tk->prev.retired = now;
	tk->have_prev = true;
	tk->cur = next;
	explicit_bzero(&next, sizeof next);
}

/* Additional data: the key name, the nonce and the length, so none can be swapped. */
static void ticket_aad(uint8_t aad[WOLFSSL_TICKET_NAME_SZ + WOLFSSL_TICKET_IV_SZ + 4],
		       const uint8_t *name, const uint8_t *iv, int len)
{
	memcpy(aad, name, WOLFSSL_TICKET_NAME_SZ);
	memcpy(aad + WOLFSSL_TICKET_NAME_SZ, iv, WOLFSSL_TICKET_IV_SZ);
	uint32_t n = (uint32_t)len;
	memcpy(aad + WOLFSSL_TICKET_NAME_SZ + WOLFSSL_TICKET_IV_SZ, &n, 4);
}

static int ticket_cb(WOLFSSL *ssl, unsigned char name[WOLFSSL_TICKET_NAME_SZ],
		     unsigned char iv[WOLFSSL_TICKET_IV_SZ],
		     unsigned char mac[WOLFSSL_TICKET_MAC_SZ], int enc, unsigned char *ticket,
		     int len, int *outlen, void *arg)
{
	struct tickets *tk = arg;
	uint8_t aad[WOLFSSL_TICKET_NAME_SZ + WOLFSSL_TICKET_IV_SZ + 4];
	struct tkey k;
	bool old = false, found = true;
	(void)ssl;
	if (enc && fill_random(iv, WOLFSSL_TICKET_IV_SZ) < 0)
		return WOLFSSL_TICKET_RET_FATAL;
	pthread_mutex_lock(&tk->mu);
	rotate_locked(tk, tk->clock_s(tk->clock_arg));
	if (enc || memcmp(name, tk->cur.name, sizeof tk->cur.name) == 0)
		k = tk->cur;
	else if (tk->have_prev && memcmp(name, tk->prev.name, sizeof tk->prev.name) == 0)
		k = tk->prev, old = true;
	else
		found = false;
	pthread_mutex_unlock(&tk->mu);
	if (!found)
		return WOLFSSL_TICKET_RET_REJECT; /* unknown or expired key: a full handshake */
	int rc = WOLFSSL_TICKET_RET_FATAL;
	if (enc) {
		memcpy(name, k.name, sizeof k.name);
		ticket_aad(aad, name, iv, len);
		if (wc_ChaCha20Poly1305_Encrypt(k.key, iv, aad, sizeof aad, ticket, (word32)len,
						ticket, mac) == 0) {
			*outlen = len;
			rc = WOLFSSL_TICKET_RET_OK;
		}
	} else {
		ticket_aad(aad, name, iv, len);
		if (wc_ChaCha20Poly1305_Decrypt(k.key, iv, aad, sizeof aad, ticket, (word32)len,
						mac, ticket) == 0) {
			*outlen = len;
			rc = old ? WOLFSSL_TICKET_RET_CREATE : WOLFSSL_TICKET_RET_OK;
		} else {
			rc = WOLFSSL_TICKET_RET_REJECT;
		}
	}
	explicit_bzero(&k, sizeof k);
	return rc;
}

/* ---- the server context ---- */

static bool name_matches(const char *pat, const char *name)
{
	if (strcmp(pat, name) == 0)
		return true;
	if (pat[0] != '*' || pat[1] != '.')
		return false;
	const char *dot = strchr(name, '.');
	return dot && dot != name && strcmp(dot, pat + 1) == 0;
}

static const struct pair *pair_for(const hb_tls_ctx_t *ctx, const char *name)
{
	for (size_t i = 0; i < ctx->npairs; i++)
		if (ctx->pairs[i].name && strcmp(ctx->pairs[i].name, name) == 0)
			return &ctx->pairs[i];
	for (size_t i = 0; i < ctx->npairs; i++)
		if (ctx->pairs[i].name && name_matches(ctx->pairs[i].name, name))
			return &ctx->pairs[i];
	return &ctx->pairs[ctx->dflt];
}

/* The client's SNI picks a pair; an unknown name (or none) keeps the default, as nginx does. */
static int sni_cb(WOLFSSL *ssl, int *alert, void *arg)
{
	hb_tls_ctx_t *ctx = arg;
	const char *name = wolfSSL_get_servername(ssl, WOLFSSL_SNI_HOST_NAME);
	(void)alert;
	if (!name || !*name)
		return 0;
	char lower[256];
	size_t n = 0;
	for (; name[n] && n + 1 < sizeof lower; n++)
		lower[n] = (char)tolower((unsigned char)name[n]);
	lower[n] = '\0';
	const struct pair *p = pair_for(ctx, lower);
	if (p != &ctx->pairs[ctx->dflt] && !wolfSSL_set_SSL_CTX(ssl, p->wctx))
		return SSL_TLSEXT_ERR_ALERT_FATAL;
	return 0;
}

/* Server preference: our first protocol the client also offers. No overlap is fatal
 * (no_application_protocol, RFC 7301 3.2); a client offering no ALPN at all never gets here. */
static int alpn_cb(WOLFSSL *ssl, const unsigned char **out, unsigned char *outlen,
		   const unsigned char *in, unsigned int inlen, void *arg)
{
	hb_tls_ctx_t *ctx = arg;
	/* A malformed list (an entry empty or past the end): answering no match would send
	 * wolfSSL 5.5.4 to its own fallback matching, which reads a byte past the list (fuzz_tls
	 * found it under ASan). So the engine fails the handshake itself, and the callback names
	 * a protocol only to keep wolfSSL off that path. */
	for (unsigned int off = 0; off < inlen && ctx->nalpn;) {
		unsigned int len = in[off];
		if (len == 0 || off + 1 + len > inlen) {
			hb_tls_t *t = wolfSSL_GetIOReadCtx(ssl);
			if (t && !t->err) {
				t->err = HB_TLS_E_HANDSHAKE;
				t->why = "malformed ALPN list in the ClientHello";
			}
			*out = (const unsigned char *)ctx->alpn[0];
			*outlen = (unsigned char)strlen(ctx->alpn[0]);
			return SSL_TLSEXT_ERR_OK;
		}
		off += 1 + len;
	}
	for (size_t i = 0; i < ctx->nalpn; i++) {
		size_t want = strlen(ctx->alpn[i]);
		for (unsigned int off = 0; off < inlen;) {
			unsigned int len = in[off];
			if (off + 1 + len > inlen)
				break;
			if (len == want && memcmp(in + off + 1, ctx->alpn[i], len) == 0) {
				*out = in + off + 1;
				*outlen = (unsigned char)len;
				return SSL_TLSEXT_ERR_OK;
			}
			off += 1 + len;
		}
	}
	return SSL_TLSEXT_ERR_ALERT_FATAL;
}

static int passwd_cb(char *buf, int size, int rw, void *arg)
{
	const char *pw = arg;
	(void)rw;
	if (!pw)
		return 0;
	int n = (int)strlen(pw);
	if (n >= size)
		return 0;
	memcpy(buf, pw, (size_t)n);
	return n;
}

__attribute__((format(printf, 3, 4))) static void errf(char *err, size_t errlen, const char *fmt,
						       ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

static const char *prefix(const hb_tls_conf_t *conf)
{
	return conf->key_prefix ? conf->key_prefix : "";
}

static bool file_says(const char *path, const char *needle)
{
	FILE *f = fopen(path, "r");
	char line[256];
	bool hit = false;
	if (!f)
		return false;
	while (!hit && fgets(line, sizeof line, f))
		hit = strstr(line, needle) != NULL;
	fclose(f);
	return hit;
}

static int load_pair(WOLFSSL_CTX *w, const hb_tls_cert_conf_t *c, const char *pfx, char *err,
		     size_t errlen)
{
	if (!c->certfile || !c->keyfile) {
		errf(err, errlen, "a certificate needs both %scertfile and %skeyfile", pfx, pfx);
		return -1;
	}
	if (wolfSSL_CTX_use_certificate_chain_file(w, c->certfile) != WOLFSSL_SUCCESS) {
		errf(err, errlen, "%scertfile %s: %s", pfx, c->certfile,
		     access(c->certfile, R_OK) ? strerror(errno) : "no PEM certificate in it");
		return -1;
	}
	wolfSSL_CTX_set_default_passwd_cb(w, passwd_cb);
	wolfSSL_CTX_set_default_passwd_cb_userdata(w, (void *)c->password);
	int rc = wolfSSL_CTX_use_PrivateKey_file(w, c->keyfile, WOLFSSL_FILETYPE_PEM);
	wolfSSL_CTX_set_default_passwd_cb_userdata(w, NULL); /* the conf's string goes away */
	if (rc != WOLFSSL_SUCCESS) {
		bool enc = file_says(c->keyfile, "ENCRYPTED");
		if (access(c->keyfile, R_OK))
			errf(err, errlen, "%skeyfile %s: %s", pfx, c->keyfile, strerror(errno));
		else if (enc && !c->password)
			errf(err, errlen, "%skeyfile %s: encrypted, and no %skeyfile_password", pfx,
			     c->keyfile, pfx);
		else if (enc)
			errf(err, errlen,
			     "%skeyfile %s: cannot decrypt it: wrong %skeyfile_password?", pfx,
			     c->keyfile, pfx);
		else
			errf(err, errlen, "%skeyfile %s: no PEM private key in it", pfx,
			     c->keyfile);
		return -1;
	}
	return 0;
}

/* A server context, or with `client` the client side (which always verifies the server). */
static int setup_wctx(hb_tls_ctx_t *ctx, WOLFSSL_CTX *w, const hb_tls_conf_t *conf, bool client,
		      char *err, size_t errlen)
{
	const char *ciphers =
		conf->ciphers && *conf->ciphers ? conf->ciphers : HB_TLS_DEFAULT_CIPHERS;
	int minv = conf->min_version == HB_TLS_V1_3 ? WOLFSSL_TLSV1_3 : WOLFSSL_TLSV1_2;
	if (wolfSSL_CTX_SetMinVersion(w, minv) != WOLFSSL_SUCCESS) {
		errf(err, errlen, "ssl_min_version: not supported by this wolfSSL");
		return -1;
	}
	if (wolfSSL_CTX_set_cipher_list(w, ciphers) != WOLFSSL_SUCCESS) {
		errf(err, errlen, "ssl_ciphers '%s': no cipher suite wolfSSL knows", ciphers);
		return -1;
	}
	wolfSSL_CTX_set_options(w, WOLFSSL_OP_NO_COMPRESSION);
	if (client || conf->verify_client != HB_TLS_VERIFY_NONE) {
		if (!conf->cacertfile || !*conf->cacertfile) {
			errf(err, errlen, "%s needs %scacertfile",
			     client ? "a TLS client" : "verify_client", prefix(conf));
			return -1;
		}
		if (wolfSSL_CTX_load_verify_locations(w, conf->cacertfile, NULL) !=
		    WOLFSSL_SUCCESS) {
			errf(err, errlen, "%scacertfile %s: %s", prefix(conf), conf->cacertfile,
			     access(conf->cacertfile, R_OK) ? strerror(errno)
							    : "no PEM certificate in it");
			return -1;
		}
		int mode = WOLFSSL_VERIFY_PEER;
		if (!client && conf->verify_client == HB_TLS_VERIFY_REQUIRED)
			mode |= WOLFSSL_VERIFY_FAIL_IF_NO_PEER_CERT;
		wolfSSL_CTX_set_verify(w, mode, NULL);
	} else {
		wolfSSL_CTX_set_verify(w, WOLFSSL_VERIFY_NONE, NULL);
	}
	if (client)
		return 0;
	wolfSSL_CTX_set_servername_callback(w, sni_cb);
	wolfSSL_CTX_set_servername_arg(w, ctx);
	wolfSSL_CTX_set_alpn_select_cb(w, alpn_cb, ctx);
	wolfSSL_CTX_set_TicketEncCb(w, ticket_cb);
	wolfSSL_CTX_set_TicketEncCtx(w, ctx->tk);
	wolfSSL_CTX_set_TicketHint(w, (int)ctx->tk->lifetime);
	wolfSSL_CTX_set_timeout(w, (unsigned)ctx->tk->lifetime);
	return 0;
}

static void ctx_free(hb_tls_ctx_t *ctx)
{
	for (size_t i = 0; i < ctx->npairs; i++) {
		if (ctx->pairs[i].wctx)
			wolfSSL_CTX_free(ctx->pairs[i].wctx);
		free(ctx->pairs[i].name);
	}
	if (ctx->client)
		wolfSSL_CTX_free(ctx->client);
	free(ctx->pairs);
	tickets_unref(ctx->tk);
	free(ctx);
}

static int set_alpn(hb_tls_ctx_t *ctx, const hb_tls_conf_t *conf, char *err, size_t errlen)
{
	static const char *const dflt[] = {"h2", "http/1.1"};
	const char *const *list = conf->alpn ? conf->alpn : dflt;
	size_t n = conf->alpn ? conf->nalpn : 2;
	if (n == 0 || n > HB_TLS_MAX_ALPN) {
		errf(err, errlen, "alpn: between 1 and %d protocols", HB_TLS_MAX_ALPN);
		return -1;
	}
	for (size_t i = 0; i < n; i++) {
		size_t len = strlen(list[i]);
		if (len == 0 || len > 255) {
			errf(err, errlen, "alpn: '%s' is not a protocol name", list[i]);
			return -1;
		}
		if (strchr(list[i], ',')) {
			errf(err, errlen, "alpn: '%s' is not a protocol name", list[i]);
			return -1;
		}
		memcpy(ctx->alpn[i], list[i], len + 1);
		size_t used = strlen(ctx->alpn_csv);
		snprintf(ctx->alpn_csv + used, sizeof ctx->alpn_csv - used, "%s%s", i ? "," : "",
			 list[i]);
	}
	ctx->nalpn = n;
	return 0;
}

static int self_test(hb_tls_ctx_t *ctx, WOLFSSL_CTX *w);

static int add_pairs(hb_tls_ctx_t *ctx, const hb_tls_conf_t *conf, char *err, size_t errlen)
{
	bool have_dflt = false;
	ctx->pairs = calloc(conf->ncerts, sizeof *ctx->pairs);
	if (!ctx->pairs)
		return errf(err, errlen, "out of memory"), -1;
	for (size_t i = 0; i < conf->ncerts; i++) {
		const hb_tls_cert_conf_t *c = &conf->certs[i];
		struct pair *p = &ctx->pairs[i];
		ctx->npairs = i + 1;
		if (c->server_name && *c->server_name) {
			p->name = strdup(c->server_name);
			if (!p->name)
				return errf(err, errlen, "out of memory"), -1;
			for (char *s = p->name; *s; s++)
				*s = (char)tolower((unsigned char)*s);
		} else if (!have_dflt) {
			ctx->dflt = i;
			have_dflt = true;
		}
		p->wctx = wolfSSL_CTX_new(wolfSSLv23_server_method());
		if (!p->wctx)
			return errf(err, errlen, "out of memory"), -1;
		if (setup_wctx(ctx, p->wctx, conf, false, err, errlen) < 0 ||
		    load_pair(p->wctx, c, prefix(conf), err, errlen) < 0)
			return -1;
		if (self_test(ctx, p->wctx) < 0) {
			errf(err, errlen,
			     "%skeyfile %s does not match %scertfile %s (or no configured cipher "
			     "suits the key)",
			     prefix(conf), c->keyfile, prefix(conf), c->certfile);
			return -1;
		}
	}
	return 0;
}

/* The client side presents the default pair (already checked by add_pairs). */
static int add_client(hb_tls_ctx_t *ctx, const hb_tls_conf_t *conf, char *err, size_t errlen)
{
	if (!(ctx->client = wolfSSL_CTX_new(wolfSSLv23_client_method())))
		return errf(err, errlen, "out of memory"), -1;
	if (setup_wctx(ctx, ctx->client, conf, true, err, errlen) < 0)
		return -1;
	return load_pair(ctx->client, &conf->certs[ctx->dflt], prefix(conf), err, errlen);
}

hb_tls_ctx_t *hb_tls_ctx_new(const hb_tls_conf_t *conf, hb_tls_ctx_t *tickets_from, char *err,
			     size_t errlen)
{
	pthread_once(&init_once, lib_init);
	if (init_rc < 0) {
		errf(err, errlen, "wolfSSL_Init failed");
		return NULL;
	}
	if (conf->ncerts == 0 || conf->ncerts > HB_TLS_MAX_CERTS) {
		errf(err, errlen, "TLS needs between 1 and %d certificate/key pairs",
		     HB_TLS_MAX_CERTS);
		return NULL;
	}
	hb_tls_ctx_t *ctx = calloc(1, sizeof *ctx);
	if (!ctx) {
		errf(err, errlen, "out of memory");
		return NULL;
	}
	atomic_init(&ctx->refs, 1);
	if (tickets_from) {
		ctx->tk = tickets_from->tk;
		atomic_fetch_add(&ctx->tk->refs, 1);
	} else {
		ctx->tk = tickets_new(conf);
	}
	if (!ctx->tk) {
		errf(err, errlen, "out of memory");
		free(ctx);
		return NULL;
	}
	if (set_alpn(ctx, conf, err, errlen) < 0 || add_pairs(ctx, conf, err, errlen) < 0 ||
	    (conf->client && add_client(ctx, conf, err, errlen) < 0)) {
		ctx_free(ctx);
		return NULL;
	}
	return ctx;
}

hb_tls_ctx_t *hb_tls_ctx_ref(hb_tls_ctx_t *ctx)
{
	atomic_fetch_add(&ctx->refs, 1);
	return ctx;
}

void hb_tls_ctx_unref(hb_tls_ctx_t *ctx)
{
	if (ctx && atomic_fetch_sub(&ctx->refs, 1) == 1)
		ctx_free(ctx);
}

/* ---- the live ctx of a listener ---- */

hb_tls_live_t *hb_tls_live_new(hb_tls_ctx_t *ctx)
{
	hb_tls_live_t *live = calloc(1, sizeof *live);
	if (!live) {
		hb_tls_ctx_unref(ctx);
		return NULL;
	}
	pthread_mutex_init(&live->mu, NULL);
	live->cur = ctx;
	return live;
}

/* A mutex, not a bare atomic pointer: a reader between loading the pointer and taking its
 * reference would race the swap's unref. It is taken once per accepted TLS connection. */
void hb_tls_live_swap(hb_tls_live_t *live, hb_tls_ctx_t *ctx)
{
	pthread_mutex_lock(&live->mu);
	hb_tls_ctx_t *old = live->cur;
	live->cur = ctx;
	pthread_mutex_unlock(&live->mu);
	hb_tls_ctx_unref(old);
}

hb_tls_ctx_t *hb_tls_live_acquire(hb_tls_live_t *live)
{
	pthread_mutex_lock(&live->mu);
	hb_tls_ctx_t *ctx = hb_tls_ctx_ref(live->cur);
	pthread_mutex_unlock(&live->mu);
	return ctx;
}

void hb_tls_live_free(hb_tls_live_t *live)
{
	if (!live)
		return;
	hb_tls_ctx_unref(live->cur);
	pthread_mutex_destroy(&live->mu);
	free(live);
}

void hb_tls_thread_cleanup(void)
{
#ifdef FP_ECC
	wc_ecc_fp_free();
#endif
}

/* ---- the load-time self-test ---- */

struct loop_client {
	WOLFSSL *ssl;
	struct buf in;
	struct buf out;
};

static int loop_recv(WOLFSSL *ssl, char *dst, int sz, void *arg)
{
	struct buf *b = arg;
	size_t avail = b->len - b->off;
	(void)ssl;
	if (avail == 0)
		return WOLFSSL_CBIO_ERR_WANT_READ;
	size_t n = avail < (size_t)sz ? avail : (size_t)sz;
	memcpy(dst, b->p + b->off, n);
	b->off += n;
	return (int)n;
}

static int loop_send(WOLFSSL *ssl, char *src, int sz, void *arg)
{
	(void)ssl;
	return tls_buf_append(arg, src, (size_t)sz) < 0 ? WOLFSSL_CBIO_ERR_GENERAL : sz;
}

/* One handshake in memory against a throw-away client: wolfSSL 5.5's check_private_key does
 * not notice an EC key that belongs to another certificate, but a client checking the
 * server's signature does. */
static int self_test(hb_tls_ctx_t *ctx, WOLFSSL_CTX *w)
{
	int rc = -1;
	WOLFSSL_CTX *cctx = wolfSSL_CTX_new(wolfSSLv23_client_method());
	hb_tls_t *t = calloc(1, sizeof *t);
	struct buf cin = {0};
	WOLFSSL *c = NULL;
	if (!cctx || !t || !(t->ssl = wolfSSL_new(w)) || !(c = wolfSSL_new(cctx)))
		goto out;
	t->ctx = ctx;
	wolfSSL_set_verify(t->ssl, WOLFSSL_VERIFY_NONE, NULL);
	wolfSSL_set_verify(c, WOLFSSL_VERIFY_NONE, NULL);
	wolfSSL_SSLSetIORecv(t->ssl, tls_io_recv);
	wolfSSL_SSLSetIOSend(t->ssl, tls_io_send);
	wolfSSL_SetIOReadCtx(t->ssl, t);
	wolfSSL_SetIOWriteCtx(t->ssl, t);
	wolfSSL_SSLSetIORecv(c, loop_recv);
	wolfSSL_SSLSetIOSend(c, loop_send);
	wolfSSL_SetIOReadCtx(c, &cin);
	wolfSSL_SetIOWriteCtx(c, &t->in);
	for (int i = 0; i < 8 && rc < 0; i++) {
		int cr = wolfSSL_connect(c);
		if (cr != WOLFSSL_SUCCESS && wolfSSL_get_error(c, cr) != WOLFSSL_ERROR_WANT_READ)
			break;
		int sr = wolfSSL_accept(t->ssl);
		if (sr != WOLFSSL_SUCCESS &&
		    wolfSSL_get_error(t->ssl, sr) != WOLFSSL_ERROR_WANT_READ)
			break;
		if (tls_buf_append(&cin, t->out.p + t->out.off, t->out.len - t->out.off) < 0)
			break;
		t->out.off = t->out.len = 0;
		if (cr == WOLFSSL_SUCCESS && sr == WOLFSSL_SUCCESS)
			rc = 0;
	}
out:
	if (c)
		wolfSSL_free(c);
	if (t) {
		if (t->ssl)
			wolfSSL_free(t->ssl);
		free(t->in.p);
		free(t->out.p);
		free(t);
	}
	free(cin.p);
	if (cctx)
		wolfSSL_CTX_free(cctx);
	return rc;
}
