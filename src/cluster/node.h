/* node.h: the cluster thread: TCP links between nodes on core's ring, the cookie handshake on
 * each, and SWIM membership carried over them.
 *
 * hb_cluster_start() binds the listener (so a busy port fails at once), then starts one thread
 * that owns an hb_ring_t, the listener, every link and the hb_swim_t. A link is a TCP
 * connection to one peer; before anything else both ends run auth.h's handshake, then frames
 * (frame.h) flow both ways. SWIM messages to a member go over any authenticated link to it
 * (looked up by name), else over a link the thread opens to the member's address. A link that
 * sends a garbled frame, a frame over max_frame_size or a wrong proof is closed with a warning
 * naming the peer; nothing else is affected. With TLS (cluster_tls), every link first runs a
 * mutual TLS handshake (proto/tls.h's engine, over the link's buffers): the dialler is the TLS
 * client, both certificates must chain to the cluster's CA, and the cookie handshake and every
 * frame (SWIM included) then travel inside it. Seeds are resolved with getaddrinfo (every address
 * of a name) and joined at start and again every `rejoin_ms` while no member is alive.
 *
 * Calls and publishes between nodes (dataplane.c, rpc.h) ride the same links: see
 * hb_cluster_remote.
 *
 * Threads: hb_cluster_start/stop from one controlling thread (main); hb_cluster_nodes, the
 * hb_remote_t functions and hb_cluster_name from any thread (a mutex guards the live-member
 * snapshot). on_event runs on the cluster thread. Errors: 0 / -errno.
 */
#ifndef HB_CLUSTER_NODE_H
#define HB_CLUSTER_NODE_H

#include <stddef.h>
#include <stdint.h>

#include "cluster/swim.h"
#include "core/config.h"
#include "core/funcs.h"
#include "core/pubsub.h"
#include "core/remote.h"
#include "core/xbus.h"

typedef struct hb_cluster hb_cluster_t;
struct hb_tls_ctx; /* proto/tls.h */

/* The ALPN protocol node links offer and accept under TLS. */
#define HB_CLUSTER_ALPN "hornbeam-cluster/1"
/* TLS 1.3 suites of node links, ChaCha20-Poly1305 first: without AES-NI code in wolfSSL (as
 * Debian builds it) it is several times faster than AES-GCM (perf/cluster/rpc_tls_bench.py). */
#define HB_CLUSTER_TLS_CIPHERS                                                                     \
	"TLS13-CHACHA20-POLY1305-SHA256:TLS13-AES128-GCM-SHA256:TLS13-AES256-GCM-SHA384"

typedef void (*hb_cluster_event_fn)(const hb_swim_event_t *ev, void *ud);

typedef struct hb_cluster_config {
	const char *node_name;	  /* required */
	const char *bind_host;	  /* numeric address to listen on, default "0.0.0.0" */
	uint16_t bind_port;	  /* 0: any (tests); see hb_cluster_port */
	const char *advertise;	  /* "ip:port" others dial; default the bind address */
	const char *const *seeds; /* "host:port", a host name means all its addresses */
	size_t nseeds;
	const void *cookie; /* required, 1..HB_AUTH_MAX_COOKIE bytes */
	size_t cookie_len;
	uint32_t max_frame_size;      /* 0: HB_FRAME_DEFAULT_MAX_FRAME */
	uint32_t auth_timeout_ms;     /* a link not authenticated by then is closed; 0: 5000 */
	uint32_t rejoin_ms;	      /* seed retry while alone; 0: 5000 */
	uint32_t leave_wait_ms;	      /* hb_cluster_stop(leave) flushes this long; 0: 500 */
	hb_swim_config_t swim;	      /* probe_interval_ms etc. (name/addr/seed filled in) */
	hb_cluster_event_fn on_event; /* membership events, on the cluster thread; may be NULL */
	void *ud;
	/* the data plane (dataplane.c): calls from other nodes run in these registries' workers,
	 * their publishes reach ps's subscribers; NULL: this node serves none */
	hb_funcs_t *funcs;
	hb_pubsub_t *ps;
	/* this node's process bus (core/xbus.h), attached in this process, or NULL: calls from
	 * other nodes then also reach the functions registered in the node's other worker
	 * processes, and "module:function" calls are spread over all of them (round robin); the
	 * names announced to other nodes are the bus's (every process's) */
	hb_xbus_t *bus;
	const char *const *rpc_allow; /* modules other nodes may rpc_call; none: every module */
	size_t nrpc_allow;
	uint32_t link_queue; /* messages queued on one link; 0: 4096 */
	/* mutual TLS on every link, under the cookie handshake: a ctx built with `client` and
	 * verify_client required (the cluster takes its own reference); NULL: plaintext links */
	struct hb_tls_ctx *tls;
} hb_cluster_config_t;

/* Binds, listens and starts the thread. Returns 0 with *out, or -errno (-EINVAL for a missing
 * name or cookie, -EADDRINUSE, ...). */
int hb_cluster_start(const hb_cluster_config_t *c, hb_cluster_t **out);
/* hb_cluster_start from the [cluster] keys of the configuration (node_name defaults to
 * hornbeam@<hostname>); tls from hb_cluster_tls_new (NULL when cluster_tls is off; the node
 * takes its own reference); bus as in hb_cluster_config_t. Returns 0 or -errno. */
int hb_cluster_start_config(const hb_config_t *cfg, struct hb_tls_ctx *tls, hb_cluster_event_fn fn,
			    void *ud, hb_funcs_t *funcs, hb_pubsub_t *ps, hb_xbus_t *bus,
			    hb_cluster_t **out);
/* [main] The TLS context of node links from the cluster_* keys (node_tls.c): *out NULL when
 * cluster_tls is off. Every file is read now: the caller builds it before it starts serving
 * (a bad file stops the start, or fails a reload with the old generation's node left up) and
 * unrefs it with hb_tls_ctx_unref. Returns 0, or -EINVAL with err naming the key and the file
 * ("cluster_keyfile /etc/n.key: cannot decrypt it: wrong cluster_keyfile_password?"). */
int hb_cluster_tls_new(const hb_config_t *cfg, struct hb_tls_ctx **out, char *err, size_t errlen);
/* How other layers reach other nodes through this cluster (core/remote.h); valid until
 * hb_cluster_stop. */
const hb_remote_t *hb_cluster_remote(hb_cluster_t *cl);
/* Stops the thread: with leave, first tells every member this node leaves and flushes for up to
 * leave_wait_ms; without, links just close (as a crash looks to the others). Frees everything
 * and returns 0, or returns 1 when a call served for another node was still running in a worker
 * after the wait: then the structure is left to the exiting process (not freed). */
int hb_cluster_stop(hb_cluster_t *cl, int leave);
/* The port actually bound (useful with bind_port 0). */
uint16_t hb_cluster_port(const hb_cluster_t *cl);
/* A snapshot of the live members' names (alive or suspect), sorted: a malloc'd array of
 * malloc'd strings the caller frees with hb_cluster_names_free. Returns the count or -ENOMEM. */
int hb_cluster_nodes(hb_cluster_t *cl, char ***names);
void hb_cluster_names_free(char **names, int n);

#endif
