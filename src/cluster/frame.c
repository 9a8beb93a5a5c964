/* frame.c: cluster link framing (see frame.h). */
#include "cluster/frame.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "core/codec.h"

static void put32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
	p[2] = (uint8_t)(v >> 16);
	p[3] = (uint8_t)(v >> 24);
}

static uint32_t get32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

void hb_frame_header_encode(uint8_t out[HB_FRAME_HEADER_SIZE], uint8_t type, uint8_t flags,
			    uint32_t stream, uint32_t len)
{
	put32(out, len);
	out[4] = type;
	out[5] = flags;
	out[6] = 0;
	out[7] = 0;
	put32(out + 8, stream);
}

/* ---- parser ---- */

/* A message being reassembled from several frames. */
typedef struct partial {
	int used;
	uint8_t type;
	uint32_t stream;
	uint8_t *buf;
	size_t len, cap;
} partial_t;

struct hb_frame_parser {
	hb_frame_limits_t lim;
	uint8_t hdr[HB_FRAME_HEADER_SIZE];
	uint32_t hlen;	/* header bytes collected */
	int in_payload; /* the header is parsed; payload bytes follow */
	uint8_t type, flags;
	uint32_t stream, flen, got;
	partial_t *dst; /* reassembly target of this frame, or NULL (a one-frame message) */
	uint8_t *one;	/* a one-frame message split across feeds */
	size_t one_cap;
	partial_t *release; /* delivered last time: emptied on the next feed */
	partial_t *parts;
	uint32_t nparts;
	int err;
	const char *why;
};

hb_frame_parser_t *hb_frame_parser_new(const hb_frame_limits_t *lim)
{
	hb_frame_parser_t *p = calloc(1, sizeof *p);
	if (!p)
		return NULL;
	if (lim)
		p->lim = *lim;
	if (!p->lim.max_frame)
		p->lim.max_frame = HB_FRAME_DEFAULT_MAX_FRAME;
	if (!p->lim.max_message)
		p->lim.max_message = HB_FRAME_DEFAULT_MAX_MESSAGE;
	if (!p->lim.max_streams)
		p->lim.max_streams = HB_FRAME_DEFAULT_MAX_STREAMS;
	p->parts = calloc(p->lim.max_streams, sizeof *p->parts);
	if (!p->parts) {
		free(p);
		return NULL;
	}
	return p;
}

void hb_frame_parser_free(hb_frame_parser_t *p)
{
	if (!p)
		return;
	for (uint32_t i = 0; i < p->lim.max_streams; i++)
		free(p->parts[i].buf);
	free(p->parts);
	free(p->one);
	free(p);
}

uint32_t hb_frame_parser_partial(const hb_frame_parser_t *p)
{
	return p->nparts - (p->release ? 1 : 0); /* a delivered one is no longer partial */
}

static int fail(hb_frame_parser_t *p, int err, const char *why)
{
	p->err = err;
	p->why = why;
	return err;
}

static void part_reset(hb_frame_parser_t *p, partial_t *pt)
{
	pt->used = 0;
	pt->len = 0;
	/* Keep a modest buffer for the next message; give a large one back. */
	if (pt->cap > 4 * (size_t)HB_FRAME_DEFAULT_CHUNK) {
		free(pt->buf);
		pt->buf = NULL;
		pt->cap = 0;
	}
	p->nparts--;
}

static partial_t *part_find(hb_frame_parser_t *p, uint32_t stream)
{
	for (uint32_t i = 0; i < p->lim.max_streams; i++)
		if (p->parts[i].used && p->parts[i].stream == stream)
			return &p->parts[i];
	return NULL;
}

static partial_t *part_new(hb_frame_parser_t *p, uint32_t stream, uint8_t type)
{
	for (uint32_t i = 0; i < p->lim.max_streams; i++) {
		partial_t *pt = &p->parts[i];
		if (!pt->used) {
			pt->used = 1;
			pt->stream = stream;
			pt->type = type;
			pt->len = 0;
			p->nparts++;
			return pt;
		}
	}
	return NULL;
}

