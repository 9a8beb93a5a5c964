/* xbus.c: the process bus (xbus.h): the shared region, the slots, sending, publish, the bus
 * thread, attach and detach (the name table and calls: xbus_call.c).
 *
 * Acknowledgement cell word (64 bits): token (24) | peers still to answer (8) | total (32).
 * The publisher owns the cell while its bit is set in its slot's `used` map; it sets the word to
 * (token, npeers, 0), sends, and waits until the middle field is 0 or its deadline passes, then
 * swaps in (token, 0, 0): an answer is added only by a compare-and-swap that sees the same
 * token and a non-zero count, so a late answer changes nothing and the next use of the cell
 * (token + 1) cannot be confused with it.
 */
#include "core/xbus.h"

#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "core/futex.h"
#include "core/xbus_priv.h"

_Thread_local int hb_xbus_on_bus_thread;

/* ---- helpers ---- */

uint64_t hb_xbus_fnv(const void *p, size_t n)
{
	const uint8_t *b = p;
	uint64_t h = 0xcbf29ce484222325ull;

	for (size_t i = 0; i < n; i++)
		h = (h ^ b[i]) * 0x100000001b3ull;
	return h;
}

int64_t hb_xbus_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

struct name *hb_xbus_name_table(struct region *r)
{
	return (struct name *)((char *)r + r->names_off);
}

int hb_xbus_attached(const hb_xbus_t *b)
{
	return b && b->pid != 0 && b->pid == getpid();
}

void hb_xbus_lock_names(struct region *r)
{
	if (pthread_mutex_lock(&r->mu) == EOWNERDEAD)
		pthread_mutex_consistent(&r->mu); /* entries are consistent at every step */
}

static int addr_of(const struct region *r, uint32_t slot, uint32_t gen, struct sockaddr_un *a)
{
	int n;

	memset(a, 0, sizeof(*a));
	a->sun_family = AF_UNIX;
	n = snprintf(a->sun_path + 1, sizeof(a->sun_path) - 1, "hornbeam-xbus-%016llx-%u-%u",
		     (unsigned long long)r->id, slot, gen);
	return (int)(offsetof(struct sockaddr_un, sun_path) + 1 + (size_t)n);
}

/* The owner (slot, gen) is the live process in that slot. */
int hb_xbus_owner_live(struct region *r, uint32_t slot, uint32_t gen)
{
	return slot < r->max_procs && atomic_load(&r->slots[slot].state) == SLOT_LIVE &&
	       atomic_load(&r->slots[slot].gen) == gen;
}

/* ---- region ---- */

