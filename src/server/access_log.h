/* access_log.h: one gunicorn-style access-log line per finished exchange.
 *
 * Called by the io thread that owns the connection; formatting happens there and the line is
 * written with one write(2) (core/log.h). Atoms: %(h)s remote address, %(l)s '-', %(u)s '-',
 * %(t)s [time], %(r)s request line, %(m)s method, %(U)s path, %(q)s query, %(H)s protocol,
 * %(s)s status, %(b)s body bytes ('-' for 0), %(B)s body bytes, %(f)s Referer, %(a)s
 * User-Agent, %(T)s seconds, %(M)s milliseconds, %(D)s microseconds, %(L)s decimal seconds,
 * %(p)s pid, %({name}i)s a request header.
 */
#ifndef HB_SERVER_ACCESS_LOG_H
#define HB_SERVER_ACCESS_LOG_H

#include <stddef.h>
#include <stdint.h>

#include "core/stream.h"

struct hb_io;
struct hb_exchange;

/* Formats `fmt` for stream `s` finished at `now_ns` into out; returns the length. */
size_t hb_access_format(char *out, size_t cap, const char *fmt, const hb_stream_t *s,
			uint64_t bytes, uint64_t now_ns);
/* Writes the line for a finished exchange when the access log is on. */
void hb_access_log(struct hb_io *io, const struct hb_exchange *x, const hb_stream_t *s,
		   uint64_t now_ns);

#endif
