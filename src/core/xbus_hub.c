/* xbus_hub.c: the cluster across worker processes (xbus.h, "The cluster"): the hub's side (jobs
 * for other nodes, questions and subscribed topics from the other processes; its live members
 * in the region) and the proxy hb_remote_t that the other processes use to reach it.
 *
 * The hub's hb_remote_t is used from its bus thread (hub_get/hub_put count the users, so that
 * hb_xbus_set_hub(b, NULL) can wait until none is inside it); it only queues (the cluster's
 * commands) and never blocks, and what comes back goes out with non-blocking sends.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/xbus_priv.h"

#define NODE_MAX 512 /* a node name in a T_RJOB (the cluster's are 255 bytes at most) */

static void forward_start(hb_xbus_t *b);

/* ---- who is the hub ---- */

static uint64_t key_of(uint32_t slot, uint32_t gen)
{
	return (uint64_t)(slot + 1) << 32 | gen;
}

/* The live hub, or -ENOTCONN. */
static int hub_peer(hb_xbus_t *b, hb_xbus_peer_t *out)
{
	uint64_t h = atomic_load(&b->r->hub);

	if (!h)
		return -ENOTCONN;
	out->slot = (uint32_t)(h >> 32) - 1;
	out->gen = (uint32_t)h;
	return hb_xbus_owner_live(b->r, out->slot, out->gen) ? 0 : -ENOTCONN;
}

static int is_hub(hb_xbus_t *b)
{
	return hb_xbus_attached(b) && atomic_load(&b->r->hub) == key_of(b->slot, b->gen);
}

static const hb_remote_t *hub_get(hb_xbus_t *b)
{
	const hb_remote_t *r;

	atomic_fetch_add(&b->hub_users, 1);
	r = atomic_load(&b->hub_r);
	if (!r)
		atomic_fetch_sub(&b->hub_users, 1);
	return r;
}

static void hub_put(hb_xbus_t *b)
{
	atomic_fetch_sub(&b->hub_users, 1);
}

static void lock_members(struct region *r)
{
	if (pthread_mutex_lock(&r->mmu) == EOWNERDEAD)
		pthread_mutex_consistent(&r->mmu); /* the counts are written after the names */
}

static char *members_area(struct region *r)
{
	return (char *)r + r->members_off;
}

static void topics_forget(hb_xbus_t *b)
{
	pthread_mutex_lock(&b->tmu);
	for (uint32_t i = 0; i < b->r->max_procs; i++) {
		free(b->ptop[i].data);
		b->ptop[i] = (struct ptopics){0};
	}
	pthread_mutex_unlock(&b->tmu);
	atomic_fetch_add(&b->topics_gen, 1);
}

int hb_xbus_set_hub(hb_xbus_t *b, const hb_remote_t *r)
{
	uint64_t me;

	if (!hb_xbus_attached(b))
		return -ENOTCONN;
	me = key_of(b->slot, b->gen);
	if (r) {
		forward_start(b);
		atomic_store(&b->hub_r, r); /* first: a datagram sent to the hub finds it */
		atomic_store(&b->r->hub, me);
		return 0;
	}
	if (!atomic_load(&b->hub_r))
		return 0;
	if (atomic_compare_exchange_strong(&b->r->hub, &me, 0)) {
		lock_members(b->r);
		b->r->members_n = b->r->members_len = b->r->members_trunc = 0;
		pthread_mutex_unlock(&b->r->mmu);
	}
	atomic_store(&b->hub_r, NULL);
	while (atomic_load(&b->hub_users) > 0) /* the bus thread inside a send: microseconds */
		usleep(1000);
	topics_forget(b);
	return 0;
}

const hb_remote_t *hb_xbus_remote(hb_xbus_t *b)
{
	hb_xbus_peer_t hub;

	if (!hb_xbus_attached(b) || hub_peer(b, &hub) < 0 ||
	    (hub.slot == b->slot && hub.gen == b->gen))
		return NULL;
	return &b->proxy;
}

/* ---- members ---- */

int hb_xbus_set_members(hb_xbus_t *b, char *const *names, int n)
{
	struct region *r;
	char *area;
	uint32_t len = 0, k = 0;
	int trunc = 0;

	if (!is_hub(b))
		return -ENOTCONN;
	r = b->r;
	area = members_area(r);
	lock_members(r);
	for (int i = 0; i < n; i++) {
		size_t l = strlen(names[i]) + 1;

		if (l > r->members_cap - len) {
			trunc = 1;
			continue;
		}
		memcpy(area + len, names[i], l);
		len += (uint32_t)l;
		k++;
	}
	r->members_len = len;
	r->members_n = k;
	r->members_trunc = (uint32_t)trunc;
	pthread_mutex_unlock(&r->mmu);
	return trunc ? -ENOSPC : 0;
}