hb_xbus_t *hb_xbus_create(const hb_xbus_opts_t *o)
{
	hb_xbus_opts_t d = o ? *o : (hb_xbus_opts_t){0};
	pthread_mutexattr_t ma;
	struct region *r;
	hb_xbus_t *b;
	size_t off, len, moff;

	if (!d.max_procs)
		d.max_procs = HB_XBUS_DEFAULT_PROCS;
	if (!d.max_names)
		d.max_names = HB_XBUS_DEFAULT_NAMES;
	if (d.timeout_ms <= 0)
		d.timeout_ms = HB_XBUS_DEFAULT_TIMEOUT_MS;
	if (!d.members_bytes)
		d.members_bytes = HB_XBUS_DEFAULT_MEMBERS;
	if (!d.forward_queue)
		d.forward_queue = HB_XBUS_DEFAULT_FORWARD;
	if (d.max_procs > HB_XBUS_MAX_PROCS || d.max_names > (1u << 20) ||
	    d.members_bytes > HB_XBUS_MAX_MEMBERS)
		return NULL;
	off = sizeof(struct region) + d.max_procs * sizeof(struct slot);
	off = (off + 63) & ~(size_t)63;
	moff = off + d.max_names * sizeof(struct name);
	len = moff + d.members_bytes;
	b = calloc(1, sizeof(*b));
	if (!b)
		return NULL;
	r = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (r == MAP_FAILED) {
		free(b);
		return NULL;
	}
	r->magic = MAGIC;
	r->max_procs = d.max_procs;
	r->max_names = d.max_names;
	r->timeout_ms = d.timeout_ms;
	r->names_off = off;
	r->members_off = moff;
	r->members_cap = d.members_bytes;
	r->fwd_cap = d.forward_queue;
	if (getrandom(&r->id, sizeof(r->id), 0) != sizeof(r->id))
		r->id = hb_xbus_fnv(&r, sizeof(r)) ^ (uint64_t)getpid() ^
			(uint64_t)hb_xbus_now_ms();
	pthread_mutexattr_init(&ma);
	pthread_mutexattr_setpshared(&ma, PTHREAD_PROCESS_SHARED);
	pthread_mutexattr_setrobust(&ma, PTHREAD_MUTEX_ROBUST);
	pthread_mutex_init(&r->mu, &ma);
	pthread_mutex_init(&r->mmu, &ma);
	pthread_mutexattr_destroy(&ma);
	b->r = r;
	b->maplen = len;
	b->rfd = b->sfd = -1;
	pthread_mutex_init(&b->pmu, NULL);
	if (hb_xbus_hub_init(b) < 0) {
		munmap(r, len);
		pthread_mutex_destroy(&b->pmu);
		free(b);
		return NULL;
	}
	return b;
}

void hb_xbus_destroy(hb_xbus_t *b)
{
	if (!b)
		return;
	hb_xbus_detach(b);
	hb_xbus_hub_free(b);
	munmap(b->r, b->maplen);
	pthread_mutex_destroy(&b->pmu);
	free(b);
}

int hb_xbus_slot(const hb_xbus_t *b)
{
	return hb_xbus_attached(b) ? (int)b->slot : -1;
}

int hb_xbus_pick(hb_xbus_t *b, hb_xbus_peer_t *out)
{
	struct region *r;
	uint32_t top, start;

	if (!hb_xbus_attached(b))
		return -ENOTCONN;
	r = b->r;
	top = atomic_load(&r->top);
	start = top ? atomic_fetch_add(&b->rr, 1) % top : 0;
	for (uint32_t k = 0; k < top; k++) {
		uint32_t i = (start + k) % top;
		struct slot *s = &r->slots[i];

		if (atomic_load(&s->state) != SLOT_LIVE)
			continue;
		out->slot = i;
		out->gen = i == b->slot ? b->gen : atomic_load(&s->gen);
		return i == b->slot;
	}
	out->slot = b->slot;
	out->gen = b->gen;
	return 1;
}

uint64_t hb_xbus_generation(hb_xbus_t *b)
{
	return b ? atomic_load(&b->r->names_gen) : 0;
}

int hb_xbus_peers(hb_xbus_t *b)
{
	int n = 0;

	for (uint32_t i = 0; b && i < atomic_load(&b->r->top); i++)
		if (atomic_load(&b->r->slots[i].state) == SLOT_LIVE &&
		    !(hb_xbus_attached(b) && i == b->slot))
			n++;
	return n;
}

/* [names lock] Drops the names owned by slot (any generation but the live one's, or all). */
static void drop_names(struct region *r, uint32_t slot, int all)
{
	struct name *t = hb_xbus_name_table(r);

	for (uint32_t i = 0; i < r->max_names; i++)
		if (t[i].used && t[i].slot == slot &&
		    (all || !hb_xbus_owner_live(r, slot, t[i].gen)))
			t[i].used = 0;
}

static void free_slot(struct region *r, uint32_t i)
{
	hb_xbus_lock_names(r);
	drop_names(r, i, 1);
	pthread_mutex_unlock(&r->mu);
	atomic_store(&r->slots[i].pid, 0);
	if (atomic_exchange(&r->slots[i].state, SLOT_FREE) == SLOT_LIVE)
		atomic_fetch_sub(&r->nlive, 1);
	atomic_fetch_add(&r->names_gen, 1);
}

