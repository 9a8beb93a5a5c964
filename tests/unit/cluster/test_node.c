/* test_node.c: real cluster threads in one process on loopback ports: join through a seed
 * (numeric and by name), membership everywhere, a crash detected, a graceful leave, a wrong
 * cookie refused, garbage and oversized frames closing only their own link. SWIM runs with short
 * intervals (probe 200 ms) so the test takes seconds. */
#include "cluster/frame.h"
#include "cluster/node.h"

#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

typedef struct seen {
	pthread_mutex_t mu;
	int dead, left, joined;
	char last[HB_SWIM_MAX_NAME + 1];
} seen_t;

static void on_event(const hb_swim_event_t *ev, void *ud)
{
	seen_t *s = ud;
	pthread_mutex_lock(&s->mu);
	if (ev->type == HB_SWIM_EV_DEAD)
		s->dead++;
	if (ev->type == HB_SWIM_EV_LEAVE)
		s->left++;
	if (ev->type == HB_SWIM_EV_JOIN)
		s->joined++;
	snprintf(s->last, sizeof s->last, "%s", ev->name);
	pthread_mutex_unlock(&s->mu);
}

static seen_t seen[5];

static hb_cluster_t *start(int i, const char *cookie, const char *seed)
{
	char name[32];
	snprintf(name, sizeof name, "n%d@test", i);
	pthread_mutex_init(&seen[i].mu, NULL);
	const char *seeds[1] = {seed};
	hb_cluster_config_t c = {.node_name = name,
				 .bind_host = "127.0.0.1",
				 .seeds = seeds,
				 .nseeds = seed ? 1 : 0,
				 .cookie = cookie,
				 .cookie_len = strlen(cookie),
				 .rejoin_ms = 500,
				 .on_event = on_event,
				 .ud = &seen[i]};
	c.swim.probe_interval_ms = 200;
	c.swim.probe_timeout_ms = 100;
	c.swim.gossip_interval_ms = 50;
	c.swim.push_pull_interval_ms = 2000;
	c.swim.reconnect_interval_ms = 1000;
	hb_cluster_t *cl = NULL;
	cr_assert_eq(hb_cluster_start(&c, &cl), 0);
	return cl;
}

static int count(hb_cluster_t *cl)
{
	char **v;
	int n = hb_cluster_nodes(cl, &v);
	cr_assert_geq(n, 0);
	hb_cluster_names_free(v, n);
	return n;
}

static int64_t ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

#define WAIT_FOR(limit_ms, cond)                                                                   \
	({                                                                                         \
		int64_t t0_ = ms(), r_ = -1;                                                       \
		while (ms() - t0_ < (limit_ms)) {                                                  \
			if (cond) {                                                                \
				r_ = ms() - t0_;                                                   \
				break;                                                             \
			}                                                                          \
			usleep(20000);                                                             \
		}                                                                                  \
		r_;                                                                                \
	})

