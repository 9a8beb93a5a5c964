/* h2.c: the HTTP/2 server engine: an nghttp2 server session driven over memory
 * (nghttp2_session_mem_recv / mem_send), its callbacks turned into the hb_h2_callbacks_t events,
 * and the calls the connection layer makes to answer. See h2.h for the contract. */
#include <stdlib.h>
#include <string.h>

#include "proto/h2_priv.h"

#define SHUTDOWN_PING "hb-shutd"
#define OBUF_SOFT_MAX (64u * 1024u)
#define CONN_WINDOW_MIN (1u << 20)

void hb_h2_limits_default(hb_h2_limits_t *lim)
{
	*lim = (hb_h2_limits_t){
		.max_concurrent_streams = 100,
		.max_header_list = 65536,
		.max_fields = 100,
		.initial_window = 65535,
		.max_frame_size = 16384,
		.max_body = UINT64_C(1) << 30,
		.push = 0,
		.max_resets = 100,
		.max_control = 1000,
		.max_continuations = 8,
		.connect_protocol = 1,
	};
}

/* ---- counted allocation (also nghttp2's, through nghttp2_mem) ---- */

#define HDR 16 /* keeps max_align_t alignment */

void *h2_alloc(hb_h2_t *e, size_t n)
{
	size_t *p = malloc(HDR + n);
	if (!p)
		return NULL;
	*p = n;
	e->mem += n;
	return (char *)p + HDR;
}

void h2_free(hb_h2_t *e, void *q)
{
	if (!q)
		return;
	size_t *p = (size_t *)((char *)q - HDR);
	e->mem -= *p;
	free(p);
}

void *h2_realloc(hb_h2_t *e, void *q, size_t n)
{
	if (!q)
		return h2_alloc(e, n);
	size_t *p = (size_t *)((char *)q - HDR), old = *p;
	size_t *np = realloc(p, HDR + n);
	if (!np)
		return NULL;
	*np = n;
	e->mem = e->mem - old + n;
	return (char *)np + HDR;
}

static void *mem_malloc(size_t n, void *ud)
{
	return h2_alloc(ud, n);
}

static void mem_free(void *p, void *ud)
{
	h2_free(ud, p);
}

static void *mem_calloc(size_t nmemb, size_t size, void *ud)
{
	if (size && nmemb > SIZE_MAX / size)
		return NULL;
	void *p = h2_alloc(ud, nmemb * size);
	if (p)
		memset(p, 0, nmemb * size);
	return p;
}

static void *mem_realloc(void *p, size_t n, void *ud)
{
	return h2_realloc(ud, p, n);
}

void h2_fail(hb_h2_t *e, int err, uint32_t code, const char *why)
{
	if (e->fail)
		return;
	e->fail = err;
	e->fail_code = code;
	e->why = why;
}

/* ---- streams ---- */

struct h2s *h2_stream_of(const hb_h2_t *e, int32_t sid)
{
	return sid > 0 ? nghttp2_session_get_stream_user_data(e->s, sid) : NULL;
}

#define stream_of h2_stream_of

struct h2s *h2_stream_new(hb_h2_t *e, int32_t sid)
{
	struct h2s *st = h2_alloc(e, sizeof *st);
	if (!st)
		return NULL;
	*st = (struct h2s){.id = sid, .content_length = -1, .next = e->streams};
	if (e->streams)
		e->streams->prev = st;
	e->streams = st;
	e->nstreams++;
	nghttp2_session_set_stream_user_data(e->s, sid, st);
	return st;
}

static void stream_free(hb_h2_t *e, struct h2s *st)
{
	if (st->prev)
		st->prev->next = st->next;
	else
		e->streams = st->next;
	if (st->next)
		st->next->prev = st->prev;
	e->nstreams--;
	if (st->pushed)
		e->npushed--;
	h2_msg_reset(e, st);
	h2_free(e, st->trailers);
	h2_free(e, st->origin);
	h2_free(e, st->protocol);
	h2_free(e, st);
}

/* Resets a stream for the server's own reasons (not counted against the client). */
static void app_reset(hb_h2_t *e, struct h2s *st, int32_t sid, uint32_t code)
{
	if (st)
		st->app_reset = true;
	nghttp2_submit_rst_stream(e->s, NGHTTP2_FLAG_NONE, sid, code);
}

