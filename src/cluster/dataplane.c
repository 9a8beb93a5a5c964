/* dataplane.c: rpc_call/rpc_cast, call/cast and publish between nodes (node_priv.h).
 *
 * Caller's side: a worker hands a job (core/funcs.h) to hb_remote_t.send, which queues a command
 * and wakes the cluster thread; the thread picks the link to the node (the oldest authenticated
 * one, so that everything to one peer leaves in one order), gives the call the link's next
 * stream id, pushes a CALL frame and remembers the job as pending on that link. The REPLY with
 * the same stream id finishes the job (the worker sleeping on it wakes); a link that closes, a
 * member declared dead or left, finishes its pending jobs HB_JOB_LOST at once; a pending call
 * past its deadline (the caller's timeout + GRACE_MS) is dropped.
 *
 * Serving side: a CALL becomes a job posted to a worker (a registered name: its owner's inbox;
 * "module:function": the pool's least busy worker) with a done callback that queues it back
 * here (any thread) for the REPLY. rpc_allow is checked before anything is imported. With
 * worker processes (cl->c.bus, core/xbus.h) the cluster runs in one of them but serves for all:
 * "module:function" calls go round robin over the processes (hb_xbus_pick), a name not
 * registered here goes to the process that owns it, both over the bus with the same done
 * callback (the bus thread finishes the job with the other process's reply; a served job whose
 * process died is finished LOST by hb_xbus_check_pending), and the names announced to other
 * nodes are the bus's, every process's.
 *
 * Publish: every node announces its registered names and subscribed topics (TABLES) on each
 * link when it comes up and whenever they change; publish counts the matching subscribers of
 * every peer from those tables and queues one PUBLISH per peer with any (lane LANE_PUBLISH:
 * in order). A link whose queue is full drops its oldest queued publish (counted).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "cluster/node_priv.h"
#include "core/log.h"

#define GRACE_MS 1000	 /* a pending call outlives its caller's timeout by this much */
#define BUS_CHECK_MS 100 /* how often served calls in other processes are checked for a death */

enum { CMD_SEND, CMD_PUBLISH };

typedef struct pubmsg {
	_Atomic uint32_t refs;
	size_t len;
	uint8_t data[];
} pubmsg_t;

struct cmd {
	cmd_t *next;
	int type;
	hb_job_t *job;
	int reply, timeout_ms;
	pubmsg_t *pm;
	char node[HB_SWIM_MAX_NAME + 1];
};

struct served {
	served_t *next;
	hb_cluster_t *cl;
	uint64_t link;
	uint32_t stream;
	hb_job_t *job;
};

static void pm_release(pubmsg_t *pm)
{
	if (pm && atomic_fetch_sub(&pm->refs, 1) == 1)
		free(pm);
}

static void cmd_free(cmd_t *c)
{
	hb_funcs_job_release(c->job);
	pm_release(c->pm);
	free(c);
}

/* Finishes a job with a text (LOST, ERROR) unless the caller gave up or it finished already. */
static void job_fail(hb_job_t *j, hb_job_status_t st, const char *fmt, const char *arg)
{
	char buf[512];
	int n = snprintf(buf, sizeof buf, fmt, arg);
	char *text = n > 0 ? strdup(buf) : NULL;

	hb_funcs_job_finish(j, st, text, text ? strlen(text) : 0);
}

/* ---- links by peer name ---- */

typedef struct find_addr {
	const char *name;
	char addr[HB_SWIM_MAX_ADDR + 1];
	int live;
} find_addr_t;

static void match_name(const char *name, const char *addr, hb_swim_state_t st, uint64_t inc,
		       void *ud)
{
	find_addr_t *f = ud;

	(void)inc;
	if (!strcmp(name, f->name) && st <= HB_SWIM_SUSPECT) {
		snprintf(f->addr, sizeof f->addr, "%s", addr);
		f->live = 1;
	}
}

/* The oldest authenticated link to peer (links are prepended: the last match), else a dial to
 * its address while it is a live member; NULL when it is not one. */
static link_t *link_for(hb_cluster_t *cl, const char *peer)
{
	link_t *found = NULL;

	for (link_t *l = cl->links; l; l = l->next)
		if (l->state == L_UP && !strcmp(l->peer, peer))
			found = l;
	if (found)
		return found;
	find_addr_t f = {.name = peer};

	hb_swim_members(cl->swim, match_name, &f);
	return f.live ? hb_cl_link_to(cl, f.addr) : NULL;
}