void hb_xbus_reap(hb_xbus_t *b, pid_t pid)
{
	for (uint32_t i = 0; b && pid > 0 && i < b->r->max_procs; i++) {
		struct slot *s = &b->r->slots[i];

		if (atomic_load(&s->state) != SLOT_FREE && atomic_load(&s->pid) == pid)
			free_slot(b->r, i);
	}
}

/* ---- sending ---- */

/* A memfd holding data[0..len), or -errno. */
static int payload_fd(const void *data, size_t len)
{
	int fd = memfd_create("hornbeam-xbus", MFD_CLOEXEC);
	const char *p = data;

	if (fd < 0)
		return -errno;
	while (len > 0) {
		ssize_t n = write(fd, p, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			int e = n < 0 ? errno : EIO;

			close(fd);
			return -e;
		}
		p += n;
		len -= (size_t)n;
	}
	return fd;
}

/* Sends one datagram; the payload goes inline when fd < 0. Returns 0 or -errno (-ETIMEDOUT
 * when the peer's queue stayed full, -ECONNREFUSED when nobody has that address). */
int hb_xbus_send_msg(hb_xbus_t *b, uint32_t slot, uint32_t gen, struct msg *m, const void *name,
		     const void *payload, int fd, int dontwait)
{
	struct sockaddr_un a;
	struct iovec iov[3];
	union {
		struct cmsghdr h;
		char buf[CMSG_SPACE(sizeof(int))];
	} c;
	struct msghdr mh = {.msg_name = &a, .msg_iov = iov, .msg_iovlen = 0};
	ssize_t n;

	mh.msg_namelen = (socklen_t)addr_of(b->r, slot, gen, &a);
	m->magic = MAGIC;
	m->slot = b->slot;
	m->has_fd = fd >= 0;
	iov[mh.msg_iovlen++] = (struct iovec){m, sizeof(*m)};
	if (m->nlen)
		iov[mh.msg_iovlen++] = (struct iovec){(void *)name, m->nlen};
	if (fd < 0 && m->plen)
		iov[mh.msg_iovlen++] = (struct iovec){(void *)payload, m->plen};
	if (fd >= 0) {
		memset(&c, 0, sizeof(c));
		mh.msg_control = c.buf;
		mh.msg_controllen = sizeof(c.buf);
		c.h.cmsg_level = SOL_SOCKET;
		c.h.cmsg_type = SCM_RIGHTS;
		c.h.cmsg_len = CMSG_LEN(sizeof(int));
		memcpy(CMSG_DATA(&c.h), &fd, sizeof(int));
	}
	do
		n = sendmsg(b->sfd, &mh, MSG_NOSIGNAL | (dontwait ? MSG_DONTWAIT : 0));
	while (n < 0 && errno == EINTR);
	if (n >= 0) {
		atomic_fetch_add_explicit(&b->sent, 1, memory_order_relaxed);
		return 0;
	}
	atomic_fetch_add_explicit(&b->send_errors, 1, memory_order_relaxed);
	if (errno == EAGAIN)
		return -ETIMEDOUT;
	if (errno == ENOENT)
		return -ECONNREFUSED;
	return -errno;
}

/* The payload as send_msg wants it: inline (fd -1) or in a new memfd. */
int hb_xbus_payload_prepare(size_t len, const void *data, int *fd)
{
	*fd = -1;
	if (len <= HB_XBUS_INLINE_MAX)
		return 0;
	*fd = payload_fd(data, len);
	return *fd < 0 ? *fd : 0;
}

/* 1 while the process in (slot, gen) still has its socket. */
int hb_xbus_peer_alive(hb_xbus_t *b, const hb_xbus_peer_t *p)
{
	struct msg m = {.type = T_PING, .gen = b->gen};

	if (!hb_xbus_owner_live(b->r, p->slot, p->gen))
		return 0;
	return hb_xbus_send_msg(b, p->slot, p->gen, &m, NULL, NULL, -1, 1) != -ECONNREFUSED;
}

