/* wsgi.h: serving one request with a WSGI application (PEP 3333).
 *
 * A worker thread calls hb_wsgi_serve() with its interpreter's GIL held for each stream it takes
 * from the hub. It builds the environ from the immutable hb_request_t, calls the app, iterates
 * the result and answers through the hb_stream_* calls, releasing the GIL around each of them.
 * It always ends the stream exactly once (HB_END_ABORT when the response is broken); the caller
 * only releases its reference afterwards. An hb_wsgi_app_t belongs to one worker thread.
 */
#ifndef HB_PYTHON_WSGI_H
#define HB_PYTHON_WSGI_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include "core/config.h"
#include "core/stream.h"
#include "python/module.h"

/* Per worker thread: the app and what every request reuses. */
typedef struct hb_wsgi_app {
	PyObject *app;		/* the WSGI callable */
	PyObject *module;	/* `_hornbeam` of this interpreter */
	hb_modstate_t *st;	/* its state (borrowed from module) */
	PyObject *base_environ; /* constant environ entries, copied per request */
	const char *root_path;	/* SCRIPT_NAME, stripped from PATH_INFO */
	size_t root_len;
	/* The previous request's strings, reused while the next one brings the same bytes (a
	 * client's keep-alive requests do): str objects are immutable, an app cannot tell. */
	char remote_addr[64]; /* REMOTE_ADDR's bytes */
	PyObject *remote_addr_s;
	char host[256]; /* the Host value's bytes (host_len of them) */
	size_t host_len;
	int host_https;					  /* the scheme SERVER_PORT defaulted for */
	PyObject *host_s, *server_name_s, *server_port_s; /* HTTP_HOST, SERVER_NAME, _PORT */
} hb_wsgi_app_t;

/* Per request: what start_response, write and the result loop share. Lives on the stack of
 * hb_wsgi_serve; Python objects that point at it are detached before it goes away. */
typedef struct hb_wsgi_req {
	hb_stream_t *s;
	hb_modstate_t *st;
	hb_response_t *resp;  /* head from start_response, not yet sent (owned) */
	int64_t declared_len; /* Content-Length the app set, -1 when none */
	uint64_t body_sent;   /* body bytes taken from the app so far */
	int head_sent;	      /* resp was posted (or the 500 was) */
	int invalid;	      /* start_response got a bad status or headers: answer 500 */
	int gone;	      /* the client left: stop producing, no error log */
	int broken;	      /* body past Content-Length or an error after the head: abort */
	int is_head;	      /* HEAD request: body bytes are not sent */
	int ended;	      /* HB_MSG_END posted */
} hb_wsgi_req_t;

/* [worker, GIL held] Prepares a for serving `app` (a new reference is taken). Returns 0 or -1
 * with an exception set. */
int hb_wsgi_app_init(hb_wsgi_app_t *a, PyObject *app, const hb_config_t *cfg, int multithread);
/* [worker, GIL held] Drops the references a holds. */
void hb_wsgi_app_clear(hb_wsgi_app_t *a);

/* [worker, GIL held] Serves one stream and ends it; the caller then releases it. Never leaves
 * a Python exception set. */
void hb_wsgi_serve(hb_wsgi_app_t *a, hb_stream_t *s);

/* [GIL held] Sends body bytes for write() and the result loop: the pending head first, counting
 * against Content-Length. Returns 0, or -1 when the response cannot go on (req->gone or
 * req->broken set, no exception). */
int hb_wsgi_send(hb_wsgi_req_t *req, const char *data, size_t len);

#endif
