/* swim.c: SWIM + Lifeguard membership state machine (see swim.h). The merge rules follow
 * memberlist's aliveNode/suspectNode/deadNode: alive needs a strictly higher incarnation,
 * suspect/dead/left an equal or higher one; news about ourselves is refuted. */
#include "cluster/swim.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cluster/swim_msg.h"

#define MAX_CONFIRM 16u
#define REAP_EVERY_MS 1000

typedef struct member {
	char name[HB_SWIM_MAX_NAME + 1];
	char addr[HB_SWIM_MAX_ADDR + 1];
	uint64_t inc;
	hb_swim_state_t state;
	int64_t since;	    /* when it entered its state */
	int64_t susp_start; /* SUSPECT: when we started suspecting it */
	uint32_t susp_k;    /* confirmations that bring the timeout down to min */
	uint32_t susp_n;    /* confirmations received */
	uint32_t nfrom;
	uint64_t from[MAX_CONFIRM]; /* hashes of who accused it (each counts once) */
	int probe_soon;		    /* newly suspected: probe it next, out of turn */
} member_t;

/* A piece of news being gossiped, one per member name. */
typedef struct bcast {
	int state;
	uint64_t inc;
	uint32_t transmits;
	char name[HB_SWIM_MAX_NAME + 1];
	char addr[HB_SWIM_MAX_ADDR + 1];
	char from[HB_SWIM_MAX_NAME + 1];
} bcast_t;

/* A ping we send on behalf of another member's ping-req. */
typedef struct relay {
	uint32_t seq, orig_seq;
	int64_t nack_at, expire;
	int nacked;
	char to[HB_SWIM_MAX_ADDR + 1];
} relay_t;

typedef struct probe {
	int active, indirect;
	uint32_t seq, expected_nacks, nacks;
	int64_t timeout_at, deadline;
	char target[HB_SWIM_MAX_NAME + 1];
} probe_t;

/* A growable array of pointers used as a FIFO. */
typedef struct fifo {
	void **v;
	uint32_t head, len, cap;
} fifo_t;

struct hb_swim {
	hb_swim_config_t c;
	char name[HB_SWIM_MAX_NAME + 1];
	char addr[HB_SWIM_MAX_ADDR + 1];
	uint64_t name_hash;
	uint64_t inc;
	int leaving;
	uint64_t rng;
	member_t **m;
	uint32_t nm, cap_m, probe_idx;
	bcast_t **bc;
	uint32_t nbc, cap_bc;
	relay_t *relays;
	uint32_t nrelays, cap_relays;
	probe_t probe;
	uint32_t seq, awareness;
	int64_t next_probe, next_gossip, next_push_pull, next_reconnect, next_reap;
	fifo_t out, events;
	hb_swim_stats_t stats;
};

/* ---- small helpers ---- */

static uint64_t rnd(hb_swim_t *s)
{
	uint64_t x = s->rng;
	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	s->rng = x;
	return x * 2685821657736338717ull;
}

static uint64_t hash_str(const char *p, size_t n)
{
	uint64_t h = 1469598103934665603ull;
	for (size_t i = 0; i < n; i++)
		h = (h ^ (uint8_t)p[i]) * 1099511628211ull;
	return h;
}

static void copy_str(char *dst, size_t cap, const char *p, size_t n)
{
	if (n >= cap)
		n = cap - 1;
	memcpy(dst, p, n);
	dst[n] = 0;
}

static int str_is(hb_swim_str_t s, const char *z)
{
	return strlen(z) == s.n && !memcmp(z, s.p, s.n);
}

static hb_swim_str_t zstr(const char *z)
{
	return (hb_swim_str_t){z, strlen(z)};
}

static int fifo_push(fifo_t *f, void *p)
{
	if (f->head == f->len) {
		f->head = 0;
		f->len = 0;
	}
	if (f->len == f->cap) {
		if (f->head > 0) {
			memmove(f->v, f->v + f->head, (f->len - f->head) * sizeof *f->v);
			f->len -= f->head;
			f->head = 0;
		} else {
			uint32_t cap = f->cap ? f->cap * 2 : 16;
			void **v = realloc(f->v, cap * sizeof *v);
			if (!v)
				return -ENOMEM;
			f->v = v;
			f->cap = cap;
		}
	}
	f->v[f->len++] = p;
	return 0;
}

static void *fifo_pop(fifo_t *f)
{
	return f->head < f->len ? f->v[f->head++] : NULL;
}

static void fifo_free(fifo_t *f)
{
	void *p;
	while ((p = fifo_pop(f)))
		free(p);
	free(f->v);
}

/* Live members (alive or suspect) plus ourselves: the n of every log(n) in the protocol. */
static uint32_t live_count(const hb_swim_t *s)
{
	uint32_t n = 1;
	for (uint32_t i = 0; i < s->nm; i++)
		n += s->m[i]->state <= HB_SWIM_SUSPECT;
	return n;
}

static int64_t scaled(const hb_swim_t *s, uint32_t ms)
{
	return (int64_t)ms * (s->awareness + 1);
}

