/* conn_uring.c: a connection's socket ops as io_uring ops on its io thread's ring, and the one
 * completion callback that turns their completions into the connection's named handlers. The
 * provided buffer of a recv goes back to the ring after the connection has seen it. */
#include <errno.h>
#include <sys/socket.h>
#include <unistd.h>

#include "server/conn.h"

static void on_cqe(hb_ring_t *r, hb_op_t *op, struct io_uring_cqe *cqe)
{
	hb_conn_t *c = op->owner;
	int more = (cqe->flags & IORING_CQE_F_MORE) != 0;

	switch ((hb_op_kind_t)op->kind) {
	case HB_OP_RECV:
		if (cqe->flags & IORING_CQE_F_BUFFER) {
			unsigned bid = cqe->flags >> IORING_CQE_BUFFER_SHIFT;
			hb_conn_recv_done(c, cqe->res, more, hb_ring_buf(r, bid));
			hb_ring_buf_return(r, bid); /* c may be gone: the ring is not */
		} else {
			hb_conn_recv_done(c, cqe->res, more, NULL);
		}
		break;
	case HB_OP_SEND:
		hb_conn_send_done(c, cqe->res);
		break;
	case HB_OP_SEND_ZC:
		if (cqe->flags & IORING_CQE_F_NOTIF) {
			hb_conn_zc_notified(c);
			hb_conn_maybe_free(c);
		} else {
			hb_conn_zc_done(c, cqe->res, more);
		}
		break;
	case HB_OP_SPLICE_IN:
		hb_conn_splice_done(c, 0, cqe->res);
		break;
	case HB_OP_SPLICE_OUT:
		hb_conn_splice_done(c, 1, cqe->res);
		break;
	case HB_OP_SHUTDOWN:
		hb_conn_shutdown_done(c, cqe->res);
		break;
	}
}

static struct io_uring_sqe *sqe_for(hb_conn_t *c, hb_op_t *op, hb_op_kind_t kind)
{
	*op = (hb_op_t){.cb = on_cqe, .owner = c, .kind = kind};
	return hb_ring_sqe_for(&c->io->ring, op);
}

static void recv_arm(hb_conn_t *c)
{
	struct io_uring_sqe *sqe = sqe_for(c, &c->recv_op, HB_OP_RECV);

	io_uring_prep_recv_multishot(sqe, c->fd, NULL, 0, 0);
	sqe->flags |= IOSQE_BUFFER_SELECT;
	sqe->buf_group = HB_RING_BUF_GROUP;
}

static void recv_cancel(hb_conn_t *c)
{
	hb_ring_cancel(&c->io->ring, &c->recv_op);
}

/* One iovec (a small response gathered into one segment: the common case) goes as a plain send:
 * the kernel then skips copying and importing the msghdr and its iovec array (io_sendmsg_setup,
 * __import_iovec: about 2% of the io thread's time on hello world). Both complete as HB_OP_SEND. */
static void do_sendmsg(hb_conn_t *c)
{
	struct io_uring_sqe *sqe = sqe_for(c, &c->send_op, HB_OP_SEND);

	if (c->msg.msg_iovlen == 1)
		io_uring_prep_send(sqe, c->fd, c->msg.msg_iov[0].iov_base,
				   c->msg.msg_iov[0].iov_len, MSG_NOSIGNAL);
	else
		io_uring_prep_sendmsg(sqe, c->fd, &c->msg, MSG_NOSIGNAL);
}

static void do_send_zc(hb_conn_t *c, const void *p, size_t len)
{
	io_uring_prep_send_zc(sqe_for(c, &c->zc_op, HB_OP_SEND_ZC), c->fd, p, len, MSG_NOSIGNAL, 0);
}

static void do_splice(hb_conn_t *c, int out, int fd_in, int64_t off_in, unsigned len)
{
	if (out)
		io_uring_prep_splice(sqe_for(c, &c->splice_out_op, HB_OP_SPLICE_OUT), fd_in, -1,
				     c->fd, -1, len, 0);
	else
		io_uring_prep_splice(sqe_for(c, &c->splice_in_op, HB_OP_SPLICE_IN), fd_in, off_in,
				     c->pipefd[1], -1, len, 0);
}

static void do_shutdown_wr(hb_conn_t *c)
{
	io_uring_prep_shutdown(sqe_for(c, &c->shut_op, HB_OP_SHUTDOWN), c->fd, SHUT_WR);
}

static void do_abort(hb_conn_t *c)
{
	shutdown(c->fd, SHUT_RDWR);
}

static void do_close(hb_conn_t *c)
{
	close(c->fd);
}

const hb_sock_ops_t hb_conn_uring_ops = {
	.recv_arm = recv_arm,
	.recv_cancel = recv_cancel,
	.sendmsg = do_sendmsg,
	.send_zc = do_send_zc,
	.splice = do_splice,
	.shutdown_wr = do_shutdown_wr,
	.abort = do_abort,
	.close = do_close,
};
