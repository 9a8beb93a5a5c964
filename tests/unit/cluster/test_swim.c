/* test_swim.c: the SWIM state machine on a simulated network: N nodes in one process, virtual
 * time in 5 ms steps, seeded loss and delay, partitions (one-way cuts), paused nodes (SIGSTOP:
 * packets wait, no timers run) and crashed ones (kill -9: everything to them is lost). */
#include "cluster/swim.h"
#include "cluster/swim_msg.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAXN 16
#define STEP 5

typedef struct pkt {
	int64_t at;
	int to;
	hb_swim_out_t *o;
} pkt_t;

typedef struct net {
	int n;
	hb_swim_t *node[MAXN];
	char name[MAXN][32], addr[MAXN][32];
	int up[MAXN], paused[MAXN];
	int cut[MAXN][MAXN]; /* packets from i to j are lost */
	double loss;	     /* of unreliable packets */
	int delay_min, delay_max;
	uint64_t rng, seed;
	pkt_t *q;
	size_t nq, capq;
	int64_t now;
	hb_swim_config_t cfg;
	/* what each observer saw about each subject */
	int dead[MAXN][MAXN], suspect[MAXN][MAXN], left[MAXN][MAXN], joined[MAXN][MAXN];
	int64_t dead_at[MAXN][MAXN], left_at[MAXN][MAXN];
	uint64_t sent, lost;
} net_t;

