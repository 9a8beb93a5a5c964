/* test_rpc.c: the data-plane payloads (CALL, REPLY, PUBLISH, TABLES) round trip and reject
 * wrong shapes; rpc_allow's module matching; the peers' tables (owner of a name, subscriber
 * counts with exact topics and patterns, replace and drop). No sockets. */
#include "cluster/rpc.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

Test(rpc, call_round_trip_and_bad_shapes)
{
	hb_cbuf_t b;
	hb_rpc_call_t c;
	uint8_t args[] = {HB_CODEC_VERSION, HB_CODEC_TAG_TUPLE, 0, 0, 0, 0};

	hb_cbuf_init(&b, NULL, 0);
	cr_assert_eq(
		hb_rpc_encode_call(&b, HB_RPC_KIND_MFA, "ml_model:predict", 16, args, sizeof args),
		0);
	cr_assert_eq(hb_codec_validate(b.data, b.len, 0), 0);
	cr_assert_eq(hb_rpc_decode_call(b.data, b.len, &c), 0);
	cr_assert_eq(c.kind, HB_RPC_KIND_MFA);
	cr_assert_eq(c.nlen, 16);
	cr_assert_eq(memcmp(c.name, "ml_model:predict", 16), 0);
	cr_assert_eq(c.alen, sizeof args);
	cr_assert_eq(memcmp(c.args, args, sizeof args), 0);
	/* a kind that does not exist, an empty name, a truncated payload */
	cr_assert_eq(hb_rpc_encode_call(&b, 7, "f", 1, args, sizeof args), 0);
	cr_assert_eq(hb_rpc_decode_call(b.data, b.len, &c), -EBADMSG);
	cr_assert_eq(hb_rpc_encode_call(&b, HB_RPC_KIND_NAME, "", 0, args, sizeof args), 0);
	cr_assert_eq(hb_rpc_decode_call(b.data, b.len, &c), -EBADMSG);
	cr_assert_eq(hb_rpc_encode_call(&b, HB_RPC_KIND_NAME, "f", 1, args, sizeof args), 0);
	cr_assert_eq(hb_rpc_decode_call(b.data, b.len - 1, &c), -EBADMSG);
	/* a reply is not a call */
	cr_assert_eq(hb_rpc_encode_reply(&b, HB_RPC_OK, args, sizeof args), 0);
	cr_assert_eq(hb_rpc_decode_call(b.data, b.len, &c), -EBADMSG);
	hb_cbuf_free(&b);
}

Test(rpc, reply_and_publish_round_trip)
{
	hb_cbuf_t b;
	int st;
	const uint8_t *body, *topic, *msg;
	size_t blen, tlen, mlen;

	hb_cbuf_init(&b, NULL, 0);
	cr_assert_eq(hb_rpc_encode_reply(&b, HB_RPC_ERROR, "Traceback ...", 13), 0);
	cr_assert_eq(hb_rpc_decode_reply(b.data, b.len, &st, &body, &blen), 0);
	cr_assert_eq(st, HB_RPC_ERROR);
	cr_assert_eq(blen, 13);
	cr_assert_eq(memcmp(body, "Traceback ...", 13), 0);
	cr_assert_eq(hb_rpc_encode_reply(&b, 3, "", 0), 0);
	cr_assert_eq(hb_rpc_decode_reply(b.data, b.len, &st, &body, &blen), -EBADMSG);
	cr_assert_eq(hb_rpc_encode_publish(&b, "chat:lobby", 10, "\x01\x00", 2), 0);
	cr_assert_eq(hb_rpc_decode_publish(b.data, b.len, &topic, &tlen, &msg, &mlen), 0);
	cr_assert_eq(tlen, 10);
	cr_assert_eq(memcmp(topic, "chat:lobby", 10), 0);
	cr_assert_eq(mlen, 2);
	cr_assert_eq(hb_rpc_encode_publish(&b, "", 0, "\x01\x00", 2), 0);
	cr_assert_eq(hb_rpc_decode_publish(b.data, b.len, &topic, &tlen, &msg, &mlen), -EBADMSG);
	hb_cbuf_free(&b);
}

Test(rpc, allow_matches_modules_and_submodules)
{
	const char *allow[] = {"ml_model", "app.tasks"};

	cr_assert(hb_rpc_allowed(NULL, 0, "os:system", 9)); /* none: everything */
	cr_assert(hb_rpc_allowed(allow, 2, "ml_model:predict", 16));
	cr_assert(hb_rpc_allowed(allow, 2, "ml_model.v2:predict", 19));
	cr_assert(hb_rpc_allowed(allow, 2, "app.tasks.x:run", 15));
	cr_assert_not(hb_rpc_allowed(allow, 2, "ml_model_evil:predict", 21));
	cr_assert_not(hb_rpc_allowed(allow, 2, "ml:predict", 10));
	cr_assert_not(hb_rpc_allowed(allow, 2, "app:run", 7));
	cr_assert_not(hb_rpc_allowed(allow, 2, "os:system", 9));
}

static void count_peer(const char *peer, uint32_t n, void *ud)
{
	char *out = ud;
	char one[64];

	snprintf(one, sizeof one, "%s=%u;", peer, n);
	strcat(out, one);
}

