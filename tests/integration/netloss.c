/* netloss.c: a tc classifier (direct action) that drops a random share of the packets it sees:
 * packet loss where the kernel has no sch_netem. tests/integration/netloss.py compiles it with
 * -DLOSS_THRESHOLD=T (a packet is dropped when a uniform random u32 is below T, so T = pct/100 x
 * 2^32) and attaches it to a device's clsact hook. Every packet is a candidate: IP, ARP, all. */
#include <linux/bpf.h>
#include <linux/pkt_cls.h>

#ifndef LOSS_THRESHOLD
#error "compile with -DLOSS_THRESHOLD=<0 .. 4294967296>"
#endif

/* The helper by its number (no libbpf headers needed): bpf_get_prandom_u32. */
static __u32 (*prandom_u32)(void) = (void *)BPF_FUNC_get_prandom_u32;

__attribute__((section("tc"), used)) int drop_share(struct __sk_buff *skb)
{
	(void)skb;
	return (__u64)prandom_u32() < (__u64)LOSS_THRESHOLD ? TC_ACT_SHOT : TC_ACT_OK;
}

char _license[] __attribute__((section("license"), used)) = "GPL";
