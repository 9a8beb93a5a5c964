/* test_auth.c: the cookie handshake: success both ways, wrong cookie on either side, the cookie
 * never on the wire, replayed and reflected proofs refused, malformed and out-of-order messages. */
#include "cluster/auth.h"
#include "cluster/frame.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <string.h>

typedef struct wire {
	uint8_t type;
	uint8_t data[512];
	size_t len;
} wire_t;

static void take(hb_cbuf_t *b, uint8_t type, wire_t *w)
{
	cr_assert_leq(b->len, sizeof w->data);
	w->type = type;
	memcpy(w->data, b->data, b->len);
	w->len = b->len;
}

static int contains(const wire_t *w, const char *s)
{
	size_t n = strlen(s);
	for (size_t i = 0; i + n <= w->len; i++)
		if (!memcmp(w->data + i, s, n))
			return 1;
	return 0;
}

static const uint8_t NC[32] = {1, 2, 3}, NS[32] = {9, 8, 7};

/* Runs the handshake; returns 0 when both sides are done, else the first error (which side
 * failed in *who: 'c' or 's'). Records the four messages. */
static int handshake(const char *ccookie, const char *scookie, wire_t msgs[4], char *who)
{
	hb_auth_t c, s;
	hb_cbuf_t b;
	uint8_t t;
	const char *why = NULL;
	hb_cbuf_init(&b, NULL, 0);
	cr_assert_eq(hb_auth_init(&c, HB_AUTH_CLIENT, "web@a", ccookie, strlen(ccookie), NC), 0);
	cr_assert_eq(hb_auth_init(&s, HB_AUTH_SERVER, "ml@b", scookie, strlen(scookie), NS), 0);
	cr_assert_eq(hb_auth_start(&c, &b, &t), 0);
	take(&b, t, &msgs[0]);
	int rc = hb_auth_input(&s, msgs[0].type, msgs[0].data, msgs[0].len, &b, &t, &why);
	cr_assert_eq(rc, HB_AUTH_SEND);
	take(&b, t, &msgs[1]);
	rc = hb_auth_input(&c, msgs[1].type, msgs[1].data, msgs[1].len, &b, &t, &why);
	cr_assert_eq(rc, HB_AUTH_SEND);
	take(&b, t, &msgs[2]);
	rc = hb_auth_input(&s, msgs[2].type, msgs[2].data, msgs[2].len, &b, &t, &why);
	if (rc < 0) {
		*who = 's';
		cr_assert_null(hb_auth_peer(&s));
		goto out;
	}
	cr_assert_eq(rc, HB_AUTH_SEND | HB_AUTH_DONE);
	cr_assert_str_eq(hb_auth_peer(&s), "web@a");
	take(&b, t, &msgs[3]);
	rc = hb_auth_input(&c, msgs[3].type, msgs[3].data, msgs[3].len, &b, &t, &why);
	if (rc < 0) {
		*who = 'c';
		goto out;
	}
	cr_assert_eq(rc, HB_AUTH_DONE);
	cr_assert_str_eq(hb_auth_peer(&c), "ml@b");
	rc = 0;
out:
	hb_cbuf_free(&b);
	hb_auth_clear(&c);
	hb_auth_clear(&s);
	return rc;
}

Test(auth, same_cookie_authenticates_both_sides)
{
	wire_t m[4];
	char who = 0;
	cr_assert_eq(handshake("s3cret-cookie", "s3cret-cookie", m, &who), 0);
	cr_assert_eq(m[0].type, HB_FRAME_HELLO);
	cr_assert_eq(m[1].type, HB_FRAME_CHALLENGE);
	cr_assert_eq(m[2].type, HB_FRAME_PROOF);
	cr_assert_eq(m[3].type, HB_FRAME_PROOF);
	for (int i = 0; i < 4; i++) {
		cr_assert_not(contains(&m[i], "s3cret"), "cookie on the wire in message %d", i);
		cr_assert_eq(hb_codec_validate(m[i].data, m[i].len, 0), 0);
	}
	/* the two proofs differ (role label), so one cannot stand in for the other */
	cr_assert_neq(memcmp(m[2].data, m[3].data, m[2].len), 0);
}

Test(auth, wrong_cookie_refused_by_server_first)
{
	wire_t m[4];
	char who = 0;
	cr_assert_eq(handshake("right", "wrong", m, &who), -EACCES);
	cr_assert_eq(who, 's', "the server refuses before proving anything");
	cr_assert_eq(handshake("a", "ab", m, &who), -EACCES);
}

/* A client that does not know the cookie learns nothing usable: the server sends no proof. A
 * server that does not know it is refused by the client (replaying an old server proof). */