/* Answers a stream without the app (413): head only, the stream ends. */
static void answer(hb_h2_t *e, struct h2s *st, int status)
{
	size_t n;
	nghttp2_nv *nva = h2_msg_response_nv(status, NULL, 0, HB_RESP_HAS_DATE, NULL, &n);
	if (!nva || nghttp2_submit_response(e->s, st->id, nva, n, NULL) != 0)
		app_reset(e, st, st->id, HB_H2_INTERNAL_ERROR);
	st->responded = true;
	free(nva);
}

static void deliver(hb_h2_t *e, struct h2s *st, bool end)
{
	const char *why = NULL;
	hb_request_t *r = h2_msg_request(e, st, end, &why);
	h2_msg_reset(e, st);
	if (!r) {
		bool oom = strcmp(why, "out of memory") == 0;
		if (oom)
			app_reset(e, st, st->id, HB_H2_INTERNAL_ERROR);
		else /* malformed (RFC 9113 8.1.1): counted as a reset the client provoked */
			nghttp2_submit_rst_stream(e->s, NGHTTP2_FLAG_NONE, st->id,
						  HB_H2_PROTOCOL_ERROR);
		return;
	}
	if (r->content_length > 0 && (uint64_t)r->content_length > e->lim.max_body) {
		free(r);
		answer(e, st, 413);
		return;
	}
	st->delivered = true;
	int rc = e->cb.on_request(e->ud, st->id, r);
	if (rc > 0) { /* the caller answered it alone: nothing more reaches it */
		st->delivered = false;
		if (!st->responded)
			answer(e, st, 500);
		return;
	}
	if (rc != 0) {
		st->delivered = false;
		app_reset(e, st, st->id, HB_H2_REFUSED_STREAM);
		return;
	}
	if (end && e->cb.on_end_stream)
		e->cb.on_end_stream(e->ud, st->id, st->sud);
}

/* ---- nghttp2 callbacks ---- */

static int on_begin_headers(nghttp2_session *s, const nghttp2_frame *f, void *ud)
{
	hb_h2_t *e = ud;
	if (f->hd.type != NGHTTP2_HEADERS)
		return 0;
	if (f->headers.cat == NGHTTP2_HCAT_REQUEST)
		return h2_stream_new(e, f->hd.stream_id) ? 0 : NGHTTP2_ERR_CALLBACK_FAILURE;
	struct h2s *st = stream_of(e, f->hd.stream_id);
	if (st) {
		st->in_trailers = true;
		st->list_bytes = 0;
	}
	return 0;
}

static int on_header(nghttp2_session *s, const nghttp2_frame *f, const uint8_t *name, size_t nl,
		     const uint8_t *value, size_t vl, uint8_t flags, void *ud)
{
	hb_h2_t *e = ud;
	struct h2s *st = f->hd.type == NGHTTP2_HEADERS ? stream_of(e, f->hd.stream_id) : NULL;
	return st ? h2_msg_field(e, st, name, nl, value, vl) : 0;
}

static void end_of_request(hb_h2_t *e, const nghttp2_frame *f)
{
	struct h2s *st = stream_of(e, f->hd.stream_id);
	if (st && st->delivered && (f->hd.flags & NGHTTP2_FLAG_END_STREAM) && e->cb.on_end_stream)
		e->cb.on_end_stream(e->ud, st->id, st->sud);
}

static void on_ping(hb_h2_t *e, const nghttp2_frame *f)
{
	if ((f->hd.flags & NGHTTP2_FLAG_ACK) && e->shutting_down &&
	    memcmp(f->ping.opaque_data, SHUTDOWN_PING, 8) == 0) {
		e->shutting_down = false;
		hb_h2_goaway(e, HB_H2_NO_ERROR);
	}
}

static int on_frame_recv(nghttp2_session *s, const nghttp2_frame *f, void *ud)
{
	hb_h2_t *e = ud;
	struct h2s *st;

	switch (f->hd.type) {
	case NGHTTP2_HEADERS:
		st = stream_of(e, f->hd.stream_id);
		if (st && f->headers.cat == NGHTTP2_HCAT_REQUEST)
			deliver(e, st, f->hd.flags & NGHTTP2_FLAG_END_STREAM);
		else
			end_of_request(e, f);
		break;
	case NGHTTP2_DATA:
		end_of_request(e, f);
		break;
	case NGHTTP2_RST_STREAM:
		if ((st = stream_of(e, f->hd.stream_id)))
			st->peer_reset = true;
		break;
	case NGHTTP2_GOAWAY:
		e->peer_goaway = true;
		if (e->cb.on_goaway)
			e->cb.on_goaway(e->ud, f->goaway.error_code, f->goaway.last_stream_id);
		break;
	case NGHTTP2_PING:
		on_ping(e, f);
		break;
	default:
		break;
	}
	return 0;
}