static void health(hb_swim_t *s, int delta)
{
	int64_t a = (int64_t)s->awareness + delta;
	if (a < 0)
		a = 0;
	if (a > (int64_t)s->c.awareness_max - 1)
		a = s->c.awareness_max - 1;
	s->awareness = (uint32_t)a;
}

static member_t *find(const hb_swim_t *s, const char *p, size_t n)
{
	for (uint32_t i = 0; i < s->nm; i++)
		if (strlen(s->m[i]->name) == n && !memcmp(s->m[i]->name, p, n))
			return s->m[i];
	return NULL;
}

static void emit(hb_swim_t *s, hb_swim_event_type_t type, const member_t *m)
{
	hb_swim_event_t *ev = malloc(sizeof *ev);
	if (!ev)
		return; /* an event lost to ENOMEM; membership state itself stays right */
	ev->type = type;
	ev->incarnation = m->inc;
	memcpy(ev->name, m->name, sizeof ev->name);
	memcpy(ev->addr, m->addr, sizeof ev->addr);
	if (fifo_push(&s->events, ev) < 0)
		free(ev);
}

/* ---- gossip queue ---- */

static uint32_t retransmit_limit(const hb_swim_t *s)
{
	return s->c.retransmit_mult * (uint32_t)ceil(log10((double)live_count(s) + 1));
}

static void bcast_set(hb_swim_t *s, int state, const char *name, const char *addr, uint64_t inc,
		      const char *from)
{
	bcast_t *b = NULL;
	for (uint32_t i = 0; i < s->nbc && !b; i++)
		if (!strcmp(s->bc[i]->name, name))
			b = s->bc[i];
	if (!b) {
		if (s->nbc == s->cap_bc) {
			uint32_t cap = s->cap_bc ? s->cap_bc * 2 : 16;
			bcast_t **v = realloc(s->bc, cap * sizeof *v);
			if (!v)
				return;
			s->bc = v;
			s->cap_bc = cap;
		}
		b = malloc(sizeof *b);
		if (!b)
			return;
		s->bc[s->nbc++] = b;
	}
	b->state = state;
	b->inc = inc;
	b->transmits = 0;
	copy_str(b->name, sizeof b->name, name, strlen(name));
	copy_str(b->addr, sizeof b->addr, addr, strlen(addr));
	copy_str(b->from, sizeof b->from, from, strlen(from));
}

static hb_swim_item_t bcast_item(const bcast_t *b)
{
	return (hb_swim_item_t){.state = b->state,
				.inc = b->inc,
				.name = zstr(b->name),
				.addr = zstr(b->addr),
				.from = zstr(b->from)};
}

static int by_transmits(const void *x, const void *y)
{
	const bcast_t *a = *(bcast_t *const *)x, *b = *(bcast_t *const *)y;
	return (a->transmits > b->transmits) - (a->transmits < b->transmits);
}

/* ---- sending ---- */

static void queue_out(hb_swim_t *s, const char *addr, const hb_cbuf_t *b, int reliable)
{
	if (b->err)
		return;
	hb_swim_out_t *o = malloc(sizeof *o + b->len);
	if (!o)
		return;
	o->reliable = reliable;
	copy_str(o->addr, sizeof o->addr, addr, strlen(addr));
	o->len = b->len;
	memcpy(o->data, b->data, b->len);
	if (fifo_push(&s->out, o) < 0)
		free(o);
}

/* Sends an unreliable message with as much pending gossip as fits in max_packet, least sent
 * first, after up to one leading item: to a suspected `buddy` we ping, its suspicion, so that it
 * can refute at once (Lifeguard's buddy system); with `with_self`, our own alive entry (every
 * ack carries our incarnation, so a prober holding a stale suspicion about us is corrected). */
static void send_msg(hb_swim_t *s, const char *addr, int type, uint32_t seq, const member_t *buddy,
		     const char *target_addr, int with_self)
{
	hb_swim_msg_t m = {.type = type,
			   .seq = seq,
			   .from_name = zstr(s->name),
			   .from_addr = zstr(s->addr),
			   .target_name = zstr(buddy ? buddy->name : ""),
			   .target_addr = zstr(target_addr ? target_addr : "")};
	size_t budget = s->c.max_packet, used = hb_swim_msg_base_size(&m);
	hb_swim_item_t lead;
	int with_lead = 1;
	if (with_self)
		lead = (hb_swim_item_t){.state = HB_SWIM_ALIVE,
					.inc = s->inc,
					.name = zstr(s->name),
					.addr = zstr(s->addr),
					.from = zstr(s->name)};
	else if (buddy && buddy->state == HB_SWIM_SUSPECT && type == HB_SWIM_MSG_PING)
		lead = (hb_swim_item_t){.state = HB_SWIM_SUSPECT,
					.inc = buddy->inc,
					.name = zstr(buddy->name),
					.addr = zstr(buddy->addr),
					.from = zstr(s->name)};
	else
		with_lead = 0;
	if (with_lead)
		used += hb_swim_item_size(&lead);
	if (s->nbc > 1) /* qsort(NULL, 0) is undefined (no broadcast queued yet) */
		qsort(s->bc, s->nbc, sizeof *s->bc, by_transmits);
	uint32_t take = 0;
	for (; take < s->nbc; take++) {
		hb_swim_item_t it = bcast_item(s->bc[take]);
		size_t sz = hb_swim_item_size(&it);
		if (used + sz > budget)
			break;
		used += sz;
	}
	uint8_t stack[1500];
	hb_cbuf_t b;
	hb_cbuf_init(&b, stack, sizeof stack);
	hb_swim_msg_begin(&b, &m, take + (uint32_t)with_lead);
	if (with_lead)
		hb_swim_msg_put_item(&b, &lead);
	for (uint32_t i = 0; i < take; i++) {
		hb_swim_item_t it = bcast_item(s->bc[i]);
		hb_swim_msg_put_item(&b, &it);
	}
	queue_out(s, addr, &b, 0);
	hb_cbuf_free(&b);
	/* Count the transmissions; drop news sent often enough (the array is sorted by count). */
	uint32_t limit = retransmit_limit(s), keep = 0;
	for (uint32_t i = 0; i < s->nbc; i++) {
		if (i < take)
			s->bc[i]->transmits++;
		if (s->bc[i]->transmits >= limit)
			free(s->bc[i]);
		else
			s->bc[keep++] = s->bc[i];
	}
	s->nbc = keep;
}

