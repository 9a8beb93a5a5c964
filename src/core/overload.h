/* overload.h: backpressure a user sets (limit_concurrency, max_queue_wait), and its counters.
 *
 * One hb_overload_t per process lives in the hub (hb_hub_overload()): its settings are written
 * by the main thread before any io or worker thread starts and read-only afterwards; its
 * counters are atomics that io threads and workers bump and anyone may read (the metrics
 * exposition, tests) with relaxed loads.
 *
 *  - limit_concurrency: an io thread that would dispatch a request while that many requests
 *    (and WebSockets) are in flight in the process answers it itself, at once: 503 with
 *    Retry-After, the connection kept alive when the request had no body.
 *  - max_queue_wait: a worker that takes a request which waited for it longer than this (from
 *    its head being complete to the worker taking it) answers 503 with Retry-After through the
 *    stream, the normal response path, instead of running the app late (hub.c does it for
 *    every worker, WSGI and ASGI alike).
 */
#ifndef HB_CORE_OVERLOAD_H
#define HB_CORE_OVERLOAD_H

#include <stdatomic.h>
#include <stdint.h>

#include "core/request.h"
#include "core/stream.h"

#define HB_OVERLOAD_BODY "Service Unavailable\n"

typedef struct hb_overload {
	int64_t limit_concurrency;	       /* 0: off */
	uint64_t max_queue_wait_ns;	       /* 0: off */
	int64_t retry_after_s;		       /* Retry-After of the 503s */
	_Atomic uint64_t rejected_concurrency; /* 503s past limit_concurrency */
	_Atomic uint64_t rejected_queue_wait;  /* 503s past max_queue_wait */
} hb_overload_t;

/* A 503 head (Retry-After, Content-Type text/plain, Content-Length of HB_OVERLOAD_BODY), one
 * allocation for free(). NULL on ENOMEM. */
hb_response_t *hb_overload_response(int64_t retry_after_s);

/* [worker] Whether s waited longer than max_queue_wait at now_ns (CLOCK_MONOTONIC). If so,
 * answers it 503 through the stream (HEAD, BODY, END), counts it and returns 1: the caller then
 * only releases its reference. Returns 0 otherwise (run the app). */
int hb_overload_reject_late(hb_overload_t *ov, hb_stream_t *s, uint64_t now_ns);

#endif
