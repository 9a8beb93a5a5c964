#include "core/stream.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "core/futex.h"
#include "core/hub.h"

/* Response bodies are cut into pieces of this size so that backpressure stays fine-grained. */
#define OUT_PIECE (256u * 1024u)

hb_stream_t *hb_stream_new(struct hb_hub *hub, int io_idx, hb_request_t *req)
{
	hb_stream_t *s = calloc(1, sizeof(*s));

	if (!s)
		return NULL;
	/* Only requests that can carry bytes after the head get a body queue: a bodyless GET
	 * costs no 8 KiB allocation. An empty queue (no slots) pops -EAGAIN and is never pushed.
	 * A channel (WebSocket) gets a small one: it lives as long as the connection. */
	size_t slots = (req->flags & HB_REQ_CHANNEL)	? HB_STREAM_CHANNEL_SLOTS
		       : (req->flags & HB_REQ_HAS_BODY) ? HB_STREAM_BODY_SLOTS
							: 0;
	if (slots && hb_spsc_init(&s->body, slots) < 0) {
		free(s);
		return NULL;
	}
	s->req = req;
	s->hub = hub;
	s->io_idx = io_idx;
	s->worker_idx = -1;
	atomic_init(&s->refs, 2);
	return s;
}

void hb_stream_release(hb_stream_t *s)
{
	hb_msg_t m;

	if (!s || atomic_fetch_sub(&s->refs, 1) != 1)
		return;
	while (hb_spsc_pop(&s->body, &m) == 0)
		free(m.ptr);
	free(s->cur);
	hb_spsc_destroy(&s->body);
	hb_request_free(s->req);
	free(s);
}

/* Publishes a change the worker may be waiting for (Dekker with the worker's `waiting`). */
static void wake_worker(hb_stream_t *s)
{
	if (s->async) {
		hb_hub_stream_ready(s->hub, s);
		return;
	}
	atomic_fetch_add(&s->wake, 1);
	if (atomic_load(&s->waiting))
		hb_futex_wake(&s->wake, 1);
}

/* Worker side: sleeps until `wake` moves past `seen`. */
static void wait_change(hb_stream_t *s, uint32_t seen)
{
	hb_hub_worker_flush(s->hub, s->worker_idx); /* the io thread may be what we wait for */
	hb_futex_wait(&s->wake, seen, 1000);
	atomic_store(&s->waiting, 0);
}

/* Queues a chunk for the worker; aux carries a channel message's kind (0 for body bytes). */
static int push_chunk(hb_stream_t *s, uint32_t kind, hb_chunk_t *c)
{
	hb_msg_t m = {.type = HB_MSG_BODY, .aux = kind, .stream = s, .ptr = c, .len = c->len};

	atomic_fetch_add(&s->body_queued, c->len);
	if (hb_spsc_push(&s->body, &m) < 0) {
		atomic_fetch_sub(&s->body_queued, c->len);
		return -EAGAIN;
	}
	wake_worker(s);
	return 0;
}

int hb_stream_body_push_chunk(hb_stream_t *s, hb_chunk_t *c)
{
	return push_chunk(s, 0, c);
}

int hb_stream_body_push(hb_stream_t *s, const void *data, size_t len)
{
	hb_chunk_t *c = malloc(sizeof(*c) + len);

	if (!c)
		return -ENOMEM;
	c->len = len;
	memcpy(c->data, data, len);
	int rc = hb_stream_body_push_chunk(s, c);
	if (rc < 0)
		free(c);
	return rc;
}

/* The worker clears HB_ST_IO_PAUSED (and posts RESUME) when it drains below LOW; if it drained
 * before the flag was set, we clear it ourselves: exactly one side clears it. */
int hb_stream_pause_reading(hb_stream_t *s)
{
	atomic_fetch_or(&s->state, HB_ST_IO_PAUSED);
	if (atomic_load(&s->body_queued) > HB_STREAM_BODY_LOW && !hb_spsc_empty(&s->body))
		return 1;
	uint32_t prev = atomic_fetch_and(&s->state, ~(uint32_t)HB_ST_IO_PAUSED);
	return (prev & HB_ST_IO_PAUSED) ? 0 : 1;
}

void hb_stream_signal(hb_stream_t *s, uint32_t bits)
{
	atomic_fetch_or(&s->state, bits);
	wake_worker(s);
}

void hb_stream_body_eof(hb_stream_t *s)
{
	if (s->req->flags & (HB_REQ_HAS_BODY | HB_REQ_CHANNEL))
		hb_stream_signal(s, HB_ST_BODY_EOF);
	else
		atomic_fetch_or(&s->state, HB_ST_BODY_EOF);
}