/* Sends our whole member list (ourselves included) as a PUSH_PULL or its reply. */
static void send_state(hb_swim_t *s, const char *addr, int type)
{
	hb_swim_msg_t m = {.type = type, .from_name = zstr(s->name), .from_addr = zstr(s->addr)};
	hb_cbuf_t b;
	hb_cbuf_init(&b, NULL, 0);
	hb_swim_msg_begin(&b, &m, s->nm + 1);
	hb_swim_item_t self = {.state = s->leaving ? HB_SWIM_LEFT : HB_SWIM_ALIVE,
			       .inc = s->inc,
			       .name = zstr(s->name),
			       .addr = zstr(s->addr),
			       .from = zstr(s->name)};
	hb_swim_msg_put_item(&b, &self);
	for (uint32_t i = 0; i < s->nm; i++) {
		const member_t *x = s->m[i];
		hb_swim_item_t it = {.state = x->state,
				     .inc = x->inc,
				     .name = zstr(x->name),
				     .addr = zstr(x->addr),
				     .from = zstr(s->name)};
		hb_swim_msg_put_item(&b, &it);
	}
	queue_out(s, addr, &b, 1);
	hb_cbuf_free(&b);
	s->stats.push_pulls++;
}

/* Up to k distinct random members in a state <= max_state (ALIVE, or SUSPECT to include
 * suspects), never `skip`. */
static uint32_t pick(hb_swim_t *s, uint32_t k, hb_swim_state_t max_state, const member_t *skip,
		     member_t **out)
{
	uint32_t n = 0, seen = 0;
	for (uint32_t i = 0; i < s->nm; i++) {
		member_t *x = s->m[i];
		if (x->state > max_state || x == skip)
			continue;
		seen++; /* reservoir sampling */
		if (n < k)
			out[n++] = x;
		else {
			uint64_t j = rnd(s) % seen;
			if (j < k)
				out[j] = x;
		}
	}
	return n;
}

/* ---- applying news (memberlist's rules) ---- */

static void send_msg(hb_swim_t *s, const char *addr, int type, uint32_t seq, const member_t *buddy,
		     const char *target_addr, int with_self);

/* Someone says we are suspect, dead or older than we are: take a higher incarnation, gossip it,
 * and tell the accuser directly (its timer runs first; gossip may miss it for a while). */
static void refute(hb_swim_t *s, uint64_t accused_inc, hb_swim_str_t accuser)
{
	if (s->leaving)
		return;
	if (accused_inc >= s->inc)
		s->inc = accused_inc + 1;
	bcast_set(s, HB_SWIM_ALIVE, s->name, s->addr, s->inc, s->name);
	health(s, 1);
	s->stats.refutes++;
	const member_t *a = accuser.n ? find(s, accuser.p, accuser.n) : NULL;
	if (a && a->state <= HB_SWIM_SUSPECT)
		send_msg(s, a->addr, HB_SWIM_MSG_GOSSIP, 0, NULL, NULL, 1);
}

static member_t *member_add(hb_swim_t *s, const hb_swim_item_t *it)
{
	if (s->nm == s->cap_m) {
		uint32_t cap = s->cap_m ? s->cap_m * 2 : 16;
		member_t **v = realloc(s->m, cap * sizeof *v);
		if (!v)
			return NULL;
		s->m = v;
		s->cap_m = cap;
	}
	member_t *m = calloc(1, sizeof *m);
	if (!m)
		return NULL;
	copy_str(m->name, sizeof m->name, it->name.p, it->name.n);
	/* insert at a random position so that the probe order stays random */
	uint32_t at = (uint32_t)(rnd(s) % (s->nm + 1));
	s->m[s->nm++] = s->m[at];
	s->m[at] = m;
	return m;
}

