#include "server/io.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "core/cpu.h"
#include "core/log.h"
#include "server/conn.h"

#define RING_ENTRIES 1024
#define BUF_COUNT 512 /* power of two */
#define BUF_SIZE (16u * 1024u)
#define BUF_GROUP 0

hb_io_t *hb_io_new(hb_server_t *srv, int idx)
{
	hb_io_t *io = calloc(1, sizeof(*io));

	if (!io)
		return NULL;
	io->idx = idx;
	io->srv = srv;
	io->cfg = srv->cfg;
	io->accept_ops = calloc(srv->cfg->nbinds, sizeof(hb_op_t));
	io->accept_armed = calloc(srv->cfg->nbinds, sizeof(int));
	if (!io->accept_ops || !io->accept_armed) {
		hb_io_free(io);
		return NULL;
	}
	return io;
}

void hb_io_free(hb_io_t *io)
{
	if (!io)
		return;
	free(io->accept_ops);
	free(io->accept_armed);
	free(io);
}

/* Newest kernels first: fall back one flag at a time where the kernel refuses one. */
static int ring_init(hb_io_t *io)
{
	static const unsigned tries[] = {
		IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN | IORING_SETUP_COOP_TASKRUN,
		IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN,
		IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_COOP_TASKRUN,
		IORING_SETUP_COOP_TASKRUN,
		0,
	};
	int rc = -EINVAL;

	for (size_t i = 0; i < sizeof(tries) / sizeof(tries[0]); i++) {
		struct io_uring_params p = {.flags = tries[i] | IORING_SETUP_SUBMIT_ALL};
		p.flags |= IORING_SETUP_CQSIZE;
		p.cq_entries = RING_ENTRIES * 4;
		rc = io_uring_queue_init_params(RING_ENTRIES, &io->ring, &p);
		if (rc == 0) {
			io->ring_flags = p.flags;
			return 0;
		}
		if (rc != -EINVAL)
			return rc;
	}
	return rc;
}

static int bufring_init(hb_io_t *io)
{
	size_t ringsz = BUF_COUNT * sizeof(struct io_uring_buf);
	struct io_uring_buf_reg reg = {.ring_entries = BUF_COUNT, .bgid = BUF_GROUP};

	io->nbufs = BUF_COUNT;
	io->buf_size = BUF_SIZE;
	io->br = mmap(NULL, ringsz, PROT_READ | PROT_WRITE, MAP_ANONYMOUS | MAP_PRIVATE, -1, 0);
	if (io->br == MAP_FAILED)
		return io->br = NULL, -ENOMEM;
	io->bufs = malloc((size_t)BUF_COUNT * BUF_SIZE);
	if (!io->bufs)
		return -ENOMEM;
	reg.ring_addr = (unsigned long)io->br;
	int rc = io_uring_register_buf_ring(&io->ring, &reg, 0);
	if (rc < 0)
		return rc;
	io_uring_buf_ring_init(io->br);
	for (unsigned i = 0; i < BUF_COUNT; i++)
		io_uring_buf_ring_add(io->br, io->bufs + (size_t)i * BUF_SIZE, BUF_SIZE,
				      (unsigned short)i, io_uring_buf_ring_mask(BUF_COUNT), (int)i);
	io_uring_buf_ring_advance(io->br, BUF_COUNT);
	return 0;
}

static void bufring_free(hb_io_t *io)
{
	if (io->br)
		munmap(io->br, BUF_COUNT * sizeof(struct io_uring_buf));
	free(io->bufs);
}

char *hb_io_buf(hb_io_t *io, unsigned bid)
{
	return io->bufs + (size_t)bid * io->buf_size;
}

void hb_io_buf_return(hb_io_t *io, unsigned bid)
{
	io_uring_buf_ring_add(io->br, hb_io_buf(io, bid), io->buf_size, (unsigned short)bid,
			      io_uring_buf_ring_mask(io->nbufs), (int)io->buf_pending);
	io->buf_pending++;
}

/* Returned buffers are published in one batch per loop iteration. */
static void bufs_publish(hb_io_t *io)
{
	if (io->buf_pending) {
		io_uring_buf_ring_advance(io->br, (int)io->buf_pending);
		io->buf_pending = 0;
	}
}

