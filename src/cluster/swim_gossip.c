/* swim_gossip.c: SWIM's dissemination (see swim_priv.h): the broadcast queue, the messages
 * we send (news piggybacked on each, least sent first), the merge rules, which follow
 * memberlist's aliveNode/suspectNode/deadNode: alive needs a strictly higher incarnation,
 * suspect/dead/left an equal or higher one; news about ourselves is refuted. Also the gossip and
 * push-pull timers, join and leave, and the FIFOs of messages and events the caller pops. */
#include "cluster/swim.h"
#include "cluster/swim_priv.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cluster/swim_msg.h"

/* ---- FIFOs: messages to send, events ---- */

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

/* A membership event for the caller (hb_swim_pop_event). */
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
	return s->c.retransmit_mult * (uint32_t)ceil(log10((double)hb_swim_live_count(s) + 1));
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
void hb_swim_send_msg(hb_swim_t *s, const char *addr, int type, uint32_t seq, const member_t *buddy,
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
void hb_swim_send_state(hb_swim_t *s, const char *addr, int type)
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

/* ---- applying news (memberlist's rules) ---- */

/* Someone says we are suspect, dead or older than we are: take a higher incarnation, gossip it,
 * and tell the accuser directly (its timer runs first; gossip may miss it for a while). */
static void refute(hb_swim_t *s, uint64_t accused_inc, hb_swim_str_t accuser)
{
	if (s->leaving)
		return;
	if (accused_inc >= s->inc)
		s->inc = accused_inc + 1;
	bcast_set(s, HB_SWIM_ALIVE, s->name, s->addr, s->inc, s->name);
	hb_swim_health_add(s, 1);
	s->stats.refutes++;
	const member_t *a = accuser.n ? hb_swim_find(s, accuser.p, accuser.n) : NULL;
	if (a && a->state <= HB_SWIM_SUSPECT)
		hb_swim_send_msg(s, a->addr, HB_SWIM_MSG_GOSSIP, 0, NULL, NULL, 1);
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
	member_t *m = hb_swim_find(s, it->name.p, it->name.n);
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

void hb_swim_on_suspect(hb_swim_t *s, int64_t now, const hb_swim_item_t *it)
{
	if (str_is(it->name, s->name)) {
		if (it->inc >= s->inc)
			refute(s, it->inc, it->from);
		return;
	}
	member_t *m = hb_swim_find(s, it->name.p, it->name.n);
	if (!m || it->inc < m->inc || m->state >= HB_SWIM_DEAD)
		return;
	/* The accuser's name travels unchanged with the suspicion: confirmations count
	 * independent accusers, not the members that merely passed the news on. */
	uint64_t from = hash_str(it->from.p, it->from.n);
	char accuser[HB_SWIM_MAX_NAME + 1];
	copy_str(accuser, sizeof accuser, it->from.p, it->from.n);
	if (m->state == HB_SWIM_SUSPECT) {
		if (hb_swim_suspicion_confirm(m, from))
			bcast_set(s, HB_SWIM_SUSPECT, m->name, m->addr, m->inc, accuser);
		return;
	}
	m->inc = it->inc;
	m->state = HB_SWIM_SUSPECT;
	m->since = now;
	hb_swim_suspicion_start(s, now, m, from);
	s->stats.suspects++;
	emit(s, HB_SWIM_EV_SUSPECT, m);
	bcast_set(s, HB_SWIM_SUSPECT, m->name, m->addr, m->inc, accuser);
}

void hb_swim_on_dead(hb_swim_t *s, int64_t now, const hb_swim_item_t *it, hb_swim_state_t st)
{
	if (str_is(it->name, s->name)) {
		if (it->inc >= s->inc && !s->leaving)
			refute(s, it->inc, it->from);
		return;
	}
	member_t *m = hb_swim_find(s, it->name.p, it->name.n);
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

/* A third party's "dead" that our own ears contradict: we heard from the member itself more
 * recently than the accuser can have started suspecting it (its suspicion lasted at least the
 * minimum timeout). Typically the news of a node that was cut off and declared everyone else
 * dead, arriving once it is healed. */
static int heard_since_accused(hb_swim_t *s, int64_t now, const hb_swim_item_t *it)
{
	const member_t *m = hb_swim_find(s, it->name.p, it->name.n);
	return m && m->state < HB_SWIM_DEAD && m->heard &&
	       now - m->heard < hb_swim_suspicion_min(s);
}

/* gossip: state as stated, except that a "dead" contradicted by what we heard ourselves
 * (heard_since_accused) only makes us suspect; push-pull: a remote "dead" only makes us suspect
 * (memberlist's mergeState). Either way one stale view cannot kill a live node: the suspicion
 * reaches it and it refutes, or it runs out and we declare it dead ourselves. */
void hb_swim_apply_item(hb_swim_t *s, int64_t now, const hb_swim_item_t *it, int from_sync)
{
	switch ((hb_swim_state_t)it->state) {
	case HB_SWIM_ALIVE:
		on_alive(s, now, it);
		break;
	case HB_SWIM_SUSPECT:
		hb_swim_on_suspect(s, now, it);
		break;
	case HB_SWIM_DEAD:
		if (from_sync || heard_since_accused(s, now, it))
			hb_swim_on_suspect(s, now, it);
		else
			hb_swim_on_dead(s, now, it, HB_SWIM_DEAD);
		break;
	case HB_SWIM_LEFT:
		hb_swim_on_dead(s, now, it, HB_SWIM_LEFT);
		break;
	}
}

/* ---- timers ---- */

/* Dead members still get gossip for a while, so one declared dead wrongly hears it and refutes. */
static int64_t gossip_to_dead_ms(const hb_swim_t *s)
{
	return (int64_t)s->c.probe_interval_ms * 30;
}

void hb_swim_gossip_tick(hb_swim_t *s, int64_t now)
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
		hb_swim_send_msg(s, to[i]->addr, HB_SWIM_MSG_GOSSIP, 0, NULL, NULL, 0);
}

void hb_swim_sync_tick(hb_swim_t *s, int64_t now)
{
	member_t *m[1];
	if (now >= s->next_push_pull) {
		s->next_push_pull = now + s->c.push_pull_interval_ms;
		if (hb_swim_pick(s, 1, HB_SWIM_ALIVE, NULL, m))
			hb_swim_send_state(s, m[0]->addr, HB_SWIM_MSG_PUSH_PULL);
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
			hb_swim_send_state(s, dead->addr, HB_SWIM_MSG_PUSH_PULL);
	}
}

/* ---- join, leave ---- */

int hb_swim_join(hb_swim_t *s, int64_t now, const char *addr)
{
	if (!addr || !*addr || strlen(addr) > HB_SWIM_MAX_ADDR)
		return -EINVAL;
	if (!strcmp(addr, s->addr)) /* a seed list (a DNS name) may include ourselves */
		return 0;
	uint32_t before = s->out.len - s->out.head;
	hb_swim_send_state(s, addr, HB_SWIM_MSG_PUSH_PULL);
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

void hb_swim_gossip_free(hb_swim_t *s)
{
	for (uint32_t i = 0; i < s->nbc; i++)
		free(s->bc[i]);
	free(s->bc);
	fifo_free(&s->out);
	fifo_free(&s->events);
}

/* ---- what the caller pops ---- */

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
