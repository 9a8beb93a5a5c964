/* auth.c: mutual cookie challenge-response (see auth.h). */
#include "cluster/auth.h"

#include <errno.h>
#include <string.h>

#include <wolfssl/options.h>
#include <wolfssl/wolfcrypt/hmac.h>
#include <wolfssl/wolfcrypt/random.h>

#include "cluster/frame.h"

enum {
	ST_INIT,
	ST_HELLO_SENT, /* client: waits for CHALLENGE */
	ST_PROOF_SENT, /* client: waits for the server's PROOF */
	ST_CHALLENGED, /* server: waits for the client's PROOF */
	ST_DONE,
	ST_FAILED,
};

static const char LABEL_CLIENT[] = "hornbeam-cluster/1 client";
static const char LABEL_SERVER[] = "hornbeam-cluster/1 server";

int hb_auth_nonce(uint8_t out[HB_AUTH_NONCE_SIZE])
{
	WC_RNG rng;
	if (wc_InitRng(&rng) != 0)
		return -EIO;
	int rc = wc_RNG_GenerateBlock(&rng, out, HB_AUTH_NONCE_SIZE);
	wc_FreeRng(&rng);
	return rc == 0 ? 0 : -EIO;
}

int hb_auth_init(hb_auth_t *a, hb_auth_role_t role, const char *name, const void *cookie,
		 size_t cookie_len, const uint8_t nonce[HB_AUTH_NONCE_SIZE])
{
	size_t nlen = name ? strlen(name) : 0;
	if (nlen == 0 || nlen > HB_AUTH_MAX_NAME || cookie_len == 0 ||
	    cookie_len > HB_AUTH_MAX_COOKIE || (role != HB_AUTH_CLIENT && role != HB_AUTH_SERVER))
		return -EINVAL;
	memset(a, 0, sizeof *a);
	a->role = role;
	a->state = ST_INIT;
	memcpy(a->cookie, cookie, cookie_len);
	a->cookie_len = cookie_len;
	memcpy(a->name, name, nlen);
	memcpy(a->nonce, nonce, HB_AUTH_NONCE_SIZE);
	return 0;
}

void hb_auth_clear(hb_auth_t *a)
{
	/* volatile so that the wipe is not optimised away as a dead store */
	volatile uint8_t *p = (volatile uint8_t *)a;
	for (size_t i = 0; i < sizeof *a; i++)
		p[i] = 0;
	a->state = ST_FAILED;
}

const char *hb_auth_peer(const hb_auth_t *a)
{
	return a->state == ST_DONE ? a->peer : NULL;
}

/* ---- messages ---- */

static int write_hello(const hb_auth_t *a, hb_cbuf_t *out)
{
	hb_codec_begin(out);
	hb_codec_put_tuple_begin(out, 3);
	hb_codec_put_int64(out, HB_AUTH_VERSION);
	hb_codec_put_str(out, a->name, strlen(a->name));
	return hb_codec_put_bytes(out, a->nonce, HB_AUTH_NONCE_SIZE);
}

/* Reads (version, name, nonce) into a->peer / a->peer_nonce. */
static int read_hello(hb_auth_t *a, const void *data, size_t len, const char **why)
{
	hb_codec_reader_t r;
	hb_codec_tok_t t;
	*why = "malformed greeting";
	if (hb_codec_reader_init(&r, data, len, 2) < 0 || hb_codec_next(&r, &t) != 1 ||
	    t.type != HB_CODEC_TUPLE || t.v.n != 3)
		return -EPROTO;
	if (hb_codec_next(&r, &t) != 1 || t.type != HB_CODEC_INT)
		return -EPROTO;
	if (t.v.i != HB_AUTH_VERSION) {
		*why = "unsupported cluster protocol version";
		return -EPROTO;
	}
	if (hb_codec_next(&r, &t) != 1 || t.type != HB_CODEC_STR || t.len == 0 ||
	    t.len > HB_AUTH_MAX_NAME || memchr(t.data, 0, t.len))
		return -EPROTO;
	memcpy(a->peer, t.data, t.len);
	a->peer[t.len] = 0;
	if (hb_codec_next(&r, &t) != 1 || t.type != HB_CODEC_BYTES || t.len != HB_AUTH_NONCE_SIZE)
		return -EPROTO;
	memcpy(a->peer_nonce, t.data, HB_AUTH_NONCE_SIZE);
	if (hb_codec_next(&r, &t) != 0)
		return -EPROTO;
	return 0;
}