struct io_uring_sqe *hb_io_sqe(hb_io_t *io)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(&io->ring);

	while (!sqe) {
		io_uring_submit(&io->ring);
		sqe = io_uring_get_sqe(&io->ring);
	}
	return sqe;
}

uint64_t hb_io_now(hb_io_t *io)
{
	return io->now_ns;
}

static void clock_update(hb_io_t *io)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	io->now_ns = (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
	time_t now = time(NULL);
	if (now != io->date_sec) {
		struct tm tm;
		gmtime_r(&now, &tm);
		strftime(io->date, sizeof(io->date), "%a, %d %b %Y %H:%M:%S GMT", &tm);
		io->date_sec = now;
	}
}

static void arm_accept(hb_io_t *io, int b)
{
	struct io_uring_sqe *sqe = hb_io_sqe(io);

	io->accept_ops[b] = (hb_op_t){.kind = HB_OP_ACCEPT, .arg = b};
	io_uring_prep_multishot_accept(sqe, io->srv->listen_fds[io->idx][b], NULL, NULL,
				       SOCK_CLOEXEC);
	io_uring_sqe_set_data(sqe, &io->accept_ops[b]);
	io->accept_armed[b] = 1;
}

static void arm_tick(hb_io_t *io)
{
	struct io_uring_sqe *sqe = hb_io_sqe(io);

	io->tick_op.kind = HB_OP_TICK;
	io->tick_ts.tv_sec = 0;
	io->tick_ts.tv_nsec = HB_TICK_MS * 1000000L;
	io_uring_prep_timeout(sqe, &io->tick_ts, 0, 0);
	io_uring_sqe_set_data(sqe, &io->tick_op);
}

static void arm_wake(hb_io_t *io)
{
	struct io_uring_sqe *sqe = hb_io_sqe(io);

	io->wake_op.kind = HB_OP_WAKE;
	io_uring_prep_read(sqe, hb_hub_io_wake(io->srv->hub, io->idx)->efd, &io->wake_val,
			   sizeof(io->wake_val), 0);
	io_uring_sqe_set_data(sqe, &io->wake_op);
	io->wake_armed = 1;
}

static void on_accept(hb_io_t *io, hb_op_t *op, struct io_uring_cqe *cqe)
{
	if (!(cqe->flags & IORING_CQE_F_MORE))
		io->accept_armed[op->arg] = 0;
	if (cqe->res < 0) {
		if (cqe->res != -ECANCELED)
			hb_warn("io %d: accept: %s", io->idx, strerror(-cqe->res));
		return;
	}
	int fd = cqe->res;
	if (io->stopping) {
		close(fd);
		return;
	}
	/* max_connections: refuse quickly rather than queue without bound. */
	if (atomic_fetch_add(&io->srv->nconns, 1) >= io->cfg->max_connections) {
		atomic_fetch_sub(&io->srv->nconns, 1);
		close(fd);
		return;
	}
	if (!hb_conn_new(io, fd))
		atomic_fetch_sub(&io->srv->nconns, 1);
}

/* The eventfd read completed: the counter is reset; the loop re-arms it before sleeping. */
static void on_wake(hb_io_t *io, struct io_uring_cqe *cqe)
{
	(void)cqe;
	io->wake_armed = 0;
}

static void stop_accepting(hb_io_t *io)
{
	io->stopping = 1;
	for (size_t b = 0; b < io->cfg->nbinds; b++) {
		if (!io->accept_armed[b])
			continue;
		struct io_uring_sqe *sqe = hb_io_sqe(io);
		io_uring_prep_cancel(sqe, &io->accept_ops[b], 0);
		io_uring_sqe_set_data(sqe, &io->cancel_op);
	}
}

static void on_tick(hb_io_t *io)
{
	int draining = atomic_load(&io->srv->draining);

	if (draining && !io->stopping)
		stop_accepting(io);
	for (hb_conn_t *c = io->conns, *n; c; c = n) {
		n = c->next;
		if (draining)
			hb_conn_drain(c, draining > 1);
		else
			hb_conn_tick(c, io->now_ns);
	}
	if (!io->stopping || io->conns)
		arm_tick(io);
}

