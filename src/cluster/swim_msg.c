/* swim_msg.c: SWIM message encoding and checked decoding (see swim_msg.h). */
#include "cluster/swim_msg.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "cluster/swim.h"

/* tag + u32 length + bytes; an int64 is tag + 8; a tuple/list header tag + u32. */
#define STR_SIZE(s) (5 + (s).n)
#define INT_SIZE 9u
#define HDR_SIZE 5u

size_t hb_swim_msg_base_size(const hb_swim_msg_t *m)
{
	return 1 + HDR_SIZE + INT_SIZE + STR_SIZE(m->from_name) + STR_SIZE(m->from_addr) +
	       INT_SIZE + STR_SIZE(m->target_name) + STR_SIZE(m->target_addr) + HDR_SIZE;
}

size_t hb_swim_item_size(const hb_swim_item_t *it)
{
	return HDR_SIZE + INT_SIZE + STR_SIZE(it->name) + STR_SIZE(it->addr) + INT_SIZE +
	       STR_SIZE(it->from);
}

static void put_str(hb_cbuf_t *b, hb_swim_str_t s)
{
	hb_codec_put_str(b, s.n ? s.p : "", s.n);
}

int hb_swim_msg_begin(hb_cbuf_t *b, const hb_swim_msg_t *m, uint32_t nitems)
{
	hb_codec_begin(b);
	hb_codec_put_tuple_begin(b, 7);
	hb_codec_put_int64(b, m->type);
	put_str(b, m->from_name);
	put_str(b, m->from_addr);
	hb_codec_put_int64(b, m->seq);
	put_str(b, m->target_name);
	put_str(b, m->target_addr);
	return hb_codec_put_list_begin(b, nitems);
}

int hb_swim_msg_put_item(hb_cbuf_t *b, const hb_swim_item_t *it)
{
	hb_codec_put_tuple_begin(b, 5);
	hb_codec_put_int64(b, it->state);
	put_str(b, it->name);
	put_str(b, it->addr);
	hb_codec_put_int64(b, (int64_t)it->inc);
	put_str(b, it->from);
	return b->err;
}

static int get_int(hb_codec_reader_t *r, int64_t lo, int64_t hi, int64_t *v)
{
	hb_codec_tok_t t;
	if (hb_codec_next(r, &t) != 1 || t.type != HB_CODEC_INT || t.v.i < lo || t.v.i > hi)
		return -EBADMSG;
	*v = t.v.i;
	return 0;
}

/* A str of at most max bytes without NUL; empty only when allowed. */
static int get_str(hb_codec_reader_t *r, size_t max, int allow_empty, hb_swim_str_t *s)
{
	hb_codec_tok_t t;
	if (hb_codec_next(r, &t) != 1 || t.type != HB_CODEC_STR || t.len > max ||
	    (!t.len && !allow_empty) || memchr(t.data, 0, t.len))
		return -EBADMSG;
	s->p = (const char *)t.data;
	s->n = t.len;
	return 0;
}

static int get_item(hb_codec_reader_t *r, hb_swim_item_t *it)
{
	hb_codec_tok_t t;
	int64_t st, inc;
	if (hb_codec_next(r, &t) != 1 || t.type != HB_CODEC_TUPLE || t.v.n != 5)
		return -EBADMSG;
	if (get_int(r, HB_SWIM_ALIVE, HB_SWIM_LEFT, &st) < 0 ||
	    get_str(r, HB_SWIM_MAX_NAME, 0, &it->name) < 0 ||
	    get_str(r, HB_SWIM_MAX_ADDR, 0, &it->addr) < 0 || get_int(r, 0, INT64_MAX, &inc) < 0 ||
	    get_str(r, HB_SWIM_MAX_NAME, 1, &it->from) < 0)
		return -EBADMSG;
	it->state = (int)st;
	it->inc = (uint64_t)inc;
	return 0;
}

int hb_swim_msg_decode(const void *data, size_t len, hb_swim_msg_t *m)
{
	hb_codec_reader_t r;
	hb_codec_tok_t t;
	int64_t type, seq;
	memset(m, 0, sizeof *m);
	if (hb_codec_reader_init(&r, data, len, 3) < 0 || hb_codec_next(&r, &t) != 1 ||
	    t.type != HB_CODEC_TUPLE || t.v.n != 7)
		return -EBADMSG;
	if (get_int(&r, HB_SWIM_MSG_PING, HB_SWIM_MSG_PUSH_PULL_REPLY, &type) < 0 ||
	    get_str(&r, HB_SWIM_MAX_NAME, 0, &m->from_name) < 0 ||
	    get_str(&r, HB_SWIM_MAX_ADDR, 0, &m->from_addr) < 0 ||
	    get_int(&r, 0, UINT32_MAX, &seq) < 0 ||
	    get_str(&r, HB_SWIM_MAX_NAME, 1, &m->target_name) < 0 ||
	    get_str(&r, HB_SWIM_MAX_ADDR, 1, &m->target_addr) < 0)
		return -EBADMSG;
	m->type = (int)type;
	m->seq = (uint32_t)seq;
	if (hb_codec_next(&r, &t) != 1 || t.type != HB_CODEC_LIST)
		return -EBADMSG;
	m->nitems = t.v.n;
	if (m->nitems) {
		m->items = calloc(m->nitems, sizeof *m->items);
		if (!m->items)
			return -ENOMEM;
	}
	for (uint32_t i = 0; i < m->nitems; i++)
		if (get_item(&r, &m->items[i]) < 0)
			goto bad;
	if (hb_codec_next(&r, &t) != 0)
		goto bad;
	return 0;
bad:
	free(m->items);
	m->items = NULL;
	return -EBADMSG;
}
