/* fuzz_codec.c: libFuzzer target for the codec reader (src/core/codec.c).
 *
 * The input is read as an encoded value: any bytes must be decoded or rejected with -EBADMSG,
 * never read out of bounds. Invariants checked: every token's data lies inside the input,
 * strings are valid UTF-8, a big int has no high zero byte, containers hold what they announce,
 * errors are sticky, hb_codec_validate agrees with the walk, a value valid at a small depth
 * limit is valid at the default one, hb_codec_int64_decode agrees with the reader, and a valid
 * value re-encoded with the writer gives the same bytes (up to a big int that fits in int64,
 * which the writer turns into the int64 form) and re-decodes to the same encoding.
 * Build: scripts/fuzz.sh (CMake -DHB_FUZZ=ON); seeds in tests/fuzz/corpus/fuzz_codec/.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/codec.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(c)                                                                                   \
	do {                                                                                       \
		if (!(c))                                                                          \
			abort();                                                                   \
	} while (0)

/* Walks buf and, when out is given, writes each token back with the writer. Returns 0 for a
 * whole valid value, -EBADMSG otherwise; *normalized is set when a big int fitted in int64. */
static int walk(const uint8_t *buf, size_t len, uint32_t max_depth, hb_cbuf_t *out,
		bool *normalized)
{
	hb_codec_reader_t r;
	hb_codec_tok_t t;
	int rc = hb_codec_reader_init(&r, buf, len, max_depth);

	if (out)
		hb_codec_begin(out);
	while (rc == 0 && (rc = hb_codec_next(&r, &t)) == 1) {
		rc = 0;
		switch (t.type) {
		case HB_CODEC_NONE:
			if (out)
				hb_codec_put_none(out);
			break;
		case HB_CODEC_BOOL:
			CHECK(t.v.b == 0 || t.v.b == 1);
			if (out)
				hb_codec_put_bool(out, t.v.b);
			break;
		case HB_CODEC_INT:
			if (out)
				hb_codec_put_int64(out, t.v.i);
			break;
		case HB_CODEC_FLOAT:
			if (out)
				hb_codec_put_float(out, t.v.f);
			break;
		case HB_CODEC_BIGINT:
			CHECK(t.data >= buf && t.len > 0 && t.len <= len &&
			      t.data + t.len <= buf + len);
			CHECK(t.data[t.len - 1] != 0 && (t.neg == 0 || t.neg == 1));
			if (t.len <= 8 && normalized)
				*normalized = true; /* may fit in int64: the writer's choice */
			if (out)
				hb_codec_put_bigint(out, t.neg, t.data, t.len);
			break;
		case HB_CODEC_STR:
		case HB_CODEC_BYTES:
			CHECK(t.len <= len &&
			      (t.len == 0 || (t.data >= buf && t.data + t.len <= buf + len)));
			if (t.type == HB_CODEC_STR)
				CHECK(hb_codec_utf8_valid(t.data, t.len));
			if (out && t.type == HB_CODEC_STR)
				hb_codec_put_str(out, t.data, t.len);
			else if (out)
				hb_codec_put_bytes(out, t.data, t.len);
			break;
		case HB_CODEC_LIST:
		case HB_CODEC_TUPLE:
		case HB_CODEC_DICT:
			/* Each item takes at least one byte: a count the input cannot hold is
			 * refused up front. */
			CHECK((uint64_t)t.v.n * (t.type == HB_CODEC_DICT ? 2 : 1) <= len);
			CHECK(r.depth >= 1 &&
			      r.depth <= (max_depth ? max_depth : HB_CODEC_MAX_DEPTH));
			if (out && t.type == HB_CODEC_LIST)
				hb_codec_put_list_begin(out, t.v.n);
			else if (out && t.type == HB_CODEC_TUPLE)
				hb_codec_put_tuple_begin(out, t.v.n);
			else if (out)
				hb_codec_put_dict_begin(out, t.v.n);
			break;
		}
	}
	if (rc < 0) {
		CHECK(rc == -EBADMSG);
		CHECK(hb_codec_next(&r, &t) == -EBADMSG); /* sticky */
		return rc;
	}
	CHECK(r.p == r.end);
	CHECK(hb_codec_next(&r, &t) == 0); /* done stays done */
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint8_t stack[64];
	hb_cbuf_t once, twice;
	bool normalized = false;
	int64_t i64;

	hb_cbuf_init(&once, stack, sizeof stack);
	int rc = walk(data, size, 0, &once, &normalized);
	CHECK(hb_codec_validate(data, size, 0) == rc);
	if (walk(data, size, 3, NULL, NULL) == 0)
		CHECK(rc == 0);
	if (hb_codec_int64_decode(data, size, &i64) == 0) {
		CHECK(rc == 0 && size == HB_CODEC_INT64_SIZE);
		uint8_t enc[HB_CODEC_INT64_SIZE];
		hb_codec_int64_encode(enc, i64);
		CHECK(memcmp(enc, data, sizeof enc) == 0);
	}
	if (rc == 0) {
		CHECK(once.err == 0);
		if (!normalized)
			CHECK(once.len == size && memcmp(once.data, data, size) == 0);
		hb_cbuf_init(&twice, NULL, 0);
		CHECK(walk(once.data, once.len, 0, &twice, NULL) == 0);
		CHECK(twice.err == 0 && twice.len == once.len &&
		      memcmp(twice.data, once.data, once.len) == 0);
		hb_cbuf_free(&twice);
	}
	hb_cbuf_free(&once);
	return 0;
}
