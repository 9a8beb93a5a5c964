/* access_log.h: one access-log line per finished exchange, gunicorn's atoms or JSON.
 *
 * The format is compiled once on the main thread (hb_access_compile) into a list of literal
 * pieces and atoms, read-only afterwards. Lines are formatted on the io thread that owns the
 * connection into that thread's buffer and written in batches (hb_access_flush at the end of
 * each loop iteration, or when the buffer fills), each batch with one write under the log's
 * lock (core/log.h), so lines of different threads never interleave.
 *
 * Atoms, as gunicorn's: %(h)s remote address, %(l)s '-', %(u)s Basic-auth user or '-',
 * %(t)s [time], %(r)s request line, %(m)s method, %(U)s path, %(q)s query, %(H)s protocol,
 * %(s)s status, %(b)s body bytes ('-' for 0), %(B)s body bytes, %(f)s Referer, %(a)s
 * User-Agent, %(T)s seconds, %(M)s milliseconds, %(D)s microseconds, %(L)s decimal seconds,
 * %(p)s <pid>, %({name}i)s a request header, %({name}o)s a response header, %({name}e)s an
 * environment variable (read at startup). An unknown atom prints '-'. The format "json" writes
 * one JSON object per line with the fixed fields of docs/observability.md.
 */
#ifndef HB_SERVER_ACCESS_LOG_H
#define HB_SERVER_ACCESS_LOG_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "core/request.h"
#include "core/stream.h"

/* Each io thread's line buffer; a batch is written when it cannot take one more longest line. */
#define HB_ACCESS_BUF_BYTES 65536

struct hb_io;
struct hb_exchange;
struct hb_conn;

typedef struct hb_access_fmt hb_access_fmt_t;

/* What one line is made of. */
typedef struct hb_access_rec {
	const hb_request_t *req; /* NULL: the server answered a request it could not parse */
	const char *remote;	 /* the peer's address ("" for unix sockets) */
	int status;		 /* 0: no response was sent */
	uint64_t bytes;		 /* response body bytes */
	uint64_t dur_ns;	 /* request head to end of response */
	char *const *resp_vals;	 /* hb_access_keep's values (NULL: none kept) */
	int pid;
} hb_access_rec_t;

/* [main] Compiles fmt ("json" for the JSON lines). Returns NULL on ENOMEM. */
hb_access_fmt_t *hb_access_compile(const char *fmt);
void hb_access_fmt_free(hb_access_fmt_t *f);

/* Formats one line (no newline) into out; returns its length (cut at cap). `now` is the wall
 * clock second for %(t)s. */
size_t hb_access_format(const hb_access_fmt_t *f, char *out, size_t cap, const hb_access_rec_t *r,
			time_t now);

/* [io] The values of the response headers the format names (%({name}o)s), copied from resp
 * into one malloc'd block (free() it); NULL when the format names none (or on ENOMEM). */
char **hb_access_keep(const hb_access_fmt_t *f, const hb_response_t *resp);

/* [io] The line for a finished exchange, when the access log is on. */
void hb_access_log(struct hb_io *io, const struct hb_exchange *x, const hb_stream_t *s,
		   uint64_t now_ns);
/* [io] The line for an answer the connection gave without an exchange (400, 413, 414, 431,
 * 503 before dispatch). */
void hb_access_log_error(struct hb_io *io, const struct hb_conn *c, int status);
/* [io] Writes the io thread's buffered lines. */
void hb_access_flush(struct hb_io *io);

#endif
