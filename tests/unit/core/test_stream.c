/* test_stream.c: one exchange between an "io" side and a "worker" side: body reads, watermarks
 * and HB_MSG_RESUME, 100-continue, send backpressure, client-gone wakeups, refcounting, async
 * (ready-list) streams and WebSocket messages. The test thread plays the io thread; a second
 * thread plays the worker where blocking matters. */
#include "stream_harness.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/hub.h"
#include "core/stream.h"

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define HB_TEST_SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define HB_TEST_SANITIZED 1
#endif
#endif
#ifndef HB_TEST_SANITIZED
#define HB_TEST_SANITIZED 0
#endif
#if HB_TEST_SANITIZED
/* From <sanitizer/allocator_interface.h>, which not every toolchain installs.
 */
size_t __sanitizer_get_current_allocated_bytes(void);
#endif

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* Pops every message waiting for io 0, frees payloads; counts those of `type`
 * (0: all). */
static int drain_count(hb_hub_t *hub, uint32_t type)
{
	hb_msg_t m;
	int n = 0;

	while (hb_hub_io_pop(hub, 0, &m) == 0) {
		if (!type || m.type == type)
			n++;
		if (m.type == HB_MSG_FILE)
			close(((hb_file_chunk_t *)m.ptr)->fd);
		if (m.type == HB_MSG_HEAD || m.type == HB_MSG_BODY || m.type == HB_MSG_FILE)
			free(m.ptr);
	}
	return n;
}

static int64_t read_nb(hb_stream_t *s, void *buf, size_t n)
{
	return hb_stream_body_read(s, buf, n, 0);
}

/* ---- body reads
 * ------------------------------------------------------------------------- */

Test(stream, partial_reads_span_chunks_then_eof)
{
	hb_hub_t *hub = hb_hub_new(1, 1);
	hb_stream_t *s = new_stream(hub, HB_REQ_HAS_BODY);
	char buf[64];

	cr_assert_eq(hb_stream_body_push(s, "hello ", 6), 0);
	cr_assert_eq(hb_stream_body_push(s, "world", 5), 0);
	cr_assert_eq(hb_stream_body_push(s, "!!!", 3), 0);
	cr_assert_eq(atomic_load(&s->body_queued), 14);
	cr_assert_eq(read_nb(s, buf, 4), 4);
	cr_assert_arr_eq(buf, "hell", 4);
	cr_assert_eq(read_nb(s, buf, 5), 5); /* rest of chunk 1 and start of chunk 2 */
	cr_assert_arr_eq(buf, "o wor", 5);
	cr_assert_eq(read_nb(s, buf, sizeof buf), 5);
	cr_assert_arr_eq(buf, "ld!!!", 5);
	cr_assert_eq(s->body_read, 14);
	cr_assert_eq(atomic_load(&s->body_queued), 0);
	cr_assert_eq(read_nb(s, buf, sizeof buf), -EAGAIN, "no EOF yet");
	hb_stream_signal(s, HB_ST_BODY_EOF);
	cr_assert_eq(read_nb(s, buf, sizeof buf), 0);
	cr_assert_eq(hb_stream_body_read(s, buf, sizeof buf, 1), 0);
	cr_assert_eq(drain_count(hub, 0), 0, "no CONTINUE without Expect");
	release_both(s);
	hb_hub_free(hub);
}

Test(stream, eof_after_drain)
{
	hb_hub_t *hub = hb_hub_new(1, 1);
	hb_stream_t *s = new_stream(hub, HB_REQ_HAS_BODY);
	char buf[8];

	cr_assert_eq(hb_stream_body_push(s, "abcdefghij", 10), 0);
	hb_stream_signal(s, HB_ST_BODY_EOF);
	/* EOF is already set, but queued bytes come first. */
	cr_assert_eq(hb_stream_body_read(s, buf, 8, 1), 8);
	cr_assert_eq(hb_stream_body_read(s, buf, 8, 1), 2);
	cr_assert_arr_eq(buf, "ij", 2);
	cr_assert_eq(hb_stream_body_read(s, buf, 8, 1), 0);
	cr_assert_eq(hb_stream_body_read(s, buf, 0, 1), 0);
	release_both(s);
	hb_hub_free(hub);
}

Test(stream, client_gone_reads_econnreset)
{
	hb_hub_t *hub = hb_hub_new(1, 1);
	hb_stream_t *s = new_stream(hub, HB_REQ_HAS_BODY);
	char buf[8];

	cr_assert_eq(read_nb(s, buf, 8), -EAGAIN);
	hb_stream_signal(s, HB_ST_CLIENT_GONE);
	cr_assert(hb_stream_client_gone(s));
	cr_assert_eq(hb_stream_body_read(s, buf, 8, 1), -ECONNRESET);
	cr_assert_eq(read_nb(s, buf, 8), -ECONNRESET);
	release_both(s);
	hb_hub_free(hub);
}

Test(stream, body_error_reads_ebadmsg)
{
	hb_hub_t *hub = hb_hub_new(1, 1);
	hb_stream_t *s = new_stream(hub, HB_REQ_HAS_BODY);
	char buf[8];

	hb_stream_signal(s, HB_ST_BODY_ERROR | HB_ST_BODY_EOF);
	cr_assert_eq(hb_stream_body_read(s, buf, 8, 1), -EBADMSG);
	cr_assert_eq(read_nb(s, buf, 8), -EBADMSG);
	release_both(s);
	hb_hub_free(hub);
}