void hb_stream_out_done(hb_stream_t *s, uint64_t n)
{
	uint64_t prev = atomic_fetch_sub(&s->out_pending, n);

	if (prev > HB_STREAM_OUT_LOW && prev - n <= HB_STREAM_OUT_LOW)
		wake_worker(s);
}

int hb_stream_body_full(hb_stream_t *s)
{
	return atomic_load(&s->body_queued) > HB_STREAM_BODY_HIGH;
}

void hb_stream_flush(hb_stream_t *s)
{
	hb_hub_worker_flush(s->hub, s->worker_idx);
}

int hb_stream_client_gone(hb_stream_t *s)
{
	return (atomic_load(&s->state) & HB_ST_CLIENT_GONE) != 0;
}

static void post(hb_stream_t *s, uint32_t type, uint32_t aux, void *ptr, uint64_t len)
{
	hb_msg_t m = {.type = type, .aux = aux, .stream = s, .ptr = ptr, .len = len};

	hb_hub_worker_push(s->hub, s->worker_idx, s->io_idx, &m);
}

/* Copies len bytes into a chunk counted in out_pending and posts it. Returns 0 or -ENOMEM. */
static int post_copy(hb_stream_t *s, uint32_t type, uint32_t aux, const void *data, size_t len)
{
	hb_chunk_t *c = malloc(sizeof(*c) + len);

	if (!c)
		return -ENOMEM;
	c->len = len;
	memcpy(c->data, data, len);
	atomic_fetch_add(&s->out_pending, len);
	post(s, type, aux, c, len);
	return 0;
}

/* Asks for 100 Continue once, the first time the app wants body bytes. */
static void maybe_continue(hb_stream_t *s)
{
	if (!(s->req->flags & HB_REQ_EXPECT_CONTINUE))
		return;
	if (atomic_fetch_or(&s->state, HB_ST_CONTINUE_SENT) & HB_ST_CONTINUE_SENT)
		return;
	post(s, HB_MSG_CONTINUE, 0, NULL, 0);
}

/* After the worker took `len` bytes off the body queue: resume the io thread if it paused. */
static void body_taken(hb_stream_t *s, uint64_t len)
{
	uint64_t left = atomic_fetch_sub(&s->body_queued, len) - len;

	if (left <= HB_STREAM_BODY_LOW && (atomic_load(&s->state) & HB_ST_IO_PAUSED)) {
		if (atomic_fetch_and(&s->state, ~(uint32_t)HB_ST_IO_PAUSED) & HB_ST_IO_PAUSED)
			post(s, HB_MSG_RESUME, 0, NULL, 0);
	}
}

/* Takes the next chunk into s->cur; tells the io thread to read again once drained enough. */
static int take_chunk(hb_stream_t *s)
{
	hb_msg_t m;

	if (hb_spsc_pop(&s->body, &m) < 0)
		return 0;
	free(s->cur);
	s->cur = m.ptr;
	s->cur_off = 0;
	body_taken(s, m.len);
	return 1;
}

static size_t copy_out(hb_stream_t *s, char *buf, size_t n)
{
	size_t got = 0;

	while (got < n) {
		if (!s->cur || s->cur_off == s->cur->len) {
			if (!take_chunk(s))
				break;
			continue;
		}
		size_t k = s->cur->len - s->cur_off;
		if (k > n - got)
			k = n - got;
		memcpy(buf + got, s->cur->data + s->cur_off, k);
		s->cur_off += k;
		got += k;
	}
	return got;
}

int64_t hb_stream_body_read(hb_stream_t *s, void *buf, size_t n, int block)
{
	if (n == 0 || !(s->req->flags & HB_REQ_HAS_BODY))
		return 0;
	maybe_continue(s);
	for (;;) {
		uint32_t seen = atomic_load(&s->wake);
		atomic_store(&s->waiting, 1);
		size_t got = copy_out(s, buf, n);
		uint32_t st = atomic_load(&s->state);
		if (got > 0) {
			atomic_store(&s->waiting, 0);
			s->body_read += got;
			return (int64_t)got;
		}
		if (st & (HB_ST_BODY_ERROR | HB_ST_CLIENT_GONE | HB_ST_BODY_EOF)) {
			atomic_store(&s->waiting, 0);
			/* EOF is set after the last push: drain once more before reporting it. */
			if ((st & HB_ST_BODY_EOF) && !hb_spsc_empty(&s->body))
				continue;
			if (st & HB_ST_BODY_ERROR)
				return -EBADMSG;
			return (st & HB_ST_BODY_EOF) ? 0 : -ECONNRESET;
		}
		if (!block) {
			atomic_store(&s->waiting, 0);
			return -EAGAIN;
		}
		wait_change(s, seen);
	}
}

