/* xbus_call.c: the process bus's name table and calls (xbus.h): registering, looking up,
 * posting a job to another process, waiting for it, and the two ends of a reply.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/xbus_priv.h"

/* ---- names ---- */

static int name_ok(size_t len)
{
	return len > 0 && len <= HB_FUNCS_MAX_NAME;
}

/* [names lock] The entry of a name (owner alive or not), or NULL. */
static struct name *find_name(struct region *r, const void *name, size_t len, uint64_t h)
{
	struct name *t = hb_xbus_name_table(r);

	for (uint32_t i = 0; i < r->max_names; i++)
		if (t[i].used && t[i].hash == h && t[i].len == len &&
		    memcmp(t[i].name, name, len) == 0)
			return &t[i];
	return NULL;
}

int hb_xbus_register(hb_xbus_t *b, const void *name, size_t len)
{
	struct region *r;
	uint64_t h = hb_xbus_fnv(name, len);
	struct name *e, *t;
	int rc = 0;

	if (!name_ok(len))
		return -EINVAL;
	if (!hb_xbus_attached(b))
		return -ENOTCONN;
	r = b->r;
	t = hb_xbus_name_table(r);
	hb_xbus_lock_names(r);
	e = find_name(r, name, len, h);
	for (uint32_t i = 0; !e && i < r->max_names; i++)
		if (!t[i].used || !hb_xbus_owner_live(r, t[i].slot, t[i].gen))
			e = &t[i];
	if (!e) {
		rc = -ENOSPC;
	} else {
		/* `used` last (and first to go): a half-written entry is never seen. */
		if (!e->used || e->len != len || memcmp(e->name, name, len) != 0) {
			e->used = 0;
			memcpy(e->name, name, len);
			e->len = (uint32_t)len;
			e->hash = h;
		}
		e->slot = b->slot;
		e->gen = b->gen;
		e->used = 1;
		atomic_fetch_add(&r->names_gen, 1);
	}
	pthread_mutex_unlock(&r->mu);
	return rc;
}

static int unregister(hb_xbus_t *b, const void *name, size_t len, int mine)
{
	struct name *e;
	int rc = -ENOENT;

	if (!b || !name_ok(len))
		return -ENOENT;
	hb_xbus_lock_names(b->r);
	e = find_name(b->r, name, len, hb_xbus_fnv(name, len));
	if (e && hb_xbus_owner_live(b->r, e->slot, e->gen) &&
	    (!mine || (hb_xbus_attached(b) && e->slot == b->slot && e->gen == b->gen)))
		rc = 0;
	if (e && (rc == 0 || !hb_xbus_owner_live(b->r, e->slot, e->gen)))
		e->used = 0;
	if (rc == 0)
		atomic_fetch_add(&b->r->names_gen, 1);
	pthread_mutex_unlock(&b->r->mu);
	return rc;
}

int hb_xbus_unregister(hb_xbus_t *b, const void *name, size_t len)
{
	return unregister(b, name, len, 0);
}

int hb_xbus_unregister_mine(hb_xbus_t *b, const void *name, size_t len)
{
	return unregister(b, name, len, 1);
}

int hb_xbus_owner(hb_xbus_t *b, const void *name, size_t len, hb_xbus_peer_t *out)
{
	struct name *e;
	int rc = -ENOENT;

	if (!b || !name_ok(len))
		return -ENOENT;
	hb_xbus_lock_names(b->r);
	e = find_name(b->r, name, len, hb_xbus_fnv(name, len));
	if (e && hb_xbus_owner_live(b->r, e->slot, e->gen)) {
		out->slot = e->slot;
		out->gen = e->gen;
		rc = hb_xbus_attached(b) && e->slot == b->slot && e->gen == b->gen;
	}
	pthread_mutex_unlock(&b->r->mu);
	return rc;
}