static uint64_t rnd(net_t *w)
{
	uint64_t z = (w->rng += 0x9e3779b97f4a7c15ull);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

static int index_of(const net_t *w, const char *s)
{
	for (int i = 0; i < w->n; i++)
		if (!strcmp(w->name[i], s) || !strcmp(w->addr[i], s))
			return i;
	return -1;
}

static void start_node(net_t *w, int i, uint64_t inc)
{
	hb_swim_config_t c = w->cfg;
	c.name = w->name[i];
	c.addr = w->addr[i];
	c.incarnation = inc;
	c.seed = w->seed * 1000 + (uint64_t)i + 1 + inc * 77;
	w->node[i] = hb_swim_new(&c, w->now);
	cr_assert_not_null(w->node[i]);
	w->up[i] = 1;
	w->paused[i] = 0;
}

static net_t *net_new(int n, uint64_t seed)
{
	net_t *w = calloc(1, sizeof *w);
	w->n = n;
	w->seed = seed;
	w->rng = seed;
	w->delay_min = 1;
	w->delay_max = 5;
	w->now = 1000000; /* any epoch */
	for (int i = 0; i < n; i++) {
		snprintf(w->name[i], sizeof w->name[i], "node%d@sim", i);
		snprintf(w->addr[i], sizeof w->addr[i], "10.0.0.%d:7946", i + 1);
	}
	return w;
}

static void net_start(net_t *w)
{
	for (int i = 0; i < w->n; i++)
		start_node(w, i, 0);
	for (int i = 1; i < w->n; i++)
		cr_assert_eq(hb_swim_join(w->node[i], w->now, w->addr[0]), 0);
}

static void net_free(net_t *w)
{
	for (size_t i = 0; i < w->nq; i++)
		free(w->q[i].o);
	free(w->q);
	for (int i = 0; i < w->n; i++)
		hb_swim_free(w->node[i]);
	free(w);
}

static void drain(net_t *w, int from)
{
	hb_swim_out_t *o;
	while ((o = hb_swim_pop_out(w->node[from]))) {
		int to = index_of(w, o->addr);
		w->sent++;
		if (to < 0 || w->cut[from][to] || !w->up[to] ||
		    (!o->reliable && (double)(rnd(w) % 1000000) < w->loss * 1e6)) {
			w->lost++;
			free(o);
			continue;
		}
		if (w->nq == w->capq) {
			w->capq = w->capq ? w->capq * 2 : 256;
			w->q = realloc(w->q, w->capq * sizeof *w->q);
		}
		int d = w->delay_min + (int)(rnd(w) % (uint64_t)(w->delay_max - w->delay_min + 1));
		w->q[w->nq++] = (pkt_t){w->now + d, to, o};
	}
	hb_swim_event_t ev;
	while (hb_swim_pop_event(w->node[from], &ev)) {
		int s = index_of(w, ev.name);
		cr_assert_geq(s, 0);
		switch (ev.type) {
		case HB_SWIM_EV_DEAD:
			w->dead[from][s]++;
			w->dead_at[from][s] = w->now;
			break;
		case HB_SWIM_EV_SUSPECT:
			w->suspect[from][s]++;
			break;
		case HB_SWIM_EV_LEAVE:
			w->left[from][s]++;
			w->left_at[from][s] = w->now;
			break;
		case HB_SWIM_EV_JOIN:
			w->joined[from][s]++;
			break;
		case HB_SWIM_EV_ALIVE:
			break;
		}
	}
}

static void step(net_t *w)
{
	w->now += STEP;
	size_t keep = 0;
	for (size_t i = 0; i < w->nq; i++) {
		pkt_t *p = &w->q[i];
		if (p->at > w->now || w->paused[p->to]) {
			w->q[keep++] = *p;
			continue;
		}
		if (w->up[p->to])
			cr_assert_eq(hb_swim_input(w->node[p->to], w->now, p->o->data, p->o->len),
				     0);
		free(p->o);
	}
	w->nq = keep;
	for (int i = 0; i < w->n; i++) {
		if (!w->up[i] || w->paused[i])
			continue;
		hb_swim_tick(w->node[i], w->now);
		cr_assert_gt(hb_swim_next_deadline(w->node[i]), w->now - STEP);
		drain(w, i);
	}
}

static void run_ms(net_t *w, int64_t ms)
{
	int64_t end = w->now + ms;
	while (w->now < end)
		step(w);
}

static void crash(net_t *w, int i)
{
	w->up[i] = 0;
	hb_swim_free(w->node[i]);
	w->node[i] = NULL;
}

static int alive_everywhere(net_t *w, int expect)
{
	for (int i = 0; i < w->n; i++)
		if (w->up[i] && (int)hb_swim_count(w->node[i], HB_SWIM_ALIVE) != expect)
			return 0;
	return 1;
}

/* Runs until cond holds (checked every step) or limit ms pass; returns the ms it took, or -1. */
#define RUN_UNTIL(w, limit, cond)                                                                  \
	({                                                                                         \
		int64_t t0_ = (w)->now, r_ = -1;                                                   \
		while ((w)->now - t0_ <= (limit)) {                                                \
			if (cond) {                                                                \
				r_ = (w)->now - t0_;                                               \
				break;                                                             \
			}                                                                          \
			step(w);                                                                   \
		}                                                                                  \
		r_;                                                                                \
	})

static int total(int a[MAXN][MAXN], int n)
{
	int t = 0;
	for (int i = 0; i < n; i++)
		for (int j = 0; j < n; j++)
			t += a[i][j];
	return t;
}

static int dead_on_all(net_t *w, int s)
{
	for (int i = 0; i < w->n; i++) {
		hb_swim_state_t st;
		uint64_t inc;
		if (i == s || !w->up[i])
			continue;
		if (hb_swim_member(w->node[i], w->name[s], &st, &inc) < 0 || st != HB_SWIM_DEAD)
			return 0;
	}
	return 1;
}

Test(swim, join_via_seed_converges)
{
	net_t *w = net_new(16, 1);
	net_start(w);
	int64_t t = RUN_UNTIL(w, 20000, alive_everywhere(w, 15));
	cr_assert_geq(t, 0, "16 nodes did not converge in 20 s");
	cr_log_info("16 nodes converged in %lld ms", (long long)t);
	for (int i = 0; i < 16; i++)
		for (int j = 0; j < 16; j++)
			cr_assert_eq(w->joined[i][j], i != j, "join events %d about %d", i, j);
	run_ms(w, 60000);
	cr_assert_eq(total(w->suspect, 16), 0);
	cr_assert_eq(total(w->dead, 16), 0);
	net_free(w);
}

/* kill -9 of one node: every other node declares it dead, within a bound, for several seeds;
 * independent suspicions confirm each other so the timeout is far below the maximum. */
Test(swim, crashed_node_detected_within_bound)
{
	int64_t times[10], worst = 0;
	for (uint64_t seed = 1; seed <= 10; seed++) {
		net_t *w = net_new(5, seed);
		net_start(w);
		cr_assert_geq(RUN_UNTIL(w, 10000, alive_everywhere(w, 4)), 0);
		run_ms(w, 5000);
		crash(w, 3);
		int64_t t = RUN_UNTIL(w, 60000, dead_on_all(w, 3));
		cr_assert_geq(t, 0, "seed %llu: not dead everywhere after 60 s", seed);
		times[seed - 1] = t;
		worst = t > worst ? t : worst;
		/* nobody else was hurt */
		for (int i = 0; i < 5; i++)
			for (int j = 0; j < 5; j++)
				cr_assert_eq(w->dead[i][j], j == 3 && i != 3);
		net_free(w);
	}
	/* min suspicion 4 s (mult 4 x 1 s, n = 5), max 24 s; probes + gossip take a few s more */
	cr_log_info("detection ms: %lld %lld %lld %lld %lld %lld %lld %lld %lld %lld",
		    (long long)times[0], (long long)times[1], (long long)times[2],
		    (long long)times[3], (long long)times[4], (long long)times[5],
		    (long long)times[6], (long long)times[7], (long long)times[8],
		    (long long)times[9]);
	cr_assert_leq(worst, 12000, "worst detection %lld ms", (long long)worst);
}

/* SIGSTOP for 2.5 s: others suspect it, it refutes when it wakes up; nobody is declared dead. */
Test(swim, paused_node_refutes_suspicion)
{
	int suspects = 0;
	for (uint64_t seed = 1; seed <= 5; seed++) {
		net_t *w = net_new(5, seed);
		net_start(w);
		cr_assert_geq(RUN_UNTIL(w, 10000, alive_everywhere(w, 4)), 0);
		run_ms(w, 3000);
		uint64_t inc0 = hb_swim_incarnation(w->node[2]);
		w->paused[2] = 1;
		run_ms(w, 2500);
		w->paused[2] = 0;
		run_ms(w, 40000);
		cr_assert_eq(total(w->dead, 5), 0, "seed %llu: false dead", seed);
		int s = 0;
		for (int i = 0; i < 5; i++)
			s += w->suspect[i][2];
		if (s)
			cr_assert_gt(hb_swim_incarnation(w->node[2]), inc0,
				     "suspected, not refuted");
		suspects += s;
		cr_assert(alive_everywhere(w, 4));
		net_free(w);
	}
	cr_assert_gt(suspects, 0, "the pause never caused a suspicion: the test proves nothing");
}

/* n0 and n1 cannot reach each other, everyone else can: indirect probes keep both alive. */
Test(swim, indirect_probes_prevent_false_suspicion)
{
	net_t *w = net_new(5, 3);
	net_start(w);
	cr_assert_geq(RUN_UNTIL(w, 10000, alive_everywhere(w, 4)), 0);
	w->cut[0][1] = w->cut[1][0] = 1;
	run_ms(w, 120000);
	cr_assert_eq(total(w->suspect, 5), 0);
	cr_assert_gt(hb_swim_stats(w->node[0])->indirect_acks, 0);
	cr_assert_gt(hb_swim_stats(w->node[1])->indirect_acks, 0);
	cr_assert_eq(hb_swim_health(w->node[0]), 0);
	net_free(w);
}

Test(swim, leave_is_seen_at_once_and_is_not_death)
{
	net_t *w = net_new(5, 4);
	net_start(w);
	cr_assert_geq(RUN_UNTIL(w, 10000, alive_everywhere(w, 4)), 0);
	int64_t t0 = w->now;
	cr_assert_eq(hb_swim_leave(w->node[4], w->now), 0);
	drain(w, 4);
	run_ms(w, 100);
	crash(w, 4); /* the process exits after leaving */
	run_ms(w, 60000);
	for (int i = 0; i < 4; i++) {
		cr_assert_eq(w->left[i][4], 1);
		cr_assert_leq(w->left_at[i][4] - t0, 50, "node %d saw the leave late", i);
		cr_assert_eq(w->dead[i][4], 0);
		hb_swim_state_t st;
		uint64_t inc;
		cr_assert_eq(hb_swim_member(w->node[i], w->name[4], &st, &inc), 0);
		cr_assert_eq(st, HB_SWIM_LEFT);
	}
	cr_assert_eq(total(w->dead, 5), 0);
	net_free(w);
}

/* A node restarts under the same name with incarnation 0: it learns its old (dead) state from
 * the seed, refutes it and is alive everywhere again with a higher incarnation. */
Test(swim, restarted_node_rejoins_with_higher_incarnation)
{
	net_t *w = net_new(5, 5);
	net_start(w);
	cr_assert_geq(RUN_UNTIL(w, 10000, alive_everywhere(w, 4)), 0);
	crash(w, 3);
	cr_assert_geq(RUN_UNTIL(w, 60000, dead_on_all(w, 3)), 0);
	hb_swim_state_t st;
	uint64_t dead_inc;
	cr_assert_eq(hb_swim_member(w->node[0], w->name[3], &st, &dead_inc), 0);
	start_node(w, 3, 0);
	cr_assert_eq(hb_swim_join(w->node[3], w->now, w->addr[0]), 0);
	int64_t t = RUN_UNTIL(w, 10000, alive_everywhere(w, 4));
	cr_assert_geq(t, 0, "restarted node not alive everywhere in 10 s");
	cr_assert_gt(hb_swim_incarnation(w->node[3]), dead_inc);
	for (int i = 0; i < 5; i++)
		if (i != 3)
			cr_assert_eq(w->joined[i][3], 2, "a second join event on %d", i);
	net_free(w);
}

/* {0,1,2} | {3,4} for 60 s: each side declares the other dead; after the heal, the periodic
 * sync with dead members brings everyone back. */
Test(swim, partition_heals)
{
	net_t *w = net_new(5, 6);
	net_start(w);
	cr_assert_geq(RUN_UNTIL(w, 10000, alive_everywhere(w, 4)), 0);
	for (int i = 0; i < 5; i++)
		for (int j = 0; j < 5; j++)
			w->cut[i][j] = (i < 3) != (j < 3);
	run_ms(w, 60000);
	for (int i = 0; i < 5; i++)
		cr_assert_eq(hb_swim_count(w->node[i], HB_SWIM_ALIVE), i < 3 ? 2u : 1u);
	cr_assert_eq(w->dead[0][3], 1);
	cr_assert_eq(w->dead[4][0], 1);
	memset(w->cut, 0, sizeof w->cut);
	int64_t t = RUN_UNTIL(w, 60000, alive_everywhere(w, 4));
	cr_assert_geq(t, 0, "partition did not heal in 60 s");
	cr_log_info("partition healed in %lld ms", (long long)t);
	net_free(w);
}

/* A node cut off from the others declares them dead and gossips it; once healed, that stale
 * news must not kill the members that still hear each other: a "dead" from a third party about
 * a member we heard from directly within the minimum suspicion timeout only makes it suspect,
 * and it refutes. (Seen in CI: after a heal a call to a healthy node failed NodeNotConnected.)
 * The isolated node's own view is another matter: it declared the others dead itself. */
Test(swim, isolated_nodes_stale_dead_news_kills_nobody)
{
	int suspicions = 0;
	for (uint64_t seed = 1; seed <= 8; seed++) {
		net_t *w = net_new(3, seed);
		w->delay_max = 10;
		net_start(w);
		cr_assert_geq(RUN_UNTIL(w, 10000, alive_everywhere(w, 2)), 0);
		for (int j = 0; j < 2; j++)
			w->cut[2][j] = w->cut[j][2] = 1;
		cr_assert_geq(
			RUN_UNTIL(w, 30000, dead_on_all(w, 2) && w->dead[2][0] && w->dead[2][1]), 0,
			"seed %llu: the isolated node and the others did not part", seed);
		memset(w->cut, 0, sizeof w->cut);
		cr_assert_geq(RUN_UNTIL(w, 30000, alive_everywhere(w, 2)), 0,
			      "seed %llu: did not heal in 30 s", seed);
		run_ms(w, 5000);
		cr_assert_eq(w->dead[0][1] + w->dead[1][0], 0,
			     "seed %llu: the healed node's stale news killed a healthy one", seed);
		cr_assert(alive_everywhere(w, 2), "seed %llu", seed);
		suspicions += w->suspect[0][1] + w->suspect[1][0];
		net_free(w);
	}
	cr_log_info("8 heals: %d suspicions between the healthy pair, 0 dead", suspicions);
}

/* 10% loss of every UDP packet, 1-20 ms delay, 8 nodes, 30 virtual minutes, 5 seeds (2.5
 * virtual hours, hundreds of suspicions): no false dead, and detection still works. */
Test(swim, no_false_dead_at_10_percent_loss, .timeout = 120)
{
	int suspicions = 0;
	for (uint64_t seed = 1; seed <= 5; seed++) {
		net_t *w = net_new(8, seed);
		w->delay_max = 20;
		net_start(w);
		cr_assert_geq(RUN_UNTIL(w, 10000, alive_everywhere(w, 7)), 0);
		w->loss = 0.10;
		run_ms(w, 30 * 60 * 1000);
		cr_assert_eq(total(w->dead, 8), 0, "seed %llu: false dead", seed);
		for (int i = 0; i < 8; i++) /* a suspicion may be in flight at the end, no more */
			cr_assert_eq(hb_swim_count(w->node[i], HB_SWIM_ALIVE) +
					     hb_swim_count(w->node[i], HB_SWIM_SUSPECT),
				     7);
		suspicions += total(w->suspect, 8);
		cr_assert_gt(w->lost * 100, w->sent * 9, "the loss was not applied");
		crash(w, 5);
		cr_assert_geq(RUN_UNTIL(w, 60000, dead_on_all(w, 5)), 0);
		net_free(w);
	}
	cr_log_info("10%% loss, 5 x 30 min: %d suspicion events, 0 false dead", suspicions);
	cr_assert_gt(suspicions, 100, "too few suspicions for the test to mean anything");
}

/* Lifeguard local health: a node that hears nothing back (its inbound is cut) blames itself and
 * stretches its probe interval; a healthy node whose target crashed gets nacks and does not. */
Test(swim, local_health_awareness)
{
	net_t *w = net_new(5, 8);
	net_start(w);
	cr_assert_geq(RUN_UNTIL(w, 10000, alive_everywhere(w, 4)), 0);
	crash(w, 4);
	uint64_t p0 = hb_swim_stats(w->node[1])->probes;
	run_ms(w, 20000);
	cr_assert_eq(hb_swim_health(w->node[1]), 0, "nacks came back: not our fault");
	cr_assert_gt(hb_swim_stats(w->node[1])->nacks_received, 0);
	cr_assert_geq(hb_swim_stats(w->node[1])->probes - p0, 15);
	for (int i = 0; i < 5; i++)
		w->cut[i][0] = 1;
	uint64_t before = hb_swim_stats(w->node[0])->probes;
	run_ms(w, 30000);
	cr_assert_geq(hb_swim_health(w->node[0]), 4, "health %u", hb_swim_health(w->node[0]));
	cr_assert_lt(hb_swim_stats(w->node[0])->probes - before, 15, "probes were not stretched");
	net_free(w);
}

Test(swim, dead_members_are_reaped)
{
	net_t *w = net_new(4, 9);
	w->cfg.reap_ms = 30000;
	net_start(w);
	cr_assert_geq(RUN_UNTIL(w, 10000, alive_everywhere(w, 3)), 0);
	crash(w, 2);
	cr_assert_geq(RUN_UNTIL(w, 60000, dead_on_all(w, 2)), 0);
	run_ms(w, 32000);
	hb_swim_state_t st;
	uint64_t inc;
	cr_assert_eq(hb_swim_member(w->node[0], w->name[2], &st, &inc), -ENOENT);
	cr_assert_eq(hb_swim_count(w->node[0], HB_SWIM_DEAD), 0);
	net_free(w);
}

/* Hostile datagrams: every prefix and random corruptions of a real message are rejected or
 * applied, never crash, and are counted. */
Test(swim, hostile_input)
{
	net_t *w = net_new(3, 10);
	net_start(w);
	run_ms(w, 3000);
	hb_swim_out_t *o = NULL;
	hb_swim_tick(w->node[1], w->now + 10000);
	o = hb_swim_pop_out(w->node[1]);
	cr_assert_not_null(o);
	for (size_t n = 0; n < o->len; n++)
		cr_assert_eq(hb_swim_input(w->node[2], w->now, o->data, n), -EBADMSG);
	uint8_t buf[2048];
	for (int k = 0; k < 5000; k++) {
		memcpy(buf, o->data, o->len);
		buf[rnd(w) % o->len] ^= (uint8_t)(1 + rnd(w) % 255);
		int rc = hb_swim_input(w->node[2], w->now, buf, o->len);
		cr_assert(rc == 0 || rc == -EBADMSG);
	}
	cr_assert_geq(hb_swim_stats(w->node[2])->bad_messages, o->len);
	free(o);
	hb_swim_msg_t m;
	cr_assert_eq(hb_swim_msg_decode("\x01\x00", 2, &m), -EBADMSG);
	net_free(w);
}
