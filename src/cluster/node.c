/* node.c: the cluster thread's loop and its control (see node.h): start and stop, the listener
 * socket, the loop that runs SWIM's timers and moves its messages onto links and its events to
 * the data plane and the live-member snapshot, seeds, leave. The links themselves (I/O, TLS,
 * handshake, frame dispatch) are node_link.c's; node_priv.h says who owns what. */
#include "cluster/node.h"
#include "cluster/node_priv.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <pthread.h>
#include <semaphore.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "cluster/auth.h"
#include "cluster/frame.h"
#include "core/log.h"
#include "core/ring.h"

int64_t hb_cl_now_ms(hb_cluster_t *cl)
{
	return (int64_t)(hb_ring_clock(&cl->ring) / 1000000u);
}

/* ---- membership ---- */

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

typedef struct live_acc {
	char **v;
	int n, cap, err;
} live_acc_t;

static void add_live(const char *name, const char *addr, hb_swim_state_t st, uint64_t inc, void *ud)
{
	live_acc_t *a = ud;
	(void)addr;
	(void)inc;
	if (st > HB_SWIM_SUSPECT || a->err)
		return;
	if (a->n == a->cap) {
		int cap = a->cap ? a->cap * 2 : 8;
		char **v = realloc(a->v, (size_t)cap * sizeof *v);
		if (!v) {
			a->err = 1;
			return;
		}
		a->v = v;
		a->cap = cap;
	}
	if (!(a->v[a->n] = strdup(name)))
		a->err = 1;
	else
		a->n++;
}

static void snapshot(hb_cluster_t *cl)
{
	live_acc_t a = {0};
	hb_swim_members(cl->swim, add_live, &a);
	if (a.err) {
		hb_cluster_names_free(a.v, a.n);
		return; /* keep the previous snapshot */
	}
	if (a.n) /* qsort(NULL, 0) is undefined */
		qsort(a.v, (size_t)a.n, sizeof *a.v, cmp_str);
	pthread_mutex_lock(&cl->mu);
	char **old = cl->live;
	int nold = cl->nlive;
	cl->live = a.v;
	cl->nlive = a.n;
	pthread_mutex_unlock(&cl->mu);
	/* what the other worker processes' nodes() list (a no-op unless this one is the hub) */
	if (cl->c.bus && hb_xbus_set_members(cl->c.bus, a.v, a.n) == -ENOSPC)
		hb_warn("cluster: %d members do not all fit in the process bus's member list "
			"(cluster_member_names_size): the other processes' nodes() lists only some",
			a.n);
	hb_cluster_names_free(old, nold);
}

/* Moves SWIM's output onto links and its events to the caller. */
static void pump(hb_cluster_t *cl)
{
	hb_swim_out_t *o;
	while ((o = hb_swim_pop_out(cl->swim))) {
		link_t *l = hb_cl_link_to(cl, o->addr);
		if (l && hb_frame_out_count(l->out) < MAX_QUEUED &&
		    hb_frame_out_push(l->out, HB_FRAME_SWIM, 0, 0, o->data, o->len) == 0)
			hb_cl_flush(l);
		free(o);
	}
	hb_swim_event_t ev;
	int changed = 0;
	while (hb_swim_pop_event(cl->swim, &ev)) {
		static const char *const names[] = {"join", "suspect", "alive", "dead", "leave"};
		hb_info("cluster: %s %s (%s, incarnation %llu)", names[ev.type], ev.name, ev.addr,
			(unsigned long long)ev.incarnation);
		if (ev.type == HB_SWIM_EV_JOIN)
			hb_dp_member_join(cl, ev.name, ev.addr);
		else if (ev.type == HB_SWIM_EV_DEAD || ev.type == HB_SWIM_EV_LEAVE)
			hb_dp_member_gone(cl, ev.name);
		if (cl->c.on_event)
			cl->c.on_event(&ev, cl->c.ud);
		changed = 1;
	}
	if (changed)
		snapshot(cl);
}