int hb_xbus_names(hb_xbus_t *b, hb_xbus_name_cb cb, void *ud)
{
	enum { BATCH = 64 };
	struct region *r = b->r;
	struct name *t = hb_xbus_name_table(r), *copy = malloc(BATCH * sizeof(*copy));
	int rc = 0;

	if (!copy)
		return -ENOMEM;
	/* In batches copied under the lock, so that cb runs with no lock held. */
	for (uint32_t from = 0; from < r->max_names && rc == 0;) {
		uint32_t n = 0;

		hb_xbus_lock_names(r);
		for (; from < r->max_names && n < BATCH; from++)
			if (t[from].used && hb_xbus_owner_live(r, t[from].slot, t[from].gen))
				copy[n++] = t[from];
		pthread_mutex_unlock(&r->mu);
		for (uint32_t i = 0; i < n && rc == 0; i++)
			rc = cb(copy[i].name, copy[i].len, ud);
	}
	free(copy);
	return rc;
}

/* ---- calls ---- */

static void pending_add(hb_xbus_t *b, struct pending *p)
{
	pthread_mutex_lock(&b->pmu);
	p->next = b->pending;
	b->pending = p;
	pthread_mutex_unlock(&b->pmu);
}

/* Removes the entry of id (or of job j when id is 0); returns its job (the entry's reference)
 * or NULL. */
static hb_job_t *pending_take(hb_xbus_t *b, uint64_t id, hb_job_t *j)
{
	struct pending *p = NULL;
	hb_job_t *out = NULL;

	pthread_mutex_lock(&b->pmu);
	for (struct pending **pp = &b->pending; *pp; pp = &(*pp)->next) {
		if ((id && (*pp)->id == id) || (!id && (*pp)->job == j)) {
			p = *pp;
			*pp = p->next;
			break;
		}
	}
	pthread_mutex_unlock(&b->pmu);
	if (p) {
		out = p->job;
		free(p);
	}
	return out;
}

/* A job kind whose result goes back to the poster. */
static int wants_reply(uint8_t kind)
{
	return kind == HB_JOB_CALL || kind == HB_JOB_RPC;
}

int hb_xbus_post_ex(hb_xbus_t *b, const hb_xbus_peer_t *to, hb_job_t *j, int type, int q,
		    const char *node, int tmo, int reply, int dontwait)
{
	struct msg m = {.type = (uint8_t)type};
	struct pending *p = NULL;
	size_t nlen, alen, dlen = node ? strlen(node) : 0;
	const char *name = hb_funcs_job_name(j, &nlen);
	const uint8_t *args = hb_funcs_job_args(j, &alen);
	char both[HB_PUBSUB_MAX_TOPIC];
	int fd, rc;

	if (!hb_xbus_attached(b))
		return -ENOTCONN;
	if (alen > UINT32_MAX)
		return -EMSGSIZE;
	if (node) { /* T_RJOB: "node\0name" */
		if (dlen + 1 + nlen > sizeof(both))
			return -EINVAL;
		memcpy(both, node, dlen);
		both[dlen] = 0;
		memcpy(both + dlen + 1, name, nlen);
		name = both;
		nlen += dlen + 1;
	}
	m.kind = (uint8_t)(type == T_QUERY ? q : (int)hb_funcs_job_kind(j));
	m.status = (uint8_t)(reply != 0);
	m.tmo = tmo;
	m.gen = b->gen;
	m.id = atomic_fetch_add(&b->next_id, 1) + 1;
	m.nlen = (uint32_t)nlen;
	m.plen = (uint32_t)alen;
	if (reply) {
		p = malloc(sizeof(*p));
		if (!p)
			return -ENOMEM;
		p->id = m.id;
		p->job = j;
		p->to = *to;
		hb_funcs_job_ref(j);
		pending_add(b, p);
	}
	rc = hb_xbus_payload_prepare(alen, args, &fd);
	if (rc == 0)
		rc = hb_xbus_send_msg(b, to->slot, to->gen, &m, name, args, fd, dontwait);
	if (fd >= 0)
		close(fd);
	if (rc < 0 && p)
		hb_funcs_job_release(pending_take(b, m.id, NULL));
	return rc;
}