int hb_stream_send_head(hb_stream_t *s, hb_response_t *resp)
{
	if (atomic_fetch_or(&s->state, HB_ST_HEAD_SENT) & HB_ST_HEAD_SENT) {
		free(resp);
		return -EALREADY;
	}
	if (hb_stream_client_gone(s)) {
		free(resp);
		return -ECONNRESET;
	}
	post(s, HB_MSG_HEAD, 0, resp, 0);
	return 0;
}

int hb_stream_send_head_body(hb_stream_t *s, hb_response_t *resp, const void *data, size_t len,
			     int end, uint32_t end_flags)
{
	hb_msg_t m[3];
	size_t n = 0;
	hb_chunk_t *c = NULL;

	if (hb_stream_client_gone(s)) {
		free(resp);
		return -ECONNRESET;
	}
	if (len && !(c = malloc(sizeof(*c) + len))) {
		free(resp);
		return -ENOMEM;
	}
	if (atomic_fetch_or(&s->state, HB_ST_HEAD_SENT) & HB_ST_HEAD_SENT) {
		free(c);
		free(resp);
		return -EALREADY;
	}
	m[n++] = (hb_msg_t){.type = HB_MSG_HEAD, .stream = s, .ptr = resp};
	if (c) {
		c->len = len;
		memcpy(c->data, data, len);
		atomic_fetch_add(&s->out_pending, len);
		m[n++] = (hb_msg_t){.type = HB_MSG_BODY, .stream = s, .ptr = c, .len = len};
	}
	if (end && !(atomic_fetch_or(&s->state, HB_ST_ENDED) & HB_ST_ENDED))
		m[n++] = (hb_msg_t){.type = HB_MSG_END, .aux = end_flags, .stream = s};
	hb_hub_worker_push_n(s->hub, s->worker_idx, s->io_idx, m, n);
	return 0;
}

int hb_stream_send_interim(hb_stream_t *s, hb_response_t *resp)
{
	if (atomic_load(&s->state) & HB_ST_HEAD_SENT) {
		free(resp);
		return -EALREADY;
	}
	if (hb_stream_client_gone(s)) {
		free(resp);
		return -ECONNRESET;
	}
	post(s, HB_MSG_INTERIM, 0, resp, 0);
	return 0;
}

int hb_stream_send_trailers(hb_stream_t *s, hb_response_t *fields)
{
	uint32_t st = atomic_load(&s->state);
	int rc = !(st & HB_ST_HEAD_SENT) || (st & HB_ST_ENDED) ? -EALREADY
		 : hb_stream_client_gone(s)		       ? -ECONNRESET
							       : 0;
	if (rc < 0) {
		free(fields);
		return rc;
	}
	post(s, HB_MSG_TRAILERS, 0, fields, 0);
	return 0;
}

void hb_promise_free(hb_promise_t *p)
{
	if (p)
		free(p->fields);
	free(p);
}

int hb_stream_promise(hb_stream_t *s, const char *target, size_t len, hb_response_t *fields)
{
	if (!(s->req->flags & HB_REQ_CAN_PROMISE) || (atomic_load(&s->state) & HB_ST_ENDED)) {
		free(fields);
		return -EPERM;
	}
	if (hb_stream_client_gone(s)) {
		free(fields);
		return -ECONNRESET;
	}
	hb_promise_t *p = malloc(sizeof(*p) + len + 1);
	if (!p) {
		free(fields);
		return -ENOMEM;
	}
	p->fields = fields;
	p->target_len = (uint32_t)len;
	if (len)
		memcpy(p->target, target, len);
	p->target[len] = '\0';
	post(s, HB_MSG_PROMISE, 0, p, 0);
	return 0;
}

/* Blocks while too much output waits to be written; then resumes below the low watermark. */
static int wait_out_space(hb_stream_t *s)
{
	if (atomic_load(&s->out_pending) <= HB_STREAM_OUT_HIGH)
		return hb_stream_client_gone(s) ? -ECONNRESET : 0;
	for (;;) {
		uint32_t seen = atomic_load(&s->wake);
		atomic_store(&s->waiting, 1);
		if (hb_stream_client_gone(s)) {
			atomic_store(&s->waiting, 0);
			return -ECONNRESET;
		}
		if (atomic_load(&s->out_pending) <= HB_STREAM_OUT_LOW) {
			atomic_store(&s->waiting, 0);
			return 0;
		}
		wait_change(s, seen);
	}
}

int hb_stream_send_body(hb_stream_t *s, const void *data, size_t len)
{
	const char *p = data;

	while (len > 0) {
		int rc = wait_out_space(s);
		if (rc < 0)
			return rc;
		size_t k = len < OUT_PIECE ? len : OUT_PIECE;
		rc = post_copy(s, HB_MSG_BODY, 0, p, k);
		if (rc < 0)
			return rc;
		p += k;
		len -= k;
	}
	return 0;
}