/* A copy of the members (malloc'd, *len bytes of NUL-terminated names), *trunc when some did
 * not fit. 0 or -ENOTCONN / -ENOMEM. */
static int members_copy(hb_xbus_t *b, char **out, size_t *len, int *trunc)
{
	struct region *r = b->r;
	hb_xbus_peer_t hub;

	*out = NULL;
	*len = 0;
	if (hub_peer(b, &hub) < 0)
		return -ENOTCONN;
	lock_members(r);
	*len = r->members_len <= r->members_cap ? r->members_len : 0;
	*trunc = r->members_trunc != 0;
	*out = malloc(*len ? *len : 1);
	if (*out && *len)
		memcpy(*out, members_area(r), *len);
	pthread_mutex_unlock(&r->mmu);
	return *out ? 0 : -ENOMEM;
}

int hb_xbus_members(hb_xbus_t *b, hb_xbus_name_cb cb, void *ud)
{
	char *buf;
	size_t len;
	int trunc, rc = members_copy(b, &buf, &len, &trunc);

	for (size_t off = 0; rc == 0 && off < len;) {
		size_t l = strnlen(buf + off, len - off);

		rc = cb(buf + off, l, ud);
		off += l + 1;
	}
	free(buf);
	return rc;
}

/* ---- publish ---- */

/* ---- the forwarder (hub) ---- */

static void fwd_send(hb_xbus_t *b, const struct fwd *f, int dontwait)
{
	struct region *r = b->r;
	const uint8_t *name = f->data, *payload = f->data + f->m.nlen;
	struct msg m = f->m;
	int fd;

	if (hb_xbus_payload_prepare(m.plen, payload, &fd) < 0)
		return;
	if (!f->all)
		hb_xbus_send_msg(b, f->slot, f->gen, &m, name, payload, fd, dontwait);
	for (uint32_t i = 0; f->all && i < atomic_load(&r->top); i++)
		if (i != b->slot && atomic_load(&r->slots[i].state) == SLOT_LIVE)
			hb_xbus_send_msg(b, i, atomic_load(&r->slots[i].gen), &m, name, payload, fd,
					 dontwait);
	if (fd >= 0)
		close(fd);
}

static void *fwd_main(void *arg)
{
	hb_xbus_t *b = arg;

	pthread_mutex_lock(&b->fmu);
	for (;;) {
		struct fwd *f;

		while (!b->fhead && !b->fstop)
			pthread_cond_wait(&b->fcv, &b->fmu);
		if (!(f = b->fhead))
			break; /* stopping, and everything was sent */
		b->fhead = f->next;
		if (!b->fhead)
			b->ftail = NULL;
		if (f->all)
			b->fpubs--;
		pthread_mutex_unlock(&b->fmu);
		fwd_send(b, f, 0); /* waits for a full process (SO_SNDTIMEO) */
		free(f);
		pthread_mutex_lock(&b->fmu);
	}
	pthread_mutex_unlock(&b->fmu);
	return NULL;
}

/* [hub] Starts the forwarder once; it runs until detach. */
static void forward_start(hb_xbus_t *b)
{
	pthread_mutex_lock(&b->fmu);
	if (!b->frun) {
		b->fstop = 0;
		b->frun = pthread_create(&b->fth, NULL, fwd_main, b) == 0;
	}
	pthread_mutex_unlock(&b->fmu);
}

void hb_xbus_forward_stop(hb_xbus_t *b)
{
	pthread_mutex_lock(&b->fmu);
	if (!b->frun) {
		pthread_mutex_unlock(&b->fmu);
		return;
	}
	b->fstop = 1;
	pthread_cond_signal(&b->fcv);
	pthread_mutex_unlock(&b->fmu);
	pthread_join(b->fth, NULL);
	pthread_mutex_lock(&b->fmu);
	b->frun = 0;
	pthread_mutex_unlock(&b->fmu);
}

