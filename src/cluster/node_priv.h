/* node_priv.h: what the cluster thread's three files share: the link and the cluster structures.
 *  - node.c: the thread (its loop, SWIM's timers, output and events, the live-member snapshot,
 *    seeds, leave) and control (hb_cluster_start/stop on the controlling thread, the listener
 *    socket, hb_cluster_nodes from any thread). It owns hb_cluster_t and the hb_swim_t.
 *  - node_link.c: the links: dial or accept, I/O on the ring, TLS, the cookie handshake, frame
 *    dispatch (SWIM to the hb_swim_t, data-plane frames to dataplane.c). It owns every link_t
 *    and frees one only when no op is in flight.
 *  - dataplane.c: calls, replies, publishes and tables over the links (rpc.h, core/remote.h).
 * Everything here is used on the cluster thread only, except the fields marked otherwise (the
 * live snapshot, the command queue, the tables, the counters).
 */
#ifndef HB_CLUSTER_NODE_PRIV_H
#define HB_CLUSTER_NODE_PRIV_H

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <semaphore.h>
#include <stdatomic.h>
#include <sys/socket.h>

#include "cluster/auth.h"
#include "cluster/frame.h"
#include "cluster/node.h"
#include "cluster/rpc.h"
#include "core/remote.h"
#include "core/ring.h"
#include "proto/tls.h"

#define RBUF_SIZE (64u << 10)
#define WBUF_SIZE (2 * (HB_FRAME_HEADER_SIZE + HB_FRAME_DEFAULT_CHUNK))
#define TICK_MS 10
#define MAX_QUEUED 4096u /* default link_queue: messages waiting on one link */

/* Lanes of a link's sender (frame.h): publishes keep their order, casts theirs. */
enum { LANE_PUBLISH = 1, LANE_CAST = 2 };

/* L_TLS: the TLS handshake (cluster_tls), before the cookie handshake (L_AUTH). */
enum { L_CONNECTING, L_TLS, L_AUTH, L_UP, L_CLOSING };
enum { OP_CONNECT, OP_RECV, OP_SEND, OP_ACCEPT };

/* A call this node sent and waits a REPLY for (dataplane.c). */
typedef struct pending {
	struct pending *next;
	uint32_t stream;
	int64_t deadline; /* then it is given up (the caller has by then) */
	hb_job_t *job;	  /* the cluster's reference */
} pending_t;

typedef struct link {
	struct link *next;
	hb_cluster_t *cl;
	int fd, state, outgoing;
	int busy; /* ops in flight; the link is freed only at zero */
	int sending;
	uint64_t serial;		 /* names the link in replies computed elsewhere */
	uint32_t next_stream;		 /* odd on the dialler's side, even on the acceptor's */
	pending_t *pending;		 /* calls sent on this link */
	char addr[HB_SWIM_MAX_ADDR + 1]; /* outgoing: the address dialled */
	char peer[HB_AUTH_MAX_NAME + 1]; /* once authenticated */
	hb_auth_t auth;
	hb_frame_parser_t *parser;
	hb_frame_out_t *out;
	uint8_t *rbuf, *wbuf;
	size_t wlen, woff;
	/* with TLS: wbuf's bytes are encrypted at once, ciphertext goes out from tx (malloc'd by
	 * the engine); rbuf holds ciphertext until fed, then the plaintext read back */
	hb_tls_t *tls;
	int tls_rx; /* some ciphertext came */
	uint8_t *tx;
	size_t txlen, txoff;
	struct sockaddr_storage sa;
	socklen_t salen;
	int64_t born;
	hb_ring_op_t op_connect, op_recv, op_send;
} link_t;

typedef struct cmd cmd_t;	/* dataplane.c: a worker's request to the cluster thread */
typedef struct served served_t; /* dataplane.c: a call run here for another node */