static link_t *link_by_serial(hb_cluster_t *cl, uint64_t serial)
{
	for (link_t *l = cl->links; l; l = l->next)
		if (l->serial == serial)
			return l->state == L_CLOSING ? NULL : l;
	return NULL;
}

static uint32_t link_queue(hb_cluster_t *cl)
{
	return cl->c.link_queue ? cl->c.link_queue : MAX_QUEUED;
}

static uint32_t next_stream(link_t *l)
{
	uint32_t s = l->next_stream;

	l->next_stream += 2;
	if (l->next_stream < 3) /* wrapped: keep the parity, skip 0 */
		l->next_stream = l->outgoing ? 1 : 2;
	return s;
}

/* ---- the caller's side (cluster thread) ---- */

static void run_send(hb_cluster_t *cl, cmd_t *c, int64_t now)
{
	hb_job_t *j = c->job;
	hb_job_kind_t kind = hb_funcs_job_kind(j);
	int mfa = kind == HB_JOB_RPC || kind == HB_JOB_RPC_CAST;
	int is_call = (kind == HB_JOB_RPC || kind == HB_JOB_CALL) && c->reply;

	if (!hb_funcs_job_start(j)) /* the caller gave up already */
		return;
	link_t *l = link_for(cl, c->node);

	if (!l) {
		job_fail(j, HB_JOB_LOST, "node '%s' is not connected", c->node);
		return;
	}
	if (hb_frame_out_count(l->out) >= link_queue(cl)) {
		job_fail(j, HB_JOB_LOST, "the link to '%s' is full (cluster.link_queue)", c->node);
		return;
	}
	pending_t *p = is_call ? calloc(1, sizeof *p) : NULL;
	uint8_t stack[512];
	hb_cbuf_t b;
	size_t nlen, alen;
	const char *name = hb_funcs_job_name(j, &nlen);
	const uint8_t *args = hb_funcs_job_args(j, &alen);
	uint32_t stream = next_stream(l);
	int rc;

	hb_cbuf_init(&b, stack, sizeof stack);
	rc = is_call && !p ? -ENOMEM
			   : hb_rpc_encode_call(&b, mfa ? HB_RPC_KIND_MFA : HB_RPC_KIND_NAME, name,
						nlen, args, alen);
	if (rc == 0)
		rc = hb_frame_out_push(l->out, is_call ? HB_FRAME_CALL : HB_FRAME_CAST, stream,
				       is_call ? 0 : LANE_CAST, b.data, b.len);
	hb_cbuf_free(&b);
	if (rc < 0) {
		free(p);
		job_fail(j, HB_JOB_LOST, "cannot send to '%s': out of memory", c->node);
		return;
	}
	hb_cl_flush(l);
	if (!is_call) {
		hb_funcs_job_finish(j, HB_JOB_OK, NULL, 0);
		return;
	}
	atomic_fetch_add(&cl->calls_sent, 1);
	p->stream = stream;
	p->deadline = c->timeout_ms < 0 ? INT64_MAX : now + c->timeout_ms + GRACE_MS;
	p->job = j;
	c->job = NULL; /* the pending entry owns the reference now */
	p->next = l->pending;
	l->pending = p;
}

static void run_publish(hb_cluster_t *cl, cmd_t *c)
{
	link_t *l = link_for(cl, c->node);

	if (!l)
		return;
	uint32_t cap = link_queue(cl);

	while (hb_frame_out_count(l->out) >= cap && hb_frame_out_drop_oldest(l->out, LANE_PUBLISH))
		atomic_fetch_add(&cl->publish_dropped, 1);
	if (hb_frame_out_count(l->out) >= cap ||
	    hb_frame_out_push(l->out, HB_FRAME_PUBLISH, next_stream(l), LANE_PUBLISH, c->pm->data,
			      c->pm->len) < 0) {
		atomic_fetch_add(&cl->publish_dropped, 1);
		return;
	}
	atomic_fetch_add(&cl->publish_sent, 1);
	hb_cl_flush(l);
}