static int on_data_chunk(nghttp2_session *s, uint8_t flags, int32_t sid, const uint8_t *data,
			 size_t len, void *ud)
{
	hb_h2_t *e = ud;
	struct h2s *st = stream_of(e, sid);

	/* The connection window reopens at once: these bytes are buffered by the caller now,
	 * bounded by the stream's own window, which reopens only as the app reads. */
	nghttp2_session_consume_connection(s, len);
	if (!st || !st->delivered) {
		nghttp2_session_consume_stream(s, sid, len);
		return 0;
	}
	st->body_rx += len;
	if (st->body_rx > e->lim.max_body && !st->protocol) { /* a tunnel's bytes are no body */
		nghttp2_session_consume_stream(s, sid, len);
		nghttp2_submit_rst_stream(s, NGHTTP2_FLAG_NONE, sid, HB_H2_CANCEL);
		return 0;
	}
	if (e->cb.on_data && e->cb.on_data(e->ud, sid, st->sud, data, len) != 0)
		app_reset(e, st, sid, HB_H2_INTERNAL_ERROR);
	return 0;
}

static int on_stream_close(nghttp2_session *s, int32_t sid, uint32_t code, void *ud)
{
	hb_h2_t *e = ud;
	struct h2s *st = stream_of(e, sid);
	if (!st)
		return 0;
	nghttp2_session_set_stream_user_data(s, sid, NULL);
	if (st->delivered && e->cb.on_close)
		e->cb.on_close(e->ud, sid, st->sud, code, st->peer_reset);
	stream_free(e, st);
	return 0;
}

static int on_frame_send(nghttp2_session *s, const nghttp2_frame *f, void *ud)
{
	hb_h2_t *e = ud;
	if (f->hd.type == NGHTTP2_GOAWAY && f->goaway.error_code != HB_H2_NO_ERROR && !e->fail) {
		/* nghttp2 found a connection error while reading and queued this GOAWAY */
		e->terminated = true;
		h2_fail(e, HB_H2_E_PROTOCOL, f->goaway.error_code,
			e->lib_error ? nghttp2_strerror(e->lib_error) : "protocol error");
	}
	if (f->hd.type == NGHTTP2_RST_STREAM && f->rst_stream.error_code != HB_H2_NO_ERROR) {
		struct h2s *st = stream_of(e, f->hd.stream_id);
		if (!st || !st->app_reset)
			h2_guard_reset(e); /* MadeYouReset: the client provoked it */
	}
	return 0;
}

static int on_invalid_frame(nghttp2_session *s, const nghttp2_frame *f, int lib_error, void *ud)
{
	((hb_h2_t *)ud)->lib_error = lib_error;
	return 0;
}

ssize_t h2_read_body(nghttp2_session *s, int32_t sid, uint8_t *buf, size_t len, uint32_t *flags,
		     nghttp2_data_source *src, void *ud)
{
	hb_h2_t *e = ud;
	struct h2s *st = src->ptr;
	int eof = 0;
	ssize_t n = e->cb.on_read_body(e->ud, sid, st->sud, buf, len, &eof);
	if (n < 0) {
		st->app_reset = true;
		return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
	}
	if (n == 0 && !eof) {
		st->deferred = true;
		return NGHTTP2_ERR_DEFERRED;
	}
	if (eof) {
		*flags |= NGHTTP2_DATA_FLAG_EOF;
		if (st->trailers) {
			*flags |= NGHTTP2_DATA_FLAG_NO_END_STREAM;
			if (nghttp2_submit_trailer(s, sid, st->trailers, st->ntrailers) != 0)
				return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
		}
	}
	return n;
}

/* ---- life ---- */

