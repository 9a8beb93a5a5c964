/* frame.h: the framing of a cluster link (one TCP connection per node pair). No I/O.
 *
 * Every frame is a 12-byte header then `len` payload bytes:
 *
 *     u32 len | u8 type | u8 flags | u16 reserved (0) | u32 stream      (little-endian)
 *
 * A message is one codec value (docs/codec.md). A message longer than the sender's chunk size is
 * split into several frames of the same type and stream id, all but the last flagged
 * HB_FRAME_F_MORE, so that frames of other messages can go between them: a 4 MiB value does not
 * hold small calls behind it for longer than one chunk. docs/cluster.md describes the wire.
 *
 * Parser (hb_frame_parser_t): takes whatever bytes the socket gave, split anywhere, and yields one
 * whole message at a time (pull style). It rejects a frame longer than max_frame (the
 * `cluster.max_frame_size` key), a reassembled message longer than max_message, more than
 * max_streams messages being reassembled at once, unknown types or flags, a non-zero reserved
 * field and a payload that is not one valid codec value: a negative error (-EMSGSIZE, -ENOBUFS,
 * -EBADMSG, -ENOMEM) with a static reason, after which the parser stays failed (the link closes).
 * Memory is bounded by max_frame + max_streams * max_message.
 *
 * Sender (hb_frame_out_t): a queue of whole messages that hb_frame_out_fill turns into frames in
 * a caller's buffer, one chunk per message in turn (round robin). Messages pushed with the same
 * non-zero lane leave in push order (a lane for a publisher keeps its order); lane 0 means
 * "no order against anything".
 *
 * Both belong to one link and are used by the thread that owns it. Errors are 0 / -errno.
 */
#ifndef HB_CLUSTER_FRAME_H
#define HB_CLUSTER_FRAME_H

#include <stddef.h>
#include <stdint.h>

#define HB_FRAME_HEADER_SIZE 12u
#define HB_FRAME_DEFAULT_MAX_FRAME (1u << 20)	 /* cluster.max_frame_size */
#define HB_FRAME_DEFAULT_CHUNK (64u << 10)	 /* sender's fragment size */
#define HB_FRAME_DEFAULT_MAX_MESSAGE (64u << 20) /* reassembled message ceiling */
#define HB_FRAME_DEFAULT_MAX_STREAMS 64u	 /* messages being reassembled at once */

/* Frame types. The frame layer checks only that a type is one of these. */
enum hb_frame_type {
	HB_FRAME_HELLO = 1,	/* auth: client's name and nonce */
	HB_FRAME_CHALLENGE = 2, /* auth: server's name and nonce */
	HB_FRAME_PROOF = 3,	/* auth: an HMAC proving the cookie */
	HB_FRAME_SWIM = 4,	/* a membership message (swim.h) over the link */
	HB_FRAME_CALL = 5,	/* rpc_call / call: the peer answers with REPLY */
	HB_FRAME_CAST = 6,	/* rpc_cast / cast: no answer */
	HB_FRAME_REPLY = 7,	/* the answer to a CALL, same stream id */
	HB_FRAME_PUBLISH = 8,	/* a pub/sub message for the peer's subscribers */
	HB_FRAME_CLOSE = 9,	/* the sender closes the link (payload: reason text) */
	HB_FRAME_TABLES = 10,	/* the sender's registered names and subscribed topics */
	HB_FRAME_TYPE_MAX = 10,
};

#define HB_FRAME_F_MORE 0x01u /* more frames of this message follow */
#define HB_FRAME_F_KNOWN 0x01u

typedef struct hb_frame_limits {
	uint32_t max_frame;   /* payload bytes in one frame; 0: HB_FRAME_DEFAULT_MAX_FRAME */
	uint64_t max_message; /* reassembled message; 0: HB_FRAME_DEFAULT_MAX_MESSAGE */
	uint32_t max_streams; /* partial messages at once; 0: HB_FRAME_DEFAULT_MAX_STREAMS */
} hb_frame_limits_t;

/* One whole message. data points into the caller's input (a one-frame message that was whole in
 * the piece fed) or into the parser; either way it is valid until the next hb_frame_feed. */
typedef struct hb_frame_msg {
	uint8_t type;
	uint32_t stream;
	const uint8_t *data;
	size_t len;
} hb_frame_msg_t;

typedef struct hb_frame_parser hb_frame_parser_t;

/* Writes a frame header. */
void hb_frame_header_encode(uint8_t out[HB_FRAME_HEADER_SIZE], uint8_t type, uint8_t flags,
			    uint32_t stream, uint32_t len);

/* A parser with the given limits (NULL: defaults). NULL when out of memory. */
hb_frame_parser_t *hb_frame_parser_new(const hb_frame_limits_t *lim);
void hb_frame_parser_free(hb_frame_parser_t *p);

/* Consumes bytes of buf[0..len) until a whole message is ready. Returns 1 with *msg filled,
 * 0 when all bytes were consumed and no message is complete yet, or a negative error with *why
 * (a static string). *used is set to the bytes consumed in every case: after a 1, feed the rest
 * (buf + *used) again. */
int hb_frame_feed(hb_frame_parser_t *p, const void *buf, size_t len, size_t *used,
		  hb_frame_msg_t *msg, const char **why);
/* Messages currently being reassembled (for tests and stats). */
uint32_t hb_frame_parser_partial(const hb_frame_parser_t *p);

/* ---- sender ---- */

typedef struct hb_frame_out hb_frame_out_t;

/* A queue that cuts messages into frames of at most chunk payload bytes (0: default). */
hb_frame_out_t *hb_frame_out_new(uint32_t chunk);
/* Frees the queue and every queued message. */
void hb_frame_out_free(hb_frame_out_t *q);
/* Queues a copy of data[0..len) as one message. A message longer than the chunk needs a stream
 * id that no other queued message uses; a short one, an id that no queued long one uses (short
 * ones may share ids: each is one frame). Checking costs O(long messages queued) for a short
 * message, O(queue) for a long one. Returns 0, -EINVAL (bad type, len >= 4 GiB, a long message
 * on stream 0), -EBUSY (stream id in use, as above) or -ENOMEM. */
int hb_frame_out_push(hb_frame_out_t *q, uint8_t type, uint32_t stream, uint32_t lane,
		      const void *data, size_t len);
/* Writes whole frames into buf[0..cap) and returns the bytes written. It stops at the first frame
 * that does not fit, so a cap of at least HB_FRAME_HEADER_SIZE + chunk always makes progress. */
size_t hb_frame_out_fill(hb_frame_out_t *q, uint8_t *buf, size_t cap);
/* Drops the oldest message of `lane` that has not started to leave (a slow peer's oldest
 * publish). Returns 1 when one was dropped, else 0. */
int hb_frame_out_drop_oldest(hb_frame_out_t *q, uint32_t lane);
/* Messages queued (including one partly sent) and their unsent payload bytes. */
uint32_t hb_frame_out_count(const hb_frame_out_t *q);
uint64_t hb_frame_out_bytes(const hb_frame_out_t *q);

#endif