static void on_alive(hb_swim_t *s, int64_t now, const hb_swim_item_t *it)
{
	if (str_is(it->name, s->name)) {
		if (it->inc > s->inc)
			refute(s, it->inc,
			       it->from); /* someone knows a later us: a previous life */
		return;
	}
	member_t *m = find(s, it->name.p, it->name.n);
	if (m && it->inc <= m->inc)
		return;
	int was_new = !m;
	if (!m && !(m = member_add(s, it)))
		return;
	hb_swim_state_t old = was_new ? HB_SWIM_DEAD : m->state;
	copy_str(m->addr, sizeof m->addr, it->addr.p, it->addr.n);
	m->inc = it->inc;
	if (old != HB_SWIM_ALIVE) {
		m->state = HB_SWIM_ALIVE;
		m->since = now;
		emit(s, old == HB_SWIM_SUSPECT ? HB_SWIM_EV_ALIVE : HB_SWIM_EV_JOIN, m);
	}
	bcast_set(s, HB_SWIM_ALIVE, m->name, m->addr, m->inc, s->name);
}

static void suspicion_start(hb_swim_t *s, int64_t now, member_t *m, uint64_t from_hash)
{
	uint32_t n = live_count(s);
	m->susp_k = s->c.suspicion_mult > 2 ? s->c.suspicion_mult - 2 : 0;
	if (n < 2 || n - 2 < m->susp_k)
		m->susp_k = 0;
	if (m->susp_k > MAX_CONFIRM - 1)
		m->susp_k = MAX_CONFIRM - 1;
	m->susp_n = 0;
	m->nfrom = 1;
	m->from[0] = from_hash;
	m->susp_start = now;
	m->probe_soon = !s->probe.active || strcmp(s->probe.target, m->name) != 0;
}

/* Counts an independent confirmation; 1 when it was new. */
static int suspicion_confirm(member_t *m, uint64_t from_hash)
{
	if (m->susp_n >= m->susp_k)
		return 0;
	for (uint32_t i = 0; i < m->nfrom; i++)
		if (m->from[i] == from_hash)
			return 0;
	m->from[m->nfrom++] = from_hash;
	m->susp_n++;
	return 1;
}

/* Lifeguard's timeout: max with no confirmations, down to min with k of them. */
static int64_t suspicion_timeout(const hb_swim_t *s, const member_t *m)
{
	double n = live_count(s);
	double scale = log10(n > 1 ? n : 1);
	double min = s->c.suspicion_mult * (scale > 1 ? scale : 1) * s->c.probe_interval_ms;
	double max = min * s->c.suspicion_max_mult;
	if (m->susp_k < 1)
		return (int64_t)min;
	double frac = log(m->susp_n + 1.0) / log(m->susp_k + 1.0);
	double t = floor(max - frac * (max - min));
	return (int64_t)(t < min ? min : t);
}

static void on_suspect(hb_swim_t *s, int64_t now, const hb_swim_item_t *it)
{
	if (str_is(it->name, s->name)) {
		if (it->inc >= s->inc)
			refute(s, it->inc, it->from);
		return;
	}
	member_t *m = find(s, it->name.p, it->name.n);
	if (!m || it->inc < m->inc || m->state >= HB_SWIM_DEAD)
		return;
	/* The accuser's name travels unchanged with the suspicion: confirmations count
	 * independent accusers, not the members that merely passed the news on. */
	uint64_t from = hash_str(it->from.p, it->from.n);
	char accuser[HB_SWIM_MAX_NAME + 1];
	copy_str(accuser, sizeof accuser, it->from.p, it->from.n);
	if (m->state == HB_SWIM_SUSPECT) {
		if (suspicion_confirm(m, from))
			bcast_set(s, HB_SWIM_SUSPECT, m->name, m->addr, m->inc, accuser);
		return;
	}
	m->inc = it->inc;
	m->state = HB_SWIM_SUSPECT;
	m->since = now;
	suspicion_start(s, now, m, from);
	s->stats.suspects++;
	emit(s, HB_SWIM_EV_SUSPECT, m);
	bcast_set(s, HB_SWIM_SUSPECT, m->name, m->addr, m->inc, accuser);
}

static void on_dead(hb_swim_t *s, int64_t now, const hb_swim_item_t *it, hb_swim_state_t st)
{
	if (str_is(it->name, s->name)) {
		if (it->inc >= s->inc && !s->leaving)
			refute(s, it->inc, it->from);
		return;
	}
	member_t *m = find(s, it->name.p, it->name.n);
	if (!m || it->inc < m->inc || m->state >= HB_SWIM_DEAD)
		return;
	m->inc = it->inc;
	m->state = st;
	m->since = now;
	if (st == HB_SWIM_DEAD)
		s->stats.deaths++;
	emit(s, st == HB_SWIM_DEAD ? HB_SWIM_EV_DEAD : HB_SWIM_EV_LEAVE, m);
	bcast_set(s, st, m->name, m->addr, m->inc, s->name);
	if (s->probe.active && !strcmp(s->probe.target, m->name))
		s->probe.active = 0;
}

/* gossip: state as stated; push-pull: a remote "dead" only makes us suspect (memberlist's
 * mergeState), so one stale view cannot kill a node. */
