/* transport_plain.c: the plaintext transport: socket bytes are the protocol's bytes. The
 * provided buffer goes straight to the handler and handler output straight to the output queue
 * (zero copy both ways), so splice and send_zc stay possible. */
#include "server/conn.h"
#include "server/transport.h"

static int plain_recv(struct hb_conn *c, char *p, size_t len)
{
	hb_conn_deliver(c, p, len);
	return 0;
}

const hb_transport_t hb_transport_plain = {
	.name = "plain",
	.caps = HB_TRANSPORT_SPLICE | HB_TRANSPORT_SEND_ZC,
	.secure = 0,
	.on_recv = plain_recv,
	.write = NULL, /* handler output is queued as is (zero copy) */
};
