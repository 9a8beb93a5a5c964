/* conn.h: one client connection on an io thread, and the two seams a protocol plugs into.
 *
 * Owned by its io thread; nothing here is touched by another thread. A connection is a socket
 * with its ops in flight, an input backlog, an output queue (conn_write.c), a transport and a
 * protocol handler:
 *
 *   socket --sock ops--> conn --transport->on_recv--> plaintext --handler->on_data--> exchanges
 *   exchanges/handler --hb_conn_write*--> transport (plain: as is; TLS: encrypted) --> output
 *   queue --sock ops (sendmsg, send_zc, splice)--> socket
 *
 * Socket ops (hb_sock_ops_t) are how the connection submits work: the io thread's are io_uring
 * ops (conn_uring.c); tests drive a connection with a fake and call the hb_conn_*_done
 * completions themselves. The connection counts its ops in flight and is freed only when it is
 * DEAD, none remain, and no exchange is left (exchange.h).
 *
 * The protocol handler (hb_proto_handler_t, below) is a const table chosen when the first
 * plaintext arrives (by ALPN where the transport negotiated one; HTTP/1.1 otherwise) and swapped
 * by an upgrade (hb_conn_set_handler). conn.c itself knows no protocol: it reads, writes, counts
 * ops, runs the close handshake and the write/linger deadlines, and routes worker messages to
 * the handler of the message's exchange.
 */
#ifndef HB_SERVER_CONN_H
#define HB_SERVER_CONN_H

#include <stdint.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include "core/stream.h"
#include "server/exchange.h"
#include "server/io.h"
#include "server/transport.h"

#define HB_CONN_MAX_IOV 64
#define HB_CONN_GATHER_KEEP 2048u    /* a gather buffer up to this size stays between flushes */
#define HB_CONN_GATHER_MAX 16384u    /* small writes gathered for a transport's write: one record */
#define HB_CONN_IN_MAX (64u * 1024u) /* unparsed bytes kept while a request is served */
#define HB_CONN_LINGER_NS (2 * 1000000000ull) /* a closing connection drains input this long */

typedef struct hb_conn hb_conn_t;

/* One piece of output: bytes (maybe owned), or a file region. */
typedef struct hb_seg {
	struct hb_seg *next;
	const char *p;
	size_t len;
	void *owned;	   /* freed when sent */
	hb_stream_t *acct; /* body bytes: hb_stream_out_done(acct, acct_len) when sent */
	uint64_t acct_len;
	int file_fd; /* >= 0: a file region (p/len unused) */
	int64_t file_off, file_left;
	int zc;		      /* part of it went out with send_zc: the rest must too, and the memory
			       * waits for the notifications (never freed by a plain send) */
	char inl[24];	      /* small inline bytes (chunk framing) */
	const char *room_end; /* a copy with room after its bytes (conn_write.c: tail_append); NULL:
			       * nothing may be appended */
} hb_seg_t;

/* ---- the protocol handler table ------------------------------------------------------------
 * One per protocol (HTTP/1.1: conn_h1.c, WebSocket: conn_ws.c; HTTP/2 adds its own); its state
 * is c->proto, created by the handler's start function and freed by `free`. Every entry is
 * called on the io thread, never while the connection is DEAD (except `free`), and may queue
 * output (hb_conn_write*), pause reading (c->recv_paused + hb_conn_update_reading), start the
 * close (hb_conn_start_closing) or abort (hb_conn_abort). The connection marks itself dirty and
 * flushes after each entry that may have queued output. */
typedef struct hb_proto_handler {
	const char *name; /* "http/1.1", "websocket", "h2": logs */
	/* Plaintext from the transport, while the connection is OPEN. p is writable and valid
	 * only during the call: keep what is not consumed (e.g. hb_conn_in_append). */
	void (*on_data)(hb_conn_t *c, char *p, size_t len);
	/* A worker message for exchange x (x->conn == c). The connection has done the generic
	 * part first: END already set x->ended and the worker's accounting. The handler owns
	 * m->ptr (free it, queue it, or hb_exchange_drop_msg). While the connection is DEAD the
	 * connection drops payloads itself and does not call this. */
	void (*on_message_from_worker)(hb_conn_t *c, hb_exchange_t *x, hb_msg_t *m);
	/* The output queue drained (nothing queued, no send in flight), connection not DEAD:
	 * finish ended exchanges (hb_exchange_finish), go on with pipelined input. */
	void (*on_sent)(hb_conn_t *c);
	/* Every tick (200 ms) while OPEN and the server is not draining: protocol deadlines. */
	void (*on_tick)(hb_conn_t *c, uint64_t now);
	/* The server drains gracefully (every tick while OPEN): finish what is in flight, take no
	 * more (h1: Connection: close; ws: close 1012; h2: GOAWAY). An idle connection aborts. */
	void (*on_drain)(hb_conn_t *c);
	/* The peer closed or reset while the connection was OPEN or CLOSING: tell the apps
	 * (hb_exchange_client_gone). The connection aborts right after. */
	void (*on_peer_closed)(hb_conn_t *c);
	/* The connection is being freed (or the handler swapped out): free c->proto. Exchanges
	 * are already released. */
	void (*free)(hb_conn_t *c);
} hb_proto_handler_t;