Test(stream, no_body_reads_zero_at_once)
{
	hb_hub_t *hub = hb_hub_new(1, 1);
	hb_stream_t *s = new_stream(hub, HB_REQ_EXPECT_CONTINUE); /* no HB_REQ_HAS_BODY */
	char buf[8];

	uint64_t t0 = now_ms();
	cr_assert_eq(hb_stream_body_read(s, buf, 8, 1), 0);
	cr_assert_eq(read_nb(s, buf, 8), 0);
	cr_assert_lt(now_ms() - t0, 500);
	cr_assert_eq(drain_count(hub, 0), 0, "no CONTINUE for a request without body");
	release_both(s);
	hb_hub_free(hub);
}

Test(stream, expect_continue_posts_once)
{
	hb_hub_t *hub = hb_hub_new(1, 1);
	hb_stream_t *s = new_stream(hub, HB_REQ_HAS_BODY | HB_REQ_EXPECT_CONTINUE);
	char buf[8];
	hb_msg_t m;

	cr_assert_eq(hb_hub_io_pop(hub, 0, &m), -EAGAIN, "nothing before the first read");
	cr_assert_eq(read_nb(s, buf, 8), -EAGAIN);
	cr_assert_eq(hb_hub_io_pop(hub, 0, &m), 0);
	cr_assert_eq(m.type, HB_MSG_CONTINUE);
	cr_assert_eq(m.stream, s);
	cr_assert(atomic_load(&s->state) & HB_ST_CONTINUE_SENT);
	cr_assert_eq(read_nb(s, buf, 8), -EAGAIN);
	cr_assert_eq(hb_stream_body_push(s, "xy", 2), 0);
	cr_assert_eq(read_nb(s, buf, 8), 2);
	hb_stream_signal(s, HB_ST_BODY_EOF);
	cr_assert_eq(read_nb(s, buf, 8), 0);
	cr_assert_eq(drain_count(hub, 0), 0, "exactly one CONTINUE");
	release_both(s);
	hb_hub_free(hub);
}

typedef struct reader {
	hb_stream_t *s;
	size_t chunk;
	_Atomic uint64_t got;
	_Atomic int64_t last_rc;
	_Atomic uint64_t done_ms;
	uint64_t sum; /* of bytes, as a content check */
} reader_t;

/* Reads until EOF or error, blocking. */
static void *reader_main(void *arg)
{
	reader_t *rd = arg;
	unsigned char buf[4096];
	int64_t n;

	while ((n = hb_stream_body_read(rd->s, buf, rd->chunk, 1)) > 0) {
		for (int64_t i = 0; i < n; i++)
			rd->sum += buf[i];
		atomic_fetch_add(&rd->got, (uint64_t)n);
	}
	atomic_store(&rd->done_ms, now_ms());
	atomic_store(&rd->last_rc, n);
	return NULL;
}

static void wait_stream_waiting(hb_stream_t *s)
{
	while (!atomic_load(&s->waiting))
		sched_yield();
	usleep(20 * 1000); /* into the futex wait, most likely */
}

Test(stream, blocked_reader_woken_by_client_gone)
{
	hb_hub_t *hub = hb_hub_new(1, 1);
	hb_stream_t *s = new_stream(hub, HB_REQ_HAS_BODY);
	reader_t rd = {.s = s, .chunk = 16};
	pthread_t th;

	cr_assert_eq(pthread_create(&th, NULL, reader_main, &rd), 0);
	wait_stream_waiting(s);
	uint64_t t0 = now_ms();
	hb_stream_signal(s, HB_ST_CLIENT_GONE);
	pthread_join(th, NULL);
	cr_assert_eq(atomic_load(&rd.last_rc), -ECONNRESET);
	cr_assert_lt(atomic_load(&rd.done_ms) - t0, 500);
	release_both(s);
	hb_hub_free(hub);
}

/* One byte at a time, the reader sleeping in between: the futex wait has a 1 s
 * safety timeout, so a lost wakeup shows as a handoff slower than that. */
Test(stream, blocked_reader_wakeups_are_never_lost)
{
	hb_hub_t *hub = hb_hub_new(1, 1);
	hb_stream_t *s = new_stream(hub, HB_REQ_HAS_BODY);
	reader_t rd = {.s = s, .chunk = 64};
	pthread_t th;
	uint64_t want = 0, worst = 0;

	cr_assert_eq(pthread_create(&th, NULL, reader_main, &rd), 0);
	for (int i = 0; i < 400; i++) {
		unsigned char b = (unsigned char)(i * 7 + 1);
		if (i % 4 == 0)
			usleep(100);
		uint64_t t0 = now_ms();
		cr_assert_eq(hb_stream_body_push(s, &b, 1), 0);
		want += b;
		while (atomic_load(&rd.got) < (uint64_t)i + 1)
			sched_yield();
		uint64_t dt = now_ms() - t0;
		cr_assert_lt(dt, 700, "handoff %d took %llu ms", i, (unsigned long long)dt);
		worst = dt > worst ? dt : worst;
	}
	hb_stream_signal(s, HB_ST_BODY_EOF);
	pthread_join(th, NULL);
	cr_assert_eq(atomic_load(&rd.last_rc), 0);
	cr_assert_eq(rd.sum, want);
	cr_assert_lt(worst, 700, "a handoff took %llu ms", (unsigned long long)worst);
	release_both(s);
	hb_hub_free(hub);
}

/* ---- flow control
 * ----------------------------------------------------------------------- */

#define CHUNK (16u * 1024u)

/* Pushes CHUNK-sized chunks until the body is over the high watermark; returns
 * bytes pushed. */