static void pending_fail_all(link_t *l, const char *why)
{
	for (pending_t *p = l->pending, *next; p; p = next) {
		next = p->next;
		job_fail(p->job, HB_JOB_LOST, why, l->peer);
		hb_funcs_job_release(p->job);
		free(p);
	}
	l->pending = NULL;
}

static void on_reply(link_t *l, const hb_frame_msg_t *m)
{
	pending_t **pp = &l->pending;

	while (*pp && (*pp)->stream != m->stream)
		pp = &(*pp)->next;
	if (!*pp) /* given up on already */
		return;
	pending_t *p = *pp;
	int status;
	const uint8_t *body;
	size_t blen;

	*pp = p->next;
	if (hb_rpc_decode_reply(m->data, m->len, &status, &body, &blen) < 0) {
		job_fail(p->job, HB_JOB_LOST, "node '%s' sent a malformed reply", l->peer);
	} else {
		void *copy = malloc(blen ? blen : 1);

		if (copy && blen)
			memcpy(copy, body, blen);
		if (!copy)
			job_fail(p->job, HB_JOB_LOST, "out of memory for the reply of '%s'",
				 l->peer);
		else
			hb_funcs_job_finish(p->job, status == HB_RPC_OK ? HB_JOB_OK : HB_JOB_ERROR,
					    copy, blen);
	}
	hb_funcs_job_release(p->job);
	free(p);
}

static void expire(hb_cluster_t *cl, int64_t now)
{
	for (link_t *l = cl->links; l; l = l->next) {
		for (pending_t **pp = &l->pending; *pp;) {
			pending_t *p = *pp;

			if (p->deadline > now) {
				pp = &p->next;
				continue;
			}
			*pp = p->next;
			job_fail(p->job, HB_JOB_LOST, "no reply from '%s' in time", l->peer);
			hb_funcs_job_release(p->job);
			free(p);
		}
	}
}

/* ---- the serving side ---- */

/* [worker thread] A served job finished: back to the cluster thread for the REPLY. */
static void served_done(hb_job_t *j, void *arg)
{
	served_t *s = arg;
	hb_cluster_t *cl = s->cl;

	(void)j;
	pthread_mutex_lock(&cl->qmu);
	s->next = cl->done;
	cl->done = s;
	atomic_fetch_sub(&cl->outstanding, 1);
	pthread_mutex_unlock(&cl->qmu);
	hb_ring_wakeup(hb_ring_wake_fd(&cl->ring));
}

static void reply(link_t *l, uint32_t stream, int status, const void *body, size_t blen)
{
	uint8_t stack[512];
	hb_cbuf_t b;

	hb_cbuf_init(&b, stack, sizeof stack);
	/* A reply that cannot be queued is lost: the caller's deadline ends its wait. */
	if (hb_rpc_encode_reply(&b, status, body, blen) == 0 &&
	    hb_frame_out_push(l->out, HB_FRAME_REPLY, stream, 0, b.data, b.len) == 0)
		hb_cl_flush(l);
	hb_cbuf_free(&b);
}

static void reply_text(link_t *l, uint32_t stream, const char *fmt, const char *a, size_t alen)
{
	char buf[HB_FUNCS_MAX_NAME + 256];
	int n = snprintf(buf, sizeof buf, fmt, (int)alen, a);

	reply(l, stream, HB_RPC_ERROR, buf, n > 0 ? (size_t)n : 0);
}

/* The process bus when this process is on it (processes > 1 share it), else NULL. */
static hb_xbus_t *bus_of(hb_cluster_t *cl)
{
	return cl->c.bus && hb_xbus_slot(cl->c.bus) >= 0 ? cl->c.bus : NULL;
}

/* Posts a job from another node to a worker of this node: "module:function" to the next worker
 * process in round robin (its least busy worker), this process when that one's bus queue is full
 * or it is gone; a registered name to its owner, here or in another process. The cluster thread
 * never blocks on the bus (hb_xbus_try_post). Returns 0, -ENOENT (no such name) or -ESHUTDOWN /
 * -EAGAIN (nobody can take it now). */
