/* tls_setup.h: the server's TLS state: the live context built from the configuration, its
 * reload on SIGHUP, and the handshake counters.
 *
 * Built and reloaded on the main thread (hb_tls_setup_init, hb_tls_setup_reload); io threads
 * only call hb_tls_live_acquire(st->live) for each accepted TLS connection and bump the atomic
 * counters. A reload builds a whole new context from the same files (sharing the ticket keys)
 * and swaps it in only when every file loaded: a bad new file leaves the old pairs serving.
 */
#ifndef HB_SERVER_TLS_SETUP_H
#define HB_SERVER_TLS_SETUP_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "core/config.h"
#include "core/request.h"
#include "proto/tls.h"

typedef struct hb_tls_setup {
	hb_tls_live_t *live; /* NULL when TLS is off */
	/* handshakes: done; failed (bad hello, version, cipher, certificate); ended unfinished
	 * (handshake timeout, or the client left) */
	_Atomic uint64_t handshakes_ok, handshakes_failed, handshakes_timed_out;
	_Atomic uint64_t reloads, reloads_failed;
} hb_tls_setup_t;

/* The ALPN protocols the server serves under cfg's http_version ("h2,http/1.1", "h2" or
 * "http/1.1"), for filtering `alpn`. A static string. */
const char *hb_tls_setup_served(const hb_config_t *cfg);

/* [main] Builds the context when cfg->ssl. Returns 0 (also when TLS is off) or -EINVAL with a
 * message naming the file or key in err. */
int hb_tls_setup_init(hb_tls_setup_t *st, const hb_config_t *cfg, const char *served, char *err,
		      size_t errlen);
/* [main] Re-reads every certificate and key; new connections get the new context, open ones
 * keep theirs. Returns 0, or -EINVAL with err set and the old context still live. */
int hb_tls_setup_reload(hb_tls_setup_t *st, const hb_config_t *cfg, const char *served, char *err,
			size_t errlen);
/* [io] What a connection's requests are told about TLS, once its handshake is done: a new
 * hb_request_tls_t (one reference, the caller's), or NULL on ENOMEM. */
hb_request_tls_t *hb_tls_setup_request_info(hb_tls_t *t);

/* [main] After the io threads are gone. */
void hb_tls_setup_free(hb_tls_setup_t *st);

#endif
