/* transport.h: what sits between a connection's socket bytes and its protocol handler.
 *
 * A transport is a const table (in the spirit of Redis's ConnectionType). The plain one
 * (transport_plain.c) passes bytes through; a TLS one (src/proto/tls drives wolfSSL over memory
 * buffers) decrypts on the way in and encrypts on the way out. Adding a transport is one new
 * file implementing this table; the listener decides which one a new connection gets.
 *
 * The contract, all on the connection's io thread:
 *  - init(c): per-connection state into c->tls (0 or -errno; the connection is closed on
 *    error). It may queue output already (hb_conn_out_*; e.g. a client hello, not for servers).
 *  - on_recv(c, p, len): bytes from the socket. p is the io thread's provided buffer, valid only
 *    during the call and writable; the transport copies what it keeps. Plaintext goes to the
 *    handler with hb_conn_deliver(c, pt, n) (any number of calls; pt only needs to live during
 *    the call). The transport may queue output of its own at any time from here (handshake
 *    records, alerts, key updates, session tickets) with hb_conn_out_bytes/out_copy: those
 *    bytes bypass `write` (they are already records) and are sent with the next flush (the
 *    connection flushes after on_recv). Before hb_conn_deliver's first call after the
 *    handshake, it sets c->alpn to the negotiated protocol ("h2", "http/1.1", static string or
 *    owned by c->tls) or leaves it NULL: the handler is chosen on that first delivery.
 *    Returns 0; HB_TRANSPORT_CLOSED when the peer ended the session cleanly (close_notify:
 *    treated as the peer closing); or another negative value for a fatal error (bad record,
 *    failed handshake: the transport may have queued an alert; the connection starts closing,
 *    so the alert is sent, then the socket is shut).
 *  - write(c, p, len, owned, acct, acct_len): plaintext from the handler. NULL (the plain
 *    transport): the connection queues it as is (hb_conn_out_bytes: zero copy, no call). A TLS
 *    transport encrypts at once into its own buffer (p need not outlive the call; owned may be
 *    NULL), queues that with hb_conn_out_bytes (passing acct/acct_len on with the ciphertext,
 *    so the stream's output accounting ends when the bytes leave) and frees `owned`. Returns 0
 *    or -errno (the connection aborts). The connection gathers the handler's small writes
 *    (conn_write.c: up to HB_CONN_GATHER_MAX bytes, one stream's accounting) and calls `write`
 *    once with them at its next flush, so one loop iteration's response is one record, not
 *    one per piece; writes of HB_CONN_GATHER_MAX bytes or more come through at once, after
 *    what was gathered. Output the transport queues itself from on_recv may go out before
 *    plaintext gathered in the same call (the cipher keeps its own order).
 *  - shutdown(c): the connection is about to shut its write side after the output drained:
 *    queue a close_notify (or nothing). Called once, may be NULL.
 *  - free(c): frees c->tls. May be NULL.
 *  - caps: HB_TRANSPORT_SPLICE (file bodies may go file -> pipe -> socket) and
 *    HB_TRANSPORT_SEND_ZC (large owned buffers may go out with send_zc). Only the plain
 *    transport has them: bytes that must be encrypted cannot skip user space. Without SPLICE,
 *    hb_conn_write_file reads the file and writes the bytes through `write`.
 *  - secure: 1 when the bytes are protected (the request scheme is "https"/"wss").
 */
#ifndef HB_SERVER_TRANSPORT_H
#define HB_SERVER_TRANSPORT_H

#include <stddef.h>
#include <stdint.h>

#include "core/stream.h"

struct hb_conn;

enum {
	HB_TRANSPORT_SPLICE = 1u << 0,
	HB_TRANSPORT_SEND_ZC = 1u << 1,
};

#define HB_TRANSPORT_CLOSED (-1000) /* on_recv: the peer ended the session cleanly */

typedef struct hb_transport {
	const char *name; /* "plain", "tls": logs */
	unsigned caps;	  /* HB_TRANSPORT_* */
	int secure;
	int (*init)(struct hb_conn *c);
	int (*on_recv)(struct hb_conn *c, char *p, size_t len);
	int (*write)(struct hb_conn *c, const char *p, size_t len, void *owned, hb_stream_t *acct,
		     uint64_t acct_len);
	void (*shutdown)(struct hb_conn *c);
	void (*free)(struct hb_conn *c);
} hb_transport_t;

/* Bytes pass through unchanged; splice and send_zc allowed (transport_plain.c). */
extern const hb_transport_t hb_transport_plain;

#endif