static int post_served(hb_cluster_t *cl, hb_job_t *j, int mfa, const char *name, size_t nlen)
{
	hb_xbus_t *bus = bus_of(cl);
	hb_xbus_peer_t peer;
	int rc;

	if (mfa) {
		if (bus && hb_xbus_pick(bus, &peer) == 0 && hb_xbus_try_post(bus, &peer, j) == 0)
			return 0;
		return cl->c.funcs ? hb_funcs_post_any(cl->c.funcs, j) : -ESHUTDOWN;
	}
	hb_inbox_t *in = cl->c.funcs ? hb_funcs_lookup(cl->c.funcs, name, nlen) : NULL;

	if (in) {
		rc = hb_funcs_post(in, j);
		hb_funcs_inbox_release(in);
		return rc;
	}
	if (!bus || hb_xbus_owner(bus, name, nlen, &peer) != 0)
		return -ENOENT; /* nobody, or this process (then it just went) */
	rc = hb_xbus_try_post(bus, &peer, j);
	return rc == -ECONNREFUSED ? -ENOENT : rc;
}

static void serve(link_t *l, const hb_frame_msg_t *m)
{
	hb_cluster_t *cl = l->cl;
	int is_call = m->type == HB_FRAME_CALL;
	hb_rpc_call_t c;

	if (hb_rpc_decode_call(m->data, m->len, &c) < 0) {
		hb_cl_link_close(l, "malformed call");
		return;
	}
	if (c.kind == HB_RPC_KIND_MFA &&
	    !hb_rpc_allowed((const char *const *)cl->allow, cl->nallow, c.name, c.nlen)) {
		atomic_fetch_add(&cl->calls_refused, 1);
		hb_warn("cluster: %s may not call %.*s (cluster.rpc_allow)", l->peer, (int)c.nlen,
			c.name);
		if (is_call)
			reply_text(l, m->stream, "refused by cluster.rpc_allow: %.*s", c.name,
				   c.nlen);
		return;
	}
	hb_job_kind_t kind = c.kind == HB_RPC_KIND_MFA ? (is_call ? HB_JOB_RPC : HB_JOB_RPC_CAST)
			     : is_call		       ? HB_JOB_CALL
						       : HB_JOB_CAST;
	hb_job_t *j = hb_funcs_job_new(kind, c.name, c.nlen, c.args, c.alen);
	served_t *s = is_call && j ? calloc(1, sizeof *s) : NULL;

	if (!j || (is_call && !s)) {
		if (is_call)
			reply_text(l, m->stream, "node out of memory calling %.*s", c.name, c.nlen);
		hb_funcs_job_release(j);
		return;
	}
	if (s) {
		s->cl = cl;
		s->link = l->serial;
		s->stream = m->stream;
		s->job = j;
		hb_funcs_job_set_done(j, served_done, s, 0, 0);
		atomic_fetch_add(&cl->outstanding, 1);
	}
	int rc = post_served(cl, j, c.kind == HB_RPC_KIND_MFA, c.name, c.nlen);

	atomic_fetch_add(&cl->calls_served, 1);
	if (rc == 0) {
		if (!s)
			hb_funcs_job_release(j); /* a cast: the worker's queue holds it */
		return;
	}
	/* not posted: the job never runs, so its done callback never comes */
	if (s) {
		atomic_fetch_sub(&cl->outstanding, 1);
		free(s);
		reply_text(l, m->stream,
			   rc == -ENOENT   ? "no function registered as '%.*s' on this node"
			   : rc == -EAGAIN ? "the worker process owning %.*s is too busy (its "
					     "process bus queue is full)"
					   : "no worker to run %.*s (the node is stopping)",
			   c.name, c.nlen);
	} else {
		hb_warn("cluster: cast from %s: no function registered as '%.*s'", l->peer,
			(int)c.nlen, c.name);
	}
	hb_funcs_job_release(j);
}

static void send_done(hb_cluster_t *cl)
{
	pthread_mutex_lock(&cl->qmu);
	served_t *s = cl->done;

	cl->done = NULL;
	pthread_mutex_unlock(&cl->qmu);
	while (s) {
		served_t *next = s->next;
		link_t *l = link_by_serial(cl, s->link);
		size_t len;
		const uint8_t *res = hb_funcs_job_result(s->job, &len);

		if (l) {
			switch (hb_funcs_job_status(s->job)) {
			case HB_JOB_OK:
				reply(l, s->stream, HB_RPC_OK, res, len);
				break;
			case HB_JOB_ERROR:
				reply(l, s->stream, HB_RPC_ERROR, res, len);
				break;
			case HB_JOB_LOST:
			case HB_JOB_PENDING:
				reply_text(l, s->stream, "%.*sthe call was lost: its worker exited",
					   "", 0);
				break;
			}
		}
		hb_funcs_job_release(s->job);
		free(s);
		s = next;
	}
}