/* A TABLES payload built the way a node builds its own. */
static void tables_of(hb_cbuf_t *b, const char *const *names, int nn, const char *const *topics,
		      const int *counts, int nt)
{
	hb_codec_begin(b);
	hb_codec_put_list_begin(b, 2);
	hb_codec_put_list_begin(b, (uint32_t)nn);
	for (int i = 0; i < nn; i++)
		hb_codec_put_str(b, names[i], strlen(names[i]));
	hb_codec_put_list_begin(b, (uint32_t)nt);
	for (int i = 0; i < nt; i++) {
		hb_codec_put_list_begin(b, 2);
		hb_codec_put_str(b, topics[i], strlen(topics[i]));
		hb_codec_put_int64(b, counts[i]);
	}
	cr_assert_eq(b->err, 0);
}

Test(rpc, tables_owner_counts_replace_drop)
{
	hb_rpc_tables_t *t = hb_rpc_tables_new();
	hb_cbuf_t b;
	char owner[64], seen[256] = "";
	const char *nb[] = {"double", "predict"}, *tb[] = {"news", "chat:*"};
	const char *nc[] = {"predict"}, *tc[] = {"news"};
	int cb[] = {2, 1}, cc[] = {5};

	hb_cbuf_init(&b, NULL, 0);
	tables_of(&b, nb, 2, tb, cb, 2);
	cr_assert_eq(hb_rpc_tables_update(t, "b@x", b.data, b.len), 0);
	tables_of(&b, nc, 1, tc, cc, 1);
	cr_assert_eq(hb_rpc_tables_update(t, "c@x", b.data, b.len), 0);
	cr_assert_eq(hb_rpc_tables_owner(t, "double", 6, owner, sizeof owner), 0);
	cr_assert_str_eq(owner, "b@x");
	cr_assert_eq(hb_rpc_tables_owner(t, "predict", 7, owner, sizeof owner), 0);
	cr_assert_str_eq(owner, "b@x"); /* the first in name order */
	cr_assert_eq(hb_rpc_tables_owner(t, "nope", 4, owner, sizeof owner), -ENOENT);
	cr_assert_eq(hb_rpc_tables_subscribers(t, "news", count_peer, seen), 7);
	cr_assert_str_eq(seen, "b@x=2;c@x=5;");
	seen[0] = 0;
	cr_assert_eq(hb_rpc_tables_subscribers(t, "chat:lobby", count_peer, seen), 1);
	cr_assert_str_eq(seen, "b@x=1;");
	cr_assert_eq(hb_rpc_tables_subscribers(t, "other", NULL, NULL), 0);
	/* b announces again without "double": replaced whole */
	tables_of(&b, nc, 1, NULL, NULL, 0);
	cr_assert_eq(hb_rpc_tables_update(t, "b@x", b.data, b.len), 0);
	cr_assert_eq(hb_rpc_tables_owner(t, "double", 6, owner, sizeof owner), -ENOENT);
	cr_assert_eq(hb_rpc_tables_subscribers(t, "news", NULL, NULL), 5);
	/* garbage keeps the old entry */
	cr_assert_eq(hb_rpc_tables_update(t, "c@x", "\x01\x00", 2), -EBADMSG);
	cr_assert_eq(hb_rpc_tables_subscribers(t, "news", NULL, NULL), 5);
	hb_rpc_tables_drop(t, "c@x");
	cr_assert_eq(hb_rpc_tables_subscribers(t, "news", NULL, NULL), 0);
	cr_assert_eq(hb_rpc_tables_owner(t, "predict", 7, owner, sizeof owner), 0);
	cr_assert_str_eq(owner, "b@x");
	hb_cbuf_free(&b);
	hb_rpc_tables_free(t);
}

Test(rpc, own_tables_from_the_registries)
{
	hb_funcs_t *f = hb_funcs_new();
	hb_pubsub_t *ps = hb_pubsub_new(0);
	hb_inbox_t *in = hb_funcs_inbox_new(NULL, NULL);
	hb_ps_sub_t *s1, *s2, *s3;
	hb_rpc_tables_t *t = hb_rpc_tables_new();
	hb_cbuf_t b;
	char owner[64];

	cr_assert_eq(hb_funcs_register(f, "double", 6, in), 0);
	cr_assert_eq(hb_pubsub_subscribe(ps, "news", 4, 0, &s1), 0);
	cr_assert_eq(hb_pubsub_subscribe(ps, "news", 4, 0, &s2), 0);
	cr_assert_eq(hb_pubsub_subscribe(ps, "n*", 2, 0, &s3), 0);
	hb_cbuf_init(&b, NULL, 0);
	cr_assert_eq(hb_rpc_encode_tables(&b, f, ps), 0);
	cr_assert_eq(hb_rpc_tables_update(t, "me@x", b.data, b.len), 0);
	cr_assert_eq(hb_rpc_tables_owner(t, "double", 6, owner, sizeof owner), 0);
	cr_assert_eq(hb_rpc_tables_subscribers(t, "news", NULL, NULL), 3);
	cr_assert_eq(hb_rpc_tables_subscribers(t, "nope", NULL, NULL), 1);
	/* empty registries make an empty table */
	cr_assert_eq(hb_rpc_encode_tables(&b, NULL, NULL), 0);
	cr_assert_eq(hb_rpc_tables_update(t, "me@x", b.data, b.len), 0);
	cr_assert_eq(hb_rpc_tables_subscribers(t, "news", NULL, NULL), 0);
	hb_cbuf_free(&b);
	hb_rpc_tables_free(t);
	hb_pubsub_sub_free(s1);
	hb_pubsub_sub_free(s2);
	hb_pubsub_sub_free(s3);
	hb_pubsub_free(ps);
	hb_funcs_inbox_close(f, in);
	hb_funcs_inbox_release(in);
	hb_funcs_free(f);
}
