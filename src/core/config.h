/* config.h: the server's configuration: defaults, TOML file, HORNBEAM_* environment, CLI.
 *
 * Precedence: CLI > environment > file > defaults. The TOML file is parsed by CPython's tomllib
 * in the main interpreter (src/python/toml_load.c supplies that as a callback, so core does not
 * depend on Python). Built once on the main thread before any other thread starts; read-only
 * afterwards, so every thread may read it without locks. Strings and arrays are owned by the
 * config and freed by hb_config_free().
 */
#ifndef HB_CORE_CONFIG_H
#define HB_CORE_CONFIG_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/socket.h>

typedef enum { HB_WORKER_WSGI = 0, HB_WORKER_ASGI, HB_WORKER_AUTO } hb_worker_class_t;
typedef enum { HB_INTERP_ISOLATED = 0, HB_INTERP_MAIN } hb_interp_mode_t;
typedef enum { HB_LIFESPAN_AUTO = 0, HB_LIFESPAN_ON, HB_LIFESPAN_OFF } hb_lifespan_t;

typedef struct hb_bind {
	char spec[300]; /* as the user wrote it */
	int family;	/* AF_INET, AF_INET6, AF_UNIX, or AF_UNSPEC for a host name */
	char host[256]; /* numeric or name (lower case, no brackets); empty for unix */
	uint16_t port;
	char path[108]; /* unix socket path */
	int fd_bind;	/* fd://N: listen on the inherited socket fd (family learnt then) */
	int fd;
	int proxy; /* derived: a PROXY protocol header comes first (proxy_protocol) */
	int tls;   /* derived: a TLS listener (every bind with ssl on and no ssl_bind; the
		    * ssl_bind entries, appended to binds, otherwise) */
} hb_bind_t;

typedef enum { HB_VERIFY_NONE = 0, HB_VERIFY_OPTIONAL, HB_VERIFY_REQUIRED } hb_verify_client_t;

/* One [[tls.certificate]] table of the file: a pair served to clients whose SNI names
 * server_name ("*.example.com" matches one label). */
typedef struct hb_config_cert {
	char *server_name;
	char *certfile;
	char *keyfile;
	char *keyfile_password; /* NULL: the top-level keyfile_password */
} hb_config_cert_t;

/* A function registered from the file's [functions] table: name = "module:function". */
typedef struct hb_config_function {
	char *name;
	char *target;
} hb_config_function_t;

