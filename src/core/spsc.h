/* spsc.h: bounded single-producer single-consumer queue of fixed-size messages.
 *
 * The only way requests and responses cross threads. Exactly one thread pushes and exactly one
 * thread pops each queue (the hub says which). Lock-free: the producer owns `tail`, the consumer
 * owns `head`; each caches the other's index to touch the shared cache line only when needed.
 * Batching is the caller's: push many, then wake the consumer once.
 */
#ifndef HB_CORE_SPSC_H
#define HB_CORE_SPSC_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

/* One message. `type` is an hb_msg_type_t (stream.h); `ptr`/`len` depend on it. */
typedef struct hb_msg {
	uint32_t type;
	uint32_t aux;
	void *stream;
	void *ptr;
	uint64_t len;
} hb_msg_t;

typedef struct hb_spsc {
	_Alignas(64) _Atomic size_t head; /* consumer writes */
	size_t tail_cache;		  /* consumer's view of tail */
	_Alignas(64) _Atomic size_t tail; /* producer writes */
	size_t head_cache;		  /* producer's view of head */
	_Alignas(64) size_t mask;
	hb_msg_t *slots;
} hb_spsc_t;

/* capacity is rounded up to a power of two. Returns 0 or -ENOMEM. */
int hb_spsc_init(hb_spsc_t *q, size_t capacity);
void hb_spsc_destroy(hb_spsc_t *q);

/* Producer: returns 0, or -EAGAIN when full. */
int hb_spsc_push(hb_spsc_t *q, const hb_msg_t *m);
/* Producer: pushes n messages (n <= capacity) made visible to the consumer by one index store,
 * so it pops either none or all of them. Returns 0, or -EAGAIN when fewer than n slots are free
 * (nothing pushed). */
int hb_spsc_push_n(hb_spsc_t *q, const hb_msg_t *m, size_t n);
/* Consumer: returns 0 and fills *m, or -EAGAIN when empty. */
int hb_spsc_pop(hb_spsc_t *q, hb_msg_t *m);
/* Either side: a racy emptiness check, exact for the consumer. */
int hb_spsc_empty(hb_spsc_t *q);
/* [any thread] Messages queued, approximate while the ends move (metrics). */
size_t hb_spsc_size(hb_spsc_t *q);

#endif