Test(auth, replayed_proof_refused)
{
	wire_t old[4], m[4];
	char who = 0;
	cr_assert_eq(handshake("k", "k", old, &who), 0);
	hb_auth_t c;
	hb_cbuf_t b;
	uint8_t t;
	const char *why = NULL;
	hb_cbuf_init(&b, NULL, 0);
	static const uint8_t fresh[32] = {4, 4, 4};
	cr_assert_eq(hb_auth_init(&c, HB_AUTH_CLIENT, "web@a", "k", 1, fresh), 0);
	cr_assert_eq(hb_auth_start(&c, &b, &t), 0);
	cr_assert_eq(hb_auth_input(&c, old[1].type, old[1].data, old[1].len, &b, &t, &why),
		     HB_AUTH_SEND);
	take(&b, t, &m[2]);
	cr_assert_neq(memcmp(m[2].data, old[2].data, m[2].len), 0, "fresh nonce, fresh proof");
	cr_assert_eq(hb_auth_input(&c, old[3].type, old[3].data, old[3].len, &b, &t, &why),
		     -EACCES);
	cr_assert_str_eq(why, "peer's proof does not match our cookie");
	/* reflecting the client's own proof back is refused too */
	hb_auth_t c2;
	cr_assert_eq(hb_auth_init(&c2, HB_AUTH_CLIENT, "web@a", "k", 1, fresh), 0);
	cr_assert_eq(hb_auth_start(&c2, &b, &t), 0);
	cr_assert_eq(hb_auth_input(&c2, old[1].type, old[1].data, old[1].len, &b, &t, &why),
		     HB_AUTH_SEND);
	take(&b, t, &m[2]);
	cr_assert_eq(hb_auth_input(&c2, m[2].type, m[2].data, m[2].len, &b, &t, &why), -EACCES);
	hb_cbuf_free(&b);
}

Test(auth, malformed_and_out_of_order)
{
	hb_auth_t s, c;
	hb_cbuf_t b;
	uint8_t t;
	const char *why = NULL;
	hb_cbuf_init(&b, NULL, 0);
	/* a PROOF before any HELLO */
	cr_assert_eq(hb_auth_init(&s, HB_AUTH_SERVER, "b", "k", 1, NS), 0);
	uint8_t junk[] = {HB_CODEC_VERSION, HB_CODEC_TAG_NONE};
	cr_assert_eq(hb_auth_input(&s, HB_FRAME_PROOF, junk, sizeof junk, &b, &t, &why), -EPROTO);
	cr_assert_not_null(why);
	/* and the failure is final */
	cr_assert_eq(hb_auth_input(&s, HB_FRAME_HELLO, junk, sizeof junk, &b, &t, &why), -EPROTO);
	/* a HELLO that is not (version, name, nonce) */
	cr_assert_eq(hb_auth_init(&s, HB_AUTH_SERVER, "b", "k", 1, NS), 0);
	cr_assert_eq(hb_auth_input(&s, HB_FRAME_HELLO, junk, sizeof junk, &b, &t, &why), -EPROTO);
	/* a HELLO of another protocol version */
	hb_codec_begin(&b);
	hb_codec_put_tuple_begin(&b, 3);
	hb_codec_put_int64(&b, 2);
	hb_codec_put_str(&b, "a", 1);
	hb_codec_put_bytes(&b, NC, 32);
	uint8_t v2[64];
	size_t v2len = b.len;
	memcpy(v2, b.data, b.len);
	cr_assert_eq(hb_auth_init(&s, HB_AUTH_SERVER, "b", "k", 1, NS), 0);
	cr_assert_eq(hb_auth_input(&s, HB_FRAME_HELLO, v2, v2len, &b, &t, &why), -EPROTO);
	cr_assert(strstr(why, "version"));
	/* a short nonce */
	hb_codec_begin(&b);
	hb_codec_put_tuple_begin(&b, 3);
	hb_codec_put_int64(&b, 1);
	hb_codec_put_str(&b, "a", 1);
	hb_codec_put_bytes(&b, NC, 31);
	memcpy(v2, b.data, b.len);
	v2len = b.len;
	cr_assert_eq(hb_auth_init(&s, HB_AUTH_SERVER, "b", "k", 1, NS), 0);
	cr_assert_eq(hb_auth_input(&s, HB_FRAME_HELLO, v2, v2len, &b, &t, &why), -EPROTO);
	/* a client may not receive HELLO; start twice; a server may not start */
	cr_assert_eq(hb_auth_init(&c, HB_AUTH_CLIENT, "a", "k", 1, NC), 0);
	cr_assert_eq(hb_auth_start(&c, &b, &t), 0);
	cr_assert_eq(hb_auth_start(&c, &b, &t), -EINVAL);
	cr_assert_eq(hb_auth_input(&c, HB_FRAME_HELLO, v2, v2len, &b, &t, &why), -EPROTO);
	cr_assert_eq(hb_auth_init(&s, HB_AUTH_SERVER, "b", "k", 1, NS), 0);
	cr_assert_eq(hb_auth_start(&s, &b, &t), -EINVAL);
	/* bad init arguments */
	cr_assert_eq(hb_auth_init(&s, HB_AUTH_SERVER, "", "k", 1, NS), -EINVAL);
	cr_assert_eq(hb_auth_init(&s, HB_AUTH_SERVER, "b", "k", 0, NS), -EINVAL);
	hb_cbuf_free(&b);
}

Test(auth, nonces_are_random)
{
	uint8_t a[32], b[32];
	cr_assert_eq(hb_auth_nonce(a), 0);
	cr_assert_eq(hb_auth_nonce(b), 0);
	cr_assert_neq(memcmp(a, b, 32), 0);
}