int hb_xbus_forward(hb_xbus_t *b, uint32_t slot, uint32_t gen, int all, const struct msg *m,
		    const void *name, const void *payload)
{
	struct fwd *f = malloc(sizeof(*f) + m->nlen + m->plen), *prev, *cur;
	int dropped = 0;

	if (!f)
		return -ENOMEM;
	*f = (struct fwd){.slot = slot, .gen = gen, .all = all, .m = *m};
	if (m->nlen)
		memcpy(f->data, name, m->nlen);
	if (m->plen)
		memcpy(f->data + m->nlen, payload, m->plen);
	pthread_mutex_lock(&b->fmu);
	if (!b->frun) { /* not the hub (or no thread): a send that does not wait */
		pthread_mutex_unlock(&b->fmu);
		fwd_send(b, f, 1);
		free(f);
		return 0;
	}
	while (all && b->fpubs >= b->r->fwd_cap) { /* drop the oldest publish */
		for (prev = NULL, cur = b->fhead; cur && !cur->all; prev = cur, cur = cur->next)
			;
		if (!cur)
			break;
		if (prev)
			prev->next = cur->next;
		else
			b->fhead = cur->next;
		if (b->ftail == cur)
			b->ftail = prev;
		b->fpubs--;
		free(cur);
		dropped++;
	}
	if (all)
		b->fpubs++;
	if (b->ftail)
		b->ftail->next = f;
	else
		b->fhead = f;
	b->ftail = f;
	pthread_cond_signal(&b->fcv);
	pthread_mutex_unlock(&b->fmu);
	return dropped;
}

int hb_xbus_publish_nowait(hb_xbus_t *b, const void *topic, size_t tlen, const void *data,
			   size_t len)
{
	struct msg m = {.type = T_PUB, .cell = NO_CELL};

	if (tlen == 0 || tlen > HB_PUBSUB_MAX_TOPIC || memchr(topic, '\0', tlen) ||
	    len > UINT32_MAX)
		return -EINVAL;
	if (!hb_xbus_attached(b) || atomic_load(&b->r->nlive) <= 1)
		return 0;
	m.gen = b->gen;
	m.nlen = (uint32_t)tlen;
	m.plen = (uint32_t)len;
	return hb_xbus_forward(b, 0, 0, 1, &m, topic, data);
}

int hb_xbus_hub_publish(hb_xbus_t *b, const void *topic, size_t tlen, const void *data, size_t len)
{
	const hb_remote_t *r = hub_get(b);
	int n;

	if (!r)
		return 0;
	n = r->publish(r->ctx, topic, tlen, data, len);
	hub_put(b);
	return n;
}

/* ---- the hub's bus thread: jobs, questions, topics ---- */

void hb_xbus_on_rjob(hb_xbus_t *b, const struct msg *m, const char *name, const void *args)
{
	const char *z = memchr(name, 0, m->nlen);
	char node[NODE_MAX];
	const hb_remote_t *r;
	size_t dlen;
	hb_job_t *j;
	int rc;

	if (!z || m->kind > HB_JOB_RPC_CAST || (dlen = (size_t)(z - name)) >= sizeof(node))
		return;
	memcpy(node, name, dlen);
	node[dlen] = 0;
	j = hb_funcs_job_new((hb_job_kind_t)m->kind, z + 1, m->nlen - dlen - 1, args, m->plen);
	if (!j) {
		if (m->status)
			hb_xbus_send_reply(b, m->slot, m->gen, m->id, HB_JOB_LOST, NULL, 0);
		return;
	}
	if (m->status) /* a call: the cluster's thread finishes it, the reply must not block */
		hb_funcs_job_set_done(j, hb_xbus_reply_nowait, b, (uint64_t)m->slot << 32 | m->gen,
				      m->id);
	r = hub_get(b);
	rc = r ? r->send(r->ctx, node, j, m->status, m->tmo) : -ESHUTDOWN;
	if (r)
		hub_put(b);
	if (rc < 0 && hb_funcs_job_start(j)) {
		char buf[NODE_MAX + 64];
		int n = snprintf(buf, sizeof(buf), "node '%s': this node's cluster is stopping",
				 node);
		char *text = n > 0 ? strdup(buf) : NULL;

		hb_funcs_job_finish(j, HB_JOB_LOST, text, text ? strlen(text) : 0);
	}
	hb_funcs_job_release(j);
}

void hb_xbus_on_query(hb_xbus_t *b, const struct msg *m, const char *name)
{
	const hb_remote_t *r = hub_get(b);
	char node[NODE_MAX];
	hb_remote_stats_t st;

	if (!r) {
		hb_xbus_send_reply(b, m->slot, m->gen, m->id, HB_JOB_LOST, NULL, 0);
		return;
	}
	if (m->kind == Q_OWNER && r->owner(r->ctx, name, m->nlen, node, sizeof(node)) == 0) {
		hb_xbus_send_reply(b, m->slot, m->gen, m->id, HB_JOB_OK, node, strlen(node));
	} else if (m->kind == Q_STATS) {
		r->stats(r->ctx, &st);
		hb_xbus_send_reply(b, m->slot, m->gen, m->id, HB_JOB_OK, &st, sizeof(st));
	} else { /* no such name on any node (or an unknown question) */
		hb_xbus_send_reply(b, m->slot, m->gen, m->id, HB_JOB_ERROR, NULL, 0);
	}
	hub_put(b);
}

