/* h2_submit.c: what the connection layer tells the HTTP/2 engine: responses, informational
 * heads, trailers, resets, window credit, pushes, h2c upgrade and the end of the connection. */
#include <stdlib.h>
#include <string.h>

#include "core/base64.h"
#include "proto/h2_priv.h"

#define SHUTDOWN_PING "hb-shutd"

#define stream_of h2_stream_of

int hb_h2_set_stream_data(hb_h2_t *e, int32_t sid, void *sud)
{
	struct h2s *st = stream_of(e, sid);
	if (!st)
		return HB_H2_E_STREAM;
	st->sud = sud;
	return 0;
}

int hb_h2_submit_response(hb_h2_t *e, int32_t sid, const hb_response_t *r, const char *date,
			  int has_body)
{
	struct h2s *st = stream_of(e, sid);
	if (!st || st->responded)
		return HB_H2_E_STREAM;
	size_t n;
	nghttp2_nv *nva =
		h2_msg_response_nv(r->status, r->headers, r->nheaders, r->flags, date, &n);
	if (!nva)
		return HB_H2_E_NOMEM;
	nghttp2_data_provider prd = {.source.ptr = st, .read_callback = h2_read_body};
	int rv = nghttp2_submit_response(e->s, sid, nva, n, has_body ? &prd : NULL);
	free(nva);
	if (rv != 0)
		return rv == NGHTTP2_ERR_NOMEM ? HB_H2_E_NOMEM : HB_H2_E_STREAM;
	st->responded = true;
	return 0;
}

int hb_h2_submit_info(hb_h2_t *e, int32_t sid, int status, const hb_header_t *h, uint32_t n)
{
	struct h2s *st = stream_of(e, sid);
	if (!st || st->responded || status < 100 || status > 199 || status == 101)
		return HB_H2_E_STREAM;
	size_t nn;
	nghttp2_nv *nva = h2_msg_response_nv(status, h, n, HB_RESP_HAS_SERVER, NULL, &nn);
	if (!nva)
		return HB_H2_E_NOMEM;
	int rv = nghttp2_submit_headers(e->s, NGHTTP2_FLAG_NONE, sid, NULL, nva, nn, NULL);
	free(nva);
	return rv < 0 ? HB_H2_E_STREAM : 0;
}

int hb_h2_submit_trailers(hb_h2_t *e, int32_t sid, const hb_header_t *h, uint32_t n)
{
	struct h2s *st = stream_of(e, sid);
	if (!st || st->trailers)
		return HB_H2_E_STREAM;
	size_t nn;
	/* The response builder lower-cases names and drops forbidden fields; skip its :status. */
	nghttp2_nv *nva = h2_msg_response_nv(200, h, n, HB_RESP_HAS_SERVER, NULL, &nn);
	if (!nva)
		return HB_H2_E_NOMEM;
	size_t bytes = 0;
	for (size_t i = 1; i < nn; i++)
		bytes += nva[i].namelen + nva[i].valuelen;
	st->trailers = h2_alloc(e, (nn - 1) * sizeof(nghttp2_nv) + bytes + 1);
	if (!st->trailers) {
		free(nva);
		return HB_H2_E_NOMEM;
	}
	uint8_t *s = (uint8_t *)(st->trailers + (nn - 1));
	for (size_t i = 1; i < nn; i++) {
		nghttp2_nv *t = &st->trailers[i - 1];
		*t = nva[i];
		t->name = memcpy(s, nva[i].name, nva[i].namelen);
		s += nva[i].namelen;
		t->value = memcpy(s, nva[i].value, nva[i].valuelen);
		s += nva[i].valuelen;
	}
	st->ntrailers = nn - 1;
	free(nva);
	return 0;
}

int hb_h2_resume(hb_h2_t *e, int32_t sid)
{
	struct h2s *st = stream_of(e, sid);
	if (!st)
		return HB_H2_E_STREAM;
	if (!st->deferred)
		return 0;
	st->deferred = false;
	return nghttp2_session_resume_data(e->s, sid) == 0 ? 0 : HB_H2_E_STREAM;
}

int hb_h2_reset(hb_h2_t *e, int32_t sid, uint32_t error_code)
{
	struct h2s *st = stream_of(e, sid);
	if (!st)
		return HB_H2_E_STREAM;
	st->app_reset = true;
	return nghttp2_submit_rst_stream(e->s, NGHTTP2_FLAG_NONE, sid, error_code) ? HB_H2_E_STREAM
										   : 0;
}

int hb_h2_consume(hb_h2_t *e, int32_t sid, size_t n)
{
	if (!stream_of(e, sid))
		return HB_H2_E_STREAM;
	return nghttp2_session_consume_stream(e->s, sid, n) == 0 ? 0 : HB_H2_E_STREAM;
}

int64_t hb_h2_send_window(const hb_h2_t *e, int32_t sid)
{
	int32_t sw = nghttp2_session_get_stream_remote_window_size(e->s, sid);
	if (sw < 0)
		return -1;
	int32_t cw = nghttp2_session_get_remote_window_size(e->s);
	return sw < cw ? sw : cw;
}

/* ---- push ---- */

static nghttp2_nv nv(const char *name, const char *value, size_t vl)
{
	return (nghttp2_nv){(uint8_t *)name, (uint8_t *)value, strlen(name), vl,
			    NGHTTP2_NV_FLAG_NONE};
}

int hb_h2_can_push(const hb_h2_t *e)
{
	return e->lim.push && !e->terminated && !e->shutting_down && !e->peer_goaway &&
	       nghttp2_session_get_remote_settings(e->s, NGHTTP2_SETTINGS_ENABLE_PUSH);
}