/* ---- the socket ops seam --------------------------------------------------------------------
 * What a connection submits to its socket. Each call submits one op (its completion comes later
 * through the matching hb_conn_*_done below); op accounting (c->ops) is the connection's. */
typedef struct hb_sock_ops {
	/* Multishot recv into provided buffers: hb_conn_recv_done per completion. */
	void (*recv_arm)(hb_conn_t *c);
	/* Cancels the armed recv (its last completion still comes, usually -ECANCELED). */
	void (*recv_cancel)(hb_conn_t *c);
	/* sendmsg of c->msg (iovecs in c->iov): hb_conn_send_done. */
	void (*sendmsg)(hb_conn_t *c);
	/* send_zc of p/len: hb_conn_zc_done (res; more = a notification follows), then
	 * hb_conn_zc_notified once the kernel released the memory. */
	void (*send_zc)(hb_conn_t *c, const void *p, size_t len);
	/* splice file -> c->pipefd[1] (in) or c->pipefd[0] -> socket (out): hb_conn_splice_done. */
	void (*splice)(hb_conn_t *c, int out, int fd_in, int64_t off_in, unsigned len);
	/* shutdown(SHUT_WR), asynchronously: hb_conn_shutdown_done. */
	void (*shutdown_wr)(hb_conn_t *c);
	/* Synchronous: shut the socket both ways (every op in flight completes soon). */
	void (*abort)(hb_conn_t *c);
	/* Synchronous: close the descriptor (the connection is being freed). */
	void (*close)(hb_conn_t *c);
} hb_sock_ops_t;

typedef enum {
	HB_CONN_OPEN = 0, /* the handler runs */
	HB_CONN_CLOSING,  /* final output queued: shut down writing once sent, drain input */
	HB_CONN_DEAD,	  /* socket shut; waiting for ops and exchanges to finish */
} hb_conn_state_t;

struct hb_conn {
	struct hb_conn *prev, *next;
	struct hb_conn *dirty_next; /* io's list of connections with output to send */
	hb_io_t *io;
	const hb_sock_ops_t *sock;
	int fd;
	hb_conn_state_t state;
	int ops; /* ops in flight */
	hb_op_t recv_op, send_op, zc_op, splice_in_op, splice_out_op, shut_op;
	unsigned recv_armed : 1, recv_paused : 1, send_busy : 1, peer_closed : 1;
	unsigned addr_known : 1, shut_sent : 1, dirty : 1, recv_cancelling : 1;
	unsigned peer_local : 1;     /* the peer is this host (loopback): see hb_conn_learn_addrs */
	unsigned transport_shut : 1; /* transport->shutdown ran */
	unsigned peer_unix : 1;	     /* the peer is on a unix socket (trusted as a proxy) */
	unsigned proxy_pending : 1;  /* a PROXY protocol header must come first (conn_proxy.c) */
	unsigned trust_known : 1;    /* `trusted` holds hb_conn_peer_trusted's answer */
	unsigned trusted : 1;
	/* transport and protocol */
	const hb_transport_t *transport;
	void *tls;	  /* the transport's per-connection state (NULL for plain) */
	const char *alpn; /* protocol the transport negotiated ("h2", "http/1.1"), or NULL */
	const hb_proto_handler_t *handler; /* NULL until the first plaintext */
	void *proto;			   /* the handler's state */
	hb_exchange_t *exchanges;	   /* every exchange not yet released */
	/* unparsed plaintext the handler kept */
	char *in;
	size_t in_len, in_cap, in_off;
	/* output */
	hb_seg_t *out_head, *out_tail;
	hb_seg_t *zc_retired; /* sent with send_zc: kept until the kernel's notifications */
	int zc_pending;	      /* notifications still to come */
	/* small plaintext writes gathered for transport->write until the next flush (TLS: one
	 * record for a response head, its body and framing instead of one each) */
	char *gather;
	size_t gather_len, gather_cap;
	hb_stream_t *gather_acct; /* the one stream the gathered bytes count against, or NULL */
	uint64_t gather_acct_len;
	struct msghdr msg;
	struct iovec
		*iov; /* HB_CONN_MAX_IOV entries from the io's cache while a sendmsg is in
		       * flight (hb_conn_iov_get), NULL otherwise: idle connections hold none */
	int pipefd[2];
	int64_t splice_inflight; /* bytes in the pipe */
	/* deadlines (monotonic ns; 0 = none) */
	uint64_t start_deadline; /* no handler yet (nothing read): header_timeout */
	uint64_t last_write_ns;
	uint64_t drain_deadline;
	uint64_t requests;
	char remote[64], local[64];
	uint16_t remote_port, local_port;
};

/* [io] A new accepted socket with transport t (the listener's: plain or TLS) and the io
 * thread's socket ops. Returns NULL (socket closed) on ENOMEM or when t's init fails. */