static void apply_item(hb_swim_t *s, int64_t now, const hb_swim_item_t *it, int from_sync)
{
	switch ((hb_swim_state_t)it->state) {
	case HB_SWIM_ALIVE:
		on_alive(s, now, it);
		break;
	case HB_SWIM_SUSPECT:
		on_suspect(s, now, it);
		break;
	case HB_SWIM_DEAD:
		if (from_sync)
			on_suspect(s, now, it);
		else
			on_dead(s, now, it, HB_SWIM_DEAD);
		break;
	case HB_SWIM_LEFT:
		on_dead(s, now, it, HB_SWIM_LEFT);
		break;
	}
}

/* ---- probing ---- */

static member_t *next_probe_target(hb_swim_t *s)
{
	/* A member we just started to suspect is probed out of turn: if it is up, its ack carries
	 * its refutation to us directly instead of leaving that to gossip, which under loss may
	 * miss us for longer than the suspicion timeout. */
	for (uint32_t i = 0; i < s->nm; i++) {
		member_t *m = s->m[i];
		if (m->probe_soon) {
			m->probe_soon = 0;
			if (m->state == HB_SWIM_SUSPECT)
				return m;
		}
	}
	for (uint32_t tries = 0; tries < s->nm; tries++) {
		if (s->probe_idx >= s->nm) {
			s->probe_idx = 0;
			for (uint32_t i = s->nm; i > 1; i--) { /* reshuffle each round */
				uint32_t j = (uint32_t)(rnd(s) % i);
				member_t *t = s->m[i - 1];
				s->m[i - 1] = s->m[j];
				s->m[j] = t;
			}
		}
		member_t *m = s->m[s->probe_idx++];
		if (m->state <= HB_SWIM_SUSPECT)
			return m;
	}
	return NULL;
}

static void probe_start(hb_swim_t *s, int64_t now)
{
	member_t *m = next_probe_target(s);
	s->next_probe = now + scaled(s, s->c.probe_interval_ms);
	if (!m)
		return;
	probe_t *p = &s->probe;
	p->active = 1;
	p->indirect = 0;
	p->seq = ++s->seq;
	p->expected_nacks = p->nacks = 0;
	p->timeout_at = now + scaled(s, s->c.probe_timeout_ms);
	p->deadline = s->next_probe;
	memcpy(p->target, m->name, sizeof p->target);
	s->stats.probes++;
	send_msg(s, m->addr, HB_SWIM_MSG_PING, p->seq, m, NULL, 0);
}

static void probe_indirect(hb_swim_t *s, member_t *target)
{
	member_t *via[16];
	uint32_t k = s->c.indirect_checks < 16 ? s->c.indirect_checks : 16;
	uint32_t n = pick(s, k, HB_SWIM_ALIVE, target, via);
	s->probe.indirect = 1;
	s->probe.expected_nacks = n;
	s->stats.indirect_probes += n;
	for (uint32_t i = 0; i < n; i++)
		send_msg(s, via[i]->addr, HB_SWIM_MSG_PING_REQ, s->probe.seq, target, target->addr,
			 0);
}

/* No ack by the end of the interval: suspect the target, and blame ourselves for the nacks
 * that did not come back either (Lifeguard: a node that hears nothing is likely the slow one). */
static void probe_fail(hb_swim_t *s, int64_t now, member_t *target)
{
	probe_t *p = &s->probe;
	p->active = 0;
	if (p->expected_nacks > 0) {
		if (p->nacks < p->expected_nacks)
			health(s, (int)(p->expected_nacks - p->nacks));
	} else {
		health(s, 1);
	}
	hb_swim_item_t it = {.state = HB_SWIM_SUSPECT,
			     .inc = target->inc,
			     .name = zstr(target->name),
			     .addr = zstr(target->addr),
			     .from = zstr(s->name)};
	on_suspect(s, now, &it);
}

static void probe_tick(hb_swim_t *s, int64_t now)
{
	probe_t *p = &s->probe;
	if (p->active) {
		member_t *t = find(s, p->target, strlen(p->target));
		if (!t || t->state >= HB_SWIM_DEAD)
			p->active = 0;
		else if (now >= p->deadline)
			probe_fail(s, now, t);
		else if (!p->indirect && now >= p->timeout_at)
			probe_indirect(s, t);
	}
	if (!p->active && now >= s->next_probe)
		probe_start(s, now);
}

/* ---- relays: pings we send for another member's ping-req ---- */

static void relay_add(hb_swim_t *s, int64_t now, uint32_t seq, uint32_t orig_seq, hb_swim_str_t to)
{
	if (s->nrelays == s->cap_relays) {
		uint32_t cap = s->cap_relays ? s->cap_relays * 2 : 8;
		relay_t *v = realloc(s->relays, cap * sizeof *v);
		if (!v)
			return;
		s->relays = v;
		s->cap_relays = cap;
	}
	relay_t *r = &s->relays[s->nrelays++];
	r->seq = seq;
	r->orig_seq = orig_seq;
	/* Lifeguard: nack at 80% of the timeout, so the requester hears from us before its own
	 * timeout and knows we are alive and able to talk */
	r->nack_at = now + s->c.probe_timeout_ms * 8 / 10;
	r->expire = now + s->c.probe_timeout_ms;
	r->nacked = 0;
	copy_str(r->to, sizeof r->to, to.p, to.n);
}

