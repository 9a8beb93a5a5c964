/* swim_msg.h: the wire form of SWIM messages (private to swim.c and its tests).
 *
 * A message is one codec value, a 7-tuple:
 *     (type, from_name, from_addr, seq, target_name, target_addr, [item, ...])
 * and each gossip item a 5-tuple (state, name, addr, incarnation, from). Types: PING, ACK,
 * PING_REQ (target_* name the member to probe), NACK, GOSSIP (items only), PUSH_PULL and
 * PUSH_PULL_REPLY (items: the sender's whole member list, itself included).
 * Decoding checks everything (types, string lengths, no NUL in names) before the caller uses
 * any of it; strings point into the input. Plain functions, no state.
 */
#ifndef HB_CLUSTER_SWIM_MSG_H
#define HB_CLUSTER_SWIM_MSG_H

#include <stddef.h>
#include <stdint.h>

#include "core/codec.h"

enum {
	HB_SWIM_MSG_PING = 1,
	HB_SWIM_MSG_ACK = 2,
	HB_SWIM_MSG_PING_REQ = 3,
	HB_SWIM_MSG_NACK = 4,
	HB_SWIM_MSG_GOSSIP = 5,
	HB_SWIM_MSG_PUSH_PULL = 6,
	HB_SWIM_MSG_PUSH_PULL_REPLY = 7,
};

typedef struct hb_swim_str {
	const char *p;
	size_t n;
} hb_swim_str_t;

typedef struct hb_swim_item {
	int state; /* hb_swim_state_t */
	hb_swim_str_t name, addr, from;
	uint64_t inc;
} hb_swim_item_t;

typedef struct hb_swim_msg {
	int type;
	uint32_t seq;
	hb_swim_str_t from_name, from_addr, target_name, target_addr;
	uint32_t nitems;
	hb_swim_item_t *items; /* decode: malloc'd by hb_swim_msg_decode, free() it */
} hb_swim_msg_t;

/* Encoded size of a message without items, and of one item. */
size_t hb_swim_msg_base_size(const hb_swim_msg_t *m);
size_t hb_swim_item_size(const hb_swim_item_t *it);
/* Starts a message that will hold nitems items (m->nitems is ignored). Sticky errors in b. */
int hb_swim_msg_begin(hb_cbuf_t *b, const hb_swim_msg_t *m, uint32_t nitems);
int hb_swim_msg_put_item(hb_cbuf_t *b, const hb_swim_item_t *it);
/* Decodes and checks a whole message. Returns 0 (free m->items), -EBADMSG or -ENOMEM. */
int hb_swim_msg_decode(const void *data, size_t len, hb_swim_msg_t *m);

#endif