static size_t fill_until_full(hb_stream_t *s)
{
	static char data[CHUNK];
	size_t pushed = 0;

	while (!hb_stream_body_full(s)) {
		cr_assert_eq(hb_stream_body_push(s, data, sizeof data), 0);
		pushed += sizeof data;
	}
	return pushed;
}

Test(stream, drain_below_low_posts_one_resume)
{
	hb_hub_t *hub = hb_hub_new(1, 1);
	hb_stream_t *s = new_stream(hub, HB_REQ_HAS_BODY);
	static char buf[CHUNK];

	size_t pushed = fill_until_full(s);
	cr_assert_gt(pushed, HB_STREAM_BODY_HIGH);
	cr_assert_eq(hb_stream_pause_reading(s), 1, "queue is full: io must pause");
	cr_assert(atomic_load(&s->state) & HB_ST_IO_PAUSED);
	/* Each read takes one chunk; RESUME appears exactly when the queue falls to
	 * LOW. */
	int resumes = 0;
	while (pushed > 0) {
		cr_assert_eq(read_nb(s, buf, sizeof buf), CHUNK);
		pushed -= CHUNK;
		int r = drain_count(hub, HB_MSG_RESUME);
		if (pushed > HB_STREAM_BODY_LOW)
			cr_assert_eq(r, 0, "RESUME early, %zu bytes still queued", pushed);
		else if (resumes == 0)
			cr_assert_eq(r, 1, "no RESUME at %zu bytes queued", pushed);
		resumes += r;
	}
	cr_assert_eq(resumes, 1);
	cr_assert_not(atomic_load(&s->state) & HB_ST_IO_PAUSED);
	release_both(s);
	hb_hub_free(hub);
}

Test(stream, drained_before_pause_needs_no_resume)
{
	hb_hub_t *hub = hb_hub_new(1, 1);
	hb_stream_t *s = new_stream(hub, HB_REQ_HAS_BODY);
	static char buf[CHUNK];

	size_t pushed = fill_until_full(s);
	/* The worker drains everything between the io's full check and its pause
	 * call. */
	for (; pushed > 0; pushed -= CHUNK)
		cr_assert_eq(read_nb(s, buf, sizeof buf), CHUNK);
	cr_assert_eq(hb_stream_pause_reading(s), 0, "nothing to wait for: keep reading");
	cr_assert_not(atomic_load(&s->state) & HB_ST_IO_PAUSED);
	cr_assert_eq(drain_count(hub, HB_MSG_RESUME), 0);
	release_both(s);
	hb_hub_free(hub);
}

Test(stream, drained_to_low_before_pause_needs_no_resume)
{
	hb_hub_t *hub = hb_hub_new(1, 1);
	hb_stream_t *s = new_stream(hub, HB_REQ_HAS_BODY);
	static char buf[CHUNK];

	size_t pushed = fill_until_full(s);
	/* Drained to exactly LOW (chunks still queued): RESUME would be owed by
	 * nobody. */
	for (; pushed > HB_STREAM_BODY_LOW; pushed -= CHUNK)
		cr_assert_eq(read_nb(s, buf, sizeof buf), CHUNK);
	cr_assert_eq(hb_stream_pause_reading(s), 0);
	cr_assert_not(atomic_load(&s->state) & HB_ST_IO_PAUSED);
	for (; pushed > 0; pushed -= CHUNK)
		cr_assert_eq(read_nb(s, buf, sizeof buf), CHUNK);
	cr_assert_eq(drain_count(hub, HB_MSG_RESUME), 0);
	release_both(s);
	hb_hub_free(hub);
}

Test(stream, pause_then_full_drain_posts_resume)
{
	hb_hub_t *hub = hb_hub_new(1, 1);
	hb_stream_t *s = new_stream(hub, HB_REQ_HAS_BODY);
	static char buf[CHUNK];

	size_t pushed = fill_until_full(s);
	cr_assert_eq(hb_stream_pause_reading(s), 1);
	/* The worker drains it all while io sleeps: exactly one RESUME. */
	for (; pushed > 0; pushed -= CHUNK)
		cr_assert_eq(hb_stream_body_read(s, buf, sizeof buf, 1), CHUNK);
	cr_assert_eq(drain_count(hub, HB_MSG_RESUME), 1);
	cr_assert_eq(read_nb(s, buf, sizeof buf), -EAGAIN);
	cr_assert_eq(drain_count(hub, 0), 0);
	release_both(s);
	hb_hub_free(hub);
}

/* Waits up to 2 s for a RESUME for io 0. Returns 1 if one came. */
static int wait_resume(hb_hub_t *hub)
{
	hb_msg_t m;
	uint64_t end = now_ms() + 2000;

	while (now_ms() < end) {
		if (hb_hub_io_pop(hub, 0, &m) == 0) {
			cr_assert_eq(m.type, HB_MSG_RESUME);
			return 1;
		}
		sched_yield();
	}
	return 0;
}

/* Body bytes for the race test: byte i of the body is pattern[i % 251]. */
#define PAT_PERIOD 251u
#define PAT_LEN (PAT_PERIOD + 64u * 1024u)

static unsigned char pattern[PAT_LEN];

static void init_pattern(void)
{
	for (size_t i = 0; i < PAT_LEN; i++)
		pattern[i] = (unsigned char)(i % PAT_PERIOD * 7 + 3);
}

typedef struct flow_reader {
	hb_stream_t *s;
	uint64_t bytes;
	uint64_t mismatches;
	int64_t last_rc;
} flow_reader_t;