static void join_seeds(hb_cluster_t *cl, int64_t now)
{
	for (size_t i = 0; i < cl->nseeds; i++) {
		char host[256];
		const char *s = cl->seeds[i], *colon = strrchr(s, ':');
		if (!colon || (size_t)(colon - s) >= sizeof host)
			continue;
		size_t n = (size_t)(colon - s);
		if (s[0] == '[' && n >= 2) { /* [v6]:port */
			memcpy(host, s + 1, n - 2);
			host[n - 2] = 0;
		} else {
			memcpy(host, s, n);
			host[n] = 0;
		}
		struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *res = NULL;
		if (getaddrinfo(host, colon + 1, &hints, &res) != 0) {
			hb_warn("cluster: seed %s does not resolve", s);
			continue;
		}
		for (struct addrinfo *a = res; a; a = a->ai_next) {
			char addr[HB_SWIM_MAX_ADDR + 1];
			hb_cl_addr_format(a->ai_addr, addr, sizeof addr);
			hb_swim_join(cl->swim, now, addr);
		}
		freeaddrinfo(res);
	}
}

/* ---- the thread ---- */

static void housekeeping(hb_cluster_t *cl, int64_t now)
{
	uint32_t auth_ms = cl->c.auth_timeout_ms ? cl->c.auth_timeout_ms : 5000;
	for (link_t *l = cl->links, *next; l; l = next) {
		next = l->next;
		if ((l->state == L_AUTH || l->state == L_CONNECTING || l->state == L_TLS) &&
		    now - l->born > auth_ms)
			hb_cl_link_close(l, "not authenticated in time");
	}
	if (now >= cl->next_join) {
		cl->next_join = now + (cl->c.rejoin_ms ? cl->c.rejoin_ms : 5000);
		if (hb_swim_count(cl->swim, HB_SWIM_ALIVE) +
			    hb_swim_count(cl->swim, HB_SWIM_SUSPECT) ==
		    0)
			join_seeds(cl, now);
	}
	if (!cl->accept_armed && !atomic_load(&cl->stop))
		hb_cl_arm_accept(cl);
}

static void tick_cb(hb_ring_t *r, hb_ring_op_t *op, struct io_uring_cqe *cqe)
{
	(void)r;
	(void)op;
	(void)cqe; /* the loop does the work after every reap */
}

static int thread_init(hb_cluster_t *cl)
{
	hb_ring_config_t rc = {.entries = 256,
			       .tick_ms = TICK_MS,
			       .on_tick = tick_cb,
			       .tick_owner = cl,
			       .wake_fd = -1};
	int err = hb_ring_init(&cl->ring, &rc);
	if (err < 0)
		return err;
	hb_swim_config_t sc = cl->c.swim;
	uint8_t seed[HB_AUTH_NONCE_SIZE];
	sc.name = cl->name;
	sc.addr = cl->advertise;
	if (hb_auth_nonce(seed) == 0)
		memcpy(&sc.seed, seed, sizeof sc.seed);
	cl->swim = hb_swim_new(&sc, hb_cl_now_ms(cl));
	if (!cl->swim) {
		hb_ring_exit(&cl->ring);
		return -ENOMEM;
	}
	hb_cl_accept_start(cl);
	return 0;
}