typedef struct hb_config {
	char *app;	   /* "module:callable"; required */
	int factory;	   /* bool: the callable is a factory of the app (--factory) */
	char *config_file; /* NULL when none */
	hb_bind_t *binds;  /* default: one, 127.0.0.1:8000 */
	size_t nbinds;
	int workers; /* default: CPUs this process may use (affinity and cgroup quota) */
	int threads; /* WSGI threads per worker, default 1 */
	hb_worker_class_t worker_class;
	hb_lifespan_t lifespan;	    /* ASGI lifespan protocol: auto (default), on, off */
	int64_t lifespan_timeout_s; /* each lifespan phase; default 60 */
	char **pythonpath;
	size_t npythonpath;
	char *venv;		    /* virtualenv directory (NULL: $VIRTUAL_ENV when set) */
	int64_t timeout_ms;	    /* request -> response start; 0 = none; default 30000 */
	int64_t graceful_timeout_s; /* default 30 */
	int64_t keepalive_s;	    /* idle keep-alive; default 5 */
	int64_t header_timeout_s;   /* request head must arrive within; default 10 */
	int64_t body_timeout_s;	    /* body read stall; default 30 */
	int64_t write_timeout_s;    /* response write stall; default 30 */
	int64_t max_requests;	    /* per worker before its interpreter is replaced; 0 = never */
	int64_t max_requests_jitter;
	int64_t limit_request_line;	   /* default 8190 -> 414 */
	int64_t limit_request_fields;	   /* default 100 -> 431 */
	int64_t limit_request_field_size;  /* default 8190 -> 431 */
	int64_t limit_request_header_size; /* whole header section, default 65536 -> 431 */
	int64_t max_body_size;		   /* default 1 GiB -> 413 */
	int64_t pipeline_depth;		   /* HTTP/1.1 requests in flight per connection; 32 */
	int64_t max_connections;	   /* per process, default 10000 */
	int backlog;			   /* listen queue per listener, default 4096 */
	char *root_path;		   /* SCRIPT_NAME / ASGI root_path, default "" */
	hb_interp_mode_t interpreter;
	int cpu_affinity;   /* bool */
	int io_sched_batch; /* bool, default true: io threads run SCHED_BATCH */
	int log_level;	    /* hb_log_level_t, default info */
	char *access_log;   /* NULL: off; "-": stdout */
	char *access_log_format;
	char *error_log;       /* "-": stderr (default); else a file stderr is pointed at */
	char *log_config;      /* Python logging setup (JSON, .json/.ini file, or a format); NULL */
	char *metrics_bind;    /* HOST:PORT of /metrics, /healthz, /readyz; NULL: off */
	char *metrics_buckets; /* request duration histogram bounds, seconds, comma-separated */
	int64_t zerocopy_threshold;	   /* send_zc for pieces >= this; 0 = never; 65536 */
	int64_t websocket_timeout_s;	   /* idle WebSocket; 0 = never */
	int64_t websocket_max_frame_size;  /* default 16 MiB -> close 1009 */
	int64_t websocket_ping_interval_s; /* default 20; 0 = no pings */
	int64_t websocket_ping_timeout_s;  /* default 20 */
	int websocket_deflate;		   /* bool, default true */
	int64_t state_max_bytes;	   /* shared map budget, default 256 MiB */
	int64_t state_max_key_size;	   /* default 1024 */
	int64_t state_max_value_size;	   /* default 64 MiB */
	int64_t pubsub_queue_size;	   /* messages per subscriber, default 1000 */
	int64_t process_bus_timeout_ms;	   /* publish answers / full peer queue, default 1000 */
	int reload;			   /* bool: --reload (development) */
	char **reload_dirs;		   /* default: pythonpath + the working directory */
	size_t nreload_dirs;
	char **reload_include; /* default *.py */
	size_t nreload_include;
	char **reload_exclude; /* default .* *.py[cod] *.sw.* ~* */
	size_t nreload_exclude;
	int64_t reload_delay_ms;       /* debounce, default 200 */
	int64_t worker_kill_timeout_s; /* after WorkerTimeout: replace the process; 30; 0 = never */
	char *http_version;	       /* "h1,h2" (default), "h1" or "h2", as written */
	int64_t h2_max_concurrent_streams; /* SETTINGS_MAX_CONCURRENT_STREAMS, default 100 */
	int64_t h2_max_header_list_size;   /* decoded request fields, default 65536 */
	int64_t h2_initial_window_size;	   /* per-stream receive window, default 65535 */
	int64_t h2_max_frame_size;	   /* default 16384 */
	int h2_push;			   /* bool, default false */
	int64_t h2_max_resets;		   /* client-caused stream resets per second, 100 */
	int64_t h2_max_control_frames;	   /* SETTINGS/PING/PRIORITY/empty frames per second */
	int64_t h2_max_continuations;	   /* CONTINUATION frames per header block, 8 */
	char *node_name;		   /* default hornbeam@<hostname> (NULL: derive) */
	/* [cluster] (docs/cluster.md); file keys in a [cluster] table, env HORNBEAM_CLUSTER_* */
	int cluster_enabled;	 /* default false */
	char *cluster_bind;	 /* numeric HOST:PORT, default 0.0.0.0:7946 */
	char *cluster_advertise; /* HOST:PORT others dial; NULL: derived */
	char **cluster_seeds;	 /* HOST:PORT, a name means all its addresses */
	size_t ncluster_seeds;
	char *cluster_cookie;		   /* required when enabled (or cluster_cookie_file) */
	char *cluster_cookie_file;	   /* read into cluster_cookie at load */
	int64_t cluster_max_frame_size;	   /* default 1 MiB */
	int64_t cluster_probe_interval_ms; /* default 1000 */
	int64_t cluster_probe_timeout_ms;  /* default 500 */
	int64_t cluster_indirect_checks;   /* default 3 */
	char **cluster_rpc_allow;	   /* modules other nodes may rpc_call; none: all */
	size_t ncluster_rpc_allow;
	int64_t cluster_link_queue;	   /* messages queued on one link, default 4096 */
	int64_t cluster_member_names_size; /* the process bus's member-name region, 64 KiB */
	int cluster_tls;		   /* mutual TLS on node links; cluster_certfile sets it */
	char *cluster_certfile;		   /* this node's certificate (server and client) */
	char *cluster_keyfile;
	char *cluster_keyfile_password;	 /* for an encrypted cluster_keyfile */
	char *cluster_cacertfile;	 /* the CA every node's certificate must chain to */
	hb_config_function_t *functions; /* [functions] table */
	size_t nfunctions;
	/* TLS (docs/tls.md) */
	int ssl;	      /* bool; certfile implies it */
	hb_bind_t *ssl_binds; /* as configured; also appended to binds with tls = 1 */
	size_t nssl_binds;
	char *certfile; /* the default pair; NULL when TLS is off */
	char *keyfile;
	char *keyfile_password;
	char *cacertfile;
	int verify_client;		 /* hb_verify_client_t */
	int ssl_min_version;		 /* 12 or 13 */
	char *ssl_ciphers;		 /* NULL: the built-in list (HB_TLS_DEFAULT_CIPHERS) */
	char *alpn;			 /* comma-separated, in preference order */
	int64_t ssl_handshake_timeout_s; /* default 10 */
	int64_t ssl_ticket_lifetime_s;	 /* default 3600 */
	hb_config_cert_t *ssl_certs;	 /* [[tls.certificate]] SNI pairs */
	size_t nssl_certs;
	/* behind a proxy (docs/proxies.md) */
	char *forwarded_allow_ips; /* comma-separated addresses/CIDRs, "*"; "127.0.0.1,::1" */
	int proxy_headers;	   /* bool, default true */
	int proxy_protocol;	   /* bool: every listener expects a PROXY header */
	hb_bind_t *proxy_binds;	   /* proxy_protocol_bind: those listeners expect one */
	size_t nproxy_binds;
	/* backpressure (core/overload.h) */
	int64_t limit_concurrency; /* requests in flight per process; 0 = off */
	int64_t max_queue_wait_ms; /* wait for a worker before 503; 0 = off */
	int64_t retry_after_s;	   /* Retry-After of those 503s; default 1 */
	/* the process model (docs/production.md) */
	int processes;			    /* worker processes the master runs, default 1 */
	int64_t reload_websocket_timeout_s; /* WebSockets kept on the old code after HUP; 600 */
	int64_t respawn_backoff_max_s;	    /* cap of a crash loop's restart delay, default 10 */
	int64_t max_worker_rss;		    /* bytes; a process past it is replaced; 0: never */
	char *pidfile;			    /* NULL: none */
	char *user;			    /* NULL: keep the starting user */
	char *group;			    /* NULL: the user's primary group */
	char *chdir;			    /* NULL: stay */
	char *sources; /* private to config.c: where each key's value came from (--print-config) */
	/* derived */
	int ncpus; /* CPUs this process may use: min(affinity mask, cgroup quota) */
	int *cpus; /* their ids (the first ncpus of the affinity mask), ncpus entries */
} hb_config_t;