static void *flow_reader_main(void *arg)
{
	flow_reader_t *fr = arg;
	static unsigned char buf[40000]; /* not a chunk multiple: reads straddle chunk edges */
	int64_t n;

	for (unsigned k = 1; (n = hb_stream_body_read(fr->s, buf, sizeof buf, 1)) > 0; k++) {
		fr->mismatches += memcmp(buf, pattern + fr->bytes % PAT_PERIOD, (size_t)n) != 0;
		fr->bytes += (uint64_t)n;
		if (k % 16 == 0)
			usleep(1000); /* a slow app now and then, so that the body fills up */
	}
	fr->last_rc = n;
	return NULL;
}

/* A real worker thread racing the io thread's pause: every pause that returns 1
 * gets exactly one RESUME (none is lost, none is extra), and the body arrives
 * intact and in order. */
Test(stream, pause_resume_race_with_live_reader, .timeout = 60)
{
	hb_hub_t *hub = hb_hub_new(1, 1);
	hb_stream_t *s = new_stream(hub, HB_REQ_HAS_BODY);
	flow_reader_t fr = {.s = s};
	pthread_t th;
	const uint64_t total = 16u * 1024u * 1024u;
	uint64_t off = 0;
	int pauses = 0, not_paused = 0;

	init_pattern();
	cr_assert_eq(pthread_create(&th, NULL, flow_reader_main, &fr), 0);
	while (off < total) {
		size_t len = 4096 + (size_t)(off / 4096 % 15) * 4096; /* 4..60 KiB */
		if (len > total - off)
			len = (size_t)(total - off);
		hb_chunk_t *c = malloc(sizeof(*c) + len);
		cr_assert_not_null(c);
		c->len = len;
		memcpy(c->data, pattern + off % PAT_PERIOD, len);
		cr_assert_eq(hb_stream_body_push_chunk(s, c), 0);
		off += len;
		if (!hb_stream_body_full(s))
			continue;
		/* A slow io thread sometimes: lets the reader drain before the pause flag
		 * is set. */
		if ((pauses + not_paused) % 3 == 1)
			usleep(300);
		else if ((pauses + not_paused) % 3 == 2)
			sched_yield();
		if (hb_stream_pause_reading(s)) {
			pauses++;
			cr_assert(wait_resume(hub), "RESUME lost after pause %d", pauses);
		} else {
			not_paused++;
		}
	}
	hb_stream_signal(s, HB_ST_BODY_EOF);
	pthread_join(th, NULL);
	cr_assert_eq(fr.last_rc, 0);
	cr_assert_eq(fr.bytes, total);
	cr_assert_eq(fr.mismatches, 0);
	cr_assert_eq(drain_count(hub, 0), 0, "a RESUME nobody waited for");
	cr_assert_gt(pauses + not_paused, 0);
	cr_log_info("flow race: %d pauses, %d pause calls answered 0", pauses, not_paused);
	release_both(s);
	hb_hub_free(hub);
}

/* ---- sending
 * ----------------------------------------------------------------------------
 */

#define SEND_TOTAL (4u * 1024u * 1024u)

typedef struct sender {
	hb_stream_t *s;
	const unsigned char *data;
	size_t len;
	_Atomic int rc;
	_Atomic int done;
	_Atomic uint64_t done_ms;
} sender_t;

static void *sender_main(void *arg)
{
	sender_t *sd = arg;
	int rc = hb_stream_send_body(sd->s, sd->data, sd->len);

	if (rc == 0)
		rc = hb_stream_end(sd->s, 0);
	atomic_store(&sd->done_ms, now_ms());
	atomic_store(&sd->rc, rc);
	atomic_store(&sd->done, 1);
	return NULL;
}

/* True once the sender sits in its send wait (over the high watermark, flagged
 * waiting). */
static int sender_blocked(hb_stream_t *s)
{
	return atomic_load(&s->waiting) && atomic_load(&s->out_pending) > HB_STREAM_OUT_HIGH;
}

/* The test thread's side of a send: body chunks taken from the queue but not
 * yet "written". */
typedef struct io_out {
	unsigned char *got;
	uint64_t recv;
	hb_chunk_t *held[64];
	int nheld;
	uint64_t held_bytes;
	int ended;
} io_out_t;

/* Takes one message for io 0. Returns 1 if there was one. */
static int io_take(hb_hub_t *hub, hb_stream_t *s, io_out_t *o)
{
	hb_msg_t m;

	if (hb_hub_io_pop(hub, 0, &m) < 0)
		return 0;
	cr_assert_eq(m.stream, s);
	if (m.type == HB_MSG_END) {
		o->ended = 1;
		return 1;
	}
	cr_assert_eq(m.type, HB_MSG_BODY);
	hb_chunk_t *c = m.ptr;
	cr_assert_eq(c->len, m.len);
	cr_assert_leq(o->recv + c->len, SEND_TOTAL);
	cr_assert_lt(o->nheld, 64);
	memcpy(o->got + o->recv, c->data, c->len);
	o->recv += c->len;
	o->held_bytes += c->len;
	o->held[o->nheld++] = c;
	return 1;
}

/* "Writes" everything held. */
static void io_write_all(hb_stream_t *s, io_out_t *o)
{
	for (int i = 0; i < o->nheld; i++) {
		hb_stream_out_done(s, o->held[i]->len);
		free(o->held[i]);
	}
	o->nheld = 0;
	o->held_bytes = 0;
}

