/* h2_guard.c: a frame-header scanner in front of nghttp2 that enforces the flood budgets.
 *
 * It reads only the 9-byte frame headers (payloads are skipped), so it sees every frame even
 * where nghttp2 would skip one silently (a header block of a refused stream, an unknown type).
 * Budgets count per one-second window of the caller's clock:
 *   resets  - RST_STREAM from the client (rapid reset, CVE-2023-44487) plus streams the server
 *             had to reset because of the client (MadeYouReset), counted by h2.c;
 *   control - SETTINGS, PING, PRIORITY, unknown types, DATA/HEADERS/CONTINUATION with nothing
 *             in them (the "cheap frame" floods of 2019, CVE-2019-9512/9515/9518).
 * And per header block: CONTINUATION frames and block bytes (CVE-2024-28182). */
#include <string.h>

#include "proto/h2_priv.h"

enum {
	T_DATA = 0x0,
	T_HEADERS = 0x1,
	T_PRIORITY = 0x2,
	T_RST_STREAM = 0x3,
	T_SETTINGS = 0x4,
	T_PUSH_PROMISE = 0x5,
	T_PING = 0x6,
	T_GOAWAY = 0x7,
	T_WINDOW_UPDATE = 0x8,
	T_CONTINUATION = 0x9,
};
enum { F_END_STREAM = 0x1, F_ACK = 0x1, F_END_HEADERS = 0x4 };

static void roll_window(hb_h2_t *e)
{
	struct h2_guard *g = &e->g;
	if (e->now_ms - g->win_start >= 1000 || e->now_ms < g->win_start) {
		g->win_start = e->now_ms;
		g->resets = g->control = 0;
	}
}

void h2_guard_reset(hb_h2_t *e)
{
	roll_window(e);
	if (++e->g.resets > e->lim.max_resets)
		h2_fail(e, HB_H2_E_CALM, HB_H2_ENHANCE_YOUR_CALM, "stream reset flood");
}

static void control(hb_h2_t *e, const char *why)
{
	roll_window(e);
	if (++e->g.control > e->lim.max_control)
		h2_fail(e, HB_H2_E_CALM, HB_H2_ENHANCE_YOUR_CALM, why);
}

static void header_block(hb_h2_t *e, uint8_t type, uint8_t flags, uint32_t len)
{
	struct h2_guard *g = &e->g;
	if (type == T_CONTINUATION) {
		if (!g->in_block)
			return; /* nghttp2 answers that with PROTOCOL_ERROR */
		g->ncont++;
		g->block_bytes += len;
		if (g->ncont > e->lim.max_continuations)
			h2_fail(e, HB_H2_E_CALM, HB_H2_ENHANCE_YOUR_CALM, "CONTINUATION flood");
		else if (g->block_bytes > e->lim.max_header_list)
			h2_fail(e, HB_H2_E_CALM, HB_H2_ENHANCE_YOUR_CALM, "header block too large");
	} else {
		g->ncont = 0;
		g->block_bytes = len;
	}
	if (len == 0)
		control(e, "empty header frame flood");
	g->in_block = !(flags & F_END_HEADERS);
}

/* One complete frame header. */
static void frame(hb_h2_t *e, const uint8_t *hd)
{
	uint32_t len = (uint32_t)hd[0] << 16 | (uint32_t)hd[1] << 8 | hd[2];
	uint8_t type = hd[3], flags = hd[4];

	switch (type) {
	case T_HEADERS:
	case T_PUSH_PROMISE:
	case T_CONTINUATION:
		header_block(e, type, flags, len);
		break;
	case T_DATA:
		if (len == 0 && !(flags & F_END_STREAM))
			control(e, "empty DATA flood");
		break;
	case T_RST_STREAM:
		h2_guard_reset(e);
		break;
	case T_SETTINGS:
	case T_PING:
		if (!(flags & F_ACK))
			control(e, type == T_PING ? "PING flood" : "SETTINGS flood");
		break;
	case T_GOAWAY:
	case T_WINDOW_UPDATE:
		break;
	case T_PRIORITY:
	default:
		control(e, "PRIORITY or unknown frame flood");
		break;
	}
}

size_t h2_guard_scan(hb_h2_t *e, const uint8_t *data, size_t len)
{
	struct h2_guard *g = &e->g;
	size_t i = 0;

	if (g->preface_left) {
		size_t n = len < g->preface_left ? len : g->preface_left;
		g->preface_left -= (uint32_t)n;
		i = n;
	}
	while (i < len && !e->fail) {
		if (g->payload_left) {
			size_t n = len - i < g->payload_left ? len - i : g->payload_left;
			g->payload_left -= (uint32_t)n;
			i += n;
			continue;
		}
		size_t n = 9 - g->hdlen;
		if (n > len - i)
			n = len - i;
		memcpy(g->hd + g->hdlen, data + i, n);
		g->hdlen = (uint8_t)(g->hdlen + n);
		i += n;
		if (g->hdlen < 9)
			break;
		g->hdlen = 0;
		g->payload_left = (uint32_t)g->hd[0] << 16 | (uint32_t)g->hd[1] << 8 | g->hd[2];
		frame(e, g->hd);
	}
	return e->fail ? 0 : len; /* past a budget nothing more is worth decoding */
}