static int read_proof(const void *data, size_t len, uint8_t mac[HB_AUTH_MAC_SIZE])
{
	hb_codec_reader_t r;
	hb_codec_tok_t t;
	if (hb_codec_reader_init(&r, data, len, 1) < 0 || hb_codec_next(&r, &t) != 1 ||
	    t.type != HB_CODEC_TUPLE || t.v.n != 1)
		return -EPROTO;
	if (hb_codec_next(&r, &t) != 1 || t.type != HB_CODEC_BYTES || t.len != HB_AUTH_MAC_SIZE)
		return -EPROTO;
	memcpy(mac, t.data, HB_AUTH_MAC_SIZE);
	return hb_codec_next(&r, &t) == 0 ? 0 : -EPROTO;
}

static int write_proof(hb_cbuf_t *out, const uint8_t mac[HB_AUTH_MAC_SIZE])
{
	hb_codec_begin(out);
	hb_codec_put_tuple_begin(out, 1);
	return hb_codec_put_bytes(out, mac, HB_AUTH_MAC_SIZE);
}

/* ---- proofs ---- */

static int hmac_part(Hmac *h, const void *p, size_t len)
{
	uint8_t n[4] = {(uint8_t)len, (uint8_t)(len >> 8), (uint8_t)(len >> 16),
			(uint8_t)(len >> 24)};
	if (wc_HmacUpdate(h, n, sizeof n) != 0)
		return -1;
	return wc_HmacUpdate(h, p, (word32)len) != 0 ? -1 : 0;
}

/* HMAC(cookie, label | client nonce | server nonce | client name | server name), each part
 * length-prefixed so that no two different inputs hash the same bytes. */
static int proof(const hb_auth_t *a, const char *label, uint8_t mac[HB_AUTH_MAC_SIZE])
{
	int client = a->role == HB_AUTH_CLIENT;
	const uint8_t *cn = client ? a->nonce : a->peer_nonce;
	const uint8_t *sn = client ? a->peer_nonce : a->nonce;
	const char *cname = client ? a->name : a->peer;
	const char *sname = client ? a->peer : a->name;
	Hmac h;
	int rc = -EIO;
	if (wc_HmacInit(&h, NULL, INVALID_DEVID) != 0)
		return -EIO;
	if (wc_HmacSetKey(&h, WC_SHA256, a->cookie, (word32)a->cookie_len) != 0)
		goto out;
	if (hmac_part(&h, label, strlen(label)) < 0 || hmac_part(&h, cn, HB_AUTH_NONCE_SIZE) < 0 ||
	    hmac_part(&h, sn, HB_AUTH_NONCE_SIZE) < 0 || hmac_part(&h, cname, strlen(cname)) < 0 ||
	    hmac_part(&h, sname, strlen(sname)) < 0)
		goto out;
	if (wc_HmacFinal(&h, mac) == 0)
		rc = 0;
out:
	wc_HmacFree(&h);
	return rc;
}

/* Compares in time independent of where the bytes differ. */
static int ct_equal(const uint8_t *x, const uint8_t *y, size_t n)
{
	volatile uint8_t d = 0;
	for (size_t i = 0; i < n; i++)
		d |= x[i] ^ y[i];
	return d == 0;
}