Test(stream, send_body_backpressure, .timeout = 60)
{
	hb_hub_t *hub = hb_hub_new(1, 1);
	hb_stream_t *s = new_stream(hub, 0);
	unsigned char *data = malloc(SEND_TOTAL);
	io_out_t o = {.got = malloc(SEND_TOTAL)};
	int blocks = 0;
	uint64_t max_pending = 0, worst_resume = 0;
	pthread_t th;

	cr_assert(data && o.got);
	for (size_t i = 0; i < SEND_TOTAL; i++)
		data[i] = (unsigned char)(i * 131 + (i >> 12));
	sender_t sd = {.s = s, .data = data, .len = SEND_TOTAL, .rc = 1};
	cr_assert_eq(pthread_create(&th, NULL, sender_main, &sd), 0);
	while (!o.ended) {
		while (io_take(hub, s, &o))
			;
		uint64_t p = atomic_load(&s->out_pending);
		max_pending = p > max_pending ? p : max_pending;
		if (o.ended || !sender_blocked(s) || o.held_bytes != p) {
			sched_yield();
			continue;
		}
		/* The worker is parked over HIGH: it must stay parked until we write. */
		blocks++;
		usleep(30 * 1000);
		cr_assert_not(atomic_load(&sd.done));
		cr_assert_not(io_take(hub, s, &o), "sender posted while over HIGH");
		/* The out_done that crosses LOW must wake it at once (not after the 1 s
		 * futex timeout). */
		uint64_t t0 = now_ms();
		io_write_all(s, &o);
		while (!io_take(hub, s, &o)) {
			cr_assert_lt(now_ms() - t0, 2000, "sender never resumed");
			sched_yield();
		}
		uint64_t dt = now_ms() - t0;
		worst_resume = dt > worst_resume ? dt : worst_resume;
	}
	pthread_join(th, NULL);
	io_write_all(s, &o);
	cr_assert_eq(atomic_load(&sd.rc), 0);
	cr_assert_eq(o.recv, SEND_TOTAL);
	cr_assert_eq(memcmp(o.got, data, SEND_TOTAL), 0);
	cr_assert_geq(blocks, 4, "the sender blocked only %d times", blocks);
	/* The sender checks before each piece, so it may overshoot HIGH by at most
	 * one piece. */
	cr_assert_leq(max_pending, HB_STREAM_OUT_HIGH + 256u * 1024u);
	cr_assert_lt(worst_resume, 700, "sender resumed %llu ms after out_done",
		     (unsigned long long)worst_resume);
	cr_assert_eq(atomic_load(&s->out_pending), 0);
	cr_assert(atomic_load(&s->state) & HB_ST_ENDED);
	free(data);
	free(o.got);
	release_both(s);
	hb_hub_free(hub);
}

Test(stream, blocked_sender_woken_by_client_gone)
{
	hb_hub_t *hub = hb_hub_new(1, 1);
	hb_stream_t *s = new_stream(hub, 0);
	unsigned char *data = calloc(1, SEND_TOTAL);
	pthread_t th;

	cr_assert_not_null(data);
	sender_t sd = {.s = s, .data = data, .len = SEND_TOTAL, .rc = 1};
	cr_assert_eq(pthread_create(&th, NULL, sender_main, &sd), 0);
	while (!sender_blocked(s))
		sched_yield();
	usleep(20 * 1000);
	cr_assert_not(atomic_load(&sd.done));
	uint64_t t0 = now_ms();
	hb_stream_signal(s, HB_ST_CLIENT_GONE);
	pthread_join(th, NULL);
	cr_assert_eq(atomic_load(&sd.rc), -ECONNRESET);
	cr_assert_lt(atomic_load(&sd.done_ms) - t0, 500);
	cr_assert_eq(drain_count(hub, HB_MSG_END), 0, "no END from a failed send");
	free(data);
	release_both(s);
	hb_hub_free(hub);
}

Test(stream, sends_after_client_gone)
{
	hb_hub_t *hub = hb_hub_new(1, 1);
	hb_stream_t *s = new_stream(hub, 0);
	int fds[2];

	hb_stream_signal(s, HB_ST_CLIENT_GONE);
	cr_assert_eq(hb_stream_send_body(s, "abc", 3), -ECONNRESET);
	hb_response_t *resp = calloc(1, sizeof(*resp));
	cr_assert_eq(hb_stream_send_head(s, resp), -ECONNRESET); /* resp freed (ASan checks) */
	cr_assert_eq(pipe(fds), 0);
	cr_assert_eq(hb_stream_send_file(s, fds[0], 0, -1), -ECONNRESET);
	cr_assert_eq(fcntl(fds[0], F_GETFD), -1, "fd closed on error");
	close(fds[1]);
	cr_assert_eq(drain_count(hub, 0), 0);
	cr_assert_eq(hb_stream_end(s, HB_END_ABORT), 0, "END still goes out");
	cr_assert_eq(drain_count(hub, HB_MSG_END), 1);
	release_both(s);
	hb_hub_free(hub);
}

