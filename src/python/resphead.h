/* resphead.h: the response head the python layer hands to the io thread, shared by WSGI
 * (start_response) and ASGI (http.response.start).
 *
 * Each protocol validates its own header objects (str for WSGI, bytes for ASGI) into
 * hb_resphead_hdr_t views; this module decides what the headers say (Content-Length, Date,
 * Server, Connection: close), drops the hop-by-hop ones the io side owns, and packs the rest
 * into one hb_response_t allocation. Called with the GIL held by any worker thread; no state.
 */
#ifndef HB_PYTHON_RESPHEAD_H
#define HB_PYTHON_RESPHEAD_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>

#include "core/request.h"

/* One header as validated: borrowed bytes, valid while the app's objects live. */
typedef struct hb_resphead_hdr {
	const char *name, *value;
	size_t name_len, value_len;
} hb_resphead_hdr_t;

/* RFC 9110 tchar: may appear in a header name. */
int hb_resphead_is_tchar(unsigned char c);

/* Reads flags (HB_RESP_*) and Content-Length (*clen, -1 if none) from h[0..n), keeping in place
 * the headers the io side does not own (hop-by-hop ones are dropped; a repeated identical
 * Content-Length is kept once). Returns the number kept, or -1 with ValueError set for an
 * invalid or conflicting Content-Length. */
Py_ssize_t hb_resphead_scan(hb_resphead_hdr_t *h, Py_ssize_t n, uint32_t *flags, int64_t *clen);

/* Copies status and h[0..n) into one malloc'd hb_response_t (freed with free()). NULL on ENOMEM
 * (no exception set). */
hb_response_t *hb_resphead_pack(int status, const hb_resphead_hdr_t *h, size_t n, uint32_t flags,
				int64_t clen);

#endif
