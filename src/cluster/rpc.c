/* rpc.c: data-plane payloads, rpc_allow and the peers' tables (rpc.h). */
#include "cluster/rpc.h"

#include <errno.h>
#include <fnmatch.h>
#include <stdlib.h>
#include <string.h>

/* ---- payloads ---- */

int hb_rpc_encode_call(hb_cbuf_t *b, int kind, const char *name, size_t nlen, const void *args,
		       size_t alen)
{
	hb_codec_begin(b);
	hb_codec_put_list_begin(b, 3);
	hb_codec_put_int64(b, kind);
	hb_codec_put_str(b, name, nlen);
	return hb_codec_put_bytes(b, args, alen);
}

/* Reads one token of the wanted type. */
static int want(hb_codec_reader_t *r, hb_codec_type_t type, hb_codec_tok_t *t)
{
	return hb_codec_next(r, t) == 1 && t->type == type ? 0 : -EBADMSG;
}

/* Opens a payload that must be a list of n items. */
static int open_list(hb_codec_reader_t *r, const void *p, size_t len, uint32_t n)
{
	hb_codec_tok_t t;

	if (hb_codec_reader_init(r, p, len, 0) < 0 || want(r, HB_CODEC_LIST, &t) < 0 || t.v.n != n)
		return -EBADMSG;
	return 0;
}

int hb_rpc_decode_call(const void *p, size_t len, hb_rpc_call_t *out)
{
	hb_codec_reader_t r;
	hb_codec_tok_t k, n, a;

	if (open_list(&r, p, len, 3) < 0 || want(&r, HB_CODEC_INT, &k) < 0 ||
	    want(&r, HB_CODEC_STR, &n) < 0 || want(&r, HB_CODEC_BYTES, &a) < 0 ||
	    (k.v.i != HB_RPC_KIND_MFA && k.v.i != HB_RPC_KIND_NAME) || n.len == 0 ||
	    n.len > HB_FUNCS_MAX_NAME || memchr(n.data, 0, n.len))
		return -EBADMSG;
	out->kind = (int)k.v.i;
	out->name = (const char *)n.data;
	out->nlen = n.len;
	out->args = a.data;
	out->alen = a.len;
	return 0;
}

int hb_rpc_encode_reply(hb_cbuf_t *b, int status, const void *body, size_t blen)
{
	hb_codec_begin(b);
	hb_codec_put_list_begin(b, 2);
	hb_codec_put_int64(b, status);
	return hb_codec_put_bytes(b, body, blen);
}

int hb_rpc_decode_reply(const void *p, size_t len, int *status, const uint8_t **body, size_t *blen)
{
	hb_codec_reader_t r;
	hb_codec_tok_t s, bd;

	if (open_list(&r, p, len, 2) < 0 || want(&r, HB_CODEC_INT, &s) < 0 ||
	    want(&r, HB_CODEC_BYTES, &bd) < 0 || (s.v.i != HB_RPC_OK && s.v.i != HB_RPC_ERROR))
		return -EBADMSG;
	*status = (int)s.v.i;
	*body = bd.data;
	*blen = bd.len;
	return 0;
}

int hb_rpc_encode_publish(hb_cbuf_t *b, const void *topic, size_t tlen, const void *msg,
			  size_t mlen)
{
	hb_codec_begin(b);
	hb_codec_put_list_begin(b, 2);
	hb_codec_put_str(b, topic, tlen);
	return hb_codec_put_bytes(b, msg, mlen);
}

int hb_rpc_decode_publish(const void *p, size_t len, const uint8_t **topic, size_t *tlen,
			  const uint8_t **msg, size_t *mlen)
{
	hb_codec_reader_t r;
	hb_codec_tok_t t, m;

	if (open_list(&r, p, len, 2) < 0 || want(&r, HB_CODEC_STR, &t) < 0 ||
	    want(&r, HB_CODEC_BYTES, &m) < 0 || t.len == 0 || t.len > HB_PUBSUB_MAX_TOPIC ||
	    memchr(t.data, 0, t.len))
		return -EBADMSG;
	*topic = t.data;
	*tlen = t.len;
	*msg = m.data;
	*mlen = m.len;
	return 0;
}

/* ---- this node's tables ---- */

/* The registries may change while we read them: collect under their locks, then write. */
typedef struct item {
	char *s;
	size_t len;
	uint32_t n;
} item_t;

typedef struct items {
	item_t *v;
	size_t n, cap;
	int err;
} items_t;

