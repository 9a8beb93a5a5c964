/* asgi_priv.h: what the asgi*.c files share: the worker and request objects, the messages.
 *
 * One hb_asgi_worker_t (a Python object of a heap type) per ASGI worker thread: it owns the
 * asyncio loop of that thread, the app and the interned strings. One hb_asgi_req_t per request
 * or websocket: it holds the stream (one reference, released when the app's task finishes),
 * the task, and the futures that receive()/send() wait on. Everything here runs on the
 * worker's thread with its interpreter's GIL held; the hb_stream_* calls used are the
 * non-blocking ones. The io side never touches these objects: it only puts the stream on the
 * worker's ready list, and asgi.c resolves the request's waiters from there.
 */
#ifndef HB_PYTHON_ASGI_PRIV_H
#define HB_PYTHON_ASGI_PRIV_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <stdint.h>
#include <string.h>

#include "core/config.h"
#include "core/hub.h"
#include "core/stream.h"

/* Interned strings kept by the worker: scope keys, message keys and types, loop methods. */
#define HB_ASGI_STR_LIST(X)                                                                        \
	X(type, "type")                                                                            \
	X(asgi, "asgi")                                                                            \
	X(version, "version")                                                                      \
	X(spec_version, "spec_version")                                                            \
	X(http_version, "http_version")                                                            \
	X(method, "method")                                                                        \
	X(scheme, "scheme")                                                                        \
	X(path, "path")                                                                            \
	X(raw_path, "raw_path")                                                                    \
	X(query_string, "query_string")                                                            \
	X(root_path, "root_path")                                                                  \
	X(headers, "headers")                                                                      \
	X(client, "client")                                                                        \
	X(server, "server")                                                                        \
	X(state, "state")                                                                          \
	X(extensions, "extensions")                                                                \
	X(subprotocols, "subprotocols")                                                            \
	X(subprotocol, "subprotocol")                                                              \
	X(body, "body")                                                                            \
	X(more_body, "more_body")                                                                  \
	X(status, "status")                                                                        \
	X(code, "code")                                                                            \
	X(reason, "reason")                                                                        \
	X(bytes, "bytes")                                                                          \
	X(text, "text")                                                                            \
	X(v_http, "http")                                                                          \
	X(v_https, "https")                                                                        \
	X(v_ws, "ws")                                                                              \
	X(v_wss, "wss")                                                                            \
	X(v_websocket, "websocket")                                                                \
	X(v_10, "1.0")                                                                             \
	X(v_11, "1.1")                                                                             \
	X(v_2, "2")                                                                                \
	X(http_request, "http.request")                                                            \
	X(http_disconnect, "http.disconnect")                                                      \
	X(http_response_start, "http.response.start")                                              \
	X(http_response_body, "http.response.body")                                                \
	X(http_response_pathsend, "http.response.pathsend")                                        \
	X(http_response_trailers, "http.response.trailers")                                        \
	X(http_response_early_hint, "http.response.early_hint")                                    \
	X(http_response_push, "http.response.push")                                                \
	X(trailers, "trailers")                                                                    \
	X(more_trailers, "more_trailers")                                                          \
	X(links, "links")                                                                          \
	X(ws_connect, "websocket.connect")                                                         \
	X(ws_accept, "websocket.accept")                                                           \
	X(ws_receive, "websocket.receive")                                                         \
	X(ws_send, "websocket.send")                                                               \
	X(ws_disconnect, "websocket.disconnect")                                                   \
	X(ws_close, "websocket.close")                                                             \
	X(ws_http_response_start, "websocket.http.response.start")                                 \
	X(ws_http_response_body, "websocket.http.response.body")                                   \
	X(create_future, "create_future")                                                          \
	X(create_task, "create_task")                                                              \
	X(call_later, "call_later")                                                                \
	X(call_soon, "call_soon")                                                                  \
	X(add_done_callback, "add_done_callback")                                                  \
	X(set_result, "set_result")                                                                \
	X(done, "done")                                                                            \
	X(cancel, "cancel")                                                                        \
	X(cancelled, "cancelled")                                                                  \
	X(result, "result")                                                                        \
	X(exception, "exception")                                                                  \
	X(stop, "stop")                                                                            \
	X(future_blocking, "_asyncio_future_blocking")                                             \
	X(l_scheduled, "_scheduled")                                                               \
	X(l_stopping, "_stopping")                                                                 \
	X(l_cancelled, "_cancelled")                                                               \
	X(l_when, "_when")                                                                         \
	X(time, "time")

/* clang-format off */
enum {
#define HB_ASGI_STR_ENUM(id, text) HB_AS_##id,
	HB_ASGI_STR_LIST(HB_ASGI_STR_ENUM)
#undef HB_ASGI_STR_ENUM
	HB_AS_COUNT
};
/* clang-format on */

