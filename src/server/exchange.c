#include "server/exchange.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/hub.h"
#include "core/log.h"
#include "core/overload.h"
#include "server/access_log.h"
#include "server/conn.h"

hb_exchange_t *hb_exchange_new(hb_conn_t *c, size_t proto_size)
{
	hb_exchange_t *x = calloc(1, sizeof(*x) + proto_size);

	if (!x)
		return NULL;
	x->conn = c;
	x->resp_cl = -1;
	x->mproto = c->handler && c->handler->name[1] == '2' ? HB_MP_H2 : HB_MP_H1;
	if (c->io->metrics)
		hb_mgauge_add(&c->io->metrics->streams[x->mproto], 1);
	x->next = c->exchanges;
	if (c->exchanges)
		c->exchanges->prev = x;
	c->exchanges = x;
	return x;
}

uint64_t hb_exchange_resp_take(hb_exchange_t *x, uint64_t n)
{
	if (x->resp_cl >= 0 && x->resp_body + n > (uint64_t)x->resp_cl) {
		n = (uint64_t)x->resp_cl - x->resp_body; /* never send past the length */
		x->abort = 1;
	}
	x->resp_body += n;
	return n;
}

int hb_exchange_resp_short(const hb_exchange_t *x)
{
	return !x->no_body && x->resp_cl >= 0 && x->resp_body != (uint64_t)x->resp_cl;
}

void hb_exchange_attach(hb_exchange_t *x, hb_stream_t *s)
{
	x->stream = s;
	s->exchange = x;
}

void hb_exchange_release(hb_exchange_t *x)
{
	hb_conn_t *c = x->conn;

	if (x->prev)
		x->prev->next = x->next;
	else
		c->exchanges = x->next;
	if (x->next)
		x->next->prev = x->prev;
	if (c->io->metrics)
		hb_mgauge_add(&c->io->metrics->streams[x->mproto], -1);
	for (uint32_t i = 0; i < x->nheld; i++)
		hb_exchange_drop_msg(&x->held[i]);
	free(x->held);
	if (x->stream) {
		hb_conn_out_forget(c, x->stream);
		if (x->undispatched)
			hb_stream_release(x->stream); /* the worker's, never handed over */
		hb_stream_release(x->stream);
	}
	free(x->body_acc);
	free(x->body_held);
	free(x->resp_log);
	free(x);
}

void hb_exchange_log_now(hb_exchange_t *x)
{
	hb_io_t *io = x->conn->io;
	hb_stream_t *s = x->stream;

	if (!s || x->logged)
		return;
	x->logged = 1;
	uint64_t now = hb_io_now(io);
	if (io->metrics)
		hb_metrics_request(io->metrics, s->req->method, s->req->method_len, s->status,
				   now > s->t_start_ns ? now - s->t_start_ns : 0);
	hb_access_log(io, x, s, now);
}

void hb_exchange_finish(hb_exchange_t *x)
{
	hb_exchange_log_now(x);
	hb_exchange_release(x);
}

int hb_exchange_timed_out(hb_exchange_t *x, uint64_t now)
{
	if (!x->resp_deadline || now < x->resp_deadline || x->head_sent || x->abandoned)
		return 0;
	const hb_request_t *req = x->stream->req;
	hb_warn("request timeout: %.*s %.*s took over %lld ms; answering 504", (int)req->method_len,
		req->method, (int)req->target_len, req->target,
		(long long)x->conn->io->cfg->timeout_ms);
	hb_stream_signal(x->stream, HB_ST_CLIENT_GONE);
	x->stream->status = 504;
	hb_exchange_log_now(x);
	return 1;
}

int64_t hb_exchange_file_len(const hb_file_chunk_t *f)
{
	struct stat st;

	if (f->len >= 0)
		return f->len;
	return fstat(f->fd, &st) == 0 ? st.st_size - f->offset : -1;
}

void hb_exchange_count_as(hb_exchange_t *x, int mproto)
{
	hb_metrics_io_t *m = x->conn->io->metrics;

	if (m) {
		hb_mgauge_add(&m->streams[x->mproto], -1);
		hb_mgauge_add(&m->streams[mproto], 1);
	}
	x->mproto = (unsigned)mproto & 3u;
}

void hb_exchange_log_error(hb_conn_t *c, const hb_request_t *req, int status)
{
	hb_io_t *io = c->io;

	if (io->metrics)
		hb_metrics_request(io->metrics, req ? req->method : NULL, req ? req->method_len : 0,
				   status, 0);
	hb_conn_learn_addrs(c);
	hb_access_log_error(io, c, status);
}

void hb_exchange_head(hb_exchange_t *x, const hb_response_t *r)
{
	const hb_access_fmt_t *f = x->conn->io->srv->access_fmt;

	if (f && !x->resp_log)
		x->resp_log = hb_access_keep(f, r);
}

void hb_exchange_client_gone(hb_exchange_t *x, uint32_t extra_bits)
{
	if (x->stream && !x->ended)
		hb_stream_signal(x->stream, HB_ST_CLIENT_GONE | extra_bits);
}

void hb_exchange_drop_msg(hb_msg_t *m)
{
	switch ((hb_msg_type_t)m->type) {
	case HB_MSG_HEAD:
	case HB_MSG_CLOSE:
	case HB_MSG_INTERIM:
	case HB_MSG_TRAILERS:
		free(m->ptr);
		break;
	case HB_MSG_PROMISE:
		hb_promise_free(m->ptr);
		break;
	case HB_MSG_BODY:
	case HB_MSG_MESSAGE:
		free(m->ptr);
		hb_stream_out_done(m->stream, m->len);
		break;
	case HB_MSG_FILE:
		close(((hb_file_chunk_t *)m->ptr)->fd);
		free(m->ptr);
		break;
	case HB_MSG_REQUEST:
	case HB_MSG_END:
	case HB_MSG_CONTINUE:
	case HB_MSG_RESUME:
		break;
	}
}