static void relay_tick(hb_swim_t *s, int64_t now)
{
	uint32_t keep = 0;
	for (uint32_t i = 0; i < s->nrelays; i++) {
		relay_t *r = &s->relays[i];
		if (!r->nacked && now >= r->nack_at) {
			r->nacked = 1;
			send_msg(s, r->to, HB_SWIM_MSG_NACK, r->orig_seq, NULL, NULL, 0);
		}
		if (now < r->expire)
			s->relays[keep++] = *r;
	}
	s->nrelays = keep;
}

/* ---- input ---- */

static void on_ack(hb_swim_t *s, const hb_swim_msg_t *msg)
{
	probe_t *p = &s->probe;
	if (p->active && msg->seq == p->seq) {
		p->active = 0;
		health(s, -1);
		if (str_is(msg->from_name, p->target))
			s->stats.probe_acks++;
		else
			s->stats.indirect_acks++;
		return;
	}
	for (uint32_t i = 0; i < s->nrelays; i++) {
		relay_t *r = &s->relays[i];
		if (r->seq == msg->seq) {
			send_msg(s, r->to, HB_SWIM_MSG_ACK, r->orig_seq, NULL, NULL, 0);
			s->relays[i] = s->relays[--s->nrelays];
			return;
		}
	}
}

static void dispatch(hb_swim_t *s, int64_t now, const hb_swim_msg_t *msg)
{
	char to[HB_SWIM_MAX_ADDR + 1];
	copy_str(to, sizeof to, msg->from_addr.p, msg->from_addr.n);
	switch (msg->type) {
	case HB_SWIM_MSG_PING:
		/* a ping meant for another node that used to live at our address gets no ack */
		if (!msg->target_name.n || str_is(msg->target_name, s->name))
			send_msg(s, to, HB_SWIM_MSG_ACK, msg->seq, NULL, NULL, 1);
		break;
	case HB_SWIM_MSG_ACK:
		on_ack(s, msg);
		break;
	case HB_SWIM_MSG_PING_REQ: {
		if (!msg->target_addr.n)
			break;
		char taddr[HB_SWIM_MAX_ADDR + 1];
		copy_str(taddr, sizeof taddr, msg->target_addr.p, msg->target_addr.n);
		uint32_t seq = ++s->seq;
		relay_add(s, now, seq, msg->seq, msg->from_addr);
		member_t *t = find(s, msg->target_name.p, msg->target_name.n);
		send_msg(s, taddr, HB_SWIM_MSG_PING, seq, t, NULL, 0);
		break;
	}
	case HB_SWIM_MSG_NACK:
		if (s->probe.active && msg->seq == s->probe.seq) {
			s->probe.nacks++;
			s->stats.nacks_received++;
		}
		break;
	case HB_SWIM_MSG_PUSH_PULL:
		send_state(s, to, HB_SWIM_MSG_PUSH_PULL_REPLY);
		break;
	case HB_SWIM_MSG_GOSSIP:
	case HB_SWIM_MSG_PUSH_PULL_REPLY:
		break;
	}
}

int hb_swim_input(hb_swim_t *s, int64_t now, const void *data, size_t len)
{
	hb_swim_msg_t msg;
	int rc = hb_swim_msg_decode(data, len, &msg);
	if (rc < 0) {
		s->stats.bad_messages++;
		return rc;
	}
	if (str_is(msg.from_name, s->name)) { /* our own echo, or a node using our name */
		free(msg.items);
		return 0;
	}
	int sync = msg.type == HB_SWIM_MSG_PUSH_PULL || msg.type == HB_SWIM_MSG_PUSH_PULL_REPLY;
	int stale = 0;
	for (uint32_t i = 0; i < msg.nitems; i++) {
		const hb_swim_item_t *it = &msg.items[i];
		stale |=
			it->state != HB_SWIM_ALIVE && it->inc < s->inc && str_is(it->name, s->name);
		apply_item(s, now, it, sync);
	}
	dispatch(s, now, &msg);
	/* The sender still gossips an accusation we already refuted: the refutation missed it, so
	 * tell it directly (a ping's ack already carries our entry; a sync reply our whole state).
	 */
	if (stale && !s->leaving && msg.type != HB_SWIM_MSG_PING && !sync) {
		char to[HB_SWIM_MAX_ADDR + 1];
		copy_str(to, sizeof to, msg.from_addr.p, msg.from_addr.n);
		send_msg(s, to, HB_SWIM_MSG_GOSSIP, 0, NULL, NULL, 1);
	}
	free(msg.items);
	return 0;
}

/* ---- timers ---- */

static void suspicion_tick(hb_swim_t *s, int64_t now)
{
	for (uint32_t i = 0; i < s->nm; i++) {
		member_t *m = s->m[i];
		if (m->state != HB_SWIM_SUSPECT || now < m->susp_start + suspicion_timeout(s, m))
			continue;
		hb_swim_item_t it = {.state = HB_SWIM_DEAD,
				     .inc = m->inc,
				     .name = zstr(m->name),
				     .addr = zstr(m->addr),
				     .from = zstr(s->name)};
		on_dead(s, now, &it, HB_SWIM_DEAD);
	}
}

