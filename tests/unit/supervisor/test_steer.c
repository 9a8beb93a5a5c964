/* test_steer.c: the SO_REUSEPORT groups' order and programs (supervisor/steer.c) against the
 * kernel: sockets that join in a scrambled order, across two groups, are parked, and real
 * connections then reach every serving socket and never a parked one. */
#include <criterion/criterion.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "supervisor/steer.h"

#define CONNS 240

/* A bound (not listening) SO_REUSEPORT socket on 127.0.0.1:port (0: the kernel's choice). */
static int bound(uint16_t port)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0), one = 1;
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port)};

	cr_assert(fd >= 0);
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one);
	cr_assert_eq(bind(fd, (struct sockaddr *)&a, sizeof a), 0, "bind: %s", strerror(errno));
	return fd;
}

static uint16_t port_of(int fd)
{
	struct sockaddr_in a;
	socklen_t l = sizeof a;

	cr_assert_eq(getsockname(fd, (struct sockaddr *)&a, &l), 0);
	return ntohs(a.sin_port);
}

/* n sockets of one group on a fresh port. */
static void group(int *fds, int n)
{
	fds[0] = bound(0);
	for (int i = 1; i < n; i++)
		fds[i] = bound(port_of(fds[0]));
}

/* CONNS connections to fds[0]'s port; then how many each of fds[0..n) got (accepted, closed). */
static void spread(const int *fds, int n, int *got)
{
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port_of(fds[0]))};
	int clients[CONNS];

	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	for (int i = 0; i < CONNS; i++) {
		clients[i] = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
		cr_assert_eq(connect(clients[i], (struct sockaddr *)&a, sizeof a), 0, "connect: %s",
			     strerror(errno));
	}
	int total = 0;
	for (int s = 0; s < n; s++) {
		int c;
		got[s] = 0;
		while ((c = accept(fds[s], NULL, NULL)) >= 0) {
			close(c);
			got[s]++;
		}
		total += got[s];
	}
	for (int i = 0; i < CONNS; i++)
		close(clients[i]);
	cr_assert_eq(total, CONNS, "every connection lands in one of the group's sockets");
}

static void listen_in(hb_steer_t *st, const int *fds, const int *order, int n)
{
	for (int i = 0; i < n; i++)
		cr_assert_eq(hb_steer_listen(st, fds[order[i]], 512, 1), 0);
	cr_assert_eq(hb_steer_apply(st), 0);
}

Test(steer, parked_sockets_get_nothing_whatever_the_join_order)
{
	hb_steer_t st = {0};
	int a[5], b[3], got[5];
	const int order_a[] = {3, 0, 4, 1, 2}, order_b[] = {2, 0, 1};

	group(a, 5);
	group(b, 3);
	/* the two groups' joins interleaved: one table holds both */
	for (int i = 0; i < 5; i++) {
		cr_assert_eq(hb_steer_listen(&st, a[order_a[i]], 512, 1), 0);
		if (i < 3)
			cr_assert_eq(hb_steer_listen(&st, b[order_b[i]], 512, 1), 0);
	}
	cr_assert_eq(hb_steer_apply(&st), 0);
	int park[] = {a[1], a[3]};
	cr_assert_eq(hb_steer_park(&st, park, 2), 2);
	spread(a, 5, got);
	cr_assert_eq(got[1], 0);
	cr_assert_eq(got[3], 0);
	cr_assert(got[0] > 0 && got[2] > 0 && got[4] > 0, "%d %d %d", got[0], got[2], got[4]);
	spread(b, 3, got); /* the other group: untouched */
	cr_assert(got[0] > 0 && got[1] > 0 && got[2] > 0, "%d %d %d", got[0], got[1], got[2]);
	/* A parked socket that listens again serves: nothing parked, the kernel's hash again. */
	cr_assert_eq(hb_steer_listen(&st, a[3], 512, 1), 0);
	cr_assert_eq(hb_steer_listen(&st, a[1], 512, 1), 0);
	cr_assert_eq(hb_steer_apply(&st), 0);
	spread(a, 5, got);
	for (int i = 0; i < 5; i++)
		cr_assert(got[i] > 0, "socket %d got nothing", i);
	hb_steer_close(&st, 1);
	for (int i = 0; i < 5; i++)
		close(a[i]);
	for (int i = 0; i < 3; i++)
		close(b[i]);
}

Test(steer, a_parked_socket_is_taken_before_the_group_grows)
{
	hb_steer_t st = {0};
	int a[3];
	const int order[] = {1, 2, 0};

	group(a, 3);
	listen_in(&st, a, order, 3);
	int park[] = {a[2]};
	cr_assert_eq(hb_steer_park(&st, park, 1), 1);
	int t = hb_steer_take(&st, a[0]);
	cr_assert(t >= 0);
	cr_assert_eq(hb_steer_take(&st, a[0]), -1, "handed out once");
	cr_assert_eq(port_of(t), port_of(a[0]));
	cr_assert(hb_steer_member(&st, t), "the same socket (a dup)");
	close(t);
	hb_steer_close(&st, 1);
	for (int i = 0; i < 3; i++)
		close(a[i]);
}

Test(steer, a_group_keeps_a_serving_member_or_nothing_is_parked)
{
	hb_steer_t st = {0};
	int a[2], got[2];
	const int order[] = {0, 1};

	group(a, 2);
	listen_in(&st, a, order, 2);
	cr_assert_eq(hb_steer_park(&st, a, 2), -EBUSY);
	spread(a, 2, got);
	cr_assert(got[0] > 0 && got[1] > 0, "nothing was parked: %d %d", got[0], got[1]);
	st.unknown = 1;
	cr_assert_eq(hb_steer_park(&st, a, 1), -ENOTRECOVERABLE);
	hb_steer_close(&st, 1);
	for (int i = 0; i < 2; i++)
		close(a[i]);
}

Test(steer, a_group_forgotten_refuses_connects)
{
	hb_steer_t st = {0};
	int a[2];
	const int order[] = {1, 0};
	struct sockaddr_in sa = {.sin_family = AF_INET};

	group(a, 2);
	listen_in(&st, a, order, 2);
	cr_assert_eq(hb_steer_park(&st, a, 1), 1);
	sa.sin_port = htons(port_of(a[0]));
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	hb_steer_forget_group(&st, a[1]);
	cr_assert_eq(st.n, 0);
	int c = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	cr_assert_eq(connect(c, (struct sockaddr *)&sa, sizeof sa), -1);
	cr_assert_eq(errno, ECONNREFUSED);
	close(c);
	hb_steer_close(&st, 0); /* the emptied table still owns its array */
	for (int i = 0; i < 2; i++)
		close(a[i]);
}