/* Checks a complete header and picks where the payload goes. */
static int header_done(hb_frame_parser_t *p)
{
	p->flen = get32(p->hdr);
	p->type = p->hdr[4];
	p->flags = p->hdr[5];
	p->stream = get32(p->hdr + 8);
	p->got = 0;
	p->dst = NULL;
	if (p->hdr[6] || p->hdr[7])
		return fail(p, -EBADMSG, "reserved header bits set");
	if (p->type == 0 || p->type > HB_FRAME_TYPE_MAX)
		return fail(p, -EBADMSG, "unknown frame type");
	if (p->flags & ~HB_FRAME_F_KNOWN)
		return fail(p, -EBADMSG, "unknown frame flags");
	if (p->flen > p->lim.max_frame)
		return fail(p, -EMSGSIZE, "frame longer than cluster.max_frame_size");
	partial_t *pt = p->stream ? part_find(p, p->stream) : NULL;
	int more = p->flags & HB_FRAME_F_MORE;
	if (more && !p->stream)
		return fail(p, -EBADMSG, "fragmented message without a stream id");
	if (more && !p->flen)
		return fail(p, -EBADMSG, "empty fragment");
	if (pt) {
		if (pt->type != p->type)
			return fail(p, -EBADMSG, "fragment type differs from its message");
		if (pt->len + p->flen > p->lim.max_message)
			return fail(p, -EMSGSIZE, "message longer than the reassembly limit");
		p->dst = pt;
	} else if (more) {
		if (p->flen > p->lim.max_message)
			return fail(p, -EMSGSIZE, "message longer than the reassembly limit");
		p->dst = part_new(p, p->stream, p->type);
		if (!p->dst)
			return fail(p, -ENOBUFS, "too many messages in reassembly");
	}
	p->in_payload = 1;
	return 0;
}

static int grow(uint8_t **buf, size_t *cap, size_t need)
{
	if (need <= *cap)
		return 0;
	size_t n = *cap ? *cap : 256;
	while (n < need)
		n *= 2;
	uint8_t *b = realloc(*buf, n);
	if (!b)
		return -ENOMEM;
	*buf = b;
	*cap = n;
	return 0;
}

static int deliver(hb_frame_parser_t *p, const uint8_t *data, size_t len, hb_frame_msg_t *msg)
{
	if (hb_codec_validate(data, len, 0) < 0)
		return fail(p, -EBADMSG, "payload is not a codec value");
	msg->type = p->type;
	msg->stream = p->stream;
	msg->data = data;
	msg->len = len;
	return 1;
}

/* Copies payload bytes; returns 1 when a message completed, 0 when more is needed. */
static int payload(hb_frame_parser_t *p, const uint8_t *in, size_t n, hb_frame_msg_t *msg)
{
	partial_t *pt = p->dst;
	if (n == 0) {
		/* nothing to copy (a header that ended the piece, or an empty last fragment) */
	} else if (pt) {
		if (grow(&pt->buf, &pt->cap, pt->len + n) < 0)
			return fail(p, -ENOMEM, "out of memory reassembling a message");
		memcpy(pt->buf + pt->len, in, n);
		pt->len += n;
	} else {
		if (grow(&p->one, &p->one_cap, (size_t)p->got + n) < 0)
			return fail(p, -ENOMEM, "out of memory reading a frame");
		memcpy(p->one + p->got, in, n);
	}
	p->got += (uint32_t)n;
	if (p->got < p->flen)
		return 0;
	p->in_payload = 0;
	p->hlen = 0;
	if (p->flags & HB_FRAME_F_MORE)
		return 0;
	if (!pt)
		return deliver(p, p->one, p->flen, msg);
	p->release = pt;
	return deliver(p, pt->buf, pt->len, msg);
}