/* ---- tables ---- */

static void send_tables(hb_cluster_t *cl, link_t *only)
{
	uint8_t stack[1024];
	hb_cbuf_t b;

	hb_cbuf_init(&b, stack, sizeof stack);
	if (hb_rpc_encode_tables_bus(&b, cl->c.funcs, bus_of(cl), cl->c.ps) == 0) {
		for (link_t *l = cl->links; l; l = l->next) {
			if (l->state != L_UP || (only && l != only))
				continue;
			if (hb_frame_out_push(l->out, HB_FRAME_TABLES, next_stream(l), LANE_CAST,
					      b.data, b.len) == 0)
				hb_cl_flush(l);
		}
	}
	hb_cbuf_free(&b);
}

static void announce_if_changed(hb_cluster_t *cl)
{
	/* both only grow: the sum moves when either does */
	uint64_t fg = (cl->c.funcs ? hb_funcs_generation(cl->c.funcs) : 0) +
		      hb_xbus_generation(bus_of(cl));
	uint64_t pg = (cl->c.ps ? hb_pubsub_generation(cl->c.ps) : 0) +
		      hb_xbus_topics_generation(bus_of(cl));

	if (cl->announced && fg == cl->funcs_gen && pg == cl->ps_gen)
		return;
	cl->announced = 1;
	cl->funcs_gen = fg;
	cl->ps_gen = pg;
	send_tables(cl, NULL);
}

/* ---- hooks from node.c and node_link.c ---- */

void hb_dp_input(link_t *l, const hb_frame_msg_t *m)
{
	hb_cluster_t *cl = l->cl;

	switch (m->type) {
	case HB_FRAME_CALL:
	case HB_FRAME_CAST:
		serve(l, m);
		break;
	case HB_FRAME_REPLY:
		on_reply(l, m);
		break;
	case HB_FRAME_PUBLISH: {
		const uint8_t *topic, *msg;
		size_t tlen, mlen;

		if (hb_rpc_decode_publish(m->data, m->len, &topic, &tlen, &msg, &mlen) < 0) {
			hb_cl_link_close(l, "malformed publish");
			return;
		}
		atomic_fetch_add(&cl->publish_received, 1);
		if (cl->c.ps)
			hb_pubsub_publish(cl->c.ps, topic, tlen, msg, mlen);
		/* and the other worker processes' subscribers (a full bus queue: dropped) */
		if (bus_of(cl)) {
			int missed = hb_xbus_publish_nowait(bus_of(cl), topic, tlen, msg, mlen);

			if (missed > 0)
				atomic_fetch_add(&cl->publish_dropped, (uint64_t)missed);
		}
		break;
	}
	case HB_FRAME_TABLES: {
		pthread_mutex_lock(&cl->tmu);
		int rc = hb_rpc_tables_update(cl->tables, l->peer, m->data, m->len);

		pthread_mutex_unlock(&cl->tmu);
		if (rc == -EBADMSG)
			hb_cl_link_close(l, "malformed tables");
		break;
	}
	}
}

void hb_dp_link_up(link_t *l)
{
	send_tables(l->cl, l);
}

void hb_dp_link_closed(link_t *l)
{
	pending_fail_all(l, "node '%s' went down (its link closed) before replying");
}

void hb_dp_member_gone(hb_cluster_t *cl, const char *name)
{
	pthread_mutex_lock(&cl->tmu);
	hb_rpc_tables_drop(cl->tables, name);
	pthread_mutex_unlock(&cl->tmu);
	for (link_t *l = cl->links, *next; l; l = next) {
		next = l->next;
		if (!strcmp(l->peer, name)) {
			pending_fail_all(l, "node '%s' is down (dead or left) before replying");
			hb_cl_link_close(l, NULL);
		}
	}
}