Test(stream, head_body_file_end_messages)
{
	hb_hub_t *hub = hb_hub_new(1, 1);
	hb_stream_t *s = new_stream(hub, 0);
	hb_msg_t m;
	int fds[2];

	hb_response_t *resp = calloc(1, sizeof(*resp));
	resp->status = 200;
	cr_assert_eq(hb_stream_send_head(s, resp), 0);
	cr_assert_eq(hb_stream_send_head(s, calloc(1, sizeof(*resp))), -EALREADY);
	cr_assert_eq(hb_stream_send_body(s, "hello", 5), 0);
	cr_assert_eq(hb_stream_send_body(s, "", 0), 0);
	cr_assert_eq(pipe(fds), 0);
	cr_assert_eq(hb_stream_send_file(s, fds[0], 10, 20), 0);
	cr_assert_eq(hb_stream_end(s, 0), 0);
	cr_assert_eq(hb_stream_end(s, 0), -EALREADY);

	cr_assert_eq(hb_hub_io_pop(hub, 0, &m), 0);
	cr_assert_eq(m.type, HB_MSG_HEAD);
	cr_assert_eq(((hb_response_t *)m.ptr)->status, 200);
	free(m.ptr);
	cr_assert_eq(hb_hub_io_pop(hub, 0, &m), 0);
	cr_assert_eq(m.type, HB_MSG_BODY);
	cr_assert_eq(m.len, 5);
	cr_assert_arr_eq(((hb_chunk_t *)m.ptr)->data, "hello", 5);
	cr_assert_eq(atomic_load(&s->out_pending), 5);
	hb_stream_out_done(s, m.len);
	free(m.ptr);
	cr_assert_eq(hb_hub_io_pop(hub, 0, &m), 0);
	cr_assert_eq(m.type, HB_MSG_FILE);
	hb_file_chunk_t *f = m.ptr;
	cr_assert_eq(f->fd, fds[0]);
	cr_assert_eq(f->offset, 10);
	cr_assert_eq(f->len, 20);
	close(f->fd);
	free(f);
	close(fds[1]);
	cr_assert_eq(hb_hub_io_pop(hub, 0, &m), 0);
	cr_assert_eq(m.type, HB_MSG_END);
	cr_assert_eq(hb_hub_io_pop(hub, 0, &m), -EAGAIN);
	cr_assert_eq(atomic_load(&s->out_pending), 0);
	release_both(s);
	hb_hub_free(hub);
}

Test(stream, interim_before_head_trailers_between_head_and_end)
{
	hb_hub_t *hub = hb_hub_new(1, 1);
	hb_stream_t *s = new_stream(hub, 0);
	hb_msg_t m;

	cr_assert_eq(hb_stream_send_trailers(s, fields_of(0)), -EALREADY,
		     "no trailers before a head");
	cr_assert_eq(hb_stream_send_interim(s, fields_of(103)), 0);
	cr_assert_eq(hb_stream_send_head(s, fields_of(200)), 0);
	cr_assert_eq(hb_stream_send_interim(s, fields_of(103)), -EALREADY, "too late for a hint");
	cr_assert_eq(hb_stream_send_trailers(s, fields_of(0)), 0);
	cr_assert_eq(hb_stream_end(s, 0), 0);
	cr_assert_eq(hb_stream_send_trailers(s, fields_of(0)), -EALREADY, "nothing after END");
	static const uint32_t want[] = {HB_MSG_INTERIM, HB_MSG_HEAD, HB_MSG_TRAILERS, HB_MSG_END};
	for (size_t i = 0; i < 4; i++) {
		cr_assert_eq(hb_hub_io_pop(hub, 0, &m), 0);
		cr_assert_eq(m.type, want[i], "message %zu", i);
		if (i == 0)
			cr_assert_eq(((hb_response_t *)m.ptr)->status, 103);
		free(m.ptr);
	}
	cr_assert_eq(hb_hub_io_pop(hub, 0, &m), -EAGAIN);
	release_both(s);
	hb_hub_free(hub);
}

Test(stream, interim_after_client_gone_is_refused)
{
	hb_hub_t *hub = hb_hub_new(1, 1);
	hb_stream_t *s = new_stream(hub, 0);

	hb_stream_signal(s, HB_ST_CLIENT_GONE);
	cr_assert_eq(hb_stream_send_interim(s, fields_of(103)), -ECONNRESET);
	cr_assert_eq(drain_count(hub, 0), 0);
	release_both(s);
	hb_hub_free(hub);
}

Test(stream, promise_needs_the_connections_consent)
{
	hb_hub_t *hub = hb_hub_new(1, 1);
	hb_stream_t *no = new_stream(hub, 0), *yes = new_stream(hub, HB_REQ_CAN_PROMISE);
	hb_msg_t m;

	cr_assert_eq(hb_stream_promise(no, "/a.css", 6, fields_of(0)), -EPERM);
	cr_assert_eq(hb_hub_io_pop(hub, 0, &m), -EAGAIN);
	cr_assert_eq(hb_stream_promise(yes, "/a.css?v=2", 10, fields_of(0)), 0);
	cr_assert_eq(hb_stream_promise(yes, "/b.js", 5, NULL), 0);
	cr_assert_eq(hb_hub_io_pop(hub, 0, &m), 0);
	cr_assert_eq(m.type, HB_MSG_PROMISE);
	hb_promise_t *p = m.ptr;
	cr_assert_eq(p->target_len, 10);
	cr_assert_str_eq(p->target, "/a.css?v=2");
	cr_assert_not_null(p->fields);
	hb_promise_free(p);
	cr_assert_eq(hb_hub_io_pop(hub, 0, &m), 0);
	cr_assert_null(((hb_promise_t *)m.ptr)->fields);
	cr_assert_str_eq(((hb_promise_t *)m.ptr)->target, "/b.js");
	hb_promise_free(m.ptr);
	cr_assert_eq(hb_stream_end(yes, 0), 0);
	cr_assert_eq(hb_stream_promise(yes, "/c", 2, fields_of(0)), -EPERM, "not after END");
	drain_count(hub, 0);
	release_both(no);
	release_both(yes);
	hb_hub_free(hub);
}

/* Bytes the sanitizer allocator holds, or (size_t)-1 when not built with one
 * (jemalloc or glibc: no portable figure). Used to see that a release frees
 * everything it owns. */
static size_t heap_in_use(void)
{
#if HB_TEST_SANITIZED
	return __sanitizer_get_current_allocated_bytes();
#else
	return (size_t)-1;
#endif
}

