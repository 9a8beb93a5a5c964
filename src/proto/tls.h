/* tls.h: the TLS engine (wolfSSL) over memory buffers, server side and (for the cluster's node
 * links) client side. No I/O: ciphertext in, plaintext
 * out; plaintext in, ciphertext out. wolfSSL's I/O callbacks read and write the engine's own
 * buffers and never touch a socket, so the engine is unit-tested and fuzzed without one.
 *
 * Two objects:
 * - hb_tls_ctx_t, the server context: certificate/key pairs (one default, others chosen by SNI),
 *   client verification (mutual TLS), minimum version, ciphers, the ALPN list in preference
 *   order, and the session-ticket keys. Built on the main thread from an hb_tls_conf_t
 *   (hb_tls_ctx_new); afterwards read-only except for the ticket keys, which carry their own
 *   lock, so every io thread may create engines from it at once. Refcounted: each engine holds
 *   a reference, so a reload (a new ctx swapped into an hb_tls_live_t) leaves open connections
 *   on the ctx they started with; the last hb_tls_ctx_unref frees it.
 * - A ctx built with `client` set also makes client engines (hb_tls_new_client): the default
 *   pair is the client certificate and the server's certificate must chain to cacertfile (no
 *   host name check: the cluster's nodes are dialled by address and authenticated by their CA).
 *   Used with verify_client = required, both ends of a link prove themselves (mutual TLS).
 * - hb_tls_t, one connection's engine, owned and used by one io thread only. Feed it what the
 *   socket gave (hb_tls_feed), drive the handshake (hb_tls_handshake) and read plaintext
 *   (hb_tls_read); write plaintext (hb_tls_write/hb_tls_writev); take the ciphertext to send
 *   (hb_tls_out_take). Any call may produce ciphertext (handshake messages, tickets, alerts):
 *   check hb_tls_out_pending after each.
 *
 * Ticket keys are one store shared by every io thread (and carried over to the ctx a reload
 * builds), rotated every ticket_lifetime seconds: a ticket issued on one thread resumes on any
 * other; tickets made with the previous key are still accepted (and replaced) for one more
 * lifetime. wolfSSL's internal session-ID cache (TLS 1.2 clients without tickets) stays on.
 *
 * Errors are negative HB_TLS_E_* with a static reason (`why`); after a fatal error the engine
 * is dead (every later call returns the same error) but hb_tls_out_take may still hold an alert
 * worth sending before the socket is closed. TLS < 1.2 is refused unless configured, there is
 * no renegotiation (wolfSSL is built without it) and no compression.
 */
#ifndef HB_PROTO_TLS_H
#define HB_PROTO_TLS_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/uio.h>

typedef struct hb_tls_ctx hb_tls_ctx_t;
typedef struct hb_tls hb_tls_t;

enum {
	HB_TLS_OK = 0,
	HB_TLS_EOF = -1,	 /* the peer sent close_notify: no more plaintext */
	HB_TLS_E_NOMEM = -2,	 /* out of memory */
	HB_TLS_E_HANDSHAKE = -3, /* the handshake failed (bad hello, version, cipher, cert, ALPN) */
	HB_TLS_E_PROTOCOL = -4,	 /* a bad record after the handshake (MAC, decode, alert) */
	HB_TLS_E_STATE = -5,	 /* call out of order (write before the handshake is done) */
};

typedef enum {
	HB_TLS_VERIFY_NONE = 0, /* no client certificate asked for */
	HB_TLS_VERIFY_OPTIONAL, /* asked for; none is fine, a bad one fails the handshake */
	HB_TLS_VERIFY_REQUIRED, /* a valid client certificate or no handshake */
} hb_tls_verify_t;

typedef enum { HB_TLS_V1_2 = 0, HB_TLS_V1_3 } hb_tls_version_t;

/* One certificate/key pair. server_name NULL or "": the default pair (clients without SNI, or
 * with a name no pair claims). "*.example.com" matches one label. */
typedef struct hb_tls_cert_conf {
	const char *server_name;
	const char *certfile; /* PEM: the certificate, then its chain */
	const char *keyfile;  /* PEM; may be encrypted */
	const char *password; /* for an encrypted keyfile; NULL: none */
} hb_tls_cert_conf_t;

#define HB_TLS_DEFAULT_CIPHERS                                                                     \
	"TLS13-AES128-GCM-SHA256:TLS13-AES256-GCM-SHA384:TLS13-CHACHA20-POLY1305-SHA256:"          \
	"ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"                               \
	"ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"                               \
	"ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305"
#define HB_TLS_DEFAULT_TICKET_LIFETIME 3600
#define HB_TLS_MAX_CERTS 64
#define HB_TLS_MAX_ALPN 8

typedef struct hb_tls_conf {
	const hb_tls_cert_conf_t *certs; /* at least one; the first without a name is the default
					  * (or the first one when all have names) */
	size_t ncerts;
	const char *cacertfile; /* CAs that sign client certificates; needed by verify */
	hb_tls_verify_t verify_client;
	hb_tls_version_t min_version; /* default TLS 1.2 */
	const char *ciphers;	      /* wolfSSL cipher list; NULL: HB_TLS_DEFAULT_CIPHERS */
	const char *const *alpn;      /* protocols in server preference order; NULL: h2, http/1.1 */
	size_t nalpn;
	int64_t ticket_lifetime_s;	/* key rotation period and ticket lifetime; 0: default */
	uint64_t (*clock_s)(void *arg); /* seconds for ticket rotation; NULL: CLOCK_MONOTONIC */
	void *clock_arg;
	int client; /* also build the client side (hb_tls_new_client); needs cacertfile */
	/* put before the key names (certfile, keyfile, keyfile_password, cacertfile) in error
	 * messages, e.g. "cluster_"; NULL: none */
	const char *key_prefix;
} hb_tls_conf_t;