static int post(hb_xbus_t *b, const hb_xbus_peer_t *to, hb_job_t *j, int dontwait)
{
	return hb_xbus_post_ex(b, to, j, T_JOB, 0, NULL, 0,
			       wants_reply((uint8_t)hb_funcs_job_kind(j)), dontwait);
}

int hb_xbus_post(hb_xbus_t *b, const hb_xbus_peer_t *to, hb_job_t *j)
{
	return post(b, to, j, 0);
}

int hb_xbus_try_post(hb_xbus_t *b, const hb_xbus_peer_t *to, hb_job_t *j)
{
	int rc = post(b, to, j, 1);

	return rc == -ETIMEDOUT ? -EAGAIN : rc;
}

int hb_xbus_check_pending(hb_xbus_t *b)
{
	struct pending *dead = NULL;
	int n = 0;

	if (!hb_xbus_attached(b))
		return 0;
	pthread_mutex_lock(&b->pmu);
	for (struct pending **pp = &b->pending; *pp;) {
		struct pending *p = *pp;

		/* owner_live only: no PING under the lock; a process that died and was
		 * reaped (or replaced) has left its slot */
		if (hb_xbus_owner_live(b->r, p->to.slot, p->to.gen)) {
			pp = &p->next;
			continue;
		}
		*pp = p->next;
		p->next = dead;
		dead = p;
	}
	pthread_mutex_unlock(&b->pmu);
	while (dead) {
		struct pending *next = dead->next;
		static const char why[] = "the worker process that had the call exited";

		if (hb_funcs_job_start(dead->job)) {
			char *text = strdup(why);

			hb_funcs_job_finish(dead->job, HB_JOB_LOST, text,
					    text ? sizeof(why) - 1 : 0);
		}
		hb_funcs_job_release(dead->job);
		free(dead);
		dead = next;
		n++;
	}
	return n;
}

int hb_xbus_wait(hb_xbus_t *b, const hb_xbus_peer_t *to, hb_job_t *j, int timeout_ms)
{
	int64_t deadline = timeout_ms >= 0 ? hb_xbus_now_ms() + timeout_ms : -1;

	for (;;) {
		int slice = 100;
		hb_job_t *mine;

		if (deadline >= 0) {
			int64_t left = deadline - hb_xbus_now_ms();

			if (left <= 0) {
				hb_funcs_job_release(pending_take(b, 0, j));
				return -ETIMEDOUT;
			}
			slice = left < slice ? (int)left : slice;
		}
		if (hb_funcs_job_wait(j, slice) == 0)
			return 0;
		if (hb_xbus_peer_alive(b, to))
			continue;
		/* The owner died: end the job here unless its reply is being handled now. */
		mine = pending_take(b, 0, j);
		if (mine && hb_funcs_job_start(j))
			hb_funcs_job_finish(j, HB_JOB_LOST, NULL, 0);
		hb_funcs_job_release(mine);
	}
}

static void reply_msg(hb_xbus_t *b, uint32_t slot, uint32_t gen, uint64_t id, int status,
		      const void *data, size_t len, int dontwait)
{
	struct msg m = {.type = T_REPLY};
	int fd;

	if (!hb_xbus_attached(b))
		return;
	m.status = (uint8_t)status;
	m.gen = b->gen;
	m.id = id;
	m.plen = len > UINT32_MAX ? 0 : (uint32_t)len;
	if (dontwait) { /* the hub's forwarder sends it (or a send that does not wait) */
		if (hb_xbus_forward(b, slot, gen, 0, &m, NULL, data) < 0) {
			m.status = HB_JOB_LOST;
			m.plen = 0;
			hb_xbus_forward(b, slot, gen, 0, &m, NULL, NULL);
		}
		return;
	}
	if (hb_xbus_payload_prepare(m.plen, data, &fd) < 0) {
		m.status = HB_JOB_LOST;
		m.plen = 0;
	}
	hb_xbus_send_msg(b, slot, gen, &m, NULL, data, fd, dontwait);
	if (fd >= 0)
		close(fd);
}