int hb_frame_feed(hb_frame_parser_t *p, const void *buf, size_t len, size_t *used,
		  hb_frame_msg_t *msg, const char **why)
{
	const uint8_t *in = buf;
	size_t off = 0;
	int rc = 0;
	*used = 0;
	if (p->err)
		goto out;
	if (p->release) {
		part_reset(p, p->release);
		p->release = NULL;
	}
	while (off < len && rc == 0) {
		if (!p->in_payload) {
			size_t n = HB_FRAME_HEADER_SIZE - p->hlen;
			if (n > len - off)
				n = len - off;
			memcpy(p->hdr + p->hlen, in + off, n);
			p->hlen += (uint32_t)n;
			off += n;
			if (p->hlen < HB_FRAME_HEADER_SIZE || header_done(p) < 0)
				break;
			/* The common case: a one-frame message whole in this piece, no copy. */
			if (!p->dst && !(p->flags & HB_FRAME_F_MORE) && len - off >= p->flen) {
				p->in_payload = 0;
				p->hlen = 0;
				off += p->flen;
				rc = deliver(p, in + off - p->flen, p->flen, msg);
				break;
			}
			if (p->flen == 0) { /* an empty last fragment completes its message */
				rc = payload(p, in + off, 0, msg);
				continue;
			}
		}
		size_t n = p->flen - p->got;
		if (n > len - off)
			n = len - off;
		rc = payload(p, in + off, n, msg);
		off += n;
	}
out:
	*used = off;
	if (p->err) {
		*why = p->why;
		return p->err;
	}
	return rc;
}

/* ---- sender ---- */

typedef struct outmsg {
	struct outmsg *next;	  /* run list (lane heads and lane-0 messages) */
	struct outmsg *lane_next; /* the same lane's later messages, in push order */
	struct outmsg *lane_tail;
	uint8_t type;
	uint32_t stream, lane;
	size_t len, off;
	uint8_t data[];
} outmsg_t;

struct hb_frame_out {
	uint32_t chunk;
	outmsg_t *head, *tail;
	uint32_t count;
	uint64_t bytes;
	/* stream ids of the queued messages longer than a chunk: a short message only has to
	 * avoid these (a full scan per push made a backed-up queue quadratic) */
	uint32_t *long_ids;
	uint32_t nlong, caplong;
};

hb_frame_out_t *hb_frame_out_new(uint32_t chunk)
{
	hb_frame_out_t *q = calloc(1, sizeof *q);
	if (q)
		q->chunk = chunk ? chunk : HB_FRAME_DEFAULT_CHUNK;
	return q;
}

void hb_frame_out_free(hb_frame_out_t *q)
{
	if (!q)
		return;
	for (outmsg_t *m = q->head; m;) {
		outmsg_t *next = m->next;
		for (outmsg_t *l = m->lane_next; l;) {
			outmsg_t *ln = l->lane_next;
			free(l);
			l = ln;
		}
		free(m);
		m = next;
	}
	free(q->long_ids);
	free(q);
}

static void run_append(hb_frame_out_t *q, outmsg_t *m)
{
	m->next = NULL;
	if (q->tail)
		q->tail->next = m;
	else
		q->head = m;
	q->tail = m;
}

static int stream_busy(const hb_frame_out_t *q, uint32_t stream, int whole_queue)
{
	for (uint32_t i = 0; i < q->nlong; i++)
		if (q->long_ids[i] == stream)
			return 1;
	if (!whole_queue)
		return 0;
	for (const outmsg_t *m = q->head; m; m = m->next)
		for (const outmsg_t *l = m; l; l = l->lane_next)
			if (l->stream == stream)
				return 1;
	return 0;
}

static int long_add(hb_frame_out_t *q, uint32_t stream)
{
	if (q->nlong == q->caplong) {
		uint32_t cap = q->caplong ? q->caplong * 2 : 8;
		uint32_t *v = realloc(q->long_ids, cap * sizeof *v);
		if (!v)
			return -ENOMEM;
		q->long_ids = v;
		q->caplong = cap;
	}
	q->long_ids[q->nlong++] = stream;
	return 0;
}