/* Dead members still get gossip for a while, so one declared dead wrongly hears it and refutes. */
static int64_t gossip_to_dead_ms(const hb_swim_t *s)
{
	return (int64_t)s->c.probe_interval_ms * 30;
}

static void gossip_tick(hb_swim_t *s, int64_t now)
{
	s->next_gossip = now + s->c.gossip_interval_ms;
	if (!s->nbc)
		return;
	member_t *to[16];
	uint32_t k = s->c.gossip_nodes < 16 ? s->c.gossip_nodes : 16, n = 0;
	uint32_t seen = 0;
	for (uint32_t i = 0; i < s->nm; i++) {
		member_t *x = s->m[i];
		if (x->state == HB_SWIM_LEFT ||
		    (x->state == HB_SWIM_DEAD && now - x->since > gossip_to_dead_ms(s)))
			continue;
		seen++;
		if (n < k)
			to[n++] = x;
		else if (rnd(s) % seen < k)
			to[rnd(s) % k] = x;
	}
	for (uint32_t i = 0; i < n && s->nbc; i++)
		send_msg(s, to[i]->addr, HB_SWIM_MSG_GOSSIP, 0, NULL, NULL, 0);
}

static void sync_tick(hb_swim_t *s, int64_t now)
{
	member_t *m[1];
	if (now >= s->next_push_pull) {
		s->next_push_pull = now + s->c.push_pull_interval_ms;
		if (pick(s, 1, HB_SWIM_ALIVE, NULL, m))
			send_state(s, m[0]->addr, HB_SWIM_MSG_PUSH_PULL);
	}
	if (now >= s->next_reconnect) {
		/* Partition healing: sync with one random dead member; if it is up, both sides see
		 * themselves declared dead in the other's list and refute. */
		s->next_reconnect = now + s->c.reconnect_interval_ms;
		member_t *dead = NULL;
		uint32_t seen = 0;
		for (uint32_t i = 0; i < s->nm; i++)
			if (s->m[i]->state == HB_SWIM_DEAD && rnd(s) % ++seen == 0)
				dead = s->m[i];
		if (dead)
			send_state(s, dead->addr, HB_SWIM_MSG_PUSH_PULL);
	}
}

static void reap_tick(hb_swim_t *s, int64_t now)
{
	s->next_reap = now + REAP_EVERY_MS;
	uint32_t keep = 0;
	for (uint32_t i = 0; i < s->nm; i++) {
		member_t *m = s->m[i];
		if (m->state >= HB_SWIM_DEAD && now - m->since > (int64_t)s->c.reap_ms)
			free(m);
		else
			s->m[keep++] = m;
	}
	s->nm = keep;
	if (s->probe_idx > s->nm)
		s->probe_idx = s->nm;
}

void hb_swim_tick(hb_swim_t *s, int64_t now)
{
	if (s->leaving)
		return;
	relay_tick(s, now);
	probe_tick(s, now);
	suspicion_tick(s, now);
	if (now >= s->next_gossip)
		gossip_tick(s, now);
	sync_tick(s, now);
	if (now >= s->next_reap)
		reap_tick(s, now);
}

static int64_t min64(int64_t a, int64_t b)
{
	return a < b ? a : b;
}

int64_t hb_swim_next_deadline(const hb_swim_t *s)
{
	if (s->leaving)
		return INT64_MAX;
	int64_t t = min64(s->next_gossip, min64(s->next_push_pull, s->next_reconnect));
	t = min64(t, min64(s->next_reap, s->next_probe));
	if (s->probe.active)
		t = min64(t, s->probe.indirect ? s->probe.deadline : s->probe.timeout_at);
	for (uint32_t i = 0; i < s->nrelays; i++)
		t = min64(t, s->relays[i].nacked ? s->relays[i].expire : s->relays[i].nack_at);
	for (uint32_t i = 0; i < s->nm; i++)
		if (s->m[i]->state == HB_SWIM_SUSPECT)
			t = min64(t, s->m[i]->susp_start + suspicion_timeout(s, s->m[i]));
	return t;
}

/* ---- lifecycle ---- */

void hb_swim_config_defaults(hb_swim_config_t *c)
{
#define DEF(f, v)                                                                                  \
	if (!c->f)                                                                                 \
	c->f = (v)
	DEF(probe_interval_ms, 1000);
	DEF(probe_timeout_ms, 500);
	DEF(indirect_checks, 3);
	DEF(suspicion_mult, 4);
	DEF(suspicion_max_mult, 6);
	DEF(retransmit_mult, 4);
	DEF(awareness_max, 8);
	DEF(gossip_interval_ms, 200);
	DEF(gossip_nodes, 3);
	DEF(push_pull_interval_ms, 30000);
	DEF(reconnect_interval_ms, 10000);
	DEF(reap_ms, 3600000);
	DEF(max_packet, 1400);
#undef DEF
}

