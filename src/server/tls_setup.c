/* tls_setup.c: hb_tls_conf_t from hb_config_t, the live context and its reload (see
 * tls_setup.h). */
#include "server/tls_setup.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *hb_tls_setup_served(const hb_config_t *cfg)
{
	int h1 = hb_config_http1(cfg), h2 = hb_config_http2(cfg);
	return h1 && h2 ? "h2,http/1.1" : h2 ? "h2" : "http/1.1";
}

/* Keeps the configured order, drops what `served` (comma-separated) does not list. */
static size_t served_alpn(const char *want, const char *served, char *buf, size_t cap,
			  const char **out)
{
	size_t n = 0, used = 0;
	const char *p = want;
	while (p && *p && n < HB_TLS_MAX_ALPN) {
		size_t len = strcspn(p, ",");
		for (const char *s = served; *s;) {
			size_t sl = strcspn(s, ",");
			if (sl == len && strncmp(s, p, len) == 0 && used + len + 1 <= cap) {
				memcpy(buf + used, p, len);
				buf[used + len] = '\0';
				out[n++] = buf + used;
				used += len + 1;
				break;
			}
			s += sl + (s[sl] == ',');
		}
		p += len + (p[len] == ',');
	}
	return n;
}

static hb_tls_ctx_t *build(const hb_config_t *cfg, const char *served, hb_tls_ctx_t *tickets_from,
			   char *err, size_t errlen)
{
	char names[512];
	const char *alpn[HB_TLS_MAX_ALPN];
	size_t nalpn =
		served_alpn(cfg->alpn ? cfg->alpn : "http/1.1", served, names, sizeof names, alpn);
	if (nalpn == 0) {
		snprintf(err, errlen, "alpn '%s': this build serves only %s", cfg->alpn, served);
		return NULL;
	}
	hb_tls_cert_conf_t *certs = calloc(cfg->nssl_certs + 1, sizeof *certs);
	if (!certs) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	certs[0] = (hb_tls_cert_conf_t){NULL, cfg->certfile, cfg->keyfile, cfg->keyfile_password};
	for (size_t i = 0; i < cfg->nssl_certs; i++) {
		const hb_config_cert_t *c = &cfg->ssl_certs[i];
		certs[i + 1] = (hb_tls_cert_conf_t){c->server_name, c->certfile, c->keyfile,
						    c->keyfile_password ? c->keyfile_password
									: cfg->keyfile_password};
	}
	hb_tls_conf_t conf = {
		.certs = certs,
		.ncerts = cfg->nssl_certs + 1,
		.cacertfile = cfg->cacertfile,
		.verify_client = cfg->verify_client == HB_VERIFY_REQUIRED   ? HB_TLS_VERIFY_REQUIRED
				 : cfg->verify_client == HB_VERIFY_OPTIONAL ? HB_TLS_VERIFY_OPTIONAL
									    : HB_TLS_VERIFY_NONE,
		.min_version = cfg->ssl_min_version == 13 ? HB_TLS_V1_3 : HB_TLS_V1_2,
		.ciphers = cfg->ssl_ciphers,
		.alpn = alpn,
		.nalpn = nalpn,
		.ticket_lifetime_s = cfg->ssl_ticket_lifetime_s,
	};
	hb_tls_ctx_t *ctx = hb_tls_ctx_new(&conf, tickets_from, err, errlen);
	free(certs);
	return ctx;
}

int hb_tls_setup_init(hb_tls_setup_t *st, const hb_config_t *cfg, const char *served, char *err,
		      size_t errlen)
{
	memset(st, 0, sizeof *st);
	if (!cfg->ssl)
		return 0;
	hb_tls_ctx_t *ctx = build(cfg, served, NULL, err, errlen);
	if (!ctx)
		return -EINVAL;
	st->live = hb_tls_live_new(ctx);
	if (!st->live) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	return 0;
}

int hb_tls_setup_reload(hb_tls_setup_t *st, const hb_config_t *cfg, const char *served, char *err,
			size_t errlen)
{
	if (!st->live)
		return 0;
	hb_tls_ctx_t *old = hb_tls_live_acquire(st->live);
	hb_tls_ctx_t *ctx = build(cfg, served, old, err, errlen);
	hb_tls_ctx_unref(old);
	if (!ctx) {
		atomic_fetch_add(&st->reloads_failed, 1);
		return -EINVAL;
	}
	hb_tls_live_swap(st->live, ctx);
	atomic_fetch_add(&st->reloads, 1);
	return 0;
}

hb_request_tls_t *hb_tls_setup_request_info(hb_tls_t *t)
{
	hb_tls_info_t info;
	hb_request_tls_t *r = calloc(1, sizeof *r);
	if (!r || hb_tls_get_info(t, &info) != HB_TLS_OK) {
		free(r);
		return NULL;
	}
	atomic_init(&r->refs, 1);
	r->version = (uint16_t)info.version;
	r->cipher_suite = (uint16_t)info.cipher_suite;
	if (hb_tls_peer_cert(t, &r->client_cert_name, &r->client_cert_pem) < 0) {
		free(r);
		return NULL;
	}
	return r;
}

void hb_tls_setup_free(hb_tls_setup_t *st)
{
	hb_tls_live_free(st->live);
	st->live = NULL;
}