static nghttp2_session_callbacks *make_callbacks(void)
{
	nghttp2_session_callbacks *cb;
	if (nghttp2_session_callbacks_new(&cb) != 0)
		return NULL;
	nghttp2_session_callbacks_set_on_begin_headers_callback(cb, on_begin_headers);
	nghttp2_session_callbacks_set_on_header_callback(cb, on_header);
	nghttp2_session_callbacks_set_on_frame_recv_callback(cb, on_frame_recv);
	nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cb, on_data_chunk);
	nghttp2_session_callbacks_set_on_stream_close_callback(cb, on_stream_close);
	nghttp2_session_callbacks_set_on_frame_send_callback(cb, on_frame_send);
	nghttp2_session_callbacks_set_on_invalid_frame_recv_callback(cb, on_invalid_frame);
	return cb;
}

static nghttp2_option *make_options(const hb_h2_limits_t *lim)
{
	nghttp2_option *o;
	if (nghttp2_option_new(&o) != 0)
		return NULL;
	nghttp2_option_set_no_auto_window_update(o, 1);
#ifdef HB_HAVE_NGHTTP2_MAX_CONTINUATIONS
	/* Debian's backported guard would end the session without a GOAWAY: ours comes first. */
	nghttp2_option_set_max_continuations(o, lim->max_continuations + 1u);
#endif
#ifdef HB_HAVE_NGHTTP2_RESET_RATE
	nghttp2_option_set_stream_reset_rate_limit(o, UINT32_MAX, UINT32_MAX);
#endif
	return o;
}

static int submit_settings(hb_h2_t *e)
{
	const hb_h2_limits_t *l = &e->lim;
	nghttp2_settings_entry iv[] = {
		{NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, l->max_concurrent_streams},
		{NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, l->initial_window},
		{NGHTTP2_SETTINGS_MAX_FRAME_SIZE, l->max_frame_size},
		{NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE, l->max_header_list},
		{NGHTTP2_SETTINGS_ENABLE_CONNECT_PROTOCOL, 1}, /* RFC 8441: WebSocket over h2 */
	};
	size_t n = sizeof iv / sizeof iv[0] - (l->connect_protocol ? 0 : 1);
	if (nghttp2_submit_settings(e->s, NGHTTP2_FLAG_NONE, iv, n) != 0)
		return -1;
	int32_t win = (int32_t)(l->initial_window > CONN_WINDOW_MIN ? l->initial_window
								    : CONN_WINDOW_MIN);
	return nghttp2_session_set_local_window_size(e->s, NGHTTP2_FLAG_NONE, 0, win) ? -1 : 0;
}

hb_h2_t *hb_h2_new(const hb_h2_limits_t *lim, const hb_h2_callbacks_t *cb, void *ud)
{
	hb_h2_t *e = calloc(1, sizeof *e);
	nghttp2_session_callbacks *cbs = make_callbacks();
	nghttp2_option *opt = NULL;
	if (!e || !cbs)
		goto fail;
	if (lim)
		e->lim = *lim;
	else
		hb_h2_limits_default(&e->lim);
	if (e->lim.max_frame_size < 16384)
		e->lim.max_frame_size = 16384;
	if (e->lim.initial_window > INT32_MAX)
		e->lim.initial_window = INT32_MAX;
	e->cb = *cb;
	e->ud = ud;
	e->g.preface_left = HB_H2_PREFACE_LEN;
	if (!(opt = make_options(&e->lim)))
		goto fail;
	nghttp2_mem mem = {e, mem_malloc, mem_free, mem_calloc, mem_realloc};
	if (nghttp2_session_server_new3(&e->s, cbs, e, opt, &mem) != 0)
		goto fail;
	if (submit_settings(e) != 0)
		goto fail;
	nghttp2_option_del(opt);
	nghttp2_session_callbacks_del(cbs);
	return e;
fail:
	if (e && e->s)
		nghttp2_session_del(e->s);
	nghttp2_option_del(opt);
	nghttp2_session_callbacks_del(cbs);
	free(e);
	return NULL;
}

void hb_h2_free(hb_h2_t *e)
{
	if (!e)
		return;
	nghttp2_session_del(e->s);
	e->s = NULL;
	while (e->streams) {
		struct h2s *st = e->streams;
		if (st->delivered && e->cb.on_close)
			e->cb.on_close(e->ud, st->id, st->sud, HB_H2_CANCEL, 0);
		stream_free(e, st);
	}
	free(e->obuf);
	free(e);
}

/* ---- input ---- */