hb_swim_t *hb_swim_new(const hb_swim_config_t *c, int64_t now)
{
	size_t nlen = c->name ? strlen(c->name) : 0, alen = c->addr ? strlen(c->addr) : 0;
	if (!nlen || nlen > HB_SWIM_MAX_NAME || !alen || alen > HB_SWIM_MAX_ADDR)
		return NULL;
	hb_swim_t *s = calloc(1, sizeof *s);
	if (!s)
		return NULL;
	s->c = *c;
	hb_swim_config_defaults(&s->c);
	if (s->c.max_packet > 1500)
		s->c.max_packet = 1500;
	memcpy(s->name, c->name, nlen);
	memcpy(s->addr, c->addr, alen);
	s->c.name = s->name;
	s->c.addr = s->addr;
	s->name_hash = hash_str(s->name, nlen);
	s->inc = c->incarnation;
	s->rng = c->seed ? c->seed : 0x9e3779b97f4a7c15ull;
	s->next_probe = now + (int64_t)(rnd(s) % s->c.probe_interval_ms); /* desynchronise nodes */
	s->next_gossip = now + s->c.gossip_interval_ms;
	s->next_push_pull = now + s->c.push_pull_interval_ms;
	s->next_reconnect = now + s->c.reconnect_interval_ms;
	s->next_reap = now + REAP_EVERY_MS;
	return s;
}

void hb_swim_free(hb_swim_t *s)
{
	if (!s)
		return;
	for (uint32_t i = 0; i < s->nm; i++)
		free(s->m[i]);
	free(s->m);
	for (uint32_t i = 0; i < s->nbc; i++)
		free(s->bc[i]);
	free(s->bc);
	free(s->relays);
	fifo_free(&s->out);
	fifo_free(&s->events);
	free(s);
}

int hb_swim_join(hb_swim_t *s, int64_t now, const char *addr)
{
	if (!addr || !*addr || strlen(addr) > HB_SWIM_MAX_ADDR)
		return -EINVAL;
	if (!strcmp(addr, s->addr)) /* a seed list (a DNS name) may include ourselves */
		return 0;
	uint32_t before = s->out.len - s->out.head;
	send_state(s, addr, HB_SWIM_MSG_PUSH_PULL);
	/* Nodes that join together may each miss the others' news (gossip is retransmitted only
	 * ~log(n) times), so sync once more soon with a random member instead of in 30 s. */
	int64_t soon = now + 2 * (int64_t)s->c.probe_interval_ms +
		       (int64_t)(rnd(s) % (s->c.probe_interval_ms + 1));
	if (soon < s->next_push_pull)
		s->next_push_pull = soon;
	return s->out.len - s->out.head > before ? 0 : -ENOMEM;
}

int hb_swim_leave(hb_swim_t *s, int64_t now)
{
	(void)now;
	if (s->leaving)
		return 0;
	s->leaving = 1;
	s->probe.active = 0;
	bcast_set(s, HB_SWIM_LEFT, s->name, s->addr, s->inc, s->name);
	/* Tell every live member directly rather than waiting for gossip to carry it. */
	for (uint32_t i = 0; i < s->nm; i++) {
		member_t *m = s->m[i];
		if (m->state > HB_SWIM_SUSPECT)
			continue;
		hb_swim_msg_t msg = {.type = HB_SWIM_MSG_GOSSIP,
				     .from_name = zstr(s->name),
				     .from_addr = zstr(s->addr)};
		hb_swim_item_t it = {.state = HB_SWIM_LEFT,
				     .inc = s->inc,
				     .name = zstr(s->name),
				     .addr = zstr(s->addr),
				     .from = zstr(s->name)};
		uint8_t stack[1024];
		hb_cbuf_t b;
		hb_cbuf_init(&b, stack, sizeof stack);
		hb_swim_msg_begin(&b, &msg, 1);
		hb_swim_msg_put_item(&b, &it);
		queue_out(s, m->addr, &b, 0);
		hb_cbuf_free(&b);
	}
	return 0;
}

/* ---- queries ---- */

hb_swim_out_t *hb_swim_pop_out(hb_swim_t *s)
{
	return fifo_pop(&s->out);
}

int hb_swim_pop_event(hb_swim_t *s, hb_swim_event_t *ev)
{
	hb_swim_event_t *e = fifo_pop(&s->events);
	if (!e)
		return 0;
	*ev = *e;
	free(e);
	return 1;
}

void hb_swim_members(const hb_swim_t *s, hb_swim_member_cb cb, void *ud)
{
	for (uint32_t i = 0; i < s->nm; i++)
		cb(s->m[i]->name, s->m[i]->addr, s->m[i]->state, s->m[i]->inc, ud);
}

uint32_t hb_swim_count(const hb_swim_t *s, hb_swim_state_t st)
{
	uint32_t n = 0;
	for (uint32_t i = 0; i < s->nm; i++)
		n += s->m[i]->state == st;
	return n;
}

int hb_swim_member(const hb_swim_t *s, const char *name, hb_swim_state_t *st, uint64_t *inc)
{
	const member_t *m = find(s, name, strlen(name));
	if (!m)
		return -ENOENT;
	*st = m->state;
	*inc = m->inc;
	return 0;
}

uint64_t hb_swim_incarnation(const hb_swim_t *s)
{
	return s->inc;
}

uint32_t hb_swim_health(const hb_swim_t *s)
{
	return s->awareness;
}

const hb_swim_stats_t *hb_swim_stats(const hb_swim_t *s)
{
	return &s->stats;
}
