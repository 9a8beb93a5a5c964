/* auth.h: mutual cookie authentication of a cluster link, as a state machine with no I/O.
 *
 * Both nodes know a shared secret, the cookie; it never crosses the wire. The connecting side
 * (client) and the accepting side (server) each prove they know it with an HMAC-SHA256 over both
 * sides' fresh random nonces, both node names and a role label, so a proof cannot be replayed
 * on another link nor reflected back to its sender:
 *
 *     client -> HELLO     (version, client name, client nonce)
 *     server -> CHALLENGE (version, server name, server nonce)
 *     client -> PROOF     HMAC(cookie, "hornbeam-cluster/1 client" | nonces | names)
 *     server -> PROOF     HMAC(cookie, "hornbeam-cluster/1 server" | nonces | names)
 *
 * The server proves itself only after it checked the client's proof. Proofs are compared in
 * constant time. Each message is a codec value in a frame of the type named above (frame.h).
 * The caller moves frames; hb_auth_input says what to send next and when the peer is trusted.
 *
 * An hb_auth_t belongs to one link (one thread). It holds a copy of the cookie, wiped by
 * hb_auth_clear. Errors: -EINVAL (bad arguments), -EPROTO (unexpected or malformed message,
 * wrong version), -EACCES (the peer's proof does not match our cookie), -ENOMEM, -EIO (the
 * crypto library failed), each with a static reason.
 */
#ifndef HB_CLUSTER_AUTH_H
#define HB_CLUSTER_AUTH_H

#include <stddef.h>
#include <stdint.h>

#include "core/codec.h"

#define HB_AUTH_VERSION 1
#define HB_AUTH_NONCE_SIZE 32u
#define HB_AUTH_MAC_SIZE 32u
#define HB_AUTH_MAX_NAME 255u
#define HB_AUTH_MAX_COOKIE 1024u

/* hb_auth_input's non-negative result: a bit set. */
#define HB_AUTH_SEND 1 /* *out holds a message to send, of type *out_type */
#define HB_AUTH_DONE 2 /* the peer is authenticated (hb_auth_peer names it) */

typedef enum hb_auth_role {
	HB_AUTH_CLIENT, /* connected out: speaks first */
	HB_AUTH_SERVER, /* accepted the connection */
} hb_auth_role_t;

typedef struct hb_auth {
	hb_auth_role_t role;
	int state; /* private */
	uint8_t cookie[HB_AUTH_MAX_COOKIE];
	size_t cookie_len;
	char name[HB_AUTH_MAX_NAME + 1];
	char peer[HB_AUTH_MAX_NAME + 1];
	uint8_t nonce[HB_AUTH_NONCE_SIZE];
	uint8_t peer_nonce[HB_AUTH_NONCE_SIZE];
} hb_auth_t;

/* Fills out with random bytes from wolfCrypt's RNG. Returns 0 or -EIO. */
int hb_auth_nonce(uint8_t out[HB_AUTH_NONCE_SIZE]);

/* Prepares one side: our node name (1..HB_AUTH_MAX_NAME bytes), the cookie (1..MAX_COOKIE
 * bytes) and our fresh nonce (from hb_auth_nonce; tests pass fixed ones). Returns 0 or -EINVAL. */
int hb_auth_init(hb_auth_t *a, hb_auth_role_t role, const char *name, const void *cookie,
		 size_t cookie_len, const uint8_t nonce[HB_AUTH_NONCE_SIZE]);
/* Client: writes the HELLO into out (a codec value) and sets *out_type. Returns 0, -EINVAL
 * (called on a server or twice) or -ENOMEM. */
int hb_auth_start(hb_auth_t *a, hb_cbuf_t *out, uint8_t *out_type);
/* Takes the peer's next message (frame type and payload). Returns a non-negative HB_AUTH_SEND |
 * HB_AUTH_DONE set, or a negative error with *why; after an error the link must close. */
int hb_auth_input(hb_auth_t *a, uint8_t type, const void *data, size_t len, hb_cbuf_t *out,
		  uint8_t *out_type, const char **why);
/* The authenticated peer's node name, or NULL before HB_AUTH_DONE. */
const char *hb_auth_peer(const hb_auth_t *a);
/* Wipes the cookie and nonces. */
void hb_auth_clear(hb_auth_t *a);

#endif