static int check_proof(const hb_auth_t *a, const char *label, const void *data, size_t len,
		       const char **why)
{
	uint8_t got[HB_AUTH_MAC_SIZE], want[HB_AUTH_MAC_SIZE];
	if (read_proof(data, len, got) < 0) {
		*why = "malformed proof";
		return -EPROTO;
	}
	if (proof(a, label, want) < 0) {
		*why = "HMAC computation failed";
		return -EIO;
	}
	if (!ct_equal(got, want, HB_AUTH_MAC_SIZE)) {
		*why = "peer's proof does not match our cookie";
		return -EACCES;
	}
	return 0;
}

/* ---- the state machine ---- */

int hb_auth_start(hb_auth_t *a, hb_cbuf_t *out, uint8_t *out_type)
{
	if (a->role != HB_AUTH_CLIENT || a->state != ST_INIT)
		return -EINVAL;
	if (write_hello(a, out) < 0)
		return -ENOMEM;
	*out_type = HB_FRAME_HELLO;
	a->state = ST_HELLO_SENT;
	return 0;
}

static int on_hello(hb_auth_t *a, const void *data, size_t len, hb_cbuf_t *out, uint8_t *out_type,
		    const char **why)
{
	int rc = read_hello(a, data, len, why);
	if (rc < 0)
		return rc;
	if (write_hello(a, out) < 0) {
		*why = "out of memory";
		return -ENOMEM;
	}
	*out_type = HB_FRAME_CHALLENGE;
	a->state = ST_CHALLENGED;
	return HB_AUTH_SEND;
}

static int on_challenge(hb_auth_t *a, const void *data, size_t len, hb_cbuf_t *out,
			uint8_t *out_type, const char **why)
{
	uint8_t mac[HB_AUTH_MAC_SIZE];
	int rc = read_hello(a, data, len, why);
	if (rc < 0)
		return rc;
	if (proof(a, LABEL_CLIENT, mac) < 0) {
		*why = "HMAC computation failed";
		return -EIO;
	}
	if (write_proof(out, mac) < 0) {
		*why = "out of memory";
		return -ENOMEM;
	}
	*out_type = HB_FRAME_PROOF;
	a->state = ST_PROOF_SENT;
	return HB_AUTH_SEND;
}

static int on_client_proof(hb_auth_t *a, const void *data, size_t len, hb_cbuf_t *out,
			   uint8_t *out_type, const char **why)
{
	uint8_t mac[HB_AUTH_MAC_SIZE];
	int rc = check_proof(a, LABEL_CLIENT, data, len, why);
	if (rc < 0)
		return rc;
	if (proof(a, LABEL_SERVER, mac) < 0) {
		*why = "HMAC computation failed";
		return -EIO;
	}
	if (write_proof(out, mac) < 0) {
		*why = "out of memory";
		return -ENOMEM;
	}
	*out_type = HB_FRAME_PROOF;
	a->state = ST_DONE;
	return HB_AUTH_SEND | HB_AUTH_DONE;
}

int hb_auth_input(hb_auth_t *a, uint8_t type, const void *data, size_t len, hb_cbuf_t *out,
		  uint8_t *out_type, const char **why)
{
	int rc;
	if (a->state == ST_HELLO_SENT && type == HB_FRAME_CHALLENGE)
		rc = on_challenge(a, data, len, out, out_type, why);
	else if (a->state == ST_PROOF_SENT && type == HB_FRAME_PROOF) {
		rc = check_proof(a, LABEL_SERVER, data, len, why);
		if (rc == 0)
			rc = HB_AUTH_DONE;
	} else if (a->role == HB_AUTH_SERVER && a->state == ST_INIT && type == HB_FRAME_HELLO)
		rc = on_hello(a, data, len, out, out_type, why);
	else if (a->state == ST_CHALLENGED && type == HB_FRAME_PROOF)
		rc = on_client_proof(a, data, len, out, out_type, why);
	else {
		*why = a->state == ST_DONE ? "authentication already complete"
					   : "unexpected message during authentication";
		rc = -EPROTO;
	}
	if (rc < 0)
		a->state = ST_FAILED;
	else if (rc & HB_AUTH_DONE)
		a->state = ST_DONE;
	return rc;
}