Test(node, join_crash_leave, .timeout = 60)
{
	hb_cluster_t *n0 = start(0, "cookie-1", NULL);
	char seed[64], byname[64];
	snprintf(seed, sizeof seed, "127.0.0.1:%u", hb_cluster_port(n0));
	snprintf(byname, sizeof byname, "localhost:%u", hb_cluster_port(n0));
	hb_cluster_t *n1 = start(1, "cookie-1", seed);
	hb_cluster_t *n2 = start(2, "cookie-1", byname);
	hb_cluster_t *n3 = start(3, "cookie-1", seed);
	int64_t t = WAIT_FOR(10000,
			     count(n0) == 3 && count(n1) == 3 && count(n2) == 3 && count(n3) == 3);
	cr_assert_geq(t, 0, "4 nodes did not see each other: %d %d %d %d", count(n0), count(n1),
		      count(n2), count(n3));
	char **v;
	int n = hb_cluster_nodes(n0, &v);
	cr_assert_eq(n, 3);
	cr_assert_str_eq(v[0], "n1@test");
	cr_assert_str_eq(v[2], "n3@test");
	hb_cluster_names_free(v, n);

	/* kill: links just close; the others declare it dead */
	hb_cluster_stop(n2, 0);
	t = WAIT_FOR(15000, count(n0) == 2 && count(n1) == 2 && count(n3) == 2);
	cr_assert_geq(t, 0, "crash not detected");
	cr_log_info("crash detected everywhere after %lld ms (probe interval 200 ms)",
		    (long long)t);
	cr_assert_geq(seen[0].dead, 1);

	/* leave: seen at once, not as a death */
	int dead_before = seen[0].dead;
	hb_cluster_stop(n1, 1);
	t = WAIT_FOR(2000, count(n0) == 1 && count(n3) == 1);
	cr_assert_geq(t, 0, "leave not seen");
	cr_assert_lt(t, 1000, "leave took %lld ms", (long long)t);
	cr_assert_eq(seen[0].left, 1);
	cr_assert_eq(seen[0].dead, dead_before);
	hb_cluster_stop(n3, 1);
	hb_cluster_stop(n0, 1);
}

/* A node with another cookie never gets in, and its attempts leave the cluster intact. */
Test(node, wrong_cookie_refused, .timeout = 30)
{
	hb_cluster_t *n0 = start(0, "right", NULL);
	char seed[64];
	snprintf(seed, sizeof seed, "127.0.0.1:%u", hb_cluster_port(n0));
	hb_cluster_t *n1 = start(1, "right", seed);
	hb_cluster_t *bad = start(4, "wrong", seed);
	cr_assert_geq(WAIT_FOR(5000, count(n0) == 1 && count(n1) == 1), 0);
	usleep(1500000);
	cr_assert_eq(count(bad), 0);
	cr_assert_eq(count(n0), 1);
	cr_assert_eq(count(n1), 1);
	hb_cluster_stop(bad, 0);
	hb_cluster_stop(n1, 1);
	hb_cluster_stop(n0, 1);
}

static int dial(uint16_t port)
{
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(port)};
	inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	cr_assert_eq(connect(fd, (struct sockaddr *)&sa, sizeof sa), 0);
	struct timeval tv = {.tv_sec = 5};
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
	return fd;
}

/* HTTP on the cluster port, and a frame over max_frame_size: that link closes, nothing else. */
Test(node, garbage_closes_only_its_link, .timeout = 30)
{
	hb_cluster_t *n0 = start(0, "k", NULL);
	char seed[64];
	snprintf(seed, sizeof seed, "127.0.0.1:%u", hb_cluster_port(n0));
	hb_cluster_t *n1 = start(1, "k", seed);
	cr_assert_geq(WAIT_FOR(5000, count(n0) == 1), 0);
	char buf[256];
	int fd = dial(hb_cluster_port(n0));
	const char *http = "GET / HTTP/1.1\r\nHost: x\r\n\r\n";
	cr_assert_eq(write(fd, http, strlen(http)), (ssize_t)strlen(http));
	cr_assert_eq(read(fd, buf, sizeof buf), 0, "the link was not closed");
	close(fd);
	fd = dial(hb_cluster_port(n0));
	uint8_t hdr[HB_FRAME_HEADER_SIZE];
	hb_frame_header_encode(hdr, HB_FRAME_HELLO, 0, 0, HB_FRAME_DEFAULT_MAX_FRAME + 1);
	cr_assert_eq(write(fd, hdr, sizeof hdr), (ssize_t)sizeof hdr);
	cr_assert_eq(read(fd, buf, sizeof buf), 0, "the link was not closed");
	close(fd);
	usleep(1000000);
	cr_assert_eq(count(n0), 1);
	cr_assert_eq(count(n1), 1);
	hb_cluster_stop(n1, 1);
	hb_cluster_stop(n0, 1);
}