/* ---- ownership
 * -------------------------------------------------------------------------- */

Test(stream, two_references)
{
	hb_hub_t *hub = hb_hub_new(1, 1);
	hb_stream_t *s = new_stream(hub, HB_REQ_HAS_BODY);

	cr_assert_eq(atomic_load(&s->refs), 2);
	cr_assert_eq(s->io_idx, 0);
	cr_assert_eq(s->hub, hub);
	hb_stream_release(s);
	/* Still alive: ASan would flag this read after a premature free. */
	cr_assert_eq(atomic_load(&s->refs), 1);
	cr_assert_eq(hb_stream_body_push(s, "x", 1), 0);
	hb_stream_release(s);
	hb_stream_release(NULL);
	hb_hub_free(hub);
}

Test(stream, release_frees_leftover_chunks)
{
	hb_hub_t *hub = hb_hub_new(1, 1);
	size_t before = heap_in_use();
	hb_stream_t *s = new_stream(hub, HB_REQ_HAS_BODY);
	char buf[4];

	for (int i = 0; i < 10; i++)
		cr_assert_eq(hb_stream_body_push(s, "0123456789", 10), 0);
	cr_assert_eq(read_nb(s, buf, 4), 4); /* one chunk half-read in s->cur */
	hb_stream_release(s);		     /* io drops its reference first */
	hb_stream_release(s);		     /* the worker's frees cur, 9 queued chunks, req */
	if (before != (size_t)-1)
		cr_assert_eq(heap_in_use(), before, "stream, request or chunks leaked");
	hb_hub_free(hub);
}

Test(stream, push_when_body_slots_full)
{
	hb_hub_t *hub = hb_hub_new(1, 1);
	hb_stream_t *s = new_stream(hub, HB_REQ_HAS_BODY);
	char buf[8];

	for (unsigned i = 0; i < HB_STREAM_BODY_SLOTS; i++)
		cr_assert_eq(hb_stream_body_push(s, "a", 1), 0);
	cr_assert_eq(hb_stream_body_push(s, "b", 1), -EAGAIN);
	hb_chunk_t *c = malloc(sizeof(*c) + 1);
	c->len = 1;
	c->data[0] = 'c';
	cr_assert_eq(hb_stream_body_push_chunk(s, c), -EAGAIN); /* caller keeps c */
	cr_assert_eq(atomic_load(&s->body_queued), HB_STREAM_BODY_SLOTS);
	cr_assert_eq(read_nb(s, buf, 1), 1);
	cr_assert_eq(hb_stream_body_push_chunk(s, c), 0);
	release_both(s);
	hb_hub_free(hub);
}

/* A channel (WebSocket) lives as long as its connection: its queue is the small one, and a
 * full queue refuses (the connection then holds the message and pauses reading). */
Test(stream, channel_queue_is_small)
{
	hb_hub_t *hub = hb_hub_new(1, 1);
	hb_stream_t *s = new_stream(hub, HB_REQ_CHANNEL);
	hb_stream_t *b = new_stream(hub, HB_REQ_HAS_BODY);

	cr_assert_eq(b->body.mask + 1, HB_STREAM_BODY_SLOTS);
	cr_assert_eq(s->body.mask + 1, HB_STREAM_CHANNEL_SLOTS);
	cr_assert_lt(HB_STREAM_CHANNEL_SLOTS, HB_STREAM_BODY_SLOTS);
	for (unsigned i = 0; i < HB_STREAM_CHANNEL_SLOTS; i++) {
		hb_chunk_t *c = malloc(sizeof(*c) + 1);
		c->len = 1;
		c->data[0] = 'm';
		cr_assert_eq(hb_stream_msg_push(s, HB_MSGK_TEXT, c), 0);
	}
	hb_chunk_t *c = malloc(sizeof(*c) + 1);
	c->len = 1;
	c->data[0] = 'x';
	cr_assert_eq(hb_stream_msg_push(s, HB_MSGK_TEXT, c), -EAGAIN, "the queue is full");
	free(c);
	release_both(s);
	release_both(b);
	hb_hub_free(hub);
}

/* ---- event-loop (async) streams: news goes to the worker's ready list
 * -------------------- */

static hb_stream_t *take_one_ready(hb_hub_t *hub)
{
	hb_stream_t *l = hb_hub_worker_take_ready(hub, 0);

	if (l) {
		cr_assert_null(l->ready_next, "one stream, one entry");
		atomic_store(&l->wake_pending, 0);
		hb_stream_release(l); /* the list's reference */
	}
	return l;
}

Test(stream, async_news_goes_to_ready_list)
{
	hb_hub_t *hub = hb_hub_new(1, 1);
	hb_stream_t *s = new_stream(hub, HB_REQ_HAS_BODY);
	char buf[8];

	s->async = 1;
	cr_assert_eq(hb_stream_body_push(s, "ab", 2), 0);
	cr_assert_eq(hb_stream_body_push(s, "cd", 2), 0); /* still pending: one entry */
	cr_assert_eq(atomic_load(&s->refs), 3);
	cr_assert_eq(take_one_ready(hub), s);
	cr_assert_eq(atomic_load(&s->refs), 2);
	cr_assert_eq(read_nb(s, buf, sizeof buf), 4);
	cr_assert_eq(read_nb(s, buf, sizeof buf), -EAGAIN);
	cr_assert_null(take_one_ready(hub));
	hb_stream_signal(s, HB_ST_BODY_EOF);
	cr_assert_eq(take_one_ready(hub), s);
	cr_assert_eq(read_nb(s, buf, sizeof buf), 0);
	release_both(s);
	hb_hub_free(hub);
}