/* [main] Builds a context: loads and checks every pair (key matches cert), the CA file, the
 * ciphers. `tickets_from` (may be NULL) is a ctx whose ticket keys the new one shares, so
 * tickets survive a reload. Returns NULL with a message in err naming the file or setting. */
hb_tls_ctx_t *hb_tls_ctx_new(const hb_tls_conf_t *conf, hb_tls_ctx_t *tickets_from, char *err,
			     size_t errlen);
/* [any] Reference counting; the last unref frees the ctx. */
hb_tls_ctx_t *hb_tls_ctx_ref(hb_tls_ctx_t *ctx);
void hb_tls_ctx_unref(hb_tls_ctx_t *ctx);

/* The live ctx of a listener: io threads acquire from it for each new connection, the main
 * thread swaps in a reloaded one. */
typedef struct hb_tls_live hb_tls_live_t;
/* [main] Takes over the caller's reference to ctx. NULL on ENOMEM (ctx unreffed). */
hb_tls_live_t *hb_tls_live_new(hb_tls_ctx_t *ctx);
/* [main] Swaps in ctx (taking over the caller's reference); the old one is unreffed (freed once
 * its last connection is gone). */
void hb_tls_live_swap(hb_tls_live_t *live, hb_tls_ctx_t *ctx);
/* [any] A new reference to the current ctx (the caller unrefs it). */
hb_tls_ctx_t *hb_tls_live_acquire(hb_tls_live_t *live);
void hb_tls_live_free(hb_tls_live_t *live);

/* [any] Frees the calling thread's wolfSSL caches (ECC fixed-point tables live per thread):
 * call it as an io thread exits, or they leak (LeakSanitizer reports them). */
void hb_tls_thread_cleanup(void);

/* [io] A server engine on ctx (takes a reference). NULL on ENOMEM. */
hb_tls_t *hb_tls_new(hb_tls_ctx_t *ctx);
/* [io] A client engine on a ctx built with `client` (takes a reference); it offers the ctx's
 * ALPN list. Its first hb_tls_handshake produces the ClientHello. NULL on ENOMEM or when ctx
 * has no client side. */
hb_tls_t *hb_tls_new_client(hb_tls_ctx_t *ctx);
void hb_tls_free(hb_tls_t *t);

/* [io] Appends ciphertext from the socket (copied). HB_TLS_OK, or the engine's error. */
int hb_tls_feed(hb_tls_t *t, const void *p, size_t len, const char **why);
/* [io] Advances the handshake with what was fed. 1: done (from then on ALPN, SNI, info are
 * known), 0: needs more input (send what hb_tls_out_take has), < 0: fatal. */
int hb_tls_handshake(hb_tls_t *t, const char **why);
/* [io] Decrypts into buf. > 0: bytes; 0: needs more input; HB_TLS_EOF: close_notify came;
 * < 0: fatal. Drives the handshake first when it is not done. Plaintext may stay buffered
 * inside the engine past a full `buf`: after pausing, call it again before feeding more. */
ssize_t hb_tls_read(hb_tls_t *t, void *buf, size_t cap, const char **why);
/* [io] Encrypts all of p (records of at most 16 KiB) after the handshake. HB_TLS_OK or < 0. */
int hb_tls_write(hb_tls_t *t, const void *p, size_t len, const char **why);
/* [io] Encrypts iov[0..n) as if concatenated, packing small pieces into full records. */
int hb_tls_writev(hb_tls_t *t, const struct iovec *iov, int n, const char **why);
/* [io] Queues close_notify (once). */
void hb_tls_shutdown(hb_tls_t *t);

/* [io] Ciphertext waiting to be sent. */
size_t hb_tls_out_pending(const hb_tls_t *t);
/* [io] Hands over all pending ciphertext: returns a malloc'ed buffer the caller frees with
 * free() once sent (it may stay in flight while the engine produces more), and its length.
 * NULL with *len 0 when nothing is pending or on ENOMEM (then nothing is lost: call again). */
void *hb_tls_out_take(hb_tls_t *t, size_t *len);

/* [io] After the handshake: the negotiated ALPN protocol, or NULL when none was (then the
 * connection speaks HTTP/1.1). */
const char *hb_tls_alpn(const hb_tls_t *t);
/* [io] The SNI host name the client sent (lower case), or NULL. */
const char *hb_tls_sni(const hb_tls_t *t);
/* [io] 1 when the session was resumed (ticket or session ID). */
int hb_tls_resumed(const hb_tls_t *t);
/* [io] 1 once the handshake is done. */
int hb_tls_done(const hb_tls_t *t);

/* What the ASGI `tls` extension and WSGI's environ report about a connection. */
typedef struct hb_tls_info {
	int version;		  /* 0x0303 TLS 1.2, 0x0304 TLS 1.3 */
	int cipher_suite;	  /* IANA number, e.g. 0x1301 */
	const char *version_name; /* "TLSv1.3" (static) */
	const char *cipher_name;  /* wolfSSL's name (static) */
} hb_tls_info_t;
/* [io] Fills info after the handshake. HB_TLS_OK or HB_TLS_E_STATE. */
int hb_tls_get_info(hb_tls_t *t, hb_tls_info_t *info);
/* [io] The peer's certificate (a server engine: the client's; a client engine: the server's),
 * when one was presented and verified: its subject as an RFC 4514
 * string and the certificate in PEM, each malloc'ed (caller frees). Returns 1 with both set, 0
 * when there is no client certificate, HB_TLS_E_NOMEM. */
int hb_tls_peer_cert(hb_tls_t *t, char **subject, char **pem);

#endif
