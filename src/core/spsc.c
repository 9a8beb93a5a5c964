#include "core/spsc.h"

#include <errno.h>
#include <stdlib.h>

static size_t round_pow2(size_t n)
{
	size_t c = 2;
	while (c < n)
		c <<= 1;
	return c;
}

int hb_spsc_init(hb_spsc_t *q, size_t capacity)
{
	size_t cap = round_pow2(capacity);

	q->slots = calloc(cap, sizeof(*q->slots));
	if (!q->slots)
		return -ENOMEM;
	q->mask = cap - 1;
	atomic_init(&q->head, 0);
	atomic_init(&q->tail, 0);
	q->head_cache = 0;
	q->tail_cache = 0;
	return 0;
}

void hb_spsc_destroy(hb_spsc_t *q)
{
	free(q->slots);
	q->slots = NULL;
}

int hb_spsc_push(hb_spsc_t *q, const hb_msg_t *m)
{
	size_t tail = atomic_load_explicit(&q->tail, memory_order_relaxed);

	/* Only re-read the consumer's index when our cached view says full. */
	if (tail - q->head_cache > q->mask) {
		q->head_cache = atomic_load_explicit(&q->head, memory_order_acquire);
		if (tail - q->head_cache > q->mask)
			return -EAGAIN;
	}
	q->slots[tail & q->mask] = *m;
	atomic_store_explicit(&q->tail, tail + 1, memory_order_release);
	return 0;
}

int hb_spsc_push_n(hb_spsc_t *q, const hb_msg_t *m, size_t n)
{
	size_t tail = atomic_load_explicit(&q->tail, memory_order_relaxed);

	if (tail + n - q->head_cache > q->mask + 1) {
		q->head_cache = atomic_load_explicit(&q->head, memory_order_acquire);
		if (tail + n - q->head_cache > q->mask + 1)
			return -EAGAIN;
	}
	for (size_t i = 0; i < n; i++)
		q->slots[(tail + i) & q->mask] = m[i];
	atomic_store_explicit(&q->tail, tail + n, memory_order_release);
	return 0;
}

int hb_spsc_pop(hb_spsc_t *q, hb_msg_t *m)
{
	size_t head = atomic_load_explicit(&q->head, memory_order_relaxed);

	if (head == q->tail_cache) {
		q->tail_cache = atomic_load_explicit(&q->tail, memory_order_acquire);
		if (head == q->tail_cache)
			return -EAGAIN;
	}
	*m = q->slots[head & q->mask];
	atomic_store_explicit(&q->head, head + 1, memory_order_release);
	return 0;
}

size_t hb_spsc_size(hb_spsc_t *q)
{
	size_t head = atomic_load_explicit(&q->head, memory_order_relaxed);
	size_t tail = atomic_load_explicit(&q->tail, memory_order_relaxed);

	return tail > head ? tail - head : 0;
}

int hb_spsc_empty(hb_spsc_t *q)
{
	return atomic_load_explicit(&q->head, memory_order_acquire) ==
	       atomic_load_explicit(&q->tail, memory_order_acquire);
}