void hb_dp_member_join(hb_cluster_t *cl, const char *name, const char *addr)
{
	for (link_t *l = cl->links; l; l = l->next)
		if (l->state == L_UP && !strcmp(l->peer, name))
			return;
	hb_cl_link_to(cl, addr);
}

void hb_dp_pump(hb_cluster_t *cl, int64_t now)
{
	pthread_mutex_lock(&cl->qmu);
	cmd_t *c = cl->cmds;

	cl->cmds = cl->cmds_tail = NULL;
	pthread_mutex_unlock(&cl->qmu);
	while (c) {
		cmd_t *next = c->next;

		if (c->type == CMD_SEND)
			run_send(cl, c, now);
		else
			run_publish(cl, c);
		cmd_free(c);
		c = next;
	}
	/* calls served in another worker process that died: finished LOST (then replied) */
	if (bus_of(cl) && atomic_load(&cl->outstanding) > 0 && now >= cl->next_bus_check) {
		cl->next_bus_check = now + BUS_CHECK_MS;
		hb_xbus_check_pending(bus_of(cl));
	}
	send_done(cl);
	announce_if_changed(cl);
	expire(cl, now);
}

/* ---- hb_remote_t (any thread) ---- */

static int queue_cmd(hb_cluster_t *cl, cmd_t *c)
{
	pthread_mutex_lock(&cl->qmu);
	if (atomic_load(&cl->stop)) {
		pthread_mutex_unlock(&cl->qmu);
		return -ESHUTDOWN;
	}
	c->next = NULL;
	if (cl->cmds_tail)
		cl->cmds_tail->next = c;
	else
		cl->cmds = c;
	cl->cmds_tail = c;
	pthread_mutex_unlock(&cl->qmu);
	return 0;
}

static int r_connected(void *ctx, const char *node)
{
	hb_cluster_t *cl = ctx;
	int found = 0;

	pthread_mutex_lock(&cl->mu);
	for (int i = 0; i < cl->nlive && !found; i++)
		found = !strcmp(cl->live[i], node);
	pthread_mutex_unlock(&cl->mu);
	return found;
}

static int r_send(void *ctx, const char *node, hb_job_t *j, int reply, int timeout_ms)
{
	hb_cluster_t *cl = ctx;
	cmd_t *c = calloc(1, sizeof *c);

	if (!c)
		return -ENOMEM;
	c->type = CMD_SEND;
	c->job = j;
	c->reply = reply;
	c->timeout_ms = timeout_ms;
	snprintf(c->node, sizeof c->node, "%s", node);
	/* the command's reference: taken here, dropped by cmd_free or passed to a pending entry */
	hb_funcs_job_ref(j);
	int rc = queue_cmd(cl, c);

	if (rc < 0) {
		cmd_free(c);
		return rc;
	}
	hb_ring_wakeup(hb_ring_wake_fd(&cl->ring));
	return 0;
}

static int r_owner(void *ctx, const char *name, size_t len, char *node, size_t cap)
{
	hb_cluster_t *cl = ctx;

	pthread_mutex_lock(&cl->tmu);
	int rc = hb_rpc_tables_owner(cl->tables, name, len, node, cap);

	pthread_mutex_unlock(&cl->tmu);
	return rc;
}

typedef struct targets {
	char (*v)[HB_SWIM_MAX_NAME + 1];
	size_t n, cap;
	int err;
} targets_t;

static void add_target(const char *peer, uint32_t count, void *ud)
{
	targets_t *t = ud;

	(void)count;
	if (t->err)
		return;
	if (t->n == t->cap) {
		size_t cap = t->cap ? t->cap * 2 : 8;
		void *v = realloc(t->v, cap * sizeof *t->v);

		if (!v) {
			t->err = 1;
			return;
		}
		t->v = v;
		t->cap = cap;
	}
	snprintf(t->v[t->n++], sizeof t->v[0], "%s", peer);
}