void hb_xbus_on_topics(hb_xbus_t *b, const struct msg *m, const void *data)
{
	uint8_t *copy;

	if (!is_hub(b) || !(copy = malloc(m->plen ? m->plen : 1)))
		return;
	if (m->plen)
		memcpy(copy, data, m->plen);
	pthread_mutex_lock(&b->tmu);
	free(b->ptop[m->slot].data);
	b->ptop[m->slot] = (struct ptopics){.gen = m->gen, .len = m->plen, .data = copy};
	pthread_mutex_unlock(&b->tmu);
	atomic_fetch_add(&b->topics_gen, 1);
}

int hb_xbus_topics(hb_xbus_t *b, hb_pubsub_topic_cb cb, void *ud)
{
	int rc = 0;

	if (!is_hub(b))
		return 0;
	pthread_mutex_lock(&b->tmu);
	for (uint32_t i = 0; i < b->r->max_procs && rc == 0; i++) {
		const struct ptopics *t = &b->ptop[i];

		if (!t->data || i == b->slot || !hb_xbus_owner_live(b->r, i, t->gen))
			continue;
		for (size_t off = 0; rc == 0 && off + 8 <= t->len;) {
			uint32_t n, l;

			memcpy(&n, t->data + off, 4);
			memcpy(&l, t->data + off + 4, 4);
			if (l > t->len - off - 8)
				break;
			rc = cb((const char *)t->data + off + 8, l, n, ud);
			off += 8 + (size_t)l;
		}
	}
	pthread_mutex_unlock(&b->tmu);
	return rc;
}

uint64_t hb_xbus_topics_generation(hb_xbus_t *b)
{
	return b ? atomic_load(&b->topics_gen) : 0;
}

/* ---- every process's bus thread: housekeeping ---- */

typedef struct tbuf {
	uint8_t *p;
	size_t len, cap;
	int err;
} tbuf_t;

static int add_topic(const char *name, size_t len, uint32_t nsubs, void *ud)
{
	tbuf_t *t = ud;
	uint32_t l = (uint32_t)len;

	if (!nsubs)
		return 0;
	if (t->cap - t->len < 8 + len) {
		size_t cap = (t->cap ? t->cap * 2 : 1024) + 8 + len;
		uint8_t *p = realloc(t->p, cap);

		if (!p) {
			t->err = 1;
			return 1;
		}
		t->p = p;
		t->cap = cap;
	}
	memcpy(t->p + t->len, &nsubs, 4);
	memcpy(t->p + t->len + 4, &l, 4);
	memcpy(t->p + t->len + 8, name, len);
	t->len += 8 + len;
	return 0;
}

/* Tells the hub this process's topics when they (or the hub) changed since the last time. */
static void send_topics(hb_xbus_t *b)
{
	struct msg m = {.type = T_TOPICS};
	hb_xbus_peer_t hub;
	tbuf_t t = {0};
	uint64_t psg, hk;
	int fd;

	if (!b->ps || hub_peer(b, &hub) < 0 || (hub.slot == b->slot && hub.gen == b->gen))
		return;
	psg = hb_pubsub_generation(b->ps);
	hk = key_of(hub.slot, hub.gen);
	if (psg == b->topics_sent_ps && hk == b->topics_sent_hub)
		return;
	hb_pubsub_topics(b->ps, add_topic, &t);
	if (!t.err && t.len <= UINT32_MAX && hb_xbus_payload_prepare(t.len, t.p, &fd) == 0) {
		m.gen = b->gen;
		m.plen = (uint32_t)t.len;
		if (hb_xbus_send_msg(b, hub.slot, hub.gen, &m, NULL, t.p, fd, 1) == 0) {
			b->topics_sent_ps = psg;
			b->topics_sent_hub = hk;
		}
		if (fd >= 0)
			close(fd);
	}
	free(t.p);
}

void hb_xbus_tick(hb_xbus_t *b)
{
	int64_t now = hb_xbus_now_ms();

	if (now < b->next_tick)
		return;
	b->next_tick = now + TICK_MS;
	/* calls to a process (the hub included) that died: LOST now, whoever waits on them */
	hb_xbus_check_pending(b);
	send_topics(b);
}