int hb_stream_send_file(hb_stream_t *s, int fd, int64_t offset, int64_t len)
{
	hb_file_chunk_t *f;

	if (hb_stream_client_gone(s) || !(f = malloc(sizeof(*f)))) {
		close(fd);
		return hb_stream_client_gone(s) ? -ECONNRESET : -ENOMEM;
	}
	f->fd = fd;
	f->offset = offset;
	f->len = len;
	post(s, HB_MSG_FILE, 0, f, 0);
	return 0;
}

int hb_stream_end(hb_stream_t *s, uint32_t flags)
{
	if (atomic_fetch_or(&s->state, HB_ST_ENDED) & HB_ST_ENDED)
		return -EALREADY;
	post(s, HB_MSG_END, flags, NULL, 0);
	return 0;
}

int hb_stream_send_body_nb(hb_stream_t *s, const void *data, size_t len)
{
	if (hb_stream_client_gone(s))
		return -ECONNRESET;
	if (atomic_load(&s->out_pending) > HB_STREAM_OUT_HIGH)
		return -EAGAIN;
	return post_copy(s, HB_MSG_BODY, 0, data, len);
}

int hb_stream_send_body_end(hb_stream_t *s, const void *data, size_t len, int end,
			    uint32_t end_flags)
{
	hb_msg_t m[2];
	size_t n = 0;
	hb_chunk_t *c = NULL;

	if (hb_stream_client_gone(s))
		return -ECONNRESET;
	if (len && !(c = malloc(sizeof(*c) + len)))
		return -ENOMEM;
	if (end && (atomic_fetch_or(&s->state, HB_ST_ENDED) & HB_ST_ENDED)) {
		free(c);
		return -EALREADY;
	}
	if (c) {
		c->len = len;
		memcpy(c->data, data, len);
		atomic_fetch_add(&s->out_pending, len);
		m[n++] = (hb_msg_t){.type = HB_MSG_BODY, .stream = s, .ptr = c, .len = len};
	}
	if (end)
		m[n++] = (hb_msg_t){.type = HB_MSG_END, .aux = end_flags, .stream = s};
	if (n)
		hb_hub_worker_push_n(s->hub, s->worker_idx, s->io_idx, m, n);
	return 0;
}

int hb_stream_msg_push(hb_stream_t *s, uint32_t kind, hb_chunk_t *c)
{
	return push_chunk(s, kind, c);
}

int hb_stream_msg_push_close(hb_stream_t *s, uint16_t code, const void *reason, size_t len)
{
	hb_chunk_t *c = malloc(sizeof(*c) + 2 + len);
	int rc = -ENOMEM;

	if (c) {
		c->len = 2 + len;
		c->data[0] = (char)(code >> 8);
		c->data[1] = (char)(code & 0xff);
		if (len)
			memcpy(c->data + 2, reason, len);
		rc = push_chunk(s, HB_MSGK_CLOSE, c);
		if (rc == 0)
			return 0;
		free(c);
	}
	hb_stream_signal(s, HB_ST_CLIENT_GONE);
	return rc;
}

int hb_stream_msg_recv(hb_stream_t *s, hb_chunk_t **msg, uint32_t *kind, int block)
{
	hb_msg_t m;

	for (;;) {
		uint32_t seen = atomic_load(&s->wake);
		atomic_store(&s->waiting, 1);
		if (hb_spsc_pop(&s->body, &m) == 0) {
			atomic_store(&s->waiting, 0);
			body_taken(s, m.len);
			*msg = m.ptr;
			*kind = m.aux;
			return 0;
		}
		if (hb_stream_client_gone(s)) {
			atomic_store(&s->waiting, 0);
			return -ECONNRESET;
		}
		if (!block) {
			atomic_store(&s->waiting, 0);
			return -EAGAIN;
		}
		wait_change(s, seen);
	}
}

int hb_stream_msg_send(hb_stream_t *s, uint32_t kind, const void *data, size_t len, int block)
{
	int rc = block ? wait_out_space(s) : 0;

	if (rc < 0)
		return rc;
	if (!block && atomic_load(&s->out_pending) > HB_STREAM_OUT_HIGH)
		return -EAGAIN;
	if (hb_stream_client_gone(s))
		return -ECONNRESET;
	return post_copy(s, HB_MSG_MESSAGE, kind, data, len);
}

int hb_stream_msg_close(hb_stream_t *s, uint16_t code, const char *reason, size_t len)
{
	hb_chunk_t *c = NULL;

	if (hb_stream_client_gone(s))
		return -ECONNRESET;
	if (len && (c = malloc(sizeof(*c) + len))) {
		c->len = len;
		memcpy(c->data, reason, len);
	}
	post(s, HB_MSG_CLOSE, code, c, 0);
	return 0;
}