static int r_publish(void *ctx, const void *topic, size_t tlen, const void *data, size_t len)
{
	hb_cluster_t *cl = ctx;
	char name[HB_PUBSUB_MAX_TOPIC + 1];
	targets_t t = {0};

	if (tlen == 0 || tlen > HB_PUBSUB_MAX_TOPIC)
		return -EINVAL;
	memcpy(name, topic, tlen);
	name[tlen] = 0;
	pthread_mutex_lock(&cl->tmu);
	uint64_t total = hb_rpc_tables_subscribers(cl->tables, name, add_target, &t);

	pthread_mutex_unlock(&cl->tmu);
	if (t.err || total == 0) {
		free(t.v);
		return t.err ? -ENOMEM : 0;
	}
	hb_cbuf_t b;
	pubmsg_t *pm = NULL;

	hb_cbuf_init(&b, NULL, 0);
	if (hb_rpc_encode_publish(&b, topic, tlen, data, len) == 0 &&
	    (pm = malloc(sizeof *pm + b.len))) {
		atomic_init(&pm->refs, 1);
		pm->len = b.len;
		memcpy(pm->data, b.data, b.len);
	}
	hb_cbuf_free(&b);
	int rc = pm ? 0 : -ENOMEM;

	/* one lock hold for every peer: publishes of one thread keep their order everywhere */
	pthread_mutex_lock(&cl->qmu);
	for (size_t i = 0; rc == 0 && i < t.n; i++) {
		cmd_t *c = calloc(1, sizeof *c);

		if (!c) {
			rc = -ENOMEM;
			break;
		}
		c->type = CMD_PUBLISH;
		atomic_fetch_add(&pm->refs, 1);
		c->pm = pm;
		snprintf(c->node, sizeof c->node, "%s", t.v[i]);
		if (cl->cmds_tail)
			cl->cmds_tail->next = c;
		else
			cl->cmds = c;
		cl->cmds_tail = c;
	}
	pthread_mutex_unlock(&cl->qmu);
	pm_release(pm);
	free(t.v);
	if (rc < 0)
		return rc;
	hb_ring_wakeup(hb_ring_wake_fd(&cl->ring));
	return total > INT32_MAX ? INT32_MAX : (int)total;
}

static void r_stats(void *ctx, hb_remote_stats_t *o)
{
	hb_cluster_t *cl = ctx;

	o->calls_sent = atomic_load(&cl->calls_sent);
	o->calls_served = atomic_load(&cl->calls_served);
	o->publish_sent = atomic_load(&cl->publish_sent);
	o->publish_received = atomic_load(&cl->publish_received);
	o->publish_dropped = atomic_load(&cl->publish_dropped);
	o->calls_refused = atomic_load(&cl->calls_refused);
}

/* ---- life ---- */

int hb_dp_init(hb_cluster_t *cl)
{
	pthread_mutex_init(&cl->qmu, NULL);
	pthread_mutex_init(&cl->tmu, NULL);
	cl->tables = hb_rpc_tables_new();
	cl->remote = (hb_remote_t){.ctx = cl,
				   .connected = r_connected,
				   .send = r_send,
				   .owner = r_owner,
				   .publish = r_publish,
				   .stats = r_stats};
	return cl->tables ? 0 : -ENOMEM;
}

int hb_dp_stop(hb_cluster_t *cl)
{
	/* stop is set: no command is queued any more; fail what is left */
	pthread_mutex_lock(&cl->qmu);
	cmd_t *c = cl->cmds;

	cl->cmds = cl->cmds_tail = NULL;
	pthread_mutex_unlock(&cl->qmu);
	while (c) {
		cmd_t *next = c->next;

		if (c->type == CMD_SEND && hb_funcs_job_start(c->job))
			job_fail(c->job, HB_JOB_LOST, "node '%s': this node's cluster stopped",
				 c->node);
		cmd_free(c);
		c = next;
	}
	/* served jobs still in workers call served_done, which uses the ring: wait for them */
	int64_t until = hb_cl_now_ms(cl) + 2000;

	while (atomic_load(&cl->outstanding) > 0 && hb_cl_now_ms(cl) < until) {
		hb_ring_wait(&cl->ring, 1);
		hb_ring_reap(&cl->ring);
		send_done(cl);
	}
	send_done(cl);
	return atomic_load(&cl->outstanding) > 0 ? -EBUSY : 0;
}

void hb_dp_free(hb_cluster_t *cl)
{
	hb_rpc_tables_free(cl->tables);
	pthread_mutex_destroy(&cl->qmu);
	pthread_mutex_destroy(&cl->tmu);
}

const hb_remote_t *hb_cluster_remote(hb_cluster_t *cl)
{
	return &cl->remote;
}