struct hb_cluster {
	hb_cluster_config_t c; /* c.tls: our reference */
	char name[HB_SWIM_MAX_NAME + 1];
	char advertise[HB_SWIM_MAX_ADDR + 1];
	char bind_host[INET6_ADDRSTRLEN + 1];
	char **seeds;
	size_t nseeds;
	char **allow; /* rpc_allow, copied */
	size_t nallow;
	uint8_t cookie[HB_AUTH_MAX_COOKIE];
	int lfd;
	uint16_t port;
	pthread_t th;
	_Atomic int stop;
	int leave;
	hb_ring_t ring;
	hb_ring_op_t op_accept;
	int accept_armed;
	hb_swim_t *swim;
	link_t *links;
	uint64_t link_serial;
	int64_t next_join;
	pthread_mutex_t mu; /* guards live/nlive */
	char **live;
	int nlive;
	sem_t started;
	int start_rc;
	int busy_at_stop; /* hb_dp_stop timed out: cl is not freed */
	/* data plane (dataplane.c) */
	pthread_mutex_t qmu; /* guards cmds and done (any thread) */
	cmd_t *cmds, *cmds_tail;
	served_t *done;
	_Atomic int outstanding; /* served jobs not yet back in `done` */
	int64_t next_bus_check;	 /* dataplane.c: hb_xbus_check_pending */
	pthread_mutex_t tmu;	 /* guards tables (any thread) */
	hb_rpc_tables_t *tables;
	uint64_t funcs_gen, ps_gen; /* what was last announced */
	int announced;
	hb_remote_t remote;
	_Atomic uint64_t calls_sent, calls_served, publish_sent, publish_received, publish_dropped,
		calls_refused;
};

/* node.c */
/* The cluster thread's clock (the ring's), in milliseconds. */
int64_t hb_cl_now_ms(hb_cluster_t *cl);

/* node_link.c */
/* "1.2.3.4:5" or "[::1]:5" into a sockaddr: 0 or -EINVAL (a name is not resolved here). */
int hb_cl_addr_parse(const char *s, struct sockaddr_storage *sa, socklen_t *len);
/* A sockaddr as "1.2.3.4:5" or "[::1]:5". */
void hb_cl_addr_format(const struct sockaddr *sa, char *out, size_t cap);
/* Sends what the link has buffered, refilling from its frame queue once authenticated; a no-op
 * while a send is in flight (its completion calls this again). */
void hb_cl_flush(link_t *l);
/* Closes a link (its pending calls fail, dataplane.c); `why` (static) is logged as a warning
 * naming the peer, NULL closes quietly. l is freed here or when its last op completes. */
void hb_cl_link_close(link_t *l, const char *why);
/* The link to the member at addr (an authenticated one, else one being dialled, else a new
 * dial); NULL when addr is bad or out of memory. */
link_t *hb_cl_link_to(hb_cluster_t *cl, const char *addr);
/* Sets up the listener's multishot accept op and arms it (once, when the thread starts); the
 * links it accepts are node_link.c's. */
void hb_cl_accept_start(hb_cluster_t *cl);
/* Arms the accept again (the kernel ended the multishot: no IORING_CQE_F_MORE). */
void hb_cl_arm_accept(hb_cluster_t *cl);

/* dataplane.c */
int hb_dp_init(hb_cluster_t *cl);
/* On the cluster thread at the end, after the links closed: fails queued commands, waits for
 * served jobs (bounded). Returns 0, or -EBUSY when some are still running in workers (then cl
 * must not be freed). */
int hb_dp_stop(hb_cluster_t *cl);
void hb_dp_free(hb_cluster_t *cl);
/* Every loop turn: runs queued commands and finished served jobs, announces changed tables,
 * gives up calls past their deadline. */
void hb_dp_pump(hb_cluster_t *cl, int64_t now);
/* A CALL, CAST, REPLY, PUBLISH or TABLES frame from an authenticated link. */
void hb_dp_input(link_t *l, const hb_frame_msg_t *m);
/* A link became authenticated / is closing (its pending calls fail). */
void hb_dp_link_up(link_t *l);
void hb_dp_link_closed(link_t *l);
/* A member died or left: its tables are forgotten and its links closed. */
void hb_dp_member_gone(hb_cluster_t *cl, const char *name);
/* A member joined: a link to it is opened (so tables flow both ways). */
void hb_dp_member_join(hb_cluster_t *cl, const char *name, const char *addr);

#endif