static void map_fatal(hb_h2_t *e, ssize_t rv)
{
	switch (rv) {
	case NGHTTP2_ERR_BAD_CLIENT_MAGIC:
		h2_fail(e, HB_H2_E_PROTOCOL, HB_H2_PROTOCOL_ERROR, "bad connection preface");
		break;
	case NGHTTP2_ERR_FLOODED:
		h2_fail(e, HB_H2_E_CALM, HB_H2_ENHANCE_YOUR_CALM,
			"control frames flooded (the client does not read)");
		break;
	case NGHTTP2_ERR_TOO_MANY_CONTINUATIONS:
		h2_fail(e, HB_H2_E_CALM, HB_H2_ENHANCE_YOUR_CALM, "CONTINUATION flood");
		break;
	case NGHTTP2_ERR_NOMEM:
		h2_fail(e, HB_H2_E_NOMEM, HB_H2_INTERNAL_ERROR, "out of memory");
		break;
	default:
		h2_fail(e, HB_H2_E_PROTOCOL, HB_H2_INTERNAL_ERROR, nghttp2_strerror((int)rv));
		break;
	}
}

/* Queues the final GOAWAY for a failure decided here (nghttp2 queues its own). */
static int finish_failure(hb_h2_t *e, const char **why)
{
	if (!e->terminated) {
		e->terminated = true;
		nghttp2_session_terminate_session(e->s, e->fail_code);
	}
	if (why)
		*why = e->why;
	return e->fail;
}

int hb_h2_recv(hb_h2_t *e, const uint8_t *data, size_t len, uint64_t now_ms, const char **why)
{
	if (e->fail)
		return finish_failure(e, why);
	e->now_ms = now_ms;
	size_t n = h2_guard_scan(e, data, len);
	if (n) {
		ssize_t rv = nghttp2_session_mem_recv(e->s, data, n);
		if (rv < 0)
			map_fatal(e, rv);
	}
	if (e->fail)
		return finish_failure(e, why);
	return 0;
}

/* ---- output ---- */

static int grow_obuf(hb_h2_t *e, size_t need)
{
	if (need <= e->ocap)
		return 0;
	size_t cap = e->ocap ? e->ocap : 16384;
	while (cap < need)
		cap *= 2;
	uint8_t *b = realloc(e->obuf, cap);
	if (!b)
		return -1;
	e->obuf = b;
	e->ocap = cap;
	return 0;
}

ssize_t hb_h2_send(hb_h2_t *e, const uint8_t **out)
{
	size_t len = 0;
	for (;;) {
		const uint8_t *p;
		ssize_t n = nghttp2_session_mem_send(e->s, &p);
		if (n < 0) {
			map_fatal(e, n);
			return e->fail;
		}
		if (n == 0 && e->fail && !e->terminated) {
			finish_failure(e, NULL); /* a budget ran out while sending (MadeYouReset) */
			continue;
		}
		if (n == 0)
			break;
		if (grow_obuf(e, len + (size_t)n) != 0)
			return HB_H2_E_NOMEM;
		memcpy(e->obuf + len, p, (size_t)n);
		len += (size_t)n;
		if (len >= OBUF_SOFT_MAX)
			break;
	}
	*out = e->obuf;
	return (ssize_t)len;
}

int hb_h2_want_read(const hb_h2_t *e)
{
	return !e->fail && nghttp2_session_want_read(e->s);
}

int hb_h2_want_write(const hb_h2_t *e)
{
	return nghttp2_session_want_write(e->s);
}

int hb_h2_failure(const hb_h2_t *e, uint32_t *code, const char **why)
{
	if (code)
		*code = e->fail_code;
	if (why)
		*why = e->why;
	return e->fail;
}

const char *hb_h2_stream_protocol(const hb_h2_t *e, int32_t sid, size_t *len)
{
	const struct h2s *st = stream_of(e, sid);
	*len = st && st->protocol ? st->protocol_len : 0;
	return st ? st->protocol : NULL;
}

uint32_t hb_h2_nstreams(const hb_h2_t *e)
{
	return e->nstreams;
}

size_t hb_h2_mem(const hb_h2_t *e)
{
	return e->mem + e->ocap;
}

int hb_h2_is_preface(const void *data, size_t len)
{
	size_t n = len < HB_H2_PREFACE_LEN ? len : HB_H2_PREFACE_LEN;
	if (memcmp(data, HB_H2_PREFACE, n) != 0)
		return 0;
	return len >= HB_H2_PREFACE_LEN ? 1 : -1;
}