/* ---- publish ---- */

static int cell_take(struct slot *s)
{
	for (;;) {
		for (uint32_t k = 0; k < CELLS / 64; k++) {
			uint64_t v = atomic_load(&s->used[k]);

			while (~v) {
				int bit = __builtin_ctzll(~v);

				if (atomic_compare_exchange_weak(&s->used[k], &v,
								 v | (1ull << bit)))
					return (int)(k * 64 + (uint32_t)bit);
			}
		}
		sched_yield(); /* more threads publishing at once than cells */
	}
}

static void cell_free(struct slot *s, int c)
{
	atomic_fetch_and(&s->used[c / 64], ~(1ull << (c % 64)));
}

#define W_TOKEN(w) ((uint32_t)((w) >> 40))
#define W_LEFT(w) ((uint32_t)(((w) >> 32) & 0xff))
#define W_MAKE(tok, left, total)                                                                   \
	(((uint64_t)((tok)&0xffffff) << 40) | ((uint64_t)(left) << 32) | (uint64_t)(total))

/* Adds an answer to cell c of slot (if the token still matches). */
static void cell_answer(struct region *r, uint32_t slot, uint32_t c, uint32_t token, uint32_t n)
{
	struct cell *cl;
	uint64_t w, nw;

	if (slot >= r->max_procs || c >= CELLS) /* NO_CELL: nobody waits */
		return;
	cl = &r->slots[slot].cells[c];
	w = atomic_load(&cl->word);
	do {
		uint32_t total = (uint32_t)w;

		if (W_TOKEN(w) != token || W_LEFT(w) == 0)
			return;
		total = total > UINT32_MAX - n ? UINT32_MAX : total + n;
		nw = W_MAKE(token, W_LEFT(w) - 1, total);
	} while (!atomic_compare_exchange_weak(&cl->word, &w, nw));
	atomic_fetch_add(&cl->seq, 1);
	hb_futex_wake_shared(&cl->seq, INT_MAX);
}

int hb_xbus_publish(hb_xbus_t *b, const void *topic, size_t tlen, const void *data, size_t len)
{
	return hb_xbus_publish_ex(b, topic, tlen, data, len, 0);
}

int hb_xbus_publish_ex(hb_xbus_t *b, const void *topic, size_t tlen, const void *data, size_t len,
		       int via_hub)
{
	struct region *r;
	struct slot *me;
	struct cell *cl;
	uint32_t peers[HB_XBUS_MAX_PROCS], gens[HB_XBUS_MAX_PROCS], np = 0, token;
	struct msg m = {.type = T_PUB};
	int64_t deadline;
	int c, fd, rc;
	uint64_t w, hub;

	if (tlen == 0 || tlen > HB_PUBSUB_MAX_TOPIC || memchr(topic, '\0', tlen) ||
	    len > UINT32_MAX)
		return -EINVAL;
	if (!hb_xbus_attached(b) || atomic_load(&b->r->nlive) <= 1)
		return 0;
	r = b->r;
	for (uint32_t i = 0; i < atomic_load(&r->top); i++) {
		if (i != b->slot && atomic_load(&r->slots[i].state) == SLOT_LIVE) {
			gens[np] = atomic_load(&r->slots[i].gen);
			peers[np++] = i;
		}
	}
	if (np == 0)
		return 0;
	if ((rc = hb_xbus_payload_prepare(len, data, &fd)) < 0)
		return rc;
	me = &r->slots[b->slot];
	c = cell_take(me);
	cl = &me->cells[c];
	token = (W_TOKEN(atomic_load(&cl->word)) + 1) & 0xffffff;
	atomic_store(&cl->word, W_MAKE(token, np, 0));
	m.gen = b->gen;
	m.cell = (uint32_t)c;
	m.token = token;
	m.nlen = (uint32_t)tlen;
	m.plen = (uint32_t)len;
	hub = via_hub ? atomic_load(&r->hub) : 0;
	for (uint32_t i = 0; i < np; i++) {
		/* to the hub: and to the other nodes (their count comes back in its answer) */
		m.kind = hub == ((uint64_t)(peers[i] + 1) << 32 | gens[i]) ? PUB_VIA_HUB : 0;
		if (hb_xbus_send_msg(b, peers[i], gens[i], &m, topic, data, fd, 0) < 0)
			cell_answer(r, b->slot, (uint32_t)c, token, 0);
	}
	if (fd >= 0)
		close(fd);
	deadline = hb_xbus_now_ms() + r->timeout_ms;
	for (;;) {
		uint32_t seen = atomic_load(&cl->seq);
		int64_t left;

		if (W_LEFT(atomic_load(&cl->word)) == 0 ||
		    (left = deadline - hb_xbus_now_ms()) <= 0)
			break;
		hb_futex_wait_shared(&cl->seq, seen, (int)left);
	}
	w = atomic_exchange(&cl->word, W_MAKE(token, 0, 0));
	cell_free(me, c);
	return (int)((uint32_t)w > INT_MAX ? INT_MAX : (uint32_t)w);
}

