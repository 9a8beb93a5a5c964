/* metrics_http.h: the metrics bind: a small plain HTTP/1.1 server on its own thread.
 *
 * Serves GET/HEAD /metrics (Prometheus text, server/metrics.h), /healthz (200 while the process
 * runs) and /readyz (200 when ready: workers up, lifespan done, not draining; else 503). It
 * shares nothing with the io threads or the Python workers but the metrics' read side, so it
 * answers while every worker is busy or the app is still importing. One connection at a time,
 * each closed after its answer and given HB_METRICS_HTTP_TIMEOUT_MS to send its request (a
 * probe or a scrape, not a public endpoint: bind it to an internal address).
 *
 * hb_metrics_http_start/stop on the main thread; the thread owns its sockets.
 */
#ifndef HB_SERVER_METRICS_HTTP_H
#define HB_SERVER_METRICS_HTTP_H

#include <stddef.h>

#include "server/metrics.h"

#define HB_METRICS_HTTP_TIMEOUT_MS 2000

typedef struct hb_metrics_http hb_metrics_http_t;

/* Binds and listens on `bind` (HOST:PORT, [IPV6]:PORT or unix:PATH) and starts the thread.
 * Returns 0 with *out set, or -errno with a message in err. */
int hb_metrics_http_start(const char *bind, hb_metrics_t *m, hb_metrics_http_t **out, char *err,
			  size_t errlen);
/* Stops the thread (it finishes the answer it is writing), closes the socket, frees. */
void hb_metrics_http_stop(hb_metrics_http_t *h);

/* The answer to one request head (exposed for the unit test): writes status, content type and
 * the body (malloc'd, or a static string with *owned = 0) for `head`. */
int hb_metrics_http_answer(hb_metrics_t *m, const char *head, size_t len, const char **ctype,
			   char **body, long *blen, int *owned, int *head_only);

#endif