/* ---- the proxy (another process's view of the hub's cluster) ---- */

typedef struct find {
	const char *node;
	int found;
} find_t;

static int match(const char *name, size_t len, void *ud)
{
	find_t *f = ud;

	f->found = strlen(f->node) == len && memcmp(f->node, name, len) == 0;
	return f->found;
}

static int p_connected(void *ctx, const char *node)
{
	hb_xbus_t *b = ctx;
	char *buf;
	size_t len;
	int trunc;
	find_t f = {node, 0};

	if (members_copy(b, &buf, &len, &trunc) < 0)
		return 0;
	for (size_t off = 0; !f.found && off < len;) {
		size_t l = strnlen(buf + off, len - off);

		match(buf + off, l, &f);
		off += l + 1;
	}
	free(buf);
	return f.found || trunc; /* truncated: the hub decides */
}

static int p_send(void *ctx, const char *node, hb_job_t *j, int reply, int timeout_ms)
{
	hb_xbus_t *b = ctx;
	hb_xbus_peer_t hub;
	hb_job_kind_t k = hb_funcs_job_kind(j);
	int rc;

	if (hub_peer(b, &hub) < 0)
		return -ESHUTDOWN;
	reply = reply && (k == HB_JOB_RPC || k == HB_JOB_CALL);
	rc = hb_xbus_post_ex(b, &hub, j, T_RJOB, 0, node, timeout_ms, reply, 0);
	return rc == 0 || rc == -ENOMEM ? rc : -ESHUTDOWN;
}

/* Asks the hub (q, name) and waits for its answer: the finished job (the caller releases it),
 * or NULL when there was none. */
static hb_job_t *query(hb_xbus_t *b, int q, const void *name, size_t len)
{
	hb_xbus_peer_t hub;
	hb_job_t *j;

	if (hub_peer(b, &hub) < 0 || !(j = hb_funcs_job_new(HB_JOB_CALL, name, len, "", 0)))
		return NULL;
	if (hb_xbus_post_ex(b, &hub, j, T_QUERY, q, NULL, 0, 1, 0) < 0 ||
	    hb_xbus_wait(b, &hub, j, b->r->timeout_ms) < 0 || hb_funcs_job_status(j) != HB_JOB_OK) {
		hb_funcs_job_release(j);
		return NULL;
	}
	return j;
}

static int p_owner(void *ctx, const char *name, size_t len, char *node, size_t cap)
{
	hb_job_t *j = query(ctx, Q_OWNER, name, len);
	const uint8_t *res;
	size_t n;

	if (!j)
		return -ENOENT;
	res = hb_funcs_job_result(j, &n);
	if (cap) {
		n = n < cap - 1 ? n : cap - 1;
		if (n)
			memcpy(node, res, n);
		node[n] = 0;
	}
	hb_funcs_job_release(j);
	return 0;
}

static int p_publish(void *ctx, const void *topic, size_t tlen, const void *data, size_t len)
{
	return hb_xbus_publish_ex(ctx, topic, tlen, data, len, 1);
}

static void p_stats(void *ctx, hb_remote_stats_t *out)
{
	hb_job_t *j = query(ctx, Q_STATS, "", 0);
	const uint8_t *res;
	size_t n;

	memset(out, 0, sizeof(*out));
	if (!j)
		return;
	res = hb_funcs_job_result(j, &n);
	if (n == sizeof(*out))
		memcpy(out, res, n);
	hb_funcs_job_release(j);
}

/* ---- life ---- */

int hb_xbus_hub_init(hb_xbus_t *b)
{
	b->ptop = calloc(b->r->max_procs, sizeof(*b->ptop));
	if (!b->ptop)
		return -ENOMEM;
	pthread_mutex_init(&b->tmu, NULL);
	pthread_mutex_init(&b->fmu, NULL);
	pthread_cond_init(&b->fcv, NULL);
	b->proxy = (hb_remote_t){.ctx = b,
				 .connected = p_connected,
				 .send = p_send,
				 .owner = p_owner,
				 .publish = p_publish,
				 .stats = p_stats};
	return 0;
}

void hb_xbus_hub_free(hb_xbus_t *b)
{
	for (uint32_t i = 0; b->ptop && i < b->r->max_procs; i++)
		free(b->ptop[i].data);
	free(b->ptop);
	pthread_mutex_destroy(&b->tmu);
	pthread_mutex_destroy(&b->fmu);
	pthread_cond_destroy(&b->fcv);
}