/* ---- the bus thread ---- */

/* The payload of a received message: in the datagram, or read from its memfd (malloc'd into
 * *owned). NULL when it cannot be read. */
static const void *payload_get(const struct msg *m, const char *inl, size_t got, int fd,
			       void **owned)
{
	struct stat st;
	size_t off = 0;
	char *p;

	*owned = NULL;
	if (!m->has_fd)
		return got == (size_t)m->plen ? inl : NULL;
	if (fd < 0 || fstat(fd, &st) < 0 || (uint64_t)st.st_size < m->plen)
		return NULL;
	p = malloc(m->plen ? m->plen : 1);
	while (p && off < m->plen) {
		ssize_t n = pread(fd, p + off, m->plen - off, (off_t)off);

		if (n <= 0) {
			free(p);
			return NULL;
		}
		off += (size_t)n;
	}
	*owned = p;
	return p;
}

/* Checks a datagram: our magic, a known type, and a sender that is this user's process in the
 * slot it names. */
static int msg_ok(hb_xbus_t *b, const struct msg *m, size_t got, const struct ucred *cr)
{
	struct region *r = b->r;

	if (got < sizeof(*m) || m->magic != MAGIC || !cr || cr->uid != geteuid() ||
	    m->slot >= r->max_procs || m->nlen > HB_PUBSUB_MAX_TOPIC)
		return 0;
	if (m->type == T_STOP)
		return cr->pid == b->pid;
	return atomic_load(&r->slots[m->slot].pid) == cr->pid;
}