/* Promised streams count against the client's SETTINGS_MAX_CONCURRENT_STREAMS (RFC 9113 5.1.2)
 * and, so that pushes cannot crowd out requests, against our own limit too. */
static int push_room(const hb_h2_t *e)
{
	uint32_t max =
		nghttp2_session_get_remote_settings(e->s, NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS);
	if (max > e->lim.max_concurrent_streams)
		max = e->lim.max_concurrent_streams;
	return e->npushed < max;
}

int32_t hb_h2_push(hb_h2_t *e, int32_t sid, const char *path, size_t path_len, const hb_header_t *h,
		   uint32_t n, hb_request_t **req)
{
	struct h2s *parent = stream_of(e, sid);
	if (!hb_h2_can_push(e) || !push_room(e))
		return HB_H2_E_REFUSED;
	if (!parent || !parent->origin || (sid & 1) == 0 || path_len == 0 || path[0] != '/')
		return HB_H2_E_STREAM;
	/* The response builder lower-cases and filters the extra fields; its [0] is :status,
	 * whose slot becomes the fourth pseudo-header. */
	size_t nn;
	nghttp2_nv *extra = h2_msg_response_nv(200, h, n, HB_RESP_HAS_SERVER, NULL, &nn);
	nghttp2_nv *a = extra ? malloc((nn + 3) * sizeof *a) : NULL;
	hb_request_t *r = a ? h2_msg_push_request(parent, path, path_len, h, n) : NULL;
	int32_t psid = HB_H2_E_NOMEM;
	if (r) {
		a[0] = nv(":method", "GET", 3);
		a[1] = nv(":scheme", parent->origin, parent->scheme_len);
		a[2] = nv(":authority", parent->origin + parent->scheme_len + 1,
			  parent->authority_len);
		a[3] = nv(":path", path, path_len);
		memcpy(a + 4, extra + 1, (nn - 1) * sizeof *a);
		psid = nghttp2_submit_push_promise(e->s, NGHTTP2_FLAG_NONE, sid, a, nn + 3, NULL);
		if (psid < 0)
			psid = psid == NGHTTP2_ERR_NOMEM ? HB_H2_E_NOMEM : HB_H2_E_REFUSED;
	}
	struct h2s *pst = psid > 0 ? h2_stream_new(e, psid) : NULL;
	if (pst && h2_msg_keep_origin(e, pst, parent->origin, parent->scheme_len,
				      parent->origin + parent->scheme_len + 1,
				      parent->authority_len) == 0) {
		pst->delivered = true;
		pst->pushed = true;
		e->npushed++;
		*req = r;
		r = NULL;
	} else if (psid > 0) {
		nghttp2_submit_rst_stream(e->s, NGHTTP2_FLAG_NONE, psid, HB_H2_INTERNAL_ERROR);
		if (pst)
			pst->app_reset = true;
		psid = HB_H2_E_NOMEM;
	}
	free(r);
	free(a);
	free(extra);
	return psid;
}

/* ---- h2c ---- */

/* Decodes base64url without padding (RFC 7540 3.2.1; '=' tolerated at the end); returns the
 * length or -1. out has room for len * 3 / 4 bytes. */
static ssize_t b64url_decode(const char *in, size_t len, uint8_t *out)
{
	size_t used, n;

	while (len && in[len - 1] == '=')
		len--;
	n = hb_base64_decode(in, len, HB_BASE64_URL, out, len * 3 / 4 + 1, &used);
	return used == len ? (ssize_t)n : -1;
}

int hb_h2_upgrade(hb_h2_t *e, const char *b64, size_t len, const hb_request_t *req, void *sud)
{
	uint8_t *settings = malloc(len * 3 / 4 + 3);
	if (!settings)
		return HB_H2_E_NOMEM;
	ssize_t n = b64url_decode(b64, len, settings);
	int rv = n < 0 ? NGHTTP2_ERR_INVALID_ARGUMENT
		       : nghttp2_session_upgrade2(e->s, settings, (size_t)n,
						  (req->flags & HB_REQ_HEAD) != 0, NULL);
	free(settings);
	if (rv != 0)
		return rv == NGHTTP2_ERR_NOMEM ? HB_H2_E_NOMEM : HB_H2_E_PROTOCOL;
	struct h2s *st = h2_stream_new(e, 1);
	const hb_header_t *host = hb_request_header(req, "host");
	const char *scheme = req->scheme ? req->scheme : "http";
	if (!st || h2_msg_keep_origin(e, st, scheme, strlen(scheme), host ? host->value : "",
				      host ? host->value_len : 0) != 0)
		return HB_H2_E_NOMEM;
	st->delivered = true;
	st->sud = sud;
	return 0;
}

/* ---- the end ---- */

void hb_h2_shutdown(hb_h2_t *e)
{
	if (e->terminated || e->shutting_down)
		return;
	if (nghttp2_submit_shutdown_notice(e->s) != 0) {
		hb_h2_goaway(e, HB_H2_NO_ERROR);
		return;
	}
	e->shutting_down = true;
	nghttp2_submit_ping(e->s, NGHTTP2_FLAG_NONE, (const uint8_t *)SHUTDOWN_PING);
}

void hb_h2_goaway(hb_h2_t *e, uint32_t error_code)
{
	if (e->terminated)
		return;
	e->terminated = true;
	e->shutting_down = false;
	nghttp2_submit_goaway(e->s, NGHTTP2_FLAG_NONE,
			      nghttp2_session_get_last_proc_stream_id(e->s), error_code, NULL, 0);
}