static void dispatch_cqe(hb_io_t *io, struct io_uring_cqe *cqe)
{
	hb_op_t *op = io_uring_cqe_get_data(cqe);

	switch (op->kind) {
	case HB_OP_ACCEPT:
		on_accept(io, op, cqe);
		break;
	case HB_OP_RECV:
		hb_conn_on_recv(op->owner, cqe);
		break;
	case HB_OP_SEND:
		hb_conn_on_send(op->owner, cqe->res);
		break;
	case HB_OP_SEND_ZC:
		hb_conn_on_send_zc(op->owner, cqe);
		break;
	case HB_OP_SPLICE_IN:
		hb_conn_on_splice_in(op->owner, cqe->res);
		break;
	case HB_OP_SPLICE_OUT:
		hb_conn_on_splice_out(op->owner, cqe->res);
		break;
	case HB_OP_SHUTDOWN:
		hb_conn_on_shutdown(op->owner, cqe->res);
		break;
	case HB_OP_TICK:
		on_tick(io);
		break;
	case HB_OP_WAKE:
		on_wake(io, cqe);
		break;
	case HB_OP_CANCEL:
		break;
	}
}

/* Worker messages carry the stream; the stream knows its connection. */
static int drain_hub(hb_io_t *io)
{
	hb_msg_t m;
	int n = 0;

	while (n < 4096 && hb_hub_io_pop(io->srv->hub, io->idx, &m) == 0) {
		hb_stream_t *s = m.stream;
		hb_conn_on_msg(s->conn, &m);
		n++;
	}
	/* One send per connection for everything the batch queued (head + body + end). */
	while (io->dirty) {
		hb_conn_t *c = io->dirty;
		io->dirty = c->dirty_next;
		hb_conn_flush_dirty(c);
	}
	return n;
}

static int reap_cqes(hb_io_t *io)
{
	struct io_uring_cqe *cqe;
	unsigned head, n = 0;

	io_uring_for_each_cqe(&io->ring, head, cqe)
	{
		dispatch_cqe(io, cqe);
		n++;
	}
	io_uring_cq_advance(&io->ring, n);
	return (int)n;
}

static int io_setup(hb_io_t *io)
{
	int rc = ring_init(io);

	if (rc < 0) {
		hb_error("io %d: io_uring_queue_init: %s", io->idx, strerror(-rc));
		return rc;
	}
	rc = bufring_init(io);
	if (rc < 0) {
		hb_error("io %d: provided buffer ring: %s", io->idx, strerror(-rc));
		return rc;
	}
	if (io->cfg->cpu_affinity && io->cfg->ncpus > 0)
		hb_cpu_pin(io->cfg->cpus[io->idx % io->cfg->ncpus]);
	io->cancel_op.kind = HB_OP_CANCEL;
	clock_update(io);
	for (size_t b = 0; b < io->cfg->nbinds; b++)
		arm_accept(io, (int)b);
	arm_tick(io);
	arm_wake(io);
	hb_debug("io %d: ring flags 0x%x", io->idx, io->ring_flags);
	return 0;
}

static void io_loop(hb_io_t *io)
{
	for (;;) {
		clock_update(io);
		int busy = drain_hub(io);
		busy += reap_cqes(io);
		if (busy)
			continue;
		/* Graceful: leave when the last connection is gone. Forced: connections were shut
		 * down; their streams may wait on app code that will not return, so do not wait. */
		if (io->stopping && (!io->conns || atomic_load(&io->srv->draining) > 1))
			break;
		for (size_t b = 0; !io->stopping && b < io->cfg->nbinds; b++)
			if (!io->accept_armed[b])
				arm_accept(io, (int)b);
		if (!io->wake_armed)
			arm_wake(io);
		bufs_publish(io);
		if (hb_hub_io_prepare_sleep(io->srv->hub, io->idx)) {
			io_uring_submit_and_wait(&io->ring, 1);
			hb_hub_io_awake(io->srv->hub, io->idx);
		} else {
			io_uring_submit_and_get_events(&io->ring);
		}
	}
}

void *hb_io_main(void *arg)
{
	hb_io_t *io = arg;
	char name[16];

	snprintf(name, sizeof(name), "hb-io%d", io->idx);
	pthread_setname_np(pthread_self(), name);
	if (io_setup(io) == 0)
		io_loop(io);
	else
		atomic_store(&io->srv->draining, 2);
	bufring_free(io);
	if (io->ring.ring_fd > 0)
		io_uring_queue_exit(&io->ring);
	atomic_fetch_sub(&io->srv->io_running, 1);
	return NULL;
}
