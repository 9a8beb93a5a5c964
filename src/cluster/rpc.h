/* rpc.h: the payloads of the data-plane frames (CALL, CAST, REPLY, PUBLISH, TABLES), the
 * rpc_allow check and the tables of what other nodes registered and subscribed. No I/O.
 *
 * Every payload is one codec value (docs/codec.md), a list:
 *
 *     CALL, CAST  [kind: int (0 "module:function", 1 a registered name), name: str, args: bytes]
 *     REPLY       [status: int (1 ok, 2 error), body: bytes]   ok: codec bytes, error: UTF-8 text
 *     PUBLISH     [topic: str, message: bytes]
 *     TABLES      [[name: str, ...], [[topic: str, subscribers: int], ...]]
 *
 * args, body and message are themselves codec values, carried as bytes so the cluster thread
 * never decodes them. docs/cluster.md describes the wire.
 *
 * hb_rpc_tables_t: one entry per peer node (its registered names and subscribed topics with
 * counts, replaced whole by each TABLES it sends). Not thread-safe: the owner locks.
 * Errors are 0 / -errno (-EBADMSG for a payload of the wrong shape).
 */
#ifndef HB_CLUSTER_RPC_H
#define HB_CLUSTER_RPC_H

#include <stddef.h>
#include <stdint.h>

#include "core/codec.h"
#include "core/funcs.h"
#include "core/pubsub.h"
#include "core/xbus.h"

enum { HB_RPC_KIND_MFA = 0, HB_RPC_KIND_NAME = 1 };
enum { HB_RPC_OK = 1, HB_RPC_ERROR = 2 };

typedef struct hb_rpc_call {
	int kind;
	const char *name; /* not NUL-terminated; points into the payload */
	size_t nlen;
	const uint8_t *args;
	size_t alen;
} hb_rpc_call_t;

int hb_rpc_encode_call(hb_cbuf_t *b, int kind, const char *name, size_t nlen, const void *args,
		       size_t alen);
int hb_rpc_decode_call(const void *p, size_t len, hb_rpc_call_t *out);
int hb_rpc_encode_reply(hb_cbuf_t *b, int status, const void *body, size_t blen);
int hb_rpc_decode_reply(const void *p, size_t len, int *status, const uint8_t **body, size_t *blen);
int hb_rpc_encode_publish(hb_cbuf_t *b, const void *topic, size_t tlen, const void *msg,
			  size_t mlen);
int hb_rpc_decode_publish(const void *p, size_t len, const uint8_t **topic, size_t *tlen,
			  const uint8_t **msg, size_t *mlen);
/* This node's TABLES payload: the names registered in f and the topics of ps (either may be
 * NULL: nothing of that kind). */
int hb_rpc_encode_tables(hb_cbuf_t *b, hb_funcs_t *f, hb_pubsub_t *ps);
/* The same with the names of every worker process of this node when bus is attached (its shared
 * name table), else f's. */
int hb_rpc_encode_tables_bus(hb_cbuf_t *b, hb_funcs_t *f, hb_xbus_t *bus, hb_pubsub_t *ps);

/* 1 when rpc_allow lets other nodes call module:function (name[0..nlen), "module:function"):
 * an empty list allows everything; an entry allows the module of that name and its submodules
 * ("ml" allows "ml" and "ml.model", not "mlx"). */
int hb_rpc_allowed(const char *const *allow, size_t n, const char *name, size_t nlen);

typedef struct hb_rpc_tables hb_rpc_tables_t;

hb_rpc_tables_t *hb_rpc_tables_new(void);
void hb_rpc_tables_free(hb_rpc_tables_t *t);
/* Replaces what peer announced with a TABLES payload. Returns 0, -EBADMSG or -ENOMEM (the old
 * entry stays). */
int hb_rpc_tables_update(hb_rpc_tables_t *t, const char *peer, const void *p, size_t len);
/* Forgets a peer (it died or left). */
void hb_rpc_tables_drop(hb_rpc_tables_t *t, const char *peer);
/* The first peer (in name order) that registered name[0..len), copied into out[0..cap).
 * Returns 0 or -ENOENT. */
int hb_rpc_tables_owner(const hb_rpc_tables_t *t, const char *name, size_t len, char *out,
			size_t cap);
/* Calls cb for every peer with at least one subscriber matching topic (NUL-terminated; exact
 * topics and fnmatch patterns as pubsub.h matches them), with that count. Returns the sum. */
typedef void (*hb_rpc_peer_cb)(const char *peer, uint32_t count, void *ud);
uint64_t hb_rpc_tables_subscribers(const hb_rpc_tables_t *t, const char *topic, hb_rpc_peer_cb cb,
				   void *ud);

#endif