typedef struct hb_asgi_worker {
	PyObject ob_base; /* PyObject_HEAD */
	const hb_config_t *cfg;
	hb_hub_t *hub;
	int slot;
	const struct hb_asgi_hooks *hooks;
	double timeout_s;	  /* cfg->timeout_ms in seconds; 0: none */
	int64_t nactive;	  /* requests whose task has not finished */
	int stopped;		  /* loop.stop() was called */
	uint64_t linger_until_ns; /* stopping: when to stop waiting for late dispatches */
	PyObject *app;
	PyObject *module; /* `_hornbeam` of this interpreter */
	PyObject *loop;
	PyObject *task_type;	/* asyncio.Task */
	PyObject *task_kwargs;	/* {"loop": loop, "eager_start": True} */
	PyObject *helpers;	/* namespace of the Python helpers (asgi_lifespan.c) */
	PyObject *lifespan;	/* helpers' Lifespan object, or NULL */
	PyObject *disconnected; /* _hornbeam.ClientDisconnected */
	PyTypeObject *req_type;
	PyTypeObject *op_type;
	PyObject *state;     /* lifespan state: copied into each scope */
	PyObject *asgi_info; /* {"version": "3.0", "spec_version": "2.4"} */
	PyObject *ext_http;  /* scope["extensions"] for http */
	PyObject *ext_ws;    /* ... for websocket */
	PyObject *root_path; /* str */
	PyObject *wake;	     /* bound self._wake, the eventfd reader callback */
	/* The idle wait in C (asgi.c, loop_idle): the loop's ready deque and the selector's fd
	 * map, or NULL when the loop is not asyncio's selector loop (then no idle wait). */
	PyObject *loop_ready;
	/* The scope's parts kept across requests (asgi_scope.c): the HTTP scope template that
	 * each scope is copied from, and immutable values that repeat (the last method, client
	 * and server addresses). */
	PyObject *scope_http;
	PyObject *method;
	PyObject *path, *raw_path; /* the last request's path (str) and raw_path (bytes) */
	/* The last request's header pairs by position (strong references, the first 16): a
	 * pair with the same name and value is reused (a tuple of bytes: immutable). */
	PyObject *hdr_cache[16];
	/* What scope_http holds under the keys whose values change (asgi_scope.c, tmpl_put):
	 * borrowed, kept alive by the template itself. */
	PyObject *tmpl_vals[8];
	PyObject *client, *client_host, *server;
	char client_addr[64], server_addr[64];
	uint16_t client_port, server_port;
	PyObject *loop_fds;
	int self_pipe; /* the loop's self-pipe (call_soon_threadsafe), -1 without idle wait */
	PyObject *str[HB_AS_COUNT];
} hb_asgi_worker_t;

typedef struct hb_asgi_req {
	PyObject ob_base;	/* PyObject_HEAD */
	hb_asgi_worker_t *w;	/* strong */
	hb_stream_t *s;		/* our stream reference; NULL once the task finished */
	PyObject *task;		/* the app's task; NULL once finished */
	PyObject *timer;	/* TimerHandle of the request timeout, or NULL */
	PyObject *recv_waiter;	/* future receive() waits on, or NULL */
	PyObject *send_waiter;	/* future send() waits on, or NULL */
	PyObject *op;		/* the last receive()/send() awaitable, reused once only we
				   hold it; NULL once the task finished (it holds us) */
	hb_response_t *resp;	/* head from *.response.start, not posted yet (owned) */
	PyObject *trailer_list; /* http.response.trailers headers gathered while more_trailers */
	char *held; /* streamed body bytes not posted yet (asgi_http.c, hold), or NULL */
	size_t held_len;
	int64_t declared_len; /* Content-Length the app set, -1 when none */
	uint64_t body_sent;
	uint64_t last_ns;	   /* start, then last send: the timeout counts from here */
	int close_code;		   /* websocket.disconnect code once known */
	int inflight;		   /* its entry in the process's in-flight table (inflight.h) */
	unsigned websocket : 1;	   /* a websocket scope */
	unsigned is_head : 1;	   /* HEAD request: body bytes are not sent */
	unsigned started : 1;	   /* *.response.start received */
	unsigned head_posted : 1;  /* head (or an error response) posted */
	unsigned complete : 1;	   /* response body complete (or websocket closed by the app) */
	unsigned ended : 1;	   /* hb_stream_end posted */
	unsigned gone : 1;	   /* the client went away */
	unsigned body_eof : 1;	   /* the whole request body was delivered */
	unsigned timed_out : 1;	   /* the timeout cancelled the task */
	unsigned connect_sent : 1; /* websocket.connect delivered */
	unsigned accepted : 1;	   /* websocket.accept posted */
	unsigned closed : 1;	   /* websocket.close sent by the app */
	unsigned peer_closed : 1;  /* websocket.disconnect delivered */
	unsigned trailers : 1;	   /* http.response.start said trailers: true */
	unsigned body_done : 1;	   /* the last body message came; the trailers are awaited */
	unsigned flush_armed : 1;  /* a loop callback will post the held bytes */
} hb_asgi_req_t;

