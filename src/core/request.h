/* request.h: a parsed request head and a response head, protocol-independent.
 *
 * An hb_request_t is built by a protocol parser (proto/h1) on the io thread in one allocation,
 * then is immutable: the python worker reads it without locks once the stream carrying it has
 * been handed over. Strings are not NUL-terminated; lengths say where they end.
 * An hb_response_t is built by the python worker in one allocation and handed to the io thread.
 * Both are freed with free().
 */
#ifndef HB_CORE_REQUEST_H
#define HB_CORE_REQUEST_H

#include <stdint.h>

typedef struct hb_header {
	const char *name;
	const char *value;
	uint32_t name_len;
	uint32_t value_len;
} hb_header_t;

enum {
	HB_REQ_KEEP_ALIVE = 1u << 0,	  /* connection may be reused after this exchange */
	HB_REQ_CHUNKED = 1u << 1,	  /* body comes chunked (content_length is -1) */
	HB_REQ_EXPECT_CONTINUE = 1u << 2, /* client sent Expect: 100-continue */
	HB_REQ_UPGRADE = 1u << 3,	  /* Connection: upgrade with an Upgrade header */
	HB_REQ_HAS_BODY = 1u << 4,	  /* a body follows (chunked or content_length > 0) */
	HB_REQ_HEAD = 1u << 5,		  /* method is HEAD: the response carries no body */
	HB_REQ_CHANNEL = 1u << 6,	  /* a message channel (stream.h), set by the connection */
	HB_REQ_TRAILERS = 1u << 7,	  /* the client takes trailing fields after the body */
	HB_REQ_CAN_PROMISE = 1u << 8,	  /* the connection can start associated exchanges itself
					     (HB_MSG_PROMISE: HTTP/2 server push, allowed by both) */
};

/* What a TLS connection tells its requests (WSGI HTTPS and SSL_* keys, the ASGI `tls`
 * extension). Built once per connection by its io thread after the handshake, then immutable;
 * the connection and each request dispatched on it hold a reference (atomic: workers drop
 * theirs), and the last hb_request_tls_unref frees it. */
typedef struct hb_request_tls {
	_Atomic int refs;
	uint16_t version;	/* 0x0303 TLS 1.2, 0x0304 TLS 1.3 */
	uint16_t cipher_suite;	/* IANA number, e.g. 0x1301 */
	char *client_cert_name; /* RFC 4514 subject of a verified client certificate, or NULL */
	char *client_cert_pem;	/* that certificate in PEM, or NULL */
} hb_request_tls_t;

typedef struct hb_request {
	const char *method;
	const char *target; /* request-target exactly as sent */
	const char *path;   /* target up to '?' (raw, still percent-encoded) */
	const char *query;  /* after '?', without it; "" when none */
	uint32_t method_len, target_len, path_len, query_len;
	uint8_t http_major, http_minor;
	uint32_t flags;		/* HB_REQ_* */
	int64_t content_length; /* -1 when absent */
	hb_header_t *headers;	/* in arrival order, names as sent, values without OWS */
	uint32_t nheaders;
	/* Filled by the connection layer before dispatch. */
	const char *scheme;   /* "http" or "https" (static string) */
	char remote_addr[64]; /* numeric address, "" for unix sockets */
	uint16_t remote_port;
	char server_addr[64];
	uint16_t server_port;
	hb_request_tls_t
		*tls; /* NULL on a plain connection; a reference (hb_request_free drops it) */
	void *extra;  /* owned, freed with the request: a header array rewritten by the connection
		       * layer (a trusted proxy's Host), with the bytes it points to */
	_Alignas(8) char data[]; /* storage the pointers above point into */
} hb_request_t;

typedef struct hb_response {
	int status;
	hb_header_t *headers; /* as the app gave them, already validated (no CR/LF/NUL) */
	uint32_t nheaders;
	int64_t content_length; /* from a Content-Length header the app set; -1 when none */
	uint32_t flags;		/* HB_RESP_* */
	_Alignas(8) char data[];
} hb_response_t;

enum {
	HB_RESP_HAS_DATE = 1u << 0,   /* app set Date: the server does not add one */
	HB_RESP_HAS_SERVER = 1u << 1, /* app set Server */
	HB_RESP_CLOSE = 1u << 2,      /* app set Connection: close */
	HB_RESP_TRAILERS = 1u << 3,   /* trailing fields follow the body (HB_MSG_TRAILERS) */
};

/* Frees a request and drops its TLS reference. */
void hb_request_free(hb_request_t *r);
/* A new reference to t (NULL stays NULL). */
hb_request_tls_t *hb_request_tls_ref(hb_request_tls_t *t);
void hb_request_tls_unref(hb_request_tls_t *t);
/* "TLSv1.2", "TLSv1.3", or "TLS" for another version (static). */
const char *hb_request_tls_version_name(int version);

/* Finds the first header named `name` (ASCII case-insensitive). NULL when absent. */
const hb_header_t *hb_request_header(const hb_request_t *r, const char *name);

#endif
