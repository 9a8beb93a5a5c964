/* node_tls.c: the TLS context of node links from the configuration (node.h). Both ends are
 * hornbeam: TLS 1.3 only, the cluster's suites, and an ALPN name of its own so that a link never
 * mistakes an HTTPS listener with a certificate from the same CA for a node. The pair, its
 * password and the CA are read through proto/tls_ctx.c's loader, as HTTPS's keys are (key names in
 * its messages get the "cluster_" prefix). */
#include "cluster/node.h"

#include <errno.h>

#include "proto/tls.h"

int hb_cluster_tls_new(const hb_config_t *cfg, hb_tls_ctx_t **out, char *err, size_t errlen)
{
	static const char *const alpn[] = {HB_CLUSTER_ALPN};

	*out = NULL;
	if (!cfg->cluster_tls)
		return 0;
	hb_tls_cert_conf_t pair = {.certfile = cfg->cluster_certfile,
				   .keyfile = cfg->cluster_keyfile,
				   .password = cfg->cluster_keyfile_password};
	hb_tls_conf_t tc = {.certs = &pair,
			    .ncerts = 1,
			    .cacertfile = cfg->cluster_cacertfile,
			    .verify_client = HB_TLS_VERIFY_REQUIRED,
			    .min_version = HB_TLS_V1_3,
			    .ciphers = HB_CLUSTER_TLS_CIPHERS,
			    .alpn = alpn,
			    .nalpn = 1,
			    .client = 1,
			    .key_prefix = "cluster_"};
	*out = hb_tls_ctx_new(&tc, NULL, err, errlen);
	return *out ? 0 : -EINVAL;
}