int hb_exchange_hold(hb_exchange_t *x, const hb_msg_t *m)
{
	if (x->nheld == x->held_cap) {
		uint32_t cap = x->held_cap ? 2 * x->held_cap : 4;
		hb_msg_t *n = realloc(x->held, cap * sizeof(*n));
		if (!n) {
			hb_exchange_drop_msg((hb_msg_t *)m);
			return -ENOMEM;
		}
		x->held = n;
		x->held_cap = cap;
	}
	x->held[x->nheld++] = *m;
	return 0;
}

int hb_exchange_body_add(hb_exchange_t *x, const char *p, size_t len)
{
	size_t have = x->body_acc ? x->body_acc->len : 0;

	if (have + len > x->body_acc_cap) {
		size_t cap = x->body_acc_cap ? x->body_acc_cap : 16384;
		while (cap < have + len)
			cap *= 2;
		hb_chunk_t *n = realloc(x->body_acc, sizeof(*n) + cap);
		if (!n)
			return -1;
		n->len = have;
		x->body_acc = n;
		x->body_acc_cap = cap;
	}
	memcpy(x->body_acc->data + have, p, len);
	x->body_acc->len = have + len;
	return 0;
}

/* Appends ch to the chunk already waiting for room in the stream (order is kept). */
static int hold_append(hb_exchange_t *x, hb_chunk_t *ch)
{
	hb_chunk_t *n = realloc(x->body_held, sizeof(*n) + x->body_held->len + ch->len);

	if (!n) {
		free(ch);
		return -1;
	}
	memcpy(n->data + n->len, ch->data, ch->len);
	n->len += ch->len;
	x->body_held = n;
	free(ch);
	return 0;
}

/* The stream's queue had no free slot for ch: pause reading until RESUME. If the worker emptied
 * the queue before it could see the pause flag, no RESUME would come: retry the push ourselves,
 * and whoever clears the flag first owns the resume. */
static int push_paused(hb_stream_t *s, uint32_t kind, hb_chunk_t *ch)
{
	atomic_fetch_or(&s->state, HB_ST_IO_PAUSED);
	if (!hb_spsc_empty(&s->body) || hb_stream_msg_push(s, kind, ch) < 0)
		return HB_PUSH_HELD;
	if (atomic_fetch_and(&s->state, ~(uint32_t)HB_ST_IO_PAUSED) & HB_ST_IO_PAUSED)
		return HB_PUSH_OK; /* we cleared it: no RESUME is coming, read on */
	return HB_PUSH_PAUSED;
}

int hb_exchange_msg_push(hb_stream_t *s, uint32_t kind, hb_chunk_t *ch)
{
	if (hb_stream_msg_push(s, kind, ch) < 0)
		return push_paused(s, kind, ch);
	return hb_stream_body_full(s) && hb_stream_pause_reading(s) ? HB_PUSH_PAUSED : HB_PUSH_OK;
}

/* body_held waits for room in the stream: keep it and pause until RESUME (push_paused). */
static int hold_and_pause(hb_exchange_t *x)
{
	int rc = push_paused(x->stream, 0, x->body_held);

	if (rc != HB_PUSH_HELD)
		x->body_held = NULL;
	return rc != HB_PUSH_OK;
}

int hb_exchange_flush_body(hb_exchange_t *x)
{
	hb_chunk_t *ch = x->body_acc;

	if (!ch || ch->len == 0)
		return 0;
	x->body_acc = NULL;
	x->body_acc_cap = 0;
	if (!x->stream || x->ended || x->abandoned) {
		free(ch);
		return 0;
	}
	if (x->body_held || hb_stream_body_push_chunk(x->stream, ch) < 0) {
		if (x->body_held && hold_append(x, ch) < 0)
			return -1;
		if (!x->body_held)
			x->body_held = ch;
		return hold_and_pause(x);
	}
	return hb_stream_body_full(x->stream) && hb_stream_pause_reading(x->stream);
}

int hb_exchange_resume(hb_exchange_t *x)
{
	if (x->body_held && x->stream && !x->ended) {
		if (hb_stream_body_push_chunk(x->stream, x->body_held) < 0)
			return 1; /* still full: the worker will post RESUME again */
		x->body_held = NULL;
		if (x->eof_pending) {
			x->eof_pending = 0;
			hb_stream_signal(x->stream, HB_ST_BODY_EOF);
		}
	}
	return 0;
}

int hb_exchange_over_limit(hb_io_t *io)
{
	hb_overload_t *ov = hb_hub_overload(io->srv->hub);

	if (io->cfg->limit_concurrency <= 0 ||
	    hb_hub_inflight(io->srv->hub) < io->cfg->limit_concurrency)
		return 0;
	atomic_fetch_add_explicit(&ov->rejected_concurrency, 1, memory_order_relaxed);
	return 1;
}

hb_chunk_t *hb_exchange_chunk_copy(const void *p, size_t len)
{
	hb_chunk_t *ch = malloc(sizeof(*ch) + len);

	if (!ch)
		return NULL;
	ch->len = len;
	if (len)
		memcpy(ch->data, p, len);
	return ch;
}

int hb_exchange_busy_response(hb_io_t *io, hb_response_t **r, hb_chunk_t **ch)
{
	size_t n = sizeof(HB_OVERLOAD_BODY) - 1;

	*r = hb_overload_response(io->cfg->retry_after_s);
	*ch = hb_exchange_chunk_copy(HB_OVERLOAD_BODY, n);
	if (!*r || !*ch) {
		free(*r);
		free(*ch);
		return -ENOMEM;
	}
	return 0;
}