/* Leaving: the "left" gossip goes out, then we wait until the links drained (bounded). */
static void drain_and_close(hb_cluster_t *cl)
{
	int64_t until = hb_cl_now_ms(cl) +
			(cl->leave ? (cl->c.leave_wait_ms ? cl->c.leave_wait_ms : 500) : 0);
	if (cl->leave) {
		hb_swim_leave(cl->swim, hb_cl_now_ms(cl));
		pump(cl);
	}
	for (;;) {
		int pending = 0;
		for (link_t *l = cl->links; l; l = l->next) /* links still connecting count too */
			pending |=
				l->state != L_CLOSING && (l->sending || hb_frame_out_count(l->out));
		if (!pending || hb_cl_now_ms(cl) >= until)
			break;
		hb_ring_reap(&cl->ring);
		pump(cl);
		hb_ring_wait(&cl->ring, 1);
	}
	for (link_t *l = cl->links, *next; l; l = next) {
		next = l->next;
		hb_cl_link_close(l, NULL);
	}
	if (cl->accept_armed)
		hb_ring_cancel(&cl->ring, &cl->op_accept);
	int64_t deadline = hb_cl_now_ms(cl) + 2000;
	while ((cl->links || cl->accept_armed) && hb_cl_now_ms(cl) < deadline) {
		hb_ring_wait(&cl->ring, 1);
		hb_ring_reap(&cl->ring);
	}
}

static void *thread_main(void *arg)
{
	hb_cluster_t *cl = arg;
	cl->start_rc = thread_init(cl);
	/* The other worker processes reach the node through this one (core/xbus.h). Made the hub
	 * here, before the first seed is dialled: a member that joins before this would be missing
	 * from the bus's member list (hb_xbus_set_members refuses a non-hub) until the next change,
	 * and the other processes' nodes() would leave it out. */
	if (cl->start_rc == 0 && cl->c.bus && hb_xbus_slot(cl->c.bus) >= 0)
		hb_xbus_set_hub(cl->c.bus, &cl->remote);
	sem_post(&cl->started);
	if (cl->start_rc < 0)
		return NULL;
	join_seeds(cl, hb_cl_now_ms(cl));
	cl->next_join = hb_cl_now_ms(cl) + (cl->c.rejoin_ms ? cl->c.rejoin_ms : 5000);
	while (!atomic_load(&cl->stop)) {
		int64_t now = hb_cl_now_ms(cl);
		hb_swim_tick(cl->swim, now);
		housekeeping(cl, now);
		pump(cl);
		hb_dp_pump(cl, now);
		hb_ring_reap(&cl->ring);
		pump(cl);
		hb_dp_pump(cl, hb_cl_now_ms(cl));
		hb_ring_wait(&cl->ring, 1);
	}
	drain_and_close(cl);
	if (hb_dp_stop(cl) < 0) {
		/* a worker still runs a call served for another node and will touch the ring */
		hb_warn("cluster: calls from other nodes still running at stop; not freeing");
		cl->busy_at_stop = 1;
		hb_tls_thread_cleanup();
		return NULL;
	}
	hb_swim_free(cl->swim);
	hb_ring_exit(&cl->ring);
	hb_tls_thread_cleanup();
	return NULL;
}

/* ---- control ---- */