/* The outcome of one receive/send step. */
enum { HB_ASGI_DONE = 1, HB_ASGI_WAIT_RECV = 2, HB_ASGI_WAIT_SEND = 3, HB_ASGI_ERR = -1 };

#define HB_ASGI_S(w, id) ((w)->str[HB_AS_##id])

/* A message's "type" is `s` (an interned str): identity first, then equality. An app's
 * "http.response.start" is not the interned one (the compiler interns only identifier-like
 * constants), so equality is the common case: equal strs have the same length and kind (a str
 * is stored in its narrowest kind), so one memcmp decides, without PyUnicode_Compare's
 * ordering walk. */
static inline int hb_asgi_is(PyObject *type, PyObject *s)
{
	return type == s ||
	       (PyUnicode_Check(type) && PyUnicode_GET_LENGTH(type) == PyUnicode_GET_LENGTH(s) &&
		PyUnicode_KIND(type) == PyUnicode_KIND(s) &&
		memcmp(PyUnicode_DATA(type), PyUnicode_DATA(s),
		       (size_t)PyUnicode_GET_LENGTH(s) * PyUnicode_KIND(s)) == 0);
}

/* asgi.c */
uint64_t hb_asgi_now_ns(void);
/* Posts a plain-text error response (403, 500 or 504) with Connection: close. Returns 0 or
 * -1 (client gone). */
int hb_asgi_post_plain(hb_stream_t *s, int status);
/* Posts hb_stream_end once (flags HB_END_*). */
void hb_asgi_req_end(hb_asgi_req_t *r, uint32_t flags);
/* Resolves the futures receive()/send() wait on (they retry when resumed). */
void hb_asgi_req_wake(hb_asgi_req_t *r);
/* Raises ClientDisconnected. Returns HB_ASGI_ERR. */
int hb_asgi_raise_gone(hb_asgi_req_t *r);
/* Builds {"type": t, k1: v1, ...} from n key/value pairs (values stolen). NULL on error. */
PyObject *hb_asgi_msg(hb_asgi_worker_t *w, PyObject *type, int n, ...);

/* asgi_idle.c: waiting for the next request in C while the loop has nothing else to do. */
/* At serve time: learns the loop's internals it looks at (none: no idle wait). */
void hb_asgi_idle_init(hb_asgi_worker_t *w);
/* How long the loop would only wait for the eventfd (and its self-pipe), in us (-1: no limit),
 * or -2 when the loop must run. */
int64_t hb_asgi_idle_us(hb_asgi_worker_t *w);
/* Waits up to us with the GIL released. 1: the eventfd alone fired; 0: the loop must run. */
int hb_asgi_idle_wait(hb_asgi_worker_t *w, int efd, int64_t us);

/* asgi_scope.c: the scope of a request (new reference) or NULL. */
int hb_asgi_scope_init(hb_asgi_worker_t *w);
PyObject *hb_asgi_scope_new(hb_asgi_worker_t *w, const hb_request_t *req, int websocket);

/* asgi_http.c: HTTP receive/send steps. *out: a new reference when DONE; type: msg's "type"
 * (borrowed; asgi.c looks it up for both scopes). */
int hb_asgi_http_receive(hb_asgi_req_t *r, PyObject **out);
int hb_asgi_http_send(hb_asgi_req_t *r, PyObject *msg, PyObject *type);
/* *.response.start and *.response.body, shared with websocket denial responses. */
int hb_asgi_http_start(hb_asgi_req_t *r, PyObject *msg);
int hb_asgi_http_body(hb_asgi_req_t *r, PyObject *msg);
/* Builds a response head from ASGI (name, value) byte pairs plus an optional extra header.
 * NULL with an exception set. */
hb_response_t *hb_asgi_response_new(int status, PyObject *headers, const char *xname,
				    const char *xvalue, size_t xlen);
/* After the app finished: posts what is missing (500/504 head, abort) and ends the stream. */
void hb_asgi_http_finish(hb_asgi_req_t *r, int failed);

/* asgi_ws.c: the same steps in a websocket scope. */
int hb_asgi_ws_receive(hb_asgi_req_t *r, PyObject **out);
int hb_asgi_ws_send(hb_asgi_req_t *r, PyObject *msg, PyObject *type);
void hb_asgi_ws_finish(hb_asgi_req_t *r, int failed);

/* asgi_lifespan.c */
/* The helpers' namespace (a dict, new reference) compiled in this interpreter, or NULL. */
PyObject *hb_asgi_helpers_new(void);
/* Runs lifespan startup on w->loop. Returns NULL (ok) or a malloc'd message for stderr. */
char *hb_asgi_lifespan_startup(hb_asgi_worker_t *w);
/* Runs lifespan shutdown (errors are logged). */
void hb_asgi_lifespan_shutdown(hb_asgi_worker_t *w);
/* Logs the stack of a stuck task at ERROR, after `what`. */
void hb_asgi_log_stack(hb_asgi_worker_t *w, PyObject *task, const char *what);

#endif