/* Receives and handles one datagram. Returns 0, or 1 on T_STOP. */
static int handle_one(hb_xbus_t *b, char *buf)
{
	union {
		struct cmsghdr h;
		char c[CMSG_SPACE(sizeof(struct ucred)) + CMSG_SPACE(4 * sizeof(int))];
	} ctl;
	struct iovec iov = {buf, RECV_MAX};
	struct msghdr mh = {.msg_iov = &iov,
			    .msg_iovlen = 1,
			    .msg_control = ctl.c,
			    .msg_controllen = sizeof(ctl.c)};
	struct ucred *cr = NULL;
	const struct msg *m = (const struct msg *)buf;
	const void *payload;
	void *owned;
	int fd = -1, stop = 0;
	ssize_t n = recvmsg(b->rfd, &mh, MSG_CMSG_CLOEXEC);

	if (n < 0)
		return errno == EINTR || errno == EAGAIN ? 0 : 1;
	for (struct cmsghdr *h = CMSG_FIRSTHDR(&mh); h; h = CMSG_NXTHDR(&mh, h)) {
		if (h->cmsg_level == SOL_SOCKET && h->cmsg_type == SCM_CREDENTIALS)
			cr = (struct ucred *)CMSG_DATA(h);
		if (h->cmsg_level == SOL_SOCKET && h->cmsg_type == SCM_RIGHTS) {
			size_t k = (h->cmsg_len - CMSG_LEN(0)) / sizeof(int);

			for (size_t i = 0; i < k; i++) {
				int f;

				memcpy(&f, CMSG_DATA(h) + i * sizeof(int), sizeof(int));
				if (fd < 0 && i == 0)
					fd = f;
				else
					close(f);
			}
		}
	}
	atomic_fetch_add_explicit(&b->received, 1, memory_order_relaxed);
	if (!msg_ok(b, m, (size_t)n, cr) || (size_t)n < sizeof(*m) + m->nlen) {
		atomic_fetch_add_explicit(&b->rejected, 1, memory_order_relaxed);
		goto out;
	}
	payload = payload_get(m, buf + sizeof(*m) + m->nlen, (size_t)n - sizeof(*m) - m->nlen, fd,
			      &owned);
	switch (m->type) {
	case T_PUB: {
		int k = payload ? hb_pubsub_publish(b->ps, buf + sizeof(*m), m->nlen, payload,
						    m->plen)
				: 0;
		int rn = payload && m->kind == PUB_VIA_HUB
				 ? hb_xbus_hub_publish(b, buf + sizeof(*m), m->nlen, payload,
						       m->plen)
				 : 0;

		k = k > 0 ? k : 0;
		k += rn > 0 && rn <= INT_MAX - k ? rn : 0;
		cell_answer(b->r, m->slot, m->cell, m->token, (uint32_t)k);
		break;
	}
	case T_JOB:
		if (payload)
			hb_xbus_on_job(b, m, buf + sizeof(*m), payload);
		break;
	case T_REPLY:
		hb_xbus_on_reply(b, m, payload ? payload : "");
		break;
	case T_RJOB:
		if (payload)
			hb_xbus_on_rjob(b, m, buf + sizeof(*m), payload);
		break;
	case T_QUERY:
		hb_xbus_on_query(b, m, buf + sizeof(*m));
		break;
	case T_TOPICS:
		if (payload)
			hb_xbus_on_topics(b, m, payload);
		break;
	case T_STOP:
		stop = 1;
		break;
	default: /* T_PING */
		break;
	}
	free(owned);
out:
	if (fd >= 0)
		close(fd);
	return stop;
}

static void *bus_main(void *arg)
{
	hb_xbus_t *b = arg;
	char *buf = malloc(RECV_MAX);

	hb_xbus_on_bus_thread = 1;
	while (buf && !handle_one(b, buf))
		hb_xbus_tick(b);
	free(buf);
	return NULL;
}

/* ---- attach / detach ---- */

/* Claims a free slot, or one whose process is gone (not a zombie: the master reaps those). */
static int claim(struct region *r)
{
	for (uint32_t i = 0; i < r->max_procs; i++) {
		struct slot *s = &r->slots[i];
		uint32_t st = atomic_load(&s->state);
		pid_t pid = atomic_load(&s->pid);

		if (st == SLOT_LIVE && pid > 0 && kill(pid, 0) < 0 && errno == ESRCH) {
			uint32_t exp = SLOT_LIVE;

			if (atomic_compare_exchange_strong(&s->state, &exp, SLOT_CLAIMED)) {
				atomic_fetch_sub(&r->nlive, 1);
				atomic_fetch_add(&r->names_gen, 1); /* the dead one's names went */
				atomic_store(&s->pid, (int32_t)getpid());
				return (int)i;
			}
			continue;
		}
		st = SLOT_FREE;
		if (atomic_compare_exchange_strong(&s->state, &st, SLOT_CLAIMED)) {
			atomic_store(&s->pid, (int32_t)getpid());
			return (int)i;
		}
	}
	return -ENOSPC;
}