/* A TOML value as the loader hands it over. */
typedef enum {
	HB_TV_STR,
	HB_TV_INT,
	HB_TV_FLOAT,
	HB_TV_BOOL,
	HB_TV_LIST,
	HB_TV_OTHER
} hb_tv_kind_t;
typedef struct hb_tval {
	hb_tv_kind_t kind;
	const char *str;       /* HB_TV_STR; for HB_TV_OTHER the TOML type name */
	int64_t i;	       /* HB_TV_INT, HB_TV_BOOL */
	double f;	       /* HB_TV_FLOAT */
	struct hb_tval *items; /* HB_TV_LIST */
	size_t nitems;
} hb_tval_t;

/* Called by the loader for each top-level key; line is 1-based (0 when unknown). Returns 0, or
 * -EINVAL with a message in err naming the key, file and line. */
typedef int (*hb_config_set_fn)(hb_config_t *cfg, const char *key, const hb_tval_t *v,
				const char *file, int line, char *err, size_t errlen);
/* Parses `path` and calls set for each key. Returns 0 or -EINVAL with the message in err
 * (unparseable TOML: with its line). */
typedef int (*hb_toml_loader_fn)(const char *path, hb_config_t *cfg, hb_config_set_fn set,
				 char *err, size_t errlen);

/* HB_CONFIG_EXIT: --help, --check-config or --print-config printed: exit 0.
 * HB_CONFIG_VERSION: --version printed the first line; the caller adds the libraries, exits 0. */
enum { HB_CONFIG_OK = 0, HB_CONFIG_EXIT = 1, HB_CONFIG_VERSION = 2 };

/* Builds cfg from defaults, the file (via loader), envp and argv. Returns HB_CONFIG_OK,
 * HB_CONFIG_EXIT, or -EINVAL with one message in err naming the key (and file/line). */
int hb_config_load(hb_config_t *cfg, int argc, char **argv, char **envp, hb_toml_loader_fn loader,
		   char *err, size_t errlen);
void hb_config_free(hb_config_t *cfg);
/* Writes the effective configuration as TOML, each key with where its value came from. */
void hb_config_print(const hb_config_t *cfg, FILE *out);
/* Whether http_version lets HTTP/1.1 / HTTP/2 be served. */
int hb_config_http1(const hb_config_t *cfg);
int hb_config_http2(const hb_config_t *cfg);
/* Writes the --help text. */
void hb_config_usage(FILE *out);

/* Parses one bind address: HOST[:PORT], [IPV6][:PORT], :PORT (all IPv4 interfaces),
 * tcp://..., unix:PATH, unix://PATH or fd://N (an inherited socket); PORT defaults to 8000,
 * 0 means any free port. Syntax only: names are not resolved. Returns 0, or -EINVAL with *why set
 * to a static reason. */
int hb_config_parse_bind(const char *spec, hb_bind_t *out, const char **why);

/* Request duration histogram buckets (metrics_buckets). */
#define HB_CONFIG_MAX_BUCKETS 32
#define HB_CONFIG_DEFAULT_BUCKETS "0.005,0.01,0.025,0.05,0.1,0.25,0.5,1,2.5,5,10"
/* Parses "0.005,0.01,..." (seconds, positive, increasing, at most max) into nanoseconds.
 * Returns the count, or -EINVAL. */
int hb_config_parse_buckets(const char *s, uint64_t *bounds_ns, int max);

/* Parses a duration: "30" or "1.5" (seconds), "30s", "250ms", "2m", "1h"; at most millisecond
 * precision. Returns 0 with *ms set, or -EINVAL. */
int hb_config_parse_duration(const char *s, int64_t *ms);

#endif