static int collect(items_t *it, const char *s, size_t len, uint32_t n)
{
	if (it->n == it->cap) {
		size_t cap = it->cap ? it->cap * 2 : 16;
		item_t *v = realloc(it->v, cap * sizeof(*v));

		if (!v) {
			it->err = -ENOMEM;
			return 1;
		}
		it->v = v;
		it->cap = cap;
	}
	char *c = malloc(len ? len : 1);

	if (!c) {
		it->err = -ENOMEM;
		return 1;
	}
	memcpy(c, s, len);
	it->v[it->n++] = (item_t){c, len, n};
	return 0;
}

static int collect_name(const char *name, size_t len, void *ud)
{
	return collect(ud, name, len, 0);
}

static int collect_topic(const char *name, size_t len, uint32_t nsubs, void *ud)
{
	items_t *it = ud;

	if (!nsubs)
		return 0;
	/* the same topic in several worker processes (hb_xbus_topics): one entry, the sum */
	for (size_t i = 0; i < it->n; i++) {
		if (it->v[i].len == len && memcmp(it->v[i].s, name, len) == 0) {
			it->v[i].n =
				it->v[i].n > UINT32_MAX - nsubs ? UINT32_MAX : it->v[i].n + nsubs;
			return 0;
		}
	}
	return collect(ud, name, len, nsubs);
}

static void items_free(items_t *it)
{
	for (size_t i = 0; i < it->n; i++)
		free(it->v[i].s);
	free(it->v);
}

int hb_rpc_encode_tables(hb_cbuf_t *b, hb_funcs_t *f, hb_pubsub_t *ps)
{
	return hb_rpc_encode_tables_bus(b, f, NULL, ps);
}

int hb_rpc_encode_tables_bus(hb_cbuf_t *b, hb_funcs_t *f, hb_xbus_t *bus, hb_pubsub_t *ps)
{
	items_t names = {0}, topics = {0};
	int rc;

	if (bus && hb_xbus_slot(bus) >= 0) {
		if ((rc = hb_xbus_names(bus, collect_name, &names)) < 0 && !names.err)
			names.err = rc;
	} else if (f) {
		hb_funcs_names(f, collect_name, &names);
	}
	if (ps)
		hb_pubsub_topics(ps, collect_topic, &topics);
	/* the other worker processes' subscribers, when this one runs the cluster for them */
	if (bus && hb_xbus_slot(bus) >= 0)
		hb_xbus_topics(bus, collect_topic, &topics);
	rc = names.err ? names.err : topics.err;
	if (rc == 0) {
		hb_codec_begin(b);
		hb_codec_put_list_begin(b, 2);
		hb_codec_put_list_begin(b, (uint32_t)names.n);
		for (size_t i = 0; i < names.n; i++)
			hb_codec_put_str(b, names.v[i].s, names.v[i].len);
		hb_codec_put_list_begin(b, (uint32_t)topics.n);
		for (size_t i = 0; i < topics.n; i++) {
			hb_codec_put_list_begin(b, 2);
			hb_codec_put_str(b, topics.v[i].s, topics.v[i].len);
			hb_codec_put_int64(b, topics.v[i].n);
		}
		rc = b->err;
	}
	items_free(&names);
	items_free(&topics);
	return rc;
}

/* ---- rpc_allow ---- */

int hb_rpc_allowed(const char *const *allow, size_t n, const char *name, size_t nlen)
{
	const char *colon = memchr(name, ':', nlen);
	size_t mlen = colon ? (size_t)(colon - name) : nlen;

	if (n == 0)
		return 1;
	for (size_t i = 0; i < n; i++) {
		size_t alen = strlen(allow[i]);

		if (alen == 0 || alen > mlen || memcmp(allow[i], name, alen) != 0)
			continue;
		if (alen == mlen || name[alen] == '.')
			return 1;
	}
	return 0;
}

/* ---- the peers' tables ---- */

typedef struct sub {
	char *topic; /* NUL-terminated */
	uint32_t count;
	int pattern;
} sub_t;

typedef struct peer {
	struct peer *next;
	char *name;
	items_t names;
	sub_t *subs;
	size_t nsubs;
} peer_t;

struct hb_rpc_tables {
	peer_t *list; /* sorted by name */
};

hb_rpc_tables_t *hb_rpc_tables_new(void)
{
	return calloc(1, sizeof(hb_rpc_tables_t));
}