/* A message leaves the queue (sent or dropped). */
static void gone(hb_frame_out_t *q, outmsg_t *m)
{
	if (m->len <= q->chunk)
		return;
	for (uint32_t i = 0; i < q->nlong; i++) {
		if (q->long_ids[i] == m->stream) {
			q->long_ids[i] = q->long_ids[--q->nlong];
			return;
		}
	}
}

int hb_frame_out_push(hb_frame_out_t *q, uint8_t type, uint32_t stream, uint32_t lane,
		      const void *data, size_t len)
{
	if (type == 0 || type > HB_FRAME_TYPE_MAX || len > UINT32_MAX)
		return -EINVAL;
	if (len > q->chunk && !stream)
		return -EINVAL;
	/* a long message must not share its id with anything queued; a short one only with the
	 * long ones (whose fragments the peer reassembles by stream id) */
	if (stream && stream_busy(q, stream, len > q->chunk))
		return -EBUSY;
	if (len > q->chunk && long_add(q, stream) < 0)
		return -ENOMEM;
	outmsg_t *m = malloc(sizeof *m + len);
	if (!m) {
		if (len > q->chunk)
			q->nlong--;
		return -ENOMEM;
	}
	memset(m, 0, sizeof *m);
	m->type = type;
	m->stream = stream;
	m->lane = lane;
	m->len = len;
	if (len)
		memcpy(m->data, data, len);
	m->lane_tail = m;
	q->count++;
	q->bytes += len;
	if (lane) {
		for (outmsg_t *h = q->head; h; h = h->next) {
			if (h->lane == lane) {
				h->lane_tail->lane_next = m;
				h->lane_tail = m;
				return 0;
			}
		}
	}
	run_append(q, m);
	return 0;
}

size_t hb_frame_out_fill(hb_frame_out_t *q, uint8_t *buf, size_t cap)
{
	size_t w = 0;
	while (q->head) {
		outmsg_t *m = q->head;
		size_t n = m->len - m->off;
		if (n > q->chunk)
			n = q->chunk;
		if (cap - w < HB_FRAME_HEADER_SIZE + n)
			break;
		int more = m->off + n < m->len;
		hb_frame_header_encode(buf + w, m->type, more ? HB_FRAME_F_MORE : 0, m->stream,
				       (uint32_t)n);
		memcpy(buf + w + HB_FRAME_HEADER_SIZE, m->data + m->off, n);
		w += HB_FRAME_HEADER_SIZE + n;
		m->off += n;
		q->bytes -= n;
		q->head = m->next;
		if (!q->head)
			q->tail = NULL;
		if (more) {
			run_append(q, m);
			continue;
		}
		outmsg_t *succ = m->lane_next;
		if (succ) {
			succ->lane_tail = m->lane_tail;
			run_append(q, succ);
		}
		gone(q, m);
		free(m);
		q->count--;
	}
	return w;
}

int hb_frame_out_drop_oldest(hb_frame_out_t *q, uint32_t lane)
{
	outmsg_t *prev = NULL, *h = q->head;

	while (h && h->lane != lane) {
		prev = h;
		h = h->next;
	}
	if (!h || !lane)
		return 0;
	outmsg_t *victim;
	if (h->off == 0) { /* the lane's head has not started: its successor takes its place */
		victim = h;
		outmsg_t *succ = h->lane_next;
		if (succ) {
			succ->lane_tail = h->lane_tail;
			succ->next = h->next;
		}
		outmsg_t *repl = succ ? succ : h->next;
		if (prev)
			prev->next = repl;
		else
			q->head = repl;
		if (q->tail == h)
			q->tail = succ ? succ : prev;
	} else { /* the head is partly sent: drop the one after it */
		victim = h->lane_next;
		if (!victim)
			return 0;
		h->lane_next = victim->lane_next;
		if (h->lane_tail == victim)
			h->lane_tail = h;
	}
	q->count--;
	q->bytes -= victim->len - victim->off;
	gone(q, victim);
	free(victim);
	return 1;
}

uint32_t hb_frame_out_count(const hb_frame_out_t *q)
{
	return q->count;
}

uint64_t hb_frame_out_bytes(const hb_frame_out_t *q)
{
	return q->bytes;
}