void hb_xbus_send_reply(hb_xbus_t *b, uint32_t slot, uint32_t gen, uint64_t id, int status,
			const void *data, size_t len)
{
	reply_msg(b, slot, gen, id, status, data, len, 1);
}

static void send_result(hb_job_t *j, hb_xbus_t *b, int dontwait)
{
	uint64_t to, id;
	size_t len;
	const uint8_t *res = hb_funcs_job_result(j, &len);

	hb_funcs_job_reply(j, &to, &id);
	reply_msg(b, (uint32_t)(to >> 32), (uint32_t)to, id, (int)hb_funcs_job_status(j), res, len,
		  dontwait);
}

/* [worker that finished a job from another process] Sends the result back. */
static void reply_done(hb_job_t *j, void *arg)
{
	send_result(j, arg, hb_xbus_on_bus_thread);
}

void hb_xbus_reply_nowait(hb_job_t *j, void *arg)
{
	send_result(j, arg, 1);
}

void hb_xbus_on_job(hb_xbus_t *b, const struct msg *m, const char *name, const void *args)
{
	int rpc = m->kind == HB_JOB_RPC || m->kind == HB_JOB_RPC_CAST;
	hb_inbox_t *in = rpc ? NULL : hb_funcs_lookup(b->funcs, name, m->nlen);
	hb_job_t *j;
	int rc;

	if (m->kind > HB_JOB_RPC_CAST) {
		hb_funcs_inbox_release(in);
		return;
	}
	j = hb_funcs_job_new((hb_job_kind_t)m->kind, name, m->nlen, args, m->plen);
	if (!j) {
		hb_funcs_inbox_release(in);
		return;
	}
	if (wants_reply(m->kind))
		hb_funcs_job_set_done(j, reply_done, b, (uint64_t)m->slot << 32 | m->gen, m->id);
	/* "module:function" runs in this process's least busy worker, a name in its owner */
	rc = rpc ? hb_funcs_post_any(b->funcs, j) : in ? hb_funcs_post(in, j) : -ENOENT;
	if (rc < 0 && hb_funcs_job_start(j))
		hb_funcs_job_finish(j, HB_JOB_LOST, NULL, 0); /* replies LOST */
	hb_funcs_job_release(j);
	hb_funcs_inbox_release(in);
}

void hb_xbus_on_reply(hb_xbus_t *b, const struct msg *m, const void *res)
{
	hb_job_t *j = pending_take(b, m->id, NULL);
	void *copy = NULL;

	if (!j)
		return; /* the caller gave up */
	if (hb_funcs_job_start(j)) {
		if (m->plen && (copy = malloc(m->plen)))
			memcpy(copy, res, m->plen);
		hb_funcs_job_finish(
			j, m->status <= HB_JOB_LOST ? (hb_job_status_t)m->status : HB_JOB_LOST,
			copy, copy ? m->plen : 0);
	}
	hb_funcs_job_release(j);
}

void hb_xbus_fail_pending(hb_xbus_t *b)
{
	struct pending *p;

	pthread_mutex_lock(&b->pmu);
	p = b->pending;
	b->pending = NULL;
	pthread_mutex_unlock(&b->pmu);
	while (p) {
		struct pending *next = p->next;

		if (hb_funcs_job_start(p->job))
			hb_funcs_job_finish(p->job, HB_JOB_LOST, NULL, 0);
		hb_funcs_job_release(p->job);
		free(p);
		p = next;
	}
}