int hb_xbus_attach(hb_xbus_t *b, hb_pubsub_t *ps, hb_funcs_t *funcs)
{
	struct region *r = b->r;
	struct sockaddr_un a;
	struct timeval tv = {r->timeout_ms / 1000, (r->timeout_ms % 1000) * 1000};
	struct timeval tick = {0, TICK_MS * 1000}; /* the bus thread wakes for hb_xbus_tick */
	int one = 1, slot, rc;
	struct slot *s;

	if (hb_xbus_attached(b))
		return -EBUSY;
	slot = claim(r);
	if (slot < 0)
		return slot;
	s = &r->slots[slot];
	hb_xbus_lock_names(r);
	drop_names(r, (uint32_t)slot, 1); /* a dead predecessor's */
	pthread_mutex_unlock(&r->mu);
	for (uint32_t k = 0; k < CELLS / 64; k++)
		atomic_store(&s->used[k], 0);
	b->slot = (uint32_t)slot;
	b->gen = atomic_fetch_add(&s->gen, 1) + 1;
	b->ps = ps;
	b->funcs = funcs;
	b->pending = NULL;
	b->topics_sent_ps = b->topics_sent_hub = 0;
	b->next_tick = 0;
	b->rfd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	b->sfd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (b->rfd < 0 || b->sfd < 0 ||
	    setsockopt(b->rfd, SOL_SOCKET, SO_PASSCRED, &one, sizeof(one)) < 0 ||
	    setsockopt(b->sfd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)) < 0 ||
	    setsockopt(b->rfd, SOL_SOCKET, SO_RCVTIMEO, &tick, sizeof(tick)) < 0 ||
	    bind(b->rfd, (struct sockaddr *)&a, (socklen_t)addr_of(r, b->slot, b->gen, &a)) < 0)
		goto fail;
	b->pid = getpid();
	rc = pthread_create(&b->th, NULL, bus_main, b);
	if (rc != 0) {
		errno = rc;
		b->pid = 0;
		goto fail;
	}
	for (uint32_t top = atomic_load(&r->top); top <= b->slot;)
		atomic_compare_exchange_weak(&r->top, &top, b->slot + 1);
	atomic_fetch_add(&r->nlive, 1);
	atomic_store(&s->state, SLOT_LIVE);
	return 0;
fail:
	rc = -errno;
	if (b->rfd >= 0)
		close(b->rfd);
	if (b->sfd >= 0)
		close(b->sfd);
	b->rfd = b->sfd = -1;
	atomic_store(&s->pid, 0);
	atomic_store(&s->state, SLOT_FREE);
	return rc;
}

void hb_xbus_detach(hb_xbus_t *b)
{
	struct msg m = {.type = T_STOP};

	if (!hb_xbus_attached(b))
		return;
	hb_xbus_set_hub(b, NULL); /* the cluster stopped before, normally */
	m.gen = b->gen;
	/* The thread stops on its own datagram (the socket is ours: never refused; a full
	 * queue drains because the thread is still reading). */
	while (hb_xbus_send_msg(b, b->slot, b->gen, &m, NULL, NULL, -1, 0) == -ETIMEDOUT)
		;
	pthread_join(b->th, NULL);
	hb_xbus_forward_stop(b); /* after the bus thread: nothing queues any more */
	free_slot(b->r, b->slot);
	close(b->rfd);
	close(b->sfd);
	b->rfd = b->sfd = -1;
	b->pid = 0;
	hb_xbus_fail_pending(b);
}

void hb_xbus_stats(hb_xbus_t *b, hb_xbus_stats_t *st)
{
	st->sent = atomic_load_explicit(&b->sent, memory_order_relaxed);
	st->received = atomic_load_explicit(&b->received, memory_order_relaxed);
	st->rejected = atomic_load_explicit(&b->rejected, memory_order_relaxed);
	st->send_errors = atomic_load_explicit(&b->send_errors, memory_order_relaxed);
}

void hb_xbus_debug_hold_lock(hb_xbus_t *b)
{
	hb_xbus_lock_names(b->r);
}
