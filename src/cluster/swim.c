/* swim.c: SWIM + Lifeguard membership (see swim.h): the member table, failure detection
 * (probes, indirect probes and their relays, suspicion timeouts, local health), input dispatch,
 * the timers, lifecycle and queries. Dissemination (the broadcast queue, outgoing messages, the
 * merge rules, push-pull, join/leave) is swim_gossip.c's; swim_priv.h says who owns what. */
#include "cluster/swim.h"
#include "cluster/swim_priv.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cluster/swim_msg.h"

#define REAP_EVERY_MS 1000

/* ---- the member table ---- */

uint32_t hb_swim_live_count(const hb_swim_t *s)
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

void hb_swim_health_add(hb_swim_t *s, int delta)
{
	int64_t a = (int64_t)s->awareness + delta;
	if (a < 0)
		a = 0;
	if (a > (int64_t)s->c.awareness_max - 1)
		a = s->c.awareness_max - 1;
	s->awareness = (uint32_t)a;
}

member_t *hb_swim_find(const hb_swim_t *s, const char *p, size_t n)
{
	for (uint32_t i = 0; i < s->nm; i++)
		if (strlen(s->m[i]->name) == n && !memcmp(s->m[i]->name, p, n))
			return s->m[i];
	return NULL;
}

uint32_t hb_swim_pick(hb_swim_t *s, uint32_t k, hb_swim_state_t max_state, const member_t *skip,
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

/* ---- suspicion ---- */

void hb_swim_suspicion_start(hb_swim_t *s, int64_t now, member_t *m, uint64_t from_hash)
{
	uint32_t n = hb_swim_live_count(s);
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
int hb_swim_suspicion_confirm(member_t *m, uint64_t from_hash)
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
int64_t hb_swim_suspicion_min(const hb_swim_t *s)
{
	double n = hb_swim_live_count(s);
	double scale = log10(n > 1 ? n : 1);
	return (int64_t)(s->c.suspicion_mult * (scale > 1 ? scale : 1) * s->c.probe_interval_ms);
}

static int64_t suspicion_timeout(const hb_swim_t *s, const member_t *m)
{
	double min = (double)hb_swim_suspicion_min(s);
	double max = min * s->c.suspicion_max_mult;
	if (m->susp_k < 1)
		return (int64_t)min;
	double frac = log(m->susp_n + 1.0) / log(m->susp_k + 1.0);
	double t = floor(max - frac * (max - min));
	return (int64_t)(t < min ? min : t);
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
	hb_swim_send_msg(s, m->addr, HB_SWIM_MSG_PING, p->seq, m, NULL, 0);
}

static void probe_indirect(hb_swim_t *s, member_t *target)
{
	member_t *via[16];
	uint32_t k = s->c.indirect_checks < 16 ? s->c.indirect_checks : 16;
	uint32_t n = hb_swim_pick(s, k, HB_SWIM_ALIVE, target, via);
	s->probe.indirect = 1;
	s->probe.expected_nacks = n;
	s->stats.indirect_probes += n;
	for (uint32_t i = 0; i < n; i++)
		hb_swim_send_msg(s, via[i]->addr, HB_SWIM_MSG_PING_REQ, s->probe.seq, target,
				 target->addr, 0);
}

/* No ack by the end of the interval: suspect the target, and blame ourselves for the nacks
 * that did not come back either (Lifeguard: a node that hears nothing is likely the slow one). */
static void probe_fail(hb_swim_t *s, int64_t now, member_t *target)
{
	probe_t *p = &s->probe;
	p->active = 0;
	if (p->expected_nacks > 0) {
		if (p->nacks < p->expected_nacks)
			hb_swim_health_add(s, (int)(p->expected_nacks - p->nacks));
	} else {
		hb_swim_health_add(s, 1);
	}
	hb_swim_item_t it = {.state = HB_SWIM_SUSPECT,
			     .inc = target->inc,
			     .name = zstr(target->name),
			     .addr = zstr(target->addr),
			     .from = zstr(s->name)};
	hb_swim_on_suspect(s, now, &it);
}

static void probe_tick(hb_swim_t *s, int64_t now)
{
	probe_t *p = &s->probe;
	if (p->active) {
		member_t *t = hb_swim_find(s, p->target, strlen(p->target));
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
			hb_swim_send_msg(s, r->to, HB_SWIM_MSG_NACK, r->orig_seq, NULL, NULL, 0);
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
		hb_swim_health_add(s, -1);
		if (str_is(msg->from_name, p->target))
			s->stats.probe_acks++;
		else
			s->stats.indirect_acks++;
		return;
	}
	for (uint32_t i = 0; i < s->nrelays; i++) {
		relay_t *r = &s->relays[i];
		if (r->seq == msg->seq) {
			hb_swim_send_msg(s, r->to, HB_SWIM_MSG_ACK, r->orig_seq, NULL, NULL, 0);
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
			hb_swim_send_msg(s, to, HB_SWIM_MSG_ACK, msg->seq, NULL, NULL, 1);
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
		member_t *t = hb_swim_find(s, msg->target_name.p, msg->target_name.n);
		hb_swim_send_msg(s, taddr, HB_SWIM_MSG_PING, seq, t, NULL, 0);
		break;
	}
	case HB_SWIM_MSG_NACK:
		if (s->probe.active && msg->seq == s->probe.seq) {
			s->probe.nacks++;
			s->stats.nacks_received++;
		}
		break;
	case HB_SWIM_MSG_PUSH_PULL:
		hb_swim_send_state(s, to, HB_SWIM_MSG_PUSH_PULL_REPLY);
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
	member_t *sender = hb_swim_find(s, msg.from_name.p, msg.from_name.n);
	if (sender) /* direct evidence that it lives (hb_swim_apply_item weighs news against it) */
		sender->heard = now;
	for (uint32_t i = 0; i < msg.nitems; i++) {
		const hb_swim_item_t *it = &msg.items[i];
		stale |=
			it->state != HB_SWIM_ALIVE && it->inc < s->inc && str_is(it->name, s->name);
		hb_swim_apply_item(s, now, it, sync);
	}
	dispatch(s, now, &msg);
	/* The sender still gossips an accusation we already refuted: the refutation missed it, so
	 * tell it directly (a ping's ack already carries our entry; a sync reply our whole state).
	 */
	if (stale && !s->leaving && msg.type != HB_SWIM_MSG_PING && !sync) {
		char to[HB_SWIM_MAX_ADDR + 1];
		copy_str(to, sizeof to, msg.from_addr.p, msg.from_addr.n);
		hb_swim_send_msg(s, to, HB_SWIM_MSG_GOSSIP, 0, NULL, NULL, 1);
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
		hb_swim_on_dead(s, now, &it, HB_SWIM_DEAD);
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
		hb_swim_gossip_tick(s, now);
	hb_swim_sync_tick(s, now);
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
	free(s->relays);
	hb_swim_gossip_free(s);
	free(s);
}

/* ---- queries ---- */

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
	const member_t *m = hb_swim_find(s, name, strlen(name));
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