static void peer_free(peer_t *p)
{
	items_free(&p->names);
	for (size_t i = 0; i < p->nsubs; i++)
		free(p->subs[i].topic);
	free(p->subs);
	free(p->name);
	free(p);
}

void hb_rpc_tables_free(hb_rpc_tables_t *t)
{
	if (!t)
		return;
	for (peer_t *p = t->list, *next; p; p = next) {
		next = p->next;
		peer_free(p);
	}
	free(t);
}

static peer_t *parse_tables(const char *name, const void *buf, size_t len)
{
	hb_codec_reader_t r;
	hb_codec_tok_t tok, a, c;
	peer_t *p = calloc(1, sizeof(*p));

	if (!p)
		return NULL;
	if (!(p->name = strdup(name)) || open_list(&r, buf, len, 2) < 0 ||
	    want(&r, HB_CODEC_LIST, &tok) < 0)
		goto bad;
	for (uint32_t i = 0, n = tok.v.n; i < n; i++)
		if (want(&r, HB_CODEC_STR, &a) < 0 ||
		    collect(&p->names, (const char *)a.data, a.len, 0) != 0)
			goto bad;
	if (want(&r, HB_CODEC_LIST, &tok) < 0)
		goto bad;
	if (tok.v.n && !(p->subs = calloc(tok.v.n, sizeof(*p->subs))))
		goto bad;
	for (uint32_t i = 0, n = tok.v.n; i < n; i++) {
		if (want(&r, HB_CODEC_LIST, &a) < 0 || a.v.n != 2 ||
		    want(&r, HB_CODEC_STR, &a) < 0 || want(&r, HB_CODEC_INT, &c) < 0 ||
		    a.len == 0 || a.len > HB_PUBSUB_MAX_TOPIC || memchr(a.data, 0, a.len) ||
		    c.v.i < 0 || c.v.i > UINT32_MAX)
			goto bad;
		sub_t *s = &p->subs[p->nsubs];

		if (!(s->topic = malloc(a.len + 1)))
			goto bad;
		memcpy(s->topic, a.data, a.len);
		s->topic[a.len] = 0;
		s->count = (uint32_t)c.v.i;
		s->pattern = memchr(a.data, '*', a.len) != NULL;
		p->nsubs++;
	}
	if (hb_codec_next(&r, &tok) != 0)
		goto bad;
	return p;
bad:
	peer_free(p);
	return NULL;
}

int hb_rpc_tables_update(hb_rpc_tables_t *t, const char *peer, const void *buf, size_t len)
{
	peer_t *p = parse_tables(peer, buf, len);

	if (!p)
		return -EBADMSG;
	hb_rpc_tables_drop(t, peer);
	peer_t **pp = &t->list;

	while (*pp && strcmp((*pp)->name, peer) < 0)
		pp = &(*pp)->next;
	p->next = *pp;
	*pp = p;
	return 0;
}

void hb_rpc_tables_drop(hb_rpc_tables_t *t, const char *peer)
{
	for (peer_t **pp = &t->list; *pp; pp = &(*pp)->next) {
		if (!strcmp((*pp)->name, peer)) {
			peer_t *p = *pp;

			*pp = p->next;
			peer_free(p);
			return;
		}
	}
}

int hb_rpc_tables_owner(const hb_rpc_tables_t *t, const char *name, size_t len, char *out,
			size_t cap)
{
	for (const peer_t *p = t->list; p; p = p->next) {
		for (size_t i = 0; i < p->names.n; i++) {
			const item_t *it = &p->names.v[i];

			if (it->len == len && memcmp(it->s, name, len) == 0) {
				size_t n = strlen(p->name);

				if (n >= cap)
					return -ENOENT;
				memcpy(out, p->name, n + 1);
				return 0;
			}
		}
	}
	return -ENOENT;
}

uint64_t hb_rpc_tables_subscribers(const hb_rpc_tables_t *t, const char *topic, hb_rpc_peer_cb cb,
				   void *ud)
{
	uint64_t total = 0;

	for (const peer_t *p = t->list; p; p = p->next) {
		uint32_t n = 0;

		for (size_t i = 0; i < p->nsubs; i++) {
			const sub_t *s = &p->subs[i];

			if (s->pattern ? fnmatch(s->topic, topic, 0) == 0
				       : !strcmp(s->topic, topic))
				n += s->count;
		}
		if (n) {
			total += n;
			if (cb)
				cb(p->name, n, ud);
		}
	}
	return total;
}