hb_conn_t *hb_conn_new(hb_io_t *io, int fd, const hb_transport_t *t);
/* [io] The same with a given transport and socket ops (tests pass fakes). */
hb_conn_t *hb_conn_new_with(hb_io_t *io, int fd, const hb_transport_t *t,
			    const hb_sock_ops_t *sock);

/* [io] Completions of the socket ops. recv: res > 0 with p[0..res) (valid during the call),
 * 0 EOF, < 0 error; more: the multishot recv stays armed. */
void hb_conn_recv_done(hb_conn_t *c, int res, int more, char *p);
void hb_conn_send_done(hb_conn_t *c, int res);
void hb_conn_zc_done(hb_conn_t *c, int res, int more);
void hb_conn_zc_notified(hb_conn_t *c);
void hb_conn_splice_done(hb_conn_t *c, int out, int res);
void hb_conn_shutdown_done(hb_conn_t *c, int res);

/* [io] A worker message; m->stream->exchange finds the exchange and its connection. */
void hb_conn_on_msg(hb_msg_t *m);
/* [io] Deadline checks, every tick. */
void hb_conn_tick(hb_conn_t *c, uint64_t now);
/* [io] Server draining: force closes now; else the handler finishes what is in flight. */
void hb_conn_drain(hb_conn_t *c, int force);
/* [io] Sends what was queued by messages in this loop iteration (one send per batch). */
void hb_conn_flush_dirty(hb_conn_t *c);

/* ---- for transports and handlers ---- */
/* Plaintext for the handler (transports call this from on_recv). Picks the handler on first
 * use (by c->alpn). */
void hb_conn_deliver(hb_conn_t *c, char *p, size_t len);
/* Replaces the handler: the old one's `free` runs first, then c->proto = proto. */
void hb_conn_set_handler(hb_conn_t *c, const hb_proto_handler_t *h, void *proto);
/* Output through the transport (plaintext in). `owned` is freed once sent (or at once by a
 * transport that copies); acct/acct_len: hb_stream_out_done when the bytes are gone. */
void hb_conn_write(hb_conn_t *c, const char *p, size_t len, void *owned, hb_stream_t *acct,
		   uint64_t acct_len);
void hb_conn_write_copy(hb_conn_t *c, const char *p, size_t len);
/* A file region; transports without HB_TRANSPORT_SPLICE read it and write the bytes. */
void hb_conn_write_file(hb_conn_t *c, int fd, int64_t off, int64_t len);
int hb_conn_out_empty(const hb_conn_t *c);
/* Nothing queued and no send in flight. */
int hb_conn_out_idle(const hb_conn_t *c);
/* A deadline `secs` from now; 0 (none) when secs <= 0. */
uint64_t hb_conn_after_s(const hb_conn_t *c, int64_t secs);
void hb_conn_start_closing(hb_conn_t *c);
void hb_conn_abort(hb_conn_t *c);
void hb_conn_update_reading(hb_conn_t *c);
void hb_conn_in_append(hb_conn_t *c, const char *p, size_t len);
/* Frees the backlog's buffer if it holds nothing (an idle connection keeps none). */
void hb_conn_in_release(hb_conn_t *c);
/* Moves the unparsed backlog out (caller frees *p); returns its length (0: none, *p NULL). */
size_t hb_conn_in_take(hb_conn_t *c, char **p);
void hb_conn_mark_dirty(hb_conn_t *c);
void hb_conn_learn_addrs(hb_conn_t *c);

/* ---- the output queue (conn_write.c): raw bytes after the transport ---- */
void hb_conn_out_bytes(hb_conn_t *c, const char *p, size_t len, void *owned, hb_stream_t *acct,
		       uint64_t acct_len);
void hb_conn_out_copy(hb_conn_t *c, const char *p, size_t len);
void hb_conn_out_file(hb_conn_t *c, int fd, int64_t off, int64_t len);
void hb_conn_flush(hb_conn_t *c);
/* Unsent output stops counting against stream st (before the io thread drops its reference). */
void hb_conn_out_forget(hb_conn_t *c, const hb_stream_t *st);
void hb_conn_out_free(hb_conn_t *c);

/* conn.c, for conn_write.c */
void hb_conn_sent_all(hb_conn_t *c);
void hb_conn_maybe_free(hb_conn_t *c);

/* ---- per-io caches (conn.c) -----------------------------------------------------------------
 * What only a busy connection needs, kept by its io thread between uses instead of in every idle
 * connection: sendmsg iovec arrays (HB_CONN_MAX_IOV entries) and HTTP/1.1 parsers (conn_h1.c).
 * At most HB_IO_CACHE_MAX of each are kept; hb_conn_caches_free (hb_io_free) frees them. */
#define HB_IO_CACHE_MAX 256u
/* [io] An iovec array (NULL on ENOMEM); back with hb_conn_iov_put (NULL is ignored). */
struct iovec *hb_conn_iov_get(hb_io_t *io);
void hb_conn_iov_put(hb_io_t *io, struct iovec *v);
void hb_conn_caches_free(hb_io_t *io);

/* The io thread's socket ops (conn_uring.c). */
extern const hb_sock_ops_t hb_conn_uring_ops;

#endif
