/* test_frame.c: cluster link framing: split feeds, fragments, limits, hostile headers, the
 * sender's round robin and lanes. */
#include "cluster/frame.h"
#include "core/codec.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static uint64_t rnd(uint64_t *s)
{
	uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

/* A codec bytes value of n payload bytes filled with a pattern; caller frees b. */
static void value(hb_cbuf_t *b, size_t n, uint8_t seed)
{
	uint8_t *p = malloc(n ? n : 1);
	for (size_t i = 0; i < n; i++)
		p[i] = (uint8_t)(seed + i * 7);
	hb_cbuf_init(b, NULL, 0);
	hb_codec_begin(b);
	hb_codec_put_bytes(b, p, n);
	free(p);
	cr_assert_eq(b->err, 0);
}

/* Feeds buf in pieces of at most step bytes (0: random 1..64) and records messages. */
typedef struct got {
	int n;
	uint8_t type[64];
	uint32_t stream[64];
	size_t len[64];
	uint8_t *data[64];
	size_t at[64]; /* input offset at which the message completed */
} got_t;

static int feed_all(hb_frame_parser_t *p, const uint8_t *buf, size_t len, size_t step,
		    uint64_t *seed, got_t *g, const char **why)
{
	size_t off = 0;
	while (off < len) {
		size_t n = step ? step : 1 + rnd(seed) % 64;
		if (n > len - off)
			n = len - off;
		size_t piece_off = 0;
		while (piece_off < n) {
			hb_frame_msg_t m;
			size_t used;
			int rc = hb_frame_feed(p, buf + off + piece_off, n - piece_off, &used, &m,
					       why);
			if (rc < 0)
				return rc;
			piece_off += used;
			if (rc == 1) {
				cr_assert_lt(g->n, 64);
				g->type[g->n] = m.type;
				g->stream[g->n] = m.stream;
				g->len[g->n] = m.len;
				g->data[g->n] = malloc(m.len ? m.len : 1);
				memcpy(g->data[g->n], m.data, m.len);
				g->at[g->n] = off + piece_off;
				g->n++;
			} else {
				cr_assert_eq(piece_off, n, "a 0 consumes everything");
			}
		}
		off += n;
	}
	return 0;
}

static void got_free(got_t *g)
{
	for (int i = 0; i < g->n; i++)
		free(g->data[i]);
}

static size_t drain(hb_frame_out_t *q, uint8_t **out)
{
	size_t cap = 1 << 16, len = 0;
	*out = malloc(cap);
	for (;;) {
		if (cap - len < HB_FRAME_HEADER_SIZE + HB_FRAME_DEFAULT_CHUNK) {
			cap *= 2;
			*out = realloc(*out, cap);
		}
		size_t n = hb_frame_out_fill(q, *out + len, cap - len);
		if (!n)
			break;
		len += n;
	}
	return len;
}

Test(frame, round_trip_any_split)
{
	static const size_t sizes[] = {0, 1, 100, 65536, 65537, 300000};
	uint64_t seed = 42;
	for (size_t step = 0; step <= 13; step += 13) {
		hb_frame_out_t *q = hb_frame_out_new(0);
		hb_cbuf_t vals[6];
		for (int i = 0; i < 6; i++) {
			value(&vals[i], sizes[i], (uint8_t)i);
			cr_assert_eq(hb_frame_out_push(q, HB_FRAME_CALL, (uint32_t)i + 1, 0,
						       vals[i].data, vals[i].len),
				     0);
		}
		uint8_t *wire;
		size_t len = drain(q, &wire);
		cr_assert_eq(hb_frame_out_count(q), 0);
		hb_frame_parser_t *p = hb_frame_parser_new(NULL);
		got_t g = {0};
		const char *why = NULL;
		cr_assert_eq(feed_all(p, wire, len, step, &seed, &g, &why), 0, "%s", why);
		cr_assert_eq(g.n, 6);
		for (int i = 0; i < 6; i++) {
			int k = (int)g.stream[i] - 1;
			cr_assert_eq(g.type[i], HB_FRAME_CALL);
			cr_assert_eq(g.len[i], vals[k].len);
			cr_assert_arr_eq(g.data[i], vals[k].data, vals[k].len);
		}
		cr_assert_eq(hb_frame_parser_partial(p), 0);
		got_free(&g);
		for (int i = 0; i < 6; i++)
			hb_cbuf_free(&vals[i]);
		free(wire);
		hb_frame_parser_free(p);
		hb_frame_out_free(q);
	}
}

Test(frame, whole_frame_is_not_copied)
{
	hb_cbuf_t v;
	value(&v, 10, 1);
	uint8_t buf[64];
	hb_frame_header_encode(buf, HB_FRAME_PUBLISH, 0, 0, (uint32_t)v.len);
	memcpy(buf + HB_FRAME_HEADER_SIZE, v.data, v.len);
	hb_frame_parser_t *p = hb_frame_parser_new(NULL);
	hb_frame_msg_t m;
	size_t used;
	const char *why;
	cr_assert_eq(hb_frame_feed(p, buf, HB_FRAME_HEADER_SIZE + v.len, &used, &m, &why), 1);
	cr_assert_eq(used, HB_FRAME_HEADER_SIZE + v.len);
	cr_assert_eq(m.data, buf + HB_FRAME_HEADER_SIZE);
	cr_assert_eq(m.type, HB_FRAME_PUBLISH);
	hb_frame_parser_free(p);
	hb_cbuf_free(&v);
}

/* Feeds one header (and payload) and expects err; then the parser stays failed. */
static void expect_reject(const hb_frame_limits_t *lim, const uint8_t *buf, size_t len, int err,
			  const char *why_has)
{
	hb_frame_parser_t *p = hb_frame_parser_new(lim);
	got_t g = {0};
	const char *why = NULL;
	uint64_t seed = 1;
	cr_assert_eq(feed_all(p, buf, len, len, &seed, &g, &why), err);
	cr_assert_not_null(why);
	cr_assert(strstr(why, why_has), "%s", why);
	hb_frame_msg_t m;
	size_t used;
	const char *why2 = NULL;
	uint8_t ok[HB_FRAME_HEADER_SIZE + 2] = {0};
	hb_frame_header_encode(ok, HB_FRAME_CAST, 0, 0, 2);
	ok[HB_FRAME_HEADER_SIZE] = HB_CODEC_VERSION;
	cr_assert_eq(hb_frame_feed(p, ok, sizeof ok, &used, &m, &why2), err, "sticky");
	cr_assert_eq(why2, why);
	got_free(&g);
	hb_frame_parser_free(p);
}

Test(frame, rejects_oversized_and_garbage)
{
	hb_frame_limits_t lim = {.max_frame = 1000, .max_message = 3000, .max_streams = 2};
	uint8_t b[4096] = {0};
	hb_frame_header_encode(b, HB_FRAME_CALL, 0, 1, 1001);
	expect_reject(&lim, b, HB_FRAME_HEADER_SIZE, -EMSGSIZE, "max_frame_size");
	hb_frame_header_encode(b, 0, 0, 1, 1);
	expect_reject(&lim, b, HB_FRAME_HEADER_SIZE, -EBADMSG, "type");
	hb_frame_header_encode(b, HB_FRAME_TYPE_MAX + 1, 0, 1, 1);
	expect_reject(&lim, b, HB_FRAME_HEADER_SIZE, -EBADMSG, "type");
	hb_frame_header_encode(b, HB_FRAME_CALL, 0x80, 1, 1);
	expect_reject(&lim, b, HB_FRAME_HEADER_SIZE, -EBADMSG, "flags");
	hb_frame_header_encode(b, HB_FRAME_CALL, 0, 1, 1);
	b[7] = 1;
	expect_reject(&lim, b, HB_FRAME_HEADER_SIZE, -EBADMSG, "reserved");
	hb_frame_header_encode(b, HB_FRAME_CALL, HB_FRAME_F_MORE, 0, 5);
	expect_reject(&lim, b, HB_FRAME_HEADER_SIZE, -EBADMSG, "stream id");
	hb_frame_header_encode(b, HB_FRAME_CALL, HB_FRAME_F_MORE, 3, 0);
	expect_reject(&lim, b, HB_FRAME_HEADER_SIZE, -EBADMSG, "empty");
	/* a payload that is not a codec value (version byte 0x02) */
	hb_frame_header_encode(b, HB_FRAME_CALL, 0, 1, 2);
	b[HB_FRAME_HEADER_SIZE] = 2;
	expect_reject(&lim, b, HB_FRAME_HEADER_SIZE + 2, -EBADMSG, "codec");
	/* HTTP sent to the cluster port */
	const char *http = "GET / HTTP/1.1\r\nHost: x\r\n\r\n";
	expect_reject(&lim, (const uint8_t *)http, strlen(http), -EBADMSG, "reserved");
}

Test(frame, reassembly_is_bounded)
{
	hb_frame_limits_t lim = {.max_frame = 1000, .max_message = 2500, .max_streams = 2};
	uint8_t b[4096] = {0};
	size_t off = 0;
	/* a fragment changes type mid-message */
	hb_frame_header_encode(b, HB_FRAME_CALL, HB_FRAME_F_MORE, 7, 10);
	hb_frame_header_encode(b + 22, HB_FRAME_CAST, 0, 7, 10);
	expect_reject(&lim, b, 44, -EBADMSG, "type differs");
	/* three messages in reassembly at once, two allowed */
	memset(b, 0, sizeof b);
	for (uint32_t s = 1; s <= 3; s++, off += 22)
		hb_frame_header_encode(b + off, HB_FRAME_CALL, HB_FRAME_F_MORE, s, 10);
	expect_reject(&lim, b, off, -ENOBUFS, "too many");
	/* 3 x 1000 bytes of one message > 2500 */
	memset(b, 0, sizeof b);
	off = 0;
	for (int i = 0; i < 3; i++, off += HB_FRAME_HEADER_SIZE + 1000)
		hb_frame_header_encode(b + off, HB_FRAME_CALL, HB_FRAME_F_MORE, 9, 1000);
	expect_reject(&lim, b, off, -EMSGSIZE, "reassembly limit");
}

/* A small call queued after a 4 MiB value leaves after one chunk of it, not after all of it. */
Test(frame, small_message_not_stalled_behind_large)
{
	hb_frame_out_t *q = hb_frame_out_new(0);
	hb_cbuf_t big, small;
	value(&big, 4u << 20, 3);
	value(&small, 20, 4);
	cr_assert_eq(hb_frame_out_push(q, HB_FRAME_CALL, 1, 0, big.data, big.len), 0);
	cr_assert_eq(hb_frame_out_push(q, HB_FRAME_CALL, 2, 0, small.data, small.len), 0);
	cr_assert_eq(hb_frame_out_count(q), 2);
	cr_assert_eq(hb_frame_out_bytes(q), big.len + small.len);
	uint8_t *wire;
	size_t len = drain(q, &wire);
	hb_frame_limits_t lim = {.max_frame = HB_FRAME_DEFAULT_CHUNK};
	hb_frame_parser_t *p = hb_frame_parser_new(&lim);
	got_t g = {0};
	const char *why = NULL;
	uint64_t seed = 5;
	cr_assert_eq(feed_all(p, wire, len, 4096, &seed, &g, &why), 0, "%s", why);
	cr_assert_eq(g.n, 2);
	cr_assert_eq(g.stream[0], 2);
	cr_assert_leq(g.at[0], 2 * (HB_FRAME_HEADER_SIZE + HB_FRAME_DEFAULT_CHUNK) + 4096);
	cr_assert_eq(g.len[1], big.len);
	cr_assert_arr_eq(g.data[1], big.data, big.len);
	got_free(&g);
	free(wire);
	hb_cbuf_free(&big);
	hb_cbuf_free(&small);
	hb_frame_parser_free(p);
	hb_frame_out_free(q);
}

Test(frame, lanes_keep_push_order)
{
	hb_frame_out_t *q = hb_frame_out_new(1024);
	hb_cbuf_t big, small;
	value(&big, 5000, 1);
	value(&small, 3, 2);
	/* lane 7: big then small must arrive in that order; lane 0 small overtakes */
	cr_assert_eq(hb_frame_out_push(q, HB_FRAME_PUBLISH, 10, 7, big.data, big.len), 0);
	cr_assert_eq(hb_frame_out_push(q, HB_FRAME_PUBLISH, 11, 7, small.data, small.len), 0);
	cr_assert_eq(hb_frame_out_push(q, HB_FRAME_CALL, 12, 0, small.data, small.len), 0);
	uint8_t *wire;
	size_t len = drain(q, &wire);
	hb_frame_parser_t *p = hb_frame_parser_new(NULL);
	got_t g = {0};
	const char *why = NULL;
	uint64_t seed = 9;
	cr_assert_eq(feed_all(p, wire, len, 0, &seed, &g, &why), 0, "%s", why);
	cr_assert_eq(g.n, 3);
	cr_assert_eq(g.stream[0], 12);
	cr_assert_eq(g.stream[1], 10);
	cr_assert_eq(g.stream[2], 11);
	got_free(&g);
	free(wire);
	hb_cbuf_free(&big);
	hb_cbuf_free(&small);
	hb_frame_parser_free(p);
	hb_frame_out_free(q);
}

Test(frame, sender_checks)
{
	hb_frame_out_t *q = hb_frame_out_new(100);
	uint8_t d[200] = {HB_CODEC_VERSION};
	cr_assert_eq(hb_frame_out_push(q, 0, 1, 0, d, 1), -EINVAL);
	cr_assert_eq(hb_frame_out_push(q, HB_FRAME_CALL, 0, 0, d, 200), -EINVAL);
	cr_assert_eq(hb_frame_out_push(q, HB_FRAME_CALL, 5, 0, d, 200), 0);
	cr_assert_eq(hb_frame_out_push(q, HB_FRAME_CALL, 5, 3, d, 10), -EBUSY);
	/* a buffer too small for the next frame: nothing is written, nothing is lost */
	uint8_t out[HB_FRAME_HEADER_SIZE + 99];
	cr_assert_eq(hb_frame_out_fill(q, out, sizeof out), 0);
	cr_assert_eq(hb_frame_out_bytes(q), 200);
	uint8_t big[2 * (HB_FRAME_HEADER_SIZE + 100)];
	cr_assert_eq(hb_frame_out_fill(q, big, sizeof big), sizeof big);
	cr_assert_eq(hb_frame_out_count(q), 0);
	hb_frame_out_free(q);
}

Test(frame, drop_oldest_of_a_lane)
{
	hb_frame_out_t *q = hb_frame_out_new(1024);
	hb_cbuf_t big, s1, s2, s3;
	value(&big, 3000, 1);
	value(&s1, 3, 2);
	value(&s2, 4, 3);
	value(&s3, 5, 4);
	/* lane 1: big (partly sent below), s1, s2; lane 0: s3 */
	cr_assert_eq(hb_frame_out_push(q, HB_FRAME_PUBLISH, 1, 1, big.data, big.len), 0);
	cr_assert_eq(hb_frame_out_push(q, HB_FRAME_PUBLISH, 3, 1, s1.data, s1.len), 0);
	cr_assert_eq(hb_frame_out_push(q, HB_FRAME_PUBLISH, 5, 1, s2.data, s2.len), 0);
	cr_assert_eq(hb_frame_out_push(q, HB_FRAME_CALL, 7, 0, s3.data, s3.len), 0);
	cr_assert_eq(hb_frame_out_drop_oldest(q, 2), 0); /* no such lane */
	/* one chunk of big leaves: it is started, so the next one of its lane goes */
	uint8_t chunk[HB_FRAME_HEADER_SIZE + 1024];
	size_t first = hb_frame_out_fill(q, chunk, sizeof chunk);
	cr_assert_eq(first, sizeof chunk);
	cr_assert_eq(hb_frame_out_drop_oldest(q, 1), 1);
	cr_assert_eq(hb_frame_out_count(q), 3);
	uint8_t *wire;
	size_t len = drain(q, &wire);
	uint8_t *all = malloc(first + len);
	memcpy(all, chunk, first);
	memcpy(all + first, wire, len);
	hb_frame_parser_t *p = hb_frame_parser_new(NULL);
	got_t g = {0};
	const char *why = NULL;
	uint64_t seed = 3;
	cr_assert_eq(feed_all(p, all, first + len, 0, &seed, &g, &why), 0, "%s", why);
	cr_assert_eq(g.n, 3);
	cr_assert_eq(g.stream[0], 7); /* lane 0 went between big's chunks */
	cr_assert_eq(g.stream[1], 1);
	cr_assert_eq(g.stream[2], 5); /* s1 (stream 3) was dropped */
	got_free(&g);
	/* a lane whose head has not started loses its head */
	cr_assert_eq(hb_frame_out_push(q, HB_FRAME_PUBLISH, 9, 1, s1.data, s1.len), 0);
	cr_assert_eq(hb_frame_out_push(q, HB_FRAME_PUBLISH, 11, 1, s2.data, s2.len), 0);
	cr_assert_eq(hb_frame_out_drop_oldest(q, 1), 1);
	cr_assert_eq(hb_frame_out_bytes(q), s2.len);
	free(wire);
	len = drain(q, &wire);
	g = (got_t){0};
	cr_assert_eq(feed_all(p, wire, len, 0, &seed, &g, &why), 0, "%s", why);
	cr_assert_eq(g.n, 1);
	cr_assert_eq(g.stream[0], 11);
	cr_assert_eq(hb_frame_out_drop_oldest(q, 1), 0); /* empty */
	got_free(&g);
	free(wire);
	free(all);
	hb_cbuf_free(&big);
	hb_cbuf_free(&s1);
	hb_cbuf_free(&s2);
	hb_cbuf_free(&s3);
	hb_frame_parser_free(p);
	hb_frame_out_free(q);
}

Test(frame, stream_ids_checked_against_long_messages_only)
{
	hb_frame_out_t *q = hb_frame_out_new(100);
	uint8_t d[300] = {HB_CODEC_VERSION};
	/* short messages may share an id (each is one frame, nothing to reassemble) ... */
	cr_assert_eq(hb_frame_out_push(q, HB_FRAME_PUBLISH, 3, 1, d, 10), 0);
	cr_assert_eq(hb_frame_out_push(q, HB_FRAME_PUBLISH, 3, 1, d, 10), 0);
	/* ... but a long one needs an id no queued message has, and then owns it */
	cr_assert_eq(hb_frame_out_push(q, HB_FRAME_CALL, 3, 0, d, 300), -EBUSY);
	cr_assert_eq(hb_frame_out_push(q, HB_FRAME_CALL, 9, 0, d, 300), 0);
	cr_assert_eq(hb_frame_out_push(q, HB_FRAME_CAST, 9, 0, d, 10), -EBUSY);
	/* once the long one left (or was dropped), its id is free again */
	uint8_t *wire;
	size_t len = drain(q, &wire);
	cr_assert_gt(len, 300);
	free(wire);
	cr_assert_eq(hb_frame_out_push(q, HB_FRAME_CAST, 9, 0, d, 10), 0);
	cr_assert_eq(hb_frame_out_push(q, HB_FRAME_PUBLISH, 11, 1, d, 300), 0);
	cr_assert_eq(hb_frame_out_push(q, HB_FRAME_PUBLISH, 13, 1, d, 300), 0);
	cr_assert_eq(hb_frame_out_drop_oldest(q, 1), 1); /* 11 had not started: dropped */
	cr_assert_eq(hb_frame_out_push(q, HB_FRAME_CALL, 11, 0, d, 300), 0);
	cr_assert_eq(hb_frame_out_push(q, HB_FRAME_CALL, 13, 0, d, 10), -EBUSY);
	hb_frame_out_free(q);
}

Test(frame, a_backed_up_queue_stays_linear)
{
	/* 200000 short messages queued behind each other: each push is O(long messages), not
	 * O(queue) (it was a scan of the whole queue per push) */
	hb_frame_out_t *q = hb_frame_out_new(0);
	uint8_t d[16] = {HB_CODEC_VERSION};
	struct timespec t0, t1;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (uint32_t i = 0; i < 200000; i++)
		cr_assert_eq(hb_frame_out_push(q, HB_FRAME_PUBLISH, 2 * i + 1, 1, d, sizeof d), 0);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	double secs = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
	cr_assert_eq(hb_frame_out_count(q), 200000);
	cr_assert_lt(secs, 5.0, "200000 pushes took %.2f s", secs); /* quadratic: minutes */
	hb_frame_out_free(q);
}