static int listen_on(hb_cluster_t *cl)
{
	char spec[INET6_ADDRSTRLEN + 16];
	struct sockaddr_storage sa;
	socklen_t salen;
	snprintf(spec, sizeof spec, strchr(cl->bind_host, ':') ? "[%s]:%u" : "%s:%u", cl->bind_host,
		 cl->c.bind_port ? cl->c.bind_port : 1);
	if (hb_cl_addr_parse(spec, &sa, &salen) < 0)
		return -EINVAL;
	if (!cl->c.bind_port)
		((struct sockaddr_in *)&sa)->sin_port = 0; /* same offset in sockaddr_in6 */
	int fd = socket(sa.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	int one = 1;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
	if (bind(fd, (struct sockaddr *)&sa, salen) < 0 || listen(fd, 128) < 0) {
		int err = -errno;
		close(fd);
		return err;
	}
	salen = sizeof sa;
	getsockname(fd, (struct sockaddr *)&sa, &salen);
	cl->port = ntohs(((struct sockaddr_in *)&sa)->sin_port);
	cl->lfd = fd;
	return 0;
}

/* Without `advertise`: the bind address, or for a wildcard bind the first address the host
 * name resolves to (what a peer on the network would dial), else loopback. */
static void default_advertise(hb_cluster_t *cl)
{
	const char *h = cl->bind_host;
	char host[INET6_ADDRSTRLEN + 1] = "127.0.0.1";
	if (strcmp(h, "0.0.0.0") && strcmp(h, "::")) {
		snprintf(host, sizeof host, "%s", h);
	} else {
		char name[256];
		struct addrinfo hints = {.ai_family = AF_INET, .ai_socktype = SOCK_STREAM}, *res;
		if (gethostname(name, sizeof name) == 0 &&
		    getaddrinfo(name, NULL, &hints, &res) == 0) {
			inet_ntop(AF_INET, &((struct sockaddr_in *)res->ai_addr)->sin_addr, host,
				  sizeof host);
			freeaddrinfo(res);
		}
	}
	snprintf(cl->advertise, sizeof cl->advertise, strchr(host, ':') ? "[%s]:%u" : "%s:%u", host,
		 cl->port);
}

static void cluster_free(hb_cluster_t *cl)
{
	if (cl->busy_at_stop)
		return; /* the process is exiting: leave it to the workers still using it */
	hb_dp_free(cl);
	for (size_t i = 0; i < cl->nallow; i++)
		free(cl->allow[i]);
	free(cl->allow);
	if (cl->lfd >= 0)
		close(cl->lfd);
	for (size_t i = 0; i < cl->nseeds; i++)
		free(cl->seeds[i]);
	free(cl->seeds);
	hb_cluster_names_free(cl->live, cl->nlive);
	hb_tls_ctx_unref(cl->c.tls);
	pthread_mutex_destroy(&cl->mu);
	sem_destroy(&cl->started);
	memset(cl->cookie, 0, sizeof cl->cookie);
	free(cl);
}

int hb_cluster_start(const hb_cluster_config_t *c, hb_cluster_t **out)
{
	if (!c->node_name || !*c->node_name || strlen(c->node_name) > HB_SWIM_MAX_NAME ||
	    !c->cookie || !c->cookie_len || c->cookie_len > HB_AUTH_MAX_COOKIE)
		return -EINVAL;
	hb_cluster_t *cl = calloc(1, sizeof *cl);
	if (!cl)
		return -ENOMEM;
	cl->lfd = -1;
	cl->c = *c;
	if (c->tls)
		cl->c.tls = hb_tls_ctx_ref(c->tls);
	pthread_mutex_init(&cl->mu, NULL);
	sem_init(&cl->started, 0, 0);
	int dprc = hb_dp_init(cl);
	snprintf(cl->name, sizeof cl->name, "%s", c->node_name);
	snprintf(cl->bind_host, sizeof cl->bind_host, "%s",
		 c->bind_host ? c->bind_host : "0.0.0.0");
	memcpy(cl->cookie, c->cookie, c->cookie_len);
	cl->c.cookie = cl->cookie;
	cl->seeds = calloc(c->nseeds ? c->nseeds : 1, sizeof *cl->seeds);
	int rc = cl->seeds && dprc == 0 ? 0 : -ENOMEM;
	for (size_t i = 0; rc == 0 && i < c->nseeds; i++, cl->nseeds++)
		if (!(cl->seeds[i] = strdup(c->seeds[i])))
			rc = -ENOMEM;
	cl->allow = calloc(c->nrpc_allow ? c->nrpc_allow : 1, sizeof *cl->allow);
	if (!cl->allow)
		rc = -ENOMEM;
	for (size_t i = 0; rc == 0 && i < c->nrpc_allow; i++, cl->nallow++)
		if (!(cl->allow[i] = strdup(c->rpc_allow[i])))
			rc = -ENOMEM;
	if (rc == 0)
		rc = listen_on(cl);
	if (rc < 0)
		goto fail;
	if (c->advertise && *c->advertise)
		snprintf(cl->advertise, sizeof cl->advertise, "%s", c->advertise);
	else
		default_advertise(cl);
	rc = -pthread_create(&cl->th, NULL, thread_main, cl);
	if (rc < 0)
		goto fail;
	sem_wait(&cl->started);
	if (cl->start_rc < 0) {
		rc = cl->start_rc;
		pthread_join(cl->th, NULL);
		goto fail;
	}
	*out = cl; /* (the thread made this process the bus's hub) */
	return 0;
fail:
	cluster_free(cl);
	return rc;
}

int hb_cluster_stop(hb_cluster_t *cl, int leave)
{
	if (!cl)
		return 0;
	/* first: the other processes' calls now end LOST at once (waits for the bus thread) */
	if (cl->c.bus)
		hb_xbus_set_hub(cl->c.bus, NULL);
	cl->leave = leave;
	atomic_store(&cl->stop, 1);
	hb_ring_wakeup(hb_ring_wake_fd(&cl->ring));
	pthread_join(cl->th, NULL);
	int busy = cl->busy_at_stop ? 1 : 0;
	cluster_free(cl);
	return busy;
}

uint16_t hb_cluster_port(const hb_cluster_t *cl)
{
	return cl->port;
}

int hb_cluster_nodes(hb_cluster_t *cl, char ***names)
{
	pthread_mutex_lock(&cl->mu);
	int n = cl->nlive;
	char **v = malloc((size_t)(n ? n : 1) * sizeof *v);
	int i = 0;
	for (; v && i < n; i++)
		if (!(v[i] = strdup(cl->live[i])))
			break;
	pthread_mutex_unlock(&cl->mu);
	if (!v || i < n) {
		hb_cluster_names_free(v, i);
		return -ENOMEM;
	}
	*names = v;
	return n;
}

void hb_cluster_names_free(char **names, int n)
{
	for (int i = 0; i < n; i++)
		free(names[i]);
	free(names);
}

int hb_cluster_start_config(const hb_config_t *cfg, struct hb_tls_ctx *tls, hb_cluster_event_fn fn,
			    void *ud, hb_funcs_t *funcs, hb_pubsub_t *ps, hb_xbus_t *bus,
			    hb_cluster_t **out)
{
	hb_bind_t b;
	const char *why = NULL;
	char name[HB_SWIM_MAX_NAME + 1], host[200];
	if (!cfg->cluster_bind || hb_config_parse_bind(cfg->cluster_bind, &b, &why) < 0 ||
	    !cfg->cluster_cookie)
		return -EINVAL;
	if (cfg->node_name) {
		snprintf(name, sizeof name, "%s", cfg->node_name);
	} else {
		if (gethostname(host, sizeof host) < 0)
			snprintf(host, sizeof host, "localhost");
		host[sizeof host - 1] = 0;
		snprintf(name, sizeof name, "hornbeam@%s", host);
	}
	hb_cluster_config_t c = {.node_name = name,
				 .bind_host = b.host,
				 .bind_port = b.port,
				 .advertise = cfg->cluster_advertise,
				 .seeds = (const char *const *)cfg->cluster_seeds,
				 .nseeds = cfg->ncluster_seeds,
				 .cookie = cfg->cluster_cookie,
				 .cookie_len = strlen(cfg->cluster_cookie),
				 .max_frame_size = (uint32_t)cfg->cluster_max_frame_size,
				 .on_event = fn,
				 .ud = ud,
				 .funcs = funcs,
				 .ps = ps,
				 .bus = bus,
				 .rpc_allow = (const char *const *)cfg->cluster_rpc_allow,
				 .nrpc_allow = cfg->ncluster_rpc_allow,
				 .link_queue = (uint32_t)cfg->cluster_link_queue};
	c.swim.probe_interval_ms = (uint32_t)cfg->cluster_probe_interval_ms;
	c.swim.probe_timeout_ms = (uint32_t)cfg->cluster_probe_timeout_ms;
	c.swim.indirect_checks = (uint32_t)cfg->cluster_indirect_checks;
	c.tls = tls; /* hb_cluster_start takes a reference of its own */
	return hb_cluster_start(&c, out);
}