Test(stream, async_send_nb_backpressure)
{
	hb_hub_t *hub = hb_hub_new(1, 1);
	hb_stream_t *s = new_stream(hub, 0);
	static char data[256u * 1024u];

	s->async = 1;
	int posted = 0;
	while (atomic_load(&s->out_pending) <= HB_STREAM_OUT_HIGH) {
		cr_assert_eq(hb_stream_send_body_nb(s, data, sizeof data), 0);
		posted++;
	}
	cr_assert_eq(hb_stream_send_body_nb(s, data, 1), -EAGAIN);
	cr_assert_eq(drain_count(hub, HB_MSG_BODY), posted, "-EAGAIN posted nothing");
	cr_assert_null(take_one_ready(hub));
	/* Written down to LOW: the worker learns through its ready list. */
	uint64_t pending = atomic_load(&s->out_pending);
	while (pending > HB_STREAM_OUT_LOW) {
		cr_assert_null(take_one_ready(hub), "ready before LOW");
		hb_stream_out_done(s, sizeof data);
		pending -= sizeof data;
	}
	cr_assert_eq(take_one_ready(hub), s);
	cr_assert_eq(hb_stream_send_body_nb(s, data, 10), 0);
	hb_stream_out_done(s, pending + 10);
	hb_stream_signal(s, HB_ST_CLIENT_GONE);
	cr_assert_eq(hb_stream_send_body_nb(s, data, 10), -ECONNRESET);
	cr_assert_eq(take_one_ready(hub), s);
	drain_count(hub, 0);
	release_both(s);
	hb_hub_free(hub);
}

/* ---- WebSocket messages
 * ----------------------------------------------------------------- */

Test(stream, channel_recv_whole_messages_in_order)
{
	hb_hub_t *hub = hb_hub_new(1, 1);
	hb_stream_t *s = new_stream(hub, HB_REQ_CHANNEL);
	hb_chunk_t *msg;
	uint32_t kind;

	cr_assert_eq(hb_stream_msg_recv(s, &msg, &kind, 0), -EAGAIN);
	cr_assert_eq(hb_stream_msg_push(s, HB_MSGK_TEXT, chunk_of("hello")), 0);
	cr_assert_eq(hb_stream_msg_push(s, HB_MSGK_BINARY, chunk_of("\x01\x02")), 0);
	cr_assert_eq(atomic_load(&s->body_queued), 7);
	cr_assert_eq(hb_stream_msg_recv(s, &msg, &kind, 1), 0);
	cr_assert_eq(kind, HB_MSGK_TEXT);
	cr_assert_eq(msg->len, 5);
	cr_assert_arr_eq(msg->data, "hello", 5);
	free(msg);
	/* Gone: what was queued is still delivered, then -ECONNRESET. */
	hb_stream_signal(s, HB_ST_CLIENT_GONE);
	cr_assert_eq(hb_stream_msg_recv(s, &msg, &kind, 1), 0);
	cr_assert_eq(kind, HB_MSGK_BINARY);
	free(msg);
	cr_assert_eq(hb_stream_msg_recv(s, &msg, &kind, 1), -ECONNRESET);
	cr_assert_eq(atomic_load(&s->body_queued), 0);
	release_both(s);
	hb_hub_free(hub);
}

Test(stream, channel_send_and_close_messages)
{
	hb_hub_t *hub = hb_hub_new(1, 1);
	hb_stream_t *s = new_stream(hub, HB_REQ_CHANNEL);
	char reason[200];
	hb_msg_t m;

	memset(reason, 'r', sizeof reason);
	cr_assert_eq(hb_stream_msg_send(s, HB_MSGK_TEXT, "hi", 2, 1), 0);
	cr_assert_eq(hb_stream_msg_send(s, HB_MSGK_BINARY, "xyz", 3, 0), 0);
	cr_assert_eq(hb_stream_msg_close(s, 1001, reason, sizeof reason), 0);
	cr_assert_eq(hb_hub_io_pop(hub, 0, &m), 0);
	cr_assert_eq(m.type, HB_MSG_MESSAGE);
	cr_assert_eq(m.aux, HB_MSGK_TEXT);
	cr_assert_eq(m.len, 2);
	free(m.ptr);
	cr_assert_eq(hb_hub_io_pop(hub, 0, &m), 0);
	cr_assert_eq(m.aux, HB_MSGK_BINARY);
	free(m.ptr);
	cr_assert_eq(atomic_load(&s->out_pending), 5);
	hb_stream_out_done(s, 5);
	cr_assert_eq(hb_hub_io_pop(hub, 0, &m), 0);
	cr_assert_eq(m.type, HB_MSG_CLOSE);
	cr_assert_eq(m.aux, 1001);
	/* whole: cutting it here could split a UTF-8 code point; the connection's protocol cuts
	 * it at a character boundary (hb_ws_write_close) */
	cr_assert_eq(((hb_chunk_t *)m.ptr)->len, sizeof reason, "the reason arrives whole");
	free(m.ptr);
	hb_stream_signal(s, HB_ST_CLIENT_GONE);
	cr_assert_eq(hb_stream_msg_send(s, HB_MSGK_TEXT, "hi", 2, 1), -ECONNRESET);
	cr_assert_eq(hb_stream_msg_send(s, HB_MSGK_TEXT, "hi", 2, 0), -ECONNRESET);
	cr_assert_eq(hb_stream_msg_close(s, 1000, NULL, 0), -ECONNRESET);
	cr_assert_eq(drain_count(hub, 0), 0);
	release_both(s);
	hb_hub_free(hub);
}
