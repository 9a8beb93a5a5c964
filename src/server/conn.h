/* conn.h: one HTTP/1.1 client connection on an io thread.
 *
 * Owned by its io thread; nothing here is touched by another thread. The connection reads with
 * a multishot recv into the io thread's provided buffers, parses with proto/h1 one request at a
 * time (pipelined requests wait, unparsed, until the response before them is sent), hands each
 * request to a python worker as an hb_stream_t, and writes what comes back (conn_write.c).
 * It is freed when it is closed, has no op in flight and its stream has ended.
 */
#ifndef HB_SERVER_CONN_H
#define HB_SERVER_CONN_H

#include <stdint.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include "core/stream.h"
#include "proto/h1.h"
#include "server/io.h"

#define HB_CONN_MAX_IOV 64
#define HB_CONN_IN_MAX (64u * 1024u) /* unparsed bytes kept while a request is served */

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
	int zc;	      /* part of it went out with send_zc: the rest must too, and the memory
		       * waits for the notifications (never freed by a plain send) */
	char inl[24]; /* small inline bytes (chunk framing) */
} hb_seg_t;

typedef enum {
	HB_CONN_IDLE = 0, /* between requests (or before the first) */
	HB_CONN_HEAD,	  /* some bytes of a request head seen */
	HB_CONN_SERVING,  /* a stream is in flight */
	HB_CONN_WS,	  /* upgraded: WebSocket frames (conn_ws.c) */
	HB_CONN_CLOSING,  /* error answered: shut down writing, draining input until EOF */
	HB_CONN_DEAD,	  /* socket shut; waiting for ops and the stream to finish */
} hb_conn_state_t;

typedef struct hb_conn {
	struct hb_conn *prev, *next;
	struct hb_conn *dirty_next; /* io's list of connections with output to send */
	hb_io_t *io;
	int fd;
	hb_conn_state_t state;
	int ops; /* ops in flight */
	hb_op_t recv_op, send_op, zc_op, splice_in_op, splice_out_op, shut_op;
	unsigned recv_armed : 1, recv_paused : 1, send_busy : 1, peer_closed : 1;
	unsigned addr_known : 1, keep_alive : 1, chunked : 1, no_body : 1;
	unsigned head_sent : 1, ended : 1, abort : 1, continue_sent : 1, body_done : 1;
	unsigned abandoned : 1, shut_sent : 1, dirty : 1, parser_paused : 1, recv_cancelling : 1;
	unsigned eof_pending : 1; /* body complete, but its last chunk still waits in body_held */
	hb_h1_parser_t *parser;
	struct hb_conn_ws *ws; /* WebSocket state, from the upgrade request on */
	/* unparsed input */
	char *in;
	size_t in_len, in_cap, in_off;
	/* body bytes parsed in the current feed, pushed to the stream as one chunk */
	hb_chunk_t *body_acc;
	size_t body_acc_cap;
	hb_chunk_t *body_held; /* a chunk the stream had no room for: pushed on resume */
	/* the exchange in flight */
	hb_stream_t *stream;
	hb_request_t *req_pending; /* parsed head waiting for a free worker */
	int64_t resp_cl;	   /* Content-Length the app declared; -1 none */
	uint64_t resp_body;	   /* body bytes accepted for sending */
	int pending_error;	   /* status to answer once the current exchange is done */
	/* output */
	hb_seg_t *out_head, *out_tail;
	hb_seg_t *zc_retired; /* sent with send_zc: kept until the kernel's notifications */
	int zc_pending;	      /* notifications still to come */
	struct msghdr msg;
	struct iovec iov[HB_CONN_MAX_IOV];
	int niov;
	int pipefd[2];
	int64_t splice_inflight; /* bytes in the pipe */
	/* deadlines (monotonic ns; 0 = none) */
	uint64_t deadline;
	uint64_t resp_deadline; /* request timeout: the head must come before */
	uint64_t last_write_ns;
	uint64_t drain_deadline;
	uint64_t requests;
	char remote[64], local[64];
	uint16_t remote_port, local_port;
} hb_conn_t;

/* [io] A new accepted socket. Returns NULL (socket closed) on ENOMEM. */
hb_conn_t *hb_conn_new(hb_io_t *io, int fd);
/* [io] Completion handlers, called from io.c's dispatch switch. */
void hb_conn_on_recv(hb_conn_t *c, struct io_uring_cqe *cqe);
void hb_conn_on_send(hb_conn_t *c, int res);
void hb_conn_on_send_zc(hb_conn_t *c, struct io_uring_cqe *cqe);
void hb_conn_on_splice_in(hb_conn_t *c, int res);
void hb_conn_on_splice_out(hb_conn_t *c, int res);
void hb_conn_on_shutdown(hb_conn_t *c, int res);
/* [io] A message from a worker about this connection's stream. */
void hb_conn_on_msg(hb_conn_t *c, hb_msg_t *m);
/* [io] Deadline checks, every tick. */
void hb_conn_tick(hb_conn_t *c, uint64_t now);
/* [io] Server draining: close now if idle, else after the current response. */
void hb_conn_drain(hb_conn_t *c, int force);
/* [io] Sends what was queued by messages in this loop iteration (one send per batch). */
void hb_conn_flush_dirty(hb_conn_t *c);

/* conn_write.c */
void hb_conn_out_bytes(hb_conn_t *c, const char *p, size_t len, void *owned, hb_stream_t *acct,
		       uint64_t acct_len);
void hb_conn_out_copy(hb_conn_t *c, const char *p, size_t len);
void hb_conn_out_file(hb_conn_t *c, int fd, int64_t off, int64_t len);
void hb_conn_flush(hb_conn_t *c);
int hb_conn_out_empty(const hb_conn_t *c);
/* Unsent output stops counting against stream st (before the io thread drops its reference). */
void hb_conn_out_forget(hb_conn_t *c, const hb_stream_t *st);
void hb_conn_out_free(hb_conn_t *c);

/* conn.c, used by conn_write.c and conn_ws.c */
void hb_conn_sent_all(hb_conn_t *c);
void hb_conn_start_closing(hb_conn_t *c);
void hb_conn_update_reading(hb_conn_t *c);
void hb_conn_in_append(hb_conn_t *c, const char *p, size_t len);
void hb_conn_mark_dirty(hb_conn_t *c);
int hb_conn_hold_append(hb_conn_t *c, hb_chunk_t *ch);
void hb_conn_abort(hb_conn_t *c);
void hb_conn_maybe_free(hb_conn_t *c);

#endif
