/* config.c: one table of keys drives defaults, the TOML file, HORNBEAM_* and the CLI.
 *
 * Every source funnels into the same typed setters, so a key is validated the same way
 * wherever it comes from; only the prefix of the error message (file:line: key 'x', HORNBEAM_X,
 * --x) tells the sources apart.
 */
#include "core/config.h"
#include "core/config_priv.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <sys/un.h>

#include "core/cidr.h"
#include "core/cpu.h"
#include "core/log.h"

#ifndef HB_VERSION
#define HB_VERSION "unknown"
#endif

/* "main" in a build against Python 3.11, which has no per-interpreter GIL (CMake sets it). */
#ifndef HB_DEFAULT_INTERPRETER
#define HB_DEFAULT_INTERPRETER "isolated"
#endif

#define DEFAULT_PORT 8000
#define ENV_PREFIX "HORNBEAM_"
#define GUNICORN_ACCESS_FORMAT "%(h)s %(l)s %(u)s %(t)s \"%(r)s\" %(s)s %(b)s \"%(f)s\" \"%(a)s\""

static const char *check_root_path(char *s);
static const char *check_cluster_addr(char *s);
static const char *check_alpn(char *s);
static char *resolve_path(const char *basedir, const char *p);
static const char *check_http_version(char *s);
static const char *check_cidrs(char *s);
static const char *check_metrics_bind(char *s);
static const char *check_buckets(char *s);

static const struct choice worker_classes[] = {
	{"wsgi", HB_WORKER_WSGI, false},
	{"asgi", HB_WORKER_ASGI, false},
	{"auto", HB_WORKER_AUTO, false},
	{NULL, 0, false},
};

static const struct choice lifespans[] = {
	{"auto", HB_LIFESPAN_AUTO, false},
	{"on", HB_LIFESPAN_ON, false},
	{"off", HB_LIFESPAN_OFF, false},
	{NULL, 0, false},
};

static const struct choice interpreters[] = {
	{"isolated", HB_INTERP_ISOLATED, false},
	{"main", HB_INTERP_MAIN, false},
	{NULL, 0, false},
};

static const struct choice log_levels[] = {
	{"debug", HB_LOG_DEBUG, false},	      {"info", HB_LOG_INFO, false},
	{"warning", HB_LOG_WARNING, false},   {"error", HB_LOG_ERROR, false},
	{"critical", HB_LOG_CRITICAL, false}, {NULL, 0, false},
};

static const struct choice verify_modes[] = {
	{"none", HB_VERIFY_NONE, false},
	{"optional", HB_VERIFY_OPTIONAL, false},
	{"required", HB_VERIFY_REQUIRED, false},
	{NULL, 0, false},
};

static const struct choice tls_versions[] = {
	{"1.2", 12, false},
	{"1.3", 13, false},
	{NULL, 0, false},
};

#define DAY_S 86400
#define MIB (INT64_C(1) << 20)

/* clang-format off */
const struct key keys[] = {
	{"app", K_APP, OFF(app), .metavar = "MODULE:CALLABLE",
	 .help = "the WSGI or ASGI application (also the first argument); MODULE alone means "
		 "MODULE:application; MODULE:create_app() or create_app('arg') calls a factory"},
	{"factory", K_BOOL, OFF(factory), .def = "false",
	 .help = "the app's attribute is a factory: call it with no arguments to get the app "
		 "(uvicorn's --factory; MODULE:create_app() says the same in the app)"},
	{"config", K_STR, OFF(config_file), .shortopt = 'c', .flags = F_NOFILE, .metavar = "FILE",
	 .help = "TOML configuration file (env HORNBEAM_CONFIG)"},
	{"bind", K_BINDS, OFF(binds), .def = "127.0.0.1:8000", .shortopt = 'b', .metavar = "ADDR",
	 .count_off = OFF(nbinds),
	 .help = "address to listen on: HOST[:PORT], [IPV6][:PORT], :PORT or unix:PATH; repeatable"},
	{"workers", K_INT, OFF(workers), 1, 1024, NULL, "N", .shortopt = 'w',
	 .help = "worker interpreters (default: the CPUs this process may use)"},
	{"threads", K_INT, OFF(threads), 1, 256, "1", "K", "WSGI threads per worker"},
	{"worker_class", K_ENUM, OFF(worker_class), .def = "auto", .shortopt = 'k',
	 .metavar = "wsgi|asgi|auto",
	 .help = "application protocol; auto: ASGI when the app is a coroutine function, has an "
		 "async __call__ or takes 3 arguments, else WSGI (the log says which and why)",
	 .choices = worker_classes},
	{"lifespan", K_ENUM, OFF(lifespan), .def = "auto", .metavar = "auto|on|off",
	 .help = "ASGI lifespan protocol (auto: used when the app supports it)", .choices = lifespans},
	{"lifespan_timeout", K_SECS, OFF(lifespan_timeout_s), 1, DAY_S, "60", "SECONDS",
	 "seconds each ASGI lifespan phase (startup, shutdown) may take"},
	{"pythonpath", K_PATHS, OFF(pythonpath), .metavar = "DIR", .count_off = OFF(npythonpath),
	 .help = "directory prepended to sys.path; repeatable (in a file: relative to the file)"},
	{"venv", K_STR, OFF(venv), .metavar = "DIR", .flags = F_EMPTY_NULL | F_PATH,
	 .help = "a virtualenv whose site-packages the app imports from (default: an activated one, "
		 "$VIRTUAL_ENV); its Python must be the embedded one's version"},
	{"timeout", K_MSECS, OFF(timeout_ms), 0, DAY_S * 1000, "30", "SECONDS",
	 "seconds from request to response start (\"500ms\" for less); 0: none"},
	{"graceful_timeout", K_SECS, OFF(graceful_timeout_s), 0, DAY_S, "30", "SECONDS",
	 "seconds to finish requests in flight at shutdown"},
	{"keepalive", K_SECS, OFF(keepalive_s), 0, 3600, "5", "SECONDS",
	 "seconds an idle keep-alive connection is kept; 0: close after each response"},
	{"max_requests", K_I64, OFF(max_requests), 0, 1000000000, "0", "N",
	 "requests per worker before its interpreter is replaced; 0: never"},
	{"max_requests_jitter", K_I64, OFF(max_requests_jitter), 0, 1000000000, "0", "N",
	 "random 0..N added to max_requests per worker"},
	{"limit_request_line", K_I64, OFF(limit_request_line), 1, 65536, "8190", "N",
	 "longest request line in bytes (longer: 414)"},
	{"limit_request_fields", K_I64, OFF(limit_request_fields), 1, 32768, "100", "N",
	 "most header fields in a request (more: 431)"},
	{"limit_request_field_size", K_I64, OFF(limit_request_field_size), 1, MIB, "8190", "N",
	 "longest header field in bytes (longer: 431)"},
	{"limit_request_header_size", K_I64, OFF(limit_request_header_size), 1, MIB, "65536", "N",
	 "largest header section in bytes (larger: 431)"},
	{"max_body_size", K_I64, OFF(max_body_size), 0, INT64_MAX, "1073741824", "BYTES",
	 "largest request body (larger: 413)"},
	{"pipeline_depth", K_I64, OFF(pipeline_depth), 1, 1024, "32", "N",
	 "HTTP/1.1 pipelined requests of one connection served at once; 1: one at a time"},
	{"header_timeout", K_SECS, OFF(header_timeout_s), 0, 3600, "10", "SECONDS",
	 "seconds for the request head to arrive; 0: none"},
	{"body_timeout", K_SECS, OFF(body_timeout_s), 0, DAY_S, "30", "SECONDS",
	 "seconds a request body read may stall; 0: none"},
	{"write_timeout", K_SECS, OFF(write_timeout_s), 0, DAY_S, "30", "SECONDS",
	 "seconds a response write may stall; 0: none"},
	{"max_connections", K_I64, OFF(max_connections), 1, 10000000, "10000", "N",
	 "open connections per process; more wait in the listen backlog"},
	{"backlog", K_INT, OFF(backlog), 1, 65535, "4096", "N",
	 "listen queue length of each listener (the kernel caps it at net.core.somaxconn)"},
	{"root_path", K_STR, OFF(root_path), .def = "", .metavar = "P",
	 .help = "mount point: SCRIPT_NAME / ASGI root_path", .check = check_root_path},
	{"interpreter", K_ENUM, OFF(interpreter), .def = HB_DEFAULT_INTERPRETER, .metavar = "isolated|main",
	 .help = "isolated: a sub-interpreter with its own GIL per worker; main: the main interpreter",
	 .choices = interpreters},
	{"cpu_affinity", K_BOOL, OFF(cpu_affinity), .def = "false",
	 .help = "pin each thread to one of the allowed CPUs"},
	{"io_sched_batch", K_BOOL, OFF(io_sched_batch), .def = "true",
	 .help = "io threads run SCHED_BATCH: their wakeups do not preempt a worker running the "
		 "app on their CPU"},
	{"log_level", K_ENUM, OFF(log_level), .def = "info",
	 .metavar = "debug|info|warning|error|critical", .help = "error log threshold",
	 .choices = log_levels},
	{"access_log", K_STR, OFF(access_log), .def = "-", .metavar = "FILE|-",
	 .flags = F_EMPTY_NULL | F_OFF,
	 .help = "access log file, '-' for stdout; --no-access-log (file: false) turns it off"},
	{"access_log_format", K_STR, OFF(access_log_format), .def = GUNICORN_ACCESS_FORMAT,
	 .metavar = "FMT", .help = "access log line in gunicorn's %(x)s atoms, or \"json\""},
	{"error_log", K_STR, OFF(error_log), .def = "-", .metavar = "FILE|-",
	 .help = "error log file (appended; Python's stderr goes there too), '-' for stderr"},
	{"log_config", K_STR, OFF(log_config), .metavar = "FILE|JSON|FORMAT", .flags = F_EMPTY_NULL,
	 .help = "Python logging setup in every worker before the app is imported: a dictConfig "
		 "JSON (inline or a .json file), a fileConfig .ini file, or a format string for "
		 "logging.basicConfig"},
	{"metrics_bind", K_STR, OFF(metrics_bind), .metavar = "HOST:PORT", .flags = F_EMPTY_NULL,
	 .check = check_metrics_bind,
	 .help = "serve /metrics (Prometheus), /healthz and /readyz on this address (default: off)"},
	{"metrics_buckets", K_STR, OFF(metrics_buckets), .def = HB_CONFIG_DEFAULT_BUCKETS,
	 .metavar = "LIST", .flags = F_JOIN | F_NUMS, .check = check_buckets,
	 .help = "request duration histogram bounds in seconds, increasing, comma-separated"},
	{"zerocopy_threshold", K_I64, OFF(zerocopy_threshold), 0, INT64_MAX, "65536", "BYTES",
	 .help = "response pieces at least this large go out with send_zc; 0: never"},
	{"state_max_bytes", K_I64, OFF(state_max_bytes), 1 << 20, INT64_MAX, "268435456", "BYTES",
	 .help = "memory budget of the shared state map (past it: an exception)"},
	{"state_max_key_size", K_I64, OFF(state_max_key_size), 1, 1 << 20, "1024", "BYTES",
	 .help = "longest shared-state key"},
	{"state_max_value_size", K_I64, OFF(state_max_value_size), 1, 1 << 30, "67108864", "BYTES",
	 .help = "largest shared-state value (encoded)"},
	{"pubsub_queue_size", K_I64, OFF(pubsub_queue_size), 1, 1 << 24, "1000", "N",
	 .help = "messages kept per subscriber; a slow one loses the oldest"},
	{"reload", K_BOOL, OFF(reload), .def = "false",
	 .help = "development: reload (as SIGHUP does) when a watched source file changes"},
	{"reload_dirs", K_PATHS, OFF(reload_dirs), .metavar = "DIR", .count_off = OFF(nreload_dirs),
	 .help = "directory --reload watches, recursively; repeatable (default: the pythonpath "
		 "directories and the working directory)"},
	{"reload_include", K_STRS, OFF(reload_include), .metavar = "GLOB",
	 .count_off = OFF(nreload_include),
	 .help = "files --reload watches; repeatable (default: *.py)"},
	{"reload_exclude", K_STRS, OFF(reload_exclude), .metavar = "GLOB",
	 .count_off = OFF(nreload_exclude),
	 .help = "files and directories --reload ignores; repeatable (default: .* *.py[cod] *.sw.* "
		 "~*)"},
	{"reload_delay", K_MSECS, OFF(reload_delay_ms), 10, 60000, "200ms", "SECONDS",
	 .help = "--reload waits until no file changed for this long"},
	{"worker_kill_timeout", K_SECS, OFF(worker_kill_timeout_s), 0, DAY_S, "30", "SECONDS",
	 .help = "a request still running this long after its WorkerTimeout (timeout) gets its "
		 "worker process replaced; 0: never"},
	{"process_bus_timeout", K_MSECS, OFF(process_bus_timeout_ms), 1, 60000, "1", "SECONDS",
	 .help = "worker processes: how long publish waits for the others' counts, and a send for "
		 "a full peer"},
	{"node_name", K_STR, OFF(node_name), .metavar = "NAME", .flags = F_EMPTY_NULL,
	 .help = "this node's name (default hornbeam@<hostname>)"},
	{"websocket_timeout", K_SECS, OFF(websocket_timeout_s), 0, DAY_S, "0", "SECONDS",
	 .help = "close a WebSocket idle (no message either way) this long; 0: never"},
	{"websocket_max_frame_size", K_I64, OFF(websocket_max_frame_size), 1, 1 << 30, "16777216",
	 "BYTES", .help = "largest WebSocket frame or message (larger: close 1009)"},
	{"websocket_ping_interval", K_SECS, OFF(websocket_ping_interval_s), 0, DAY_S, "20", "SECONDS",
	 .help = "seconds between server pings on an idle WebSocket; 0: no pings"},
	{"websocket_ping_timeout", K_SECS, OFF(websocket_ping_timeout_s), 1, DAY_S, "20", "SECONDS",
	 .help = "close a WebSocket whose pong does not come within this"},
	{"websocket_deflate", K_BOOL, OFF(websocket_deflate), .def = "true",
	 .help = "negotiate permessage-deflate (RFC 7692) when the client offers it"},
	{"http_version", K_STR, OFF(http_version), .def = "h1,h2", .metavar = "LIST",
	 .help = "protocols served, comma-separated: h1 (HTTP/1.1) and/or h2 (HTTP/2)",
	 .check = check_http_version},
	{"h2_max_concurrent_streams", K_I64, OFF(h2_max_concurrent_streams), 1, 1 << 20, "100", "N",
	 .help = "HTTP/2 streams a client may have open at once (more: REFUSED_STREAM)"},
	{"h2_max_header_list_size", K_I64, OFF(h2_max_header_list_size), 1024, 16 * MIB, "65536",
	 "BYTES", .help = "HTTP/2 request fields, decoded (larger: GOAWAY ENHANCE_YOUR_CALM)"},
	{"h2_initial_window_size", K_I64, OFF(h2_initial_window_size), 1, INT32_MAX, "65535",
	 "BYTES", .help = "HTTP/2 request body bytes a stream may send before the app reads"},
	{"h2_max_frame_size", K_I64, OFF(h2_max_frame_size), 16384, 16777215, "16384", "BYTES",
	 .help = "largest HTTP/2 frame payload the server accepts"},
	{"h2_push", K_BOOL, OFF(h2_push), .def = "false",
	 .help = "allow HTTP/2 server push (only to clients that enable it)"},
	{"h2_max_resets", K_I64, OFF(h2_max_resets), 1, UINT32_MAX, "100", "N",
	 .help = "HTTP/2 stream resets a client causes per second before GOAWAY (rapid reset)"},
	{"h2_max_control_frames", K_I64, OFF(h2_max_control_frames), 1, UINT32_MAX, "1000", "N",
	 .help = "HTTP/2 SETTINGS, PING, PRIORITY and empty frames per second before GOAWAY"},
	{"h2_max_continuations", K_I64, OFF(h2_max_continuations), 0, 1024, "8", "N",
	 .help = "CONTINUATION frames per HTTP/2 header block (more: GOAWAY)"},
	{"cluster_enabled", K_BOOL, OFF(cluster_enabled), .def = "false",
	 .help = "join a cluster ([cluster] enabled in a file; needs a cookie)"},
	{"cluster_bind", K_STR, OFF(cluster_bind), .def = "0.0.0.0:7946", .metavar = "HOST:PORT",
	 .help = "numeric address the cluster listener binds", .check = check_cluster_addr},
	{"cluster_advertise", K_STR, OFF(cluster_advertise), .metavar = "HOST:PORT",
	 .flags = F_EMPTY_NULL, .check = check_cluster_addr,
	 .help = "address other nodes dial (default: the bind address, or this host's)"},
	{"cluster_seeds", K_STRS, OFF(cluster_seeds), .metavar = "HOST:PORT",
	 .count_off = OFF(ncluster_seeds),
	 .help = "a node to join through; a name means every address it has; repeatable"},
	{"cluster_cookie", K_STR, OFF(cluster_cookie), .metavar = "SECRET", .flags = F_EMPTY_NULL,
	 .help = "shared secret of the cluster's nodes (never sent)"},
	{"cluster_cookie_file", K_STR, OFF(cluster_cookie_file), .metavar = "FILE",
	 .flags = F_EMPTY_NULL, .help = "file holding the cookie (trailing newline ignored)"},
	{"cluster_max_frame_size", K_I64, OFF(cluster_max_frame_size), 64, 1 << 30, "1048576",
	 "BYTES", .help = "largest frame a peer may send (larger: the link closes)"},
	{"cluster_probe_interval", K_MSECS, OFF(cluster_probe_interval_ms), 10, 60000, "1", "SECONDS",
	 .help = "time between failure-detector probes (\"200ms\" for less than a second)"},
	{"cluster_probe_timeout", K_MSECS, OFF(cluster_probe_timeout_ms), 5, 60000, "500ms",
	 "SECONDS", .help = "time to wait for a probe's ack before asking others to probe"},
	{"cluster_indirect_checks", K_I64, OFF(cluster_indirect_checks), 1, 16, "3", "N",
	 .help = "members asked to probe a node that did not answer"},
	{"cluster_rpc_allow", K_STRS, OFF(cluster_rpc_allow), .metavar = "MODULE",
	 .count_off = OFF(ncluster_rpc_allow),
	 .help = "a module (and its submodules) other nodes may rpc_call; repeatable; none: all"},
	{"cluster_link_queue", K_I64, OFF(cluster_link_queue), 16, 1 << 20, "4096", "N",
	 .help = "messages queued on one node link (full: oldest publish dropped, calls fail)"},
	/* the bus's bounds: 64 MiB is HB_XBUS_MAX_MEMBERS (core/xbus.h) */
	{"cluster_member_names_size", K_I64, OFF(cluster_member_names_size), 1, 64 << 20, "65536",
	 "BYTES", .help = "with processes > 1: room for the live members' names the other processes "
			  "see (too small: nodes() there lists only those that fit)"},
	{"cluster_tls", K_BOOL, OFF(cluster_tls), .def = "false",
	 .help = "mutual TLS on every node link (cluster_certfile turns it on too)"},
	{"cluster_certfile", K_STR, OFF(cluster_certfile), .metavar = "FILE",
	 .flags = F_EMPTY_NULL | F_PATH,
	 .help = "PEM certificate (then its chain) this node presents on cluster links"},
	{"cluster_keyfile", K_STR, OFF(cluster_keyfile), .metavar = "FILE",
	 .flags = F_EMPTY_NULL | F_PATH, .help = "PEM private key of cluster_certfile, maybe encrypted"},
	{"cluster_keyfile_password", K_STR, OFF(cluster_keyfile_password), .metavar = "PW",
	 .flags = F_EMPTY_NULL,
	 .help = "password of an encrypted cluster_keyfile (prefer the environment or the file to "
		 "the CLI)"},
	{"cluster_cacertfile", K_STR, OFF(cluster_cacertfile), .metavar = "FILE",
	 .flags = F_EMPTY_NULL | F_PATH,
	 .help = "PEM CA certificates every node's certificate must chain to (both ways)"},
	{"forwarded_allow_ips", K_STR, OFF(forwarded_allow_ips), .def = "127.0.0.1,::1",
	 .metavar = "LIST", .flags = F_JOIN, .check = check_cidrs,
	 .help = "proxies trusted with forwarding headers and the PROXY protocol: addresses or "
		 "CIDRs, comma-separated; '*': all"},
	{"proxy_headers", K_BOOL, OFF(proxy_headers), .def = "true",
	 .help = "from a trusted peer, apply X-Forwarded-For/-Proto/-Host/-Port and Forwarded"},
	{"proxy_protocol", K_BOOL, OFF(proxy_protocol), .def = "false",
	 .help = "every listener expects a PROXY protocol header (v1 or v2) from a trusted peer "
		 "before TLS or HTTP"},
	{"proxy_protocol_bind", K_BINDS, OFF(proxy_binds), .metavar = "ADDR",
	 .count_off = OFF(nproxy_binds),
	 .help = "one of the bind/ssl_bind addresses whose connections start with a PROXY "
		 "header; repeatable"},
	{"limit_concurrency", K_I64, OFF(limit_concurrency), 0, 100000000, "0", "N",
	 .help = "requests (and WebSockets) in flight per process past which a new one is answered "
		 "503 at once; 0: no limit"},
	{"max_queue_wait", K_MSECS, OFF(max_queue_wait_ms), 0, 3600000, "0", "SECONDS",
	 .help = "a request that waited this long for a worker is answered 503 instead of run "
		 "late (\"250ms\" for less than a second); 0: no limit"},
	{"retry_after", K_SECS, OFF(retry_after_s), 0, 86400, "1", "SECONDS",
	 .help = "Retry-After of the 503s answered for limit_concurrency and max_queue_wait"},
	{"ssl", K_BOOL, OFF(ssl), .def = "false",
	 .help = "serve TLS (certfile turns it on too): on every bind, or on the ssl_bind ones"},
	{"ssl_bind", K_BINDS, OFF(ssl_binds), .metavar = "ADDR", .count_off = OFF(nssl_binds),
	 .help = "a TLS listener beside the plain bind ones; repeatable (without it, TLS makes "
		 "every bind TLS)"},
	{"certfile", K_STR, OFF(certfile), .metavar = "FILE", .flags = F_EMPTY_NULL | F_PATH,
	 .help = "PEM certificate (then its chain) of the default TLS pair; turns TLS on"},
	{"keyfile", K_STR, OFF(keyfile), .metavar = "FILE", .flags = F_EMPTY_NULL | F_PATH,
	 .help = "PEM private key of certfile, maybe encrypted"},
	{"keyfile_password", K_STR, OFF(keyfile_password), .metavar = "PW", .flags = F_EMPTY_NULL,
	 .help = "password of an encrypted keyfile (prefer the environment or the file to the CLI)"},
	{"cacertfile", K_STR, OFF(cacertfile), .metavar = "FILE", .flags = F_EMPTY_NULL | F_PATH,
	 .help = "PEM CA certificates that client certificates must chain to (verify_client)"},
	{"verify_client", K_ENUM, OFF(verify_client), .def = "none",
	 .metavar = "none|optional|required", .help = "ask TLS clients for a certificate (mutual TLS)",
	 .choices = verify_modes},
	{"ssl_min_version", K_ENUM, OFF(ssl_min_version), .def = "1.2", .metavar = "1.2|1.3",
	 .help = "oldest TLS version accepted", .choices = tls_versions},
	{"ssl_ciphers", K_STR, OFF(ssl_ciphers), .metavar = "LIST", .flags = F_EMPTY_NULL,
	 .help = "wolfSSL cipher list (default: TLS 1.3 suites, then ECDHE with AES-GCM or ChaCha20)"},
	{"alpn", K_STR, OFF(alpn), .def = "h2,http/1.1", .metavar = "LIST", .flags = F_JOIN,
	 .help = "ALPN protocols, in preference order (the ones this build serves)",
	 .check = check_alpn},
	{"ssl_handshake_timeout", K_SECS, OFF(ssl_handshake_timeout_s), 1, 3600, "10", "SECONDS",
	 "seconds a TLS handshake may take"},
	{"ssl_ticket_lifetime", K_SECS, OFF(ssl_ticket_lifetime_s), 60, 7 * DAY_S, "3600", "SECONDS",
	 "session ticket lifetime and ticket key rotation period"},
	{"processes", K_INT, OFF(processes), 1, 1024, "1", "N",
	 "worker processes, each with its own io threads and interpreters (workers split the CPUs)"},
	{"reload_websocket_timeout", K_SECS, OFF(reload_websocket_timeout_s), 0, 7 * DAY_S, "600",
	 "SECONDS", "after a reload (HUP), how long WebSockets stay open on the old code"},
	{"respawn_backoff_max", K_SECS, OFF(respawn_backoff_max_s), 1, 3600, "10", "SECONDS",
	 "longest wait before restarting a worker process that keeps failing to boot"},
	{"max_worker_rss", K_I64, OFF(max_worker_rss), 0, INT64_MAX, "0", "BYTES",
	 "replace a worker process whose resident memory passes this, gracefully; 0: never"},
	{"pidfile", K_STR, OFF(pidfile), .metavar = "FILE", .flags = F_EMPTY_NULL | F_PATH,
	 .help = "write the master's pid to FILE (removed at exit)"},
	{"user", K_STR, OFF(user), .metavar = "USER", .flags = F_EMPTY_NULL,
	 .help = "switch to this user (name or uid) after binding"},
	{"group", K_STR, OFF(group), .metavar = "GROUP", .flags = F_EMPTY_NULL,
	 .help = "switch to this group (name or gid) after binding (default: the user's)"},
	{"chdir", K_STR, OFF(chdir), .metavar = "DIR", .flags = F_EMPTY_NULL,
	 .help = "change to this directory before loading the app"},
};
/* clang-format on */

#define NKEYS (sizeof keys / sizeof keys[0])
const size_t nkeys = NKEYS;

/* ---- small helpers ---- */

static void *field(hb_config_t *cfg, size_t off)
{
	return (char *)cfg + off;
}

static size_t *count_field(hb_config_t *cfg, const struct key *k)
{
	return (size_t *)field(cfg, k->count_off);
}

const struct key *key_named(const char *name)
{
	for (size_t i = 0; i < NKEYS; i++)
		if (strcmp(keys[i].name, name) == 0)
			return &keys[i];
	return NULL;
}

/* The option spelling of a key: "max_requests" -> "max-requests". */
void dashed(const char *name, char *out, size_t size)
{
	size_t i = 0;
	for (; name[i] && i + 1 < size; i++)
		out[i] = name[i] == '_' ? '-' : name[i];
	out[i] = '\0';
}

static void env_name(const char *name, char *out, size_t size)
{
	size_t n = (size_t)snprintf(out, size, ENV_PREFIX "%s", name);
	for (size_t i = sizeof ENV_PREFIX - 1; i < n && i < size; i++)
		out[i] = (char)toupper((unsigned char)out[i]);
}

/* "'text'" for messages, shortened when long. */
static const char *quoted(char *buf, size_t size, const char *s)
{
	int max = 60;
	snprintf(buf, size, "'%.*s%s'", max, s, strlen(s) > (size_t)max ? "..." : "");
	return buf;
}

static const char *tval_type(const hb_tval_t *v)
{
	switch (v->kind) {
	case HB_TV_STR:
		return "string";
	case HB_TV_INT:
		return "integer";
	case HB_TV_FLOAT:
		return "float";
	case HB_TV_BOOL:
		return "boolean";
	case HB_TV_LIST:
		return "array";
	case HB_TV_OTHER:
		return v->str ? v->str : "value";
	}
	return "value";
}

/* Optimal string alignment distance (edits and adjacent swaps), for "did you mean". */
int distance(const char *a, const char *b)
{
	enum { MAXLEN = 64 };
	int rows[3][MAXLEN + 1];
	size_t la = strlen(a), lb = strlen(b);
	if (la > MAXLEN || lb > MAXLEN)
		return INT_MAX;
	for (size_t j = 0; j <= lb; j++)
		rows[0][j] = (int)j;
	for (size_t i = 1; i <= la; i++) {
		int *cur = rows[i % 3], *prev = rows[(i - 1) % 3], *prev2 = rows[(i + 1) % 3];
		cur[0] = (int)i;
		for (size_t j = 1; j <= lb; j++) {
			int cost = a[i - 1] != b[j - 1];
			int d = prev[j] + 1;
			if (cur[j - 1] + 1 < d)
				d = cur[j - 1] + 1;
			if (prev[j - 1] + cost < d)
				d = prev[j - 1] + cost;
			if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] &&
			    prev2[j - 2] + 1 < d)
				d = prev2[j - 2] + 1;
			cur[j] = d;
		}
	}
	return rows[la % 3][lb];
}

/* The key name closest to a misspelling, or NULL when none is close. */
const char *closest_key(const char *name, bool file)
{
	const char *best = NULL;
	int bestd = strlen(name) < 4 ? 1 : 2;
	for (size_t i = 0; i < NKEYS; i++) {
		if (file && (keys[i].flags & F_NOFILE))
			continue;
		int d = distance(name, keys[i].name);
		if (d <= bestd) {
			best = keys[i].name;
			bestd = d - 1;
		}
	}
	return best;
}

/* ---- errors ---- */

/* Writes "<source prefix>: " for key k into err; returns its length. */
static size_t prefix(const struct ctx *c, const struct key *k)
{
	char name[64];
	int n = 0;
	switch (c->o.src) {
	case SRC_FILE:
		n = c->o.line > 0
			    ? snprintf(c->err, c->errlen, "%s:%d: key '%s': ", c->o.file, c->o.line,
				       k->name)
			    : snprintf(c->err, c->errlen, "%s: key '%s': ", c->o.file, k->name);
		break;
	case SRC_ENV:
		env_name(k->name, name, sizeof name);
		n = snprintf(c->err, c->errlen, "%s: ", name);
		break;
	case SRC_CLI:
		dashed(k->name, name, sizeof name);
		n = c->o.positional ? snprintf(c->err, c->errlen, "APP: ")
				    : snprintf(c->err, c->errlen, "--%s: ", name);
		break;
	case SRC_DEFAULT:
		n = snprintf(c->err, c->errlen, "default of '%s': ", k->name);
		break;
	}
	return n < 0 ? 0 : (size_t)n;
}

__attribute__((format(printf, 3, 4))) static int fail(const struct ctx *c, const struct key *k,
						      const char *fmt, ...)
{
	size_t n = prefix(c, k);
	va_list ap;
	va_start(ap, fmt);
	if (n < c->errlen)
		vsnprintf(c->err + n, c->errlen - n, fmt, ap);
	va_end(ap);
	return -EINVAL;
}

int plain_fail(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
	return -EINVAL;
}

static int no_memory(const struct ctx *c)
{
	snprintf(c->err, c->errlen, "out of memory");
	return -ENOMEM;
}

/* ---- binds ---- */

static int port_of(const char *s, uint16_t *port)
{
	return hb_cidr_port_parse(s, strlen(s), 0, port);
}

static bool all_digits(const char *s)
{
	if (!*s)
		return false;
	for (; *s; s++)
		if (!isdigit((unsigned char)*s))
			return false;
	return true;
}

static bool host_name_ok(const char *s)
{
	size_t n = strlen(s);
	if (n == 0 || n > 253)
		return false;
	for (; *s; s++)
		if (!isalnum((unsigned char)*s) && *s != '-' && *s != '.' && *s != '_')
			return false;
	return true;
}

static int parse_unix(const char *path, hb_bind_t *b, const char **why)
{
	if (strncmp(path, "//", 2) == 0)
		path += 2;
	if (!*path)
		return *why = "empty unix socket path", -EINVAL;
	if (strlen(path) >= sizeof(((struct sockaddr_un *)0)->sun_path) ||
	    strlen(path) >= sizeof b->path)
		return *why = "unix socket path longer than 107 bytes", -EINVAL;
	b->family = AF_UNIX;
	strcpy(b->path, path);
	return 0;
}

/* "fd://N": a socket the parent process opened and left open (systemd, a supervisor). */
static int parse_fd(const char *s, hb_bind_t *b, const char **why)
{
	long v = 0;
	if (!*s || strlen(s) > 9 || !all_digits(s))
		return *why = "fd:// must be followed by a descriptor number", -EINVAL;
	v = strtol(s, NULL, 10);
	if (v < 3)
		return *why = "descriptors 0, 1 and 2 are stdin, stdout and stderr", -EINVAL;
	b->family = AF_UNSPEC;
	b->fd = (int)v;
	b->fd_bind = 1;
	return 0;
}

/* "[v6]" or "[v6]:port"; a zone ("%eth0") is kept for the listener. */
static int parse_v6(const char *s, hb_bind_t *b, const char **why)
{
	const char *close = strchr(s, ']');
	struct in6_addr a;
	char addr[INET6_ADDRSTRLEN + 1];
	if (!close)
		return *why = "missing ']' after an IPv6 address", -EINVAL;
	size_t n = (size_t)(close - s - 1);
	if (n >= sizeof b->host)
		return *why = "IPv6 address too long", -EINVAL;
	memcpy(b->host, s + 1, n);
	b->host[n] = '\0';
	size_t alen = strcspn(b->host, "%");
	if (alen >= sizeof addr)
		return *why = "not an IPv6 address", -EINVAL;
	memcpy(addr, b->host, alen);
	addr[alen] = '\0';
	if (inet_pton(AF_INET6, addr, &a) != 1)
		return *why = "not an IPv6 address", -EINVAL;
	b->family = AF_INET6;
	b->port = DEFAULT_PORT;
	if (!close[1])
		return 0;
	if (close[1] != ':')
		return *why = "expected ':PORT' after ']'", -EINVAL;
	if (port_of(close + 2, &b->port) < 0)
		return *why = "port must be a number from 0 to 65535 (0: any free port)", -EINVAL;
	return 0;
}

/* "host", "host:port" or ":port", as gunicorn reads them. */
static int parse_host(const char *s, hb_bind_t *b, const char **why)
{
	const char *colon = strchr(s, ':');
	struct in_addr a;
	if (colon && strchr(colon + 1, ':'))
		return *why = "an IPv6 address must be in brackets, as [::1]:8000", -EINVAL;
	size_t n = colon ? (size_t)(colon - s) : strlen(s);
	if (n >= sizeof b->host)
		return *why = "host name too long", -EINVAL;
	for (size_t i = 0; i < n; i++)
		b->host[i] = (char)tolower((unsigned char)s[i]);
	b->host[n] = '\0';
	b->port = DEFAULT_PORT;
	if (colon && port_of(colon + 1, &b->port) < 0)
		return *why = "port must be a number from 0 to 65535 (0: any free port)", -EINVAL;
	if (!colon && all_digits(b->host))
		return *why = "a port alone is not an address: write :PORT or HOST:PORT", -EINVAL;
	if (n == 0)
		strcpy(b->host, "0.0.0.0");
	if (inet_pton(AF_INET, b->host, &a) == 1) {
		b->family = AF_INET;
		return 0;
	}
	if (!host_name_ok(b->host))
		return *why = "not an IPv4 address or host name", -EINVAL;
	b->family = AF_UNSPEC;
	return 0;
}

int hb_config_parse_bind(const char *spec, hb_bind_t *b, const char **why)
{
	const char *s = spec;
	memset(b, 0, sizeof *b);
	if (strlen(spec) >= sizeof b->spec)
		return *why = "address too long", -EINVAL;
	strcpy(b->spec, spec);
	if (strncmp(s, "unix:", 5) == 0)
		return parse_unix(s + 5, b, why);
	if (strncmp(s, "fd://", 5) == 0)
		return parse_fd(s + 5, b, why);
	if (strncmp(s, "tcp://", 6) == 0)
		s += 6;
	if (!*s)
		return *why = "empty address", -EINVAL;
	if (*s == '[')
		return parse_v6(s, b, why);
	return parse_host(s, b, why);
}

/* ---- typed setters: every source ends here ---- */

static int store_int(const struct ctx *c, const struct key *k, int64_t v, const char *got)
{
	if (v < k->min)
		return fail(c, k, "expected an integer >= %lld, got %s", (long long)k->min, got);
	if (v > k->max)
		return fail(c, k, "expected an integer <= %lld, got %s", (long long)k->max, got);
	if (k->kind == K_INT)
		*(int *)field(c->cfg, k->off) = (int)v;
	else
		*(int64_t *)field(c->cfg, k->off) = v;
	return 0;
}

/* A duration for messages: "30s", or "250ms" when not whole seconds. */
static const char *dur_text(char *buf, size_t size, int64_t ms)
{
	if (ms % 1000 == 0)
		snprintf(buf, size, "%llds", (long long)(ms / 1000));
	else
		snprintf(buf, size, "%lldms", (long long)ms);
	return buf;
}

/* Stores a duration given in milliseconds into a K_SECS or K_MSECS field; min and max are in
 * the field's unit. got is the value as the user wrote it, for messages. */
static int store_dur(const struct ctx *c, const struct key *k, int64_t ms, const char *got)
{
	int64_t per = k->kind == K_SECS ? 1000 : 1;
	char b[32];
	if (ms < k->min * per)
		return fail(c, k, "expected a duration >= %s, got %s",
			    dur_text(b, sizeof b, k->min * per), got);
	if (ms > k->max * per)
		return fail(c, k, "expected a duration <= %s, got %s",
			    dur_text(b, sizeof b, k->max * per), got);
	if (ms % per)
		return fail(c, k, "expected whole seconds, got %s", got);
	*(int64_t *)field(c->cfg, k->off) = ms / per;
	return 0;
}

static int store_bool(const struct ctx *c, const struct key *k, bool v)
{
	*(int *)field(c->cfg, k->off) = v;
	return 0;
}

static int fail_choice(const struct ctx *c, const struct key *k, const char *got)
{
	char list[128];
	size_t n = 0;
	list[0] = '\0';
	for (const struct choice *ch = k->choices; ch->name && n < sizeof list; ch++)
		n += (size_t)snprintf(list + n, sizeof list - n, "%s%s", n ? ", " : "", ch->name);
	return fail(c, k, "expected one of %s, got %s", list, got);
}

static int store_enum(const struct ctx *c, const struct key *k, const char *s)
{
	char q[80];
	for (const struct choice *ch = k->choices; ch->name; ch++) {
		if (strcasecmp(ch->name, s) != 0)
			continue;
		if (ch->later)
			return fail(c, k, "%s '%s' is not supported yet", k->name, ch->name);
		*(int *)field(c->cfg, k->off) = ch->value;
		return 0;
	}
	return fail_choice(c, k, quoted(q, sizeof q, s));
}

static int replace_str(const struct ctx *c, const struct key *k, char *owned)
{
	char **slot = field(c->cfg, k->off);
	free(*slot);
	*slot = owned;
	return 0;
}

/* A dotted module path: letters, digits, '_' and '.', not starting with '.'. Bytes >= 0x80
 * pass, for non-ASCII identifiers; Python's import has the last word. */
static bool module_ok(const char *s, size_t n)
{
	if (n == 0 || s[0] == '.' || isdigit((unsigned char)s[0]))
		return false;
	for (size_t i = 0; i < n; i++)
		if (!isalnum((unsigned char)s[i]) && s[i] != '_' && s[i] != '.' &&
		    !((unsigned char)s[i] & 0x80))
			return false;
	return true;
}

/* MODULE:CALLABLE; MODULE alone means MODULE:application (gunicorn's rule). The callable part
 * may be an expression gunicorn accepts, as create_app(), so it is only checked for being
 * there. */
static int store_app(const struct ctx *c, const struct key *k, const char *s)
{
	char q[80];
	const char *colon = strchr(s, ':');
	size_t mlen = colon ? (size_t)(colon - s) : strlen(s);
	bool bad = !module_ok(s, mlen) || (colon && !colon[1]) || strpbrk(s, "\t\r\n");
	if (bad)
		return fail(c, k, "expected MODULE:CALLABLE, got %s", quoted(q, sizeof q, s));
	size_t n = strlen(s) + sizeof ":application";
	char *app = malloc(n);
	if (!app)
		return no_memory(c);
	snprintf(app, n, "%s%s", s, colon ? "" : ":application");
	return replace_str(c, k, app);
}

/* The cluster listener and the address others dial are numeric HOST:PORT ([V6]:PORT). */
static const char *check_cluster_addr(char *s)
{
	hb_bind_t b;
	const char *why = NULL;
	if (!strchr(s, ':'))
		return "expected HOST:PORT";
	if (hb_config_parse_bind(s, &b, &why) < 0)
		return why;
	if (b.family != AF_INET && b.family != AF_INET6)
		return "expected a numeric address (an IP, not a name)";
	if (b.port == 0)
		return "port 0 is not a port other nodes can dial";
	return NULL;
}

/* "h2, http/1.1" -> "h2,http/1.1": 1 to 8 names of 1 to 255 bytes. */
/* forwarded_allow_ips: every item an address, ADDR/BITS or "*". */
static const char *check_cidrs(char *s)
{
	hb_cidr_set_t set;
	const char *why = NULL;

	if (hb_cidr_set_parse(s, &set, &why) < 0)
		return why;
	hb_cidr_set_free(&set);
	return NULL;
}

static const char *check_alpn(char *s)
{
	char *w = s;
	size_t names = 0, len = 0;
	for (const char *r = s;; r++) {
		if (*r == ' ' || *r == '\t')
			continue;
		if (*r == ',' || !*r) {
			if (len == 0)
				return "expected protocol names separated by commas";
			names++;
			len = 0;
			if (!*r)
				break;
		} else if (++len > 255) {
			return "a protocol name is longer than 255 bytes";
		}
		*w++ = *r;
	}
	*w = '\0';
	return names > 8 ? "at most 8 protocols" : NULL;
}

/* Calls fn on each token of a comma/space-separated list; stops at the first non-zero return. */
static int each_token(const char *s, int (*fn)(const char *t, size_t n, void *arg), void *arg)
{
	while (*s) {
		s += strspn(s, ", \t");
		size_t n = strcspn(s, ", \t");
		int rc = n ? fn(s, n, arg) : 0;
		if (rc)
			return rc;
		s += n;
	}
	return 0;
}

/* 1: HTTP/1.1, 2: HTTP/2, -1: unknown. */
static int version_token(const char *t, size_t n)
{
	if ((n == 2 && !strncasecmp(t, "h1", 2)) || (n == 8 && !strncasecmp(t, "http/1.1", 8)) ||
	    (n == 3 && !strncmp(t, "1.1", 3)))
		return 1;
	if ((n == 2 && !strncasecmp(t, "h2", 2)) || (n == 1 && t[0] == '2'))
		return 2;
	return -1;
}

static int collect_version(const char *t, size_t n, void *arg)
{
	int v = version_token(t, n);
	if (v < 0)
		return -1;
	*(unsigned *)arg |= 1u << v;
	return 0;
}

/* http_version: h1 (also http/1.1, 1.1) and/or h2 (also 2), comma-separated; kept as written. */
static const char *check_http_version(char *s)
{
	unsigned seen = 0;
	if (each_token(s, collect_version, &seen) != 0 || !seen)
		return "must list h1 and/or h2";
	return NULL;
}

static unsigned http_versions(const hb_config_t *cfg)
{
	unsigned seen = 0;
	if (!cfg->http_version || each_token(cfg->http_version, collect_version, &seen) != 0)
		return 1u << 1 | 1u << 2;
	return seen;
}

int hb_config_http1(const hb_config_t *cfg)
{
	return (http_versions(cfg) >> 1) & 1;
}

int hb_config_http2(const hb_config_t *cfg)
{
	return (http_versions(cfg) >> 2) & 1;
}

static const char *check_metrics_bind(char *s)
{
	hb_bind_t b;
	const char *why = NULL;

	return hb_config_parse_bind(s, &b, &why) < 0 ? why : NULL;
}

int hb_config_parse_buckets(const char *s, uint64_t *bounds_ns, int max)
{
	int n = 0;
	double prev = 0;

	while (*s) {
		char *end;
		double v = strtod(s, &end);
		if (end == s || !(v > prev) || v > 1e6 || n >= max)
			return -EINVAL;
		while (*end == ' ')
			end++;
		if (*end && *end != ',')
			return -EINVAL;
		bounds_ns[n++] = (uint64_t)(v * 1e9 + 0.5);
		prev = v;
		s = *end ? end + 1 : end;
		while (*s == ' ')
			s++;
	}
	return n > 0 ? n : -EINVAL;
}

static const char *check_buckets(char *s)
{
	uint64_t b[HB_CONFIG_MAX_BUCKETS];

	return hb_config_parse_buckets(s, b, HB_CONFIG_MAX_BUCKETS) < 0
		       ? "not a list of increasing positive seconds (at most 32), e.g. "
			 "\"0.01,0.1,1\""
		       : NULL;
}

static const char *check_root_path(char *s)
{
	size_t n = strlen(s);
	if (n && s[0] != '/')
		return "must be empty or start with '/'";
	while (n && s[n - 1] == '/')
		s[--n] = '\0';
	return NULL;
}

static int store_str(const struct ctx *c, const struct key *k, const char *s)
{
	char q[80];
	if ((k->flags & F_EMPTY_NULL) && !*s)
		return replace_str(c, k, NULL);
	char *copy = (k->flags & F_PATH) ? resolve_path(c->basedir, s) : strdup(s);
	if (!copy)
		return no_memory(c);
	const char *why = k->check ? k->check(copy) : NULL;
	if (why) {
		free(copy);
		return fail(c, k, "%s, got %s", why, quoted(q, sizeof q, s));
	}
	return replace_str(c, k, copy);
}

static int store_string_kind(const struct ctx *c, const struct key *k, const char *s)
{
	if (k->kind == K_ENUM)
		return store_enum(c, k, s);
	if (k->kind == K_APP)
		return store_app(c, k, s);
	return store_str(c, k, s);
}

static void clear_list(hb_config_t *cfg, const struct key *k)
{
	size_t *n = count_field(cfg, k);
	if (k->kind == K_PATHS || k->kind == K_STRS) {
		char **paths = *(char ***)field(cfg, k->off);
		for (size_t i = 0; i < *n; i++)
			free(paths[i]);
	}
	free(*(void **)field(cfg, k->off));
	*(void **)field(cfg, k->off) = NULL;
	*n = 0;
}

static int add_bind(const struct ctx *c, const struct key *k, const char *spec)
{
	hb_bind_t b;
	const char *why = "";
	char q[80];
	if (hb_config_parse_bind(spec, &b, &why) < 0)
		return fail(c, k, "invalid address %s: %s", quoted(q, sizeof q, spec), why);
	hb_bind_t **slot = field(c->cfg, k->off);
	size_t n = *count_field(c->cfg, k);
	hb_bind_t *binds = realloc(*slot, (n + 1) * sizeof *binds);
	if (!binds)
		return no_memory(c);
	binds[n] = b;
	*slot = binds;
	*count_field(c->cfg, k) = n + 1;
	return 0;
}

/* A relative entry from a file is taken relative to that file's directory. */
static char *resolve_path(const char *basedir, const char *p)
{
	if (!basedir || p[0] == '/')
		return strdup(p);
	size_t n = strlen(basedir) + strlen(p) + 2;
	char *out = malloc(n);
	if (out)
		snprintf(out, n, "%s/%s", basedir, p);
	return out;
}

static int add_path(const struct ctx *c, const struct key *k, const char *p)
{
	if (!*p)
		return fail(c, k, "empty directory name");
	char *path = resolve_path(c->basedir, p);
	size_t *n = count_field(c->cfg, k);
	char ***v = (char ***)field(c->cfg, k->off);
	char **paths = path ? realloc(*v, (*n + 1) * sizeof *paths) : NULL;
	if (!paths) {
		free(path);
		return no_memory(c);
	}
	paths[*n] = path;
	*v = paths;
	*n += 1;
	return 0;
}

static int add_str(const struct ctx *c, const struct key *k, const char *s)
{
	if (!*s)
		return fail(c, k, "empty value");
	size_t *n = count_field(c->cfg, k);
	char ***v = (char ***)field(c->cfg, k->off);
	char *copy = strdup(s);
	char **grown = copy ? realloc(*v, (*n + 1) * sizeof **v) : NULL;
	if (!grown) {
		free(copy);
		return no_memory(c);
	}
	grown[(*n)++] = copy;
	*v = grown;
	return 0;
}

/* A source's list replaces the lists of the sources below it; c->append adds to its own. */
static int store_list(const struct ctx *c, const struct key *k, const char *const *items, size_t n)
{
	if (!c->append)
		clear_list(c->cfg, k);
	if (k->off == OFF(binds) && n == 0 && c->cfg->nbinds == 0)
		return fail(c, k, "expected at least one address");
	for (size_t i = 0; i < n; i++) {
		int rc = k->kind == K_BINDS  ? add_bind(c, k, items[i])
			 : k->kind == K_STRS ? add_str(c, k, items[i])
					     : add_path(c, k, items[i]);
		if (rc < 0)
			return rc;
	}
	return 0;
}

/* ---- text values (CLI, environment, defaults) ---- */

static int text_int(const struct ctx *c, const struct key *k, const char *s)
{
	char q[80], *end;
	errno = 0;
	long long v = strtoll(s, &end, 10);
	if (end == s || *end || isspace((unsigned char)*s))
		return fail(c, k, "expected an integer >= %lld, got %s", (long long)k->min,
			    quoted(q, sizeof q, s));
	return store_int(c, k, v, quoted(q, sizeof q, s));
}

/* "30", "1.5", "30s", "250ms", "2m", "1h": a bare number is seconds; up to 3 decimals.
 * Returns 0 with *ms, or -EINVAL. */
int hb_config_parse_duration(const char *s, int64_t *ms)
{
	static const struct {
		const char *name;
		int64_t ms;
	} units[] = {{"", 1000}, {"s", 1000}, {"ms", 1}, {"m", 60000}, {"h", 3600000}};
	const int64_t most = INT64_MAX / 3600000 / 1000 - 1; /* whole hours that fit, in ms */
	int64_t whole = 0, frac = 0, scale = 1000;
	const char *p = s;
	if (!isdigit((unsigned char)*p))
		return -EINVAL;
	for (; isdigit((unsigned char)*p); p++)
		if ((whole = whole * 10 + (*p - '0')) > most)
			return -EINVAL;
	if (*p == '.') {
		if (!isdigit((unsigned char)*++p))
			return -EINVAL;
		for (; isdigit((unsigned char)*p); p++) {
			if (scale == 1)
				return -EINVAL; /* finer than a thousandth */
			scale /= 10;
			frac += (*p - '0') * scale;
		}
	}
	for (size_t i = 0; i < sizeof units / sizeof units[0]; i++) {
		if (strcmp(p, units[i].name) != 0)
			continue;
		int64_t thousandths = (whole * 1000 + frac) * units[i].ms;
		if (thousandths % 1000)
			return -EINVAL; /* below a millisecond */
		*ms = thousandths / 1000;
		return 0;
	}
	return -EINVAL;
}

static int text_dur(const struct ctx *c, const struct key *k, const char *s)
{
	char q[80];
	int64_t ms;
	if (hb_config_parse_duration(s, &ms) < 0)
		return fail(c, k, "expected a duration (30, 30s, 250ms, 2m, 1h), got %s",
			    quoted(q, sizeof q, s));
	return store_dur(c, k, ms, quoted(q, sizeof q, s));
}

static int text_bool(const struct ctx *c, const struct key *k, const char *s)
{
	static const char *const yes[] = {"true", "1", "yes", "on"};
	static const char *const no[] = {"false", "0", "no", "off"};
	char q[80];
	for (size_t i = 0; i < sizeof yes / sizeof yes[0]; i++) {
		if (strcasecmp(s, yes[i]) == 0)
			return store_bool(c, k, true);
		if (strcasecmp(s, no[i]) == 0)
			return store_bool(c, k, false);
	}
	return fail(c, k, "expected true or false, got %s", quoted(q, sizeof q, s));
}

/* HORNBEAM_BIND="a, b": comma-separated, blanks around items ignored. */
static int text_list(const struct ctx *c, const struct key *k, const char *s)
{
	char *copy = strdup(s);
	size_t n = 1;
	for (const char *p = s; *p; p++)
		n += *p == ',';
	const char **items = calloc(n, sizeof *items);
	if (!copy || !items) {
		free(copy);
		free(items);
		return no_memory(c);
	}
	size_t count = 0;
	for (char *tok, *save = NULL, *p = copy; (tok = strtok_r(p, ",", &save)); p = NULL) {
		while (isspace((unsigned char)*tok))
			tok++;
		char *e = tok + strlen(tok);
		while (e > tok && isspace((unsigned char)e[-1]))
			*--e = '\0';
		if (*tok)
			items[count++] = tok;
	}
	int rc = store_list(c, k, items, count);
	free(items);
	free(copy);
	return rc;
}

/* Notes in cfg->sources where key k's value comes from: default, FILE:LINE, env NAME, cli. */
static void note_source(const struct ctx *c, const struct key *k)
{
	char name[80];
	if (!c->cfg->sources)
		return;
	char *out = c->cfg->sources + (size_t)(k - keys) * SOURCE_LEN;
	switch (c->o.src) {
	case SRC_DEFAULT:
		snprintf(out, SOURCE_LEN, "default");
		break;
	case SRC_FILE:
		snprintf(out, SOURCE_LEN, "%s:%d", c->o.file, c->o.line);
		break;
	case SRC_ENV:
		env_name(k->name, name, sizeof name);
		snprintf(out, SOURCE_LEN, "env %s", name);
		break;
	case SRC_CLI:
		dashed(k->name, name, sizeof name);
		snprintf(out, SOURCE_LEN, c->o.positional ? "cli APP" : "cli --%s", name);
		break;
	}
}

static int set_text(const struct ctx *c, const struct key *k, const char *s)
{
	note_source(c, k);
	switch (k->kind) {
	case K_INT:
	case K_I64:
		return text_int(c, k, s);
	case K_SECS:
	case K_MSECS:
		return text_dur(c, k, s);
	case K_BOOL:
		return text_bool(c, k, s);
	case K_STR:
	case K_APP:
	case K_ENUM:
		return store_string_kind(c, k, s);
	case K_BINDS:
	case K_PATHS:
	case K_STRS:
		if (c->o.src == SRC_ENV)
			return text_list(c, k, s);
		return store_list(c, k, &s, 1);
	}
	return -EINVAL;
}

/* ---- TOML values ---- */

static int tval_list(const struct ctx *c, const struct key *k, const hb_tval_t *v)
{
	if (v->kind == HB_TV_STR)
		return store_list(c, k, &v->str, 1);
	if (v->kind != HB_TV_LIST)
		return fail(c, k, "expected a list of strings, got %s", tval_type(v));
	const char **items = calloc(v->nitems ? v->nitems : 1, sizeof *items);
	if (!items)
		return no_memory(c);
	for (size_t i = 0; i < v->nitems; i++) {
		if (v->items[i].kind != HB_TV_STR) {
			free(items);
			return fail(c, k, "expected a list of strings, got an array holding %s",
				    tval_type(&v->items[i]));
		}
		items[i] = v->items[i].str;
	}
	int rc = store_list(c, k, items, v->nitems);
	free(items);
	return rc;
}

/* A TOML duration: an integer or float (seconds) or a string with a unit. */
static int tval_dur(const struct ctx *c, const struct key *k, const hb_tval_t *v)
{
	char num[40];
	if (v->kind == HB_TV_STR)
		return text_dur(c, k, v->str);
	if (v->kind == HB_TV_INT) {
		snprintf(num, sizeof num, "%lld", (long long)v->i);
		if (v->i < 0 || v->i > INT64_MAX / 1000)
			return store_dur(c, k, v->i < 0 ? -1 : INT64_MAX, num);
		return store_dur(c, k, v->i * 1000, num);
	}
	if (v->kind == HB_TV_FLOAT) {
		snprintf(num, sizeof num, "%g", v->f);
		if (!(v->f >= 0) || v->f > 1e15)
			return store_dur(c, k, v->f < 0 ? -1 : INT64_MAX, num);
		return store_dur(c, k, (int64_t)(v->f * 1000 + 0.5), num);
	}
	return fail(c, k, "expected a duration (30, \"30s\", \"250ms\"), got %s", tval_type(v));
}

/* ["h2", "http/1.1"] -> "h2,http/1.1"; [0.1, 1] -> "0.1,1" (F_JOIN keys). */
static int tval_joined(const struct ctx *c, const struct key *k, const hb_tval_t *v)
{
	size_t n = 1;
	for (size_t i = 0; i < v->nitems; i++) {
		hb_tv_kind_t kind = v->items[i].kind;
		bool num = (k->flags & F_NUMS) && (kind == HB_TV_INT || kind == HB_TV_FLOAT);
		if (kind != HB_TV_STR && !num)
			return fail(c, k, "expected a list of strings, got an array holding %s",
				    tval_type(&v->items[i]));
		n += (kind == HB_TV_STR ? strlen(v->items[i].str) : 32) + 1;
	}
	char *s = malloc(n);
	if (!s)
		return no_memory(c);
	size_t len = 0;
	s[0] = '\0';
	for (size_t i = 0; i < v->nitems; i++) {
		const hb_tval_t *it = &v->items[i];
		const char *sep = i ? "," : "";
		if (it->kind == HB_TV_STR)
			len += (size_t)snprintf(s + len, n - len, "%s%s", sep, it->str);
		else if (it->kind == HB_TV_INT)
			len += (size_t)snprintf(s + len, n - len, "%s%lld", sep, (long long)it->i);
		else
			len += (size_t)snprintf(s + len, n - len, "%s%.17g", sep, it->f);
	}
	int rc = store_string_kind(c, k, s);
	free(s);
	return rc;
}

static int tval_scalar(const struct ctx *c, const struct key *k, const hb_tval_t *v)
{
	char num[32];
	note_source(c, k);
	switch (k->kind) {
	case K_INT:
	case K_I64:
		if (v->kind != HB_TV_INT)
			return fail(c, k, "expected an integer >= %lld, got %s", (long long)k->min,
				    tval_type(v));
		snprintf(num, sizeof num, "%lld", (long long)v->i);
		return store_int(c, k, v->i, num);
	case K_SECS:
	case K_MSECS:
		return tval_dur(c, k, v);
	case K_BOOL:
		if (v->kind != HB_TV_BOOL)
			return fail(c, k, "expected true or false, got %s", tval_type(v));
		return store_bool(c, k, v->i != 0);
	case K_STR:
	case K_APP:
	case K_ENUM:
		if (v->kind == HB_TV_STR)
			return store_string_kind(c, k, v->str);
		if (v->kind == HB_TV_BOOL && (k->flags & F_OFF))
			return store_str(c, k, v->i ? k->def : "");
		if (v->kind == HB_TV_LIST && (k->flags & F_JOIN))
			return tval_joined(c, k, v);
		if (k->kind == K_ENUM)
			return fail_choice(c, k, tval_type(v));
		return fail(c, k, "expected a string, got %s", tval_type(v));
	case K_BINDS:
	case K_PATHS:
	case K_STRS:
		return tval_list(c, k, v);
	}
	return -EINVAL;
}

/* The directory of the config file, absolute when it can be resolved. */
static char *file_dir(const char *file)
{
	const char *slash = strrchr(file, '/');
	char *dir = slash ? strndup(file, slash == file ? 1 : (size_t)(slash - file)) : strdup(".");
	char *abs = dir ? realpath(dir, NULL) : NULL;
	if (abs) {
		free(dir);
		return abs;
	}
	return dir;
}

/* One entry of the file's [functions] table (toml_load.c passes "functions.NAME"). */
static int add_function(hb_config_t *cfg, const char *name, const hb_tval_t *v, const char *file,
			int line, char *err, size_t errlen)
{
	const char *colon = v->kind == HB_TV_STR ? strchr(v->str, ':') : NULL;
	hb_config_function_t *f;

	if (!*name || !colon || colon == v->str || !colon[1])
		return plain_fail(err, errlen,
				  "%s:%d: [functions] %s: expected \"module:function\"", file, line,
				  name);
	f = realloc(cfg->functions, (cfg->nfunctions + 1) * sizeof(*f));
	if (!f)
		return plain_fail(err, errlen, "%s: out of memory", file);
	cfg->functions = f;
	f += cfg->nfunctions;
	f->name = strdup(name);
	f->target = strdup(v->str);
	if (!f->name || !f->target) {
		free(f->name);
		free(f->target);
		return plain_fail(err, errlen, "%s: out of memory", file);
	}
	cfg->nfunctions++;
	return 0;
}

/* One field of the file's N-th [[tls.certificate]] table (toml_load.c passes
 * "tls.certificate.N.FIELD"); derive_tls checks that each table is whole. */
static int add_cert_field(hb_config_t *cfg, const char *rest, const hb_tval_t *v, const char *file,
			  int line, char *err, size_t errlen)
{
	static const char *const names[] = {"server_name", "certfile", "keyfile",
					    "keyfile_password"};
	char *end;
	unsigned long i = strtoul(rest, &end, 10);
	if (end == rest || *end != '.' || i >= 64)
		return plain_fail(err, errlen, "%s:%d: at most 64 [[tls.certificate]] tables", file,
				  line);
	const char *fname = end + 1;
	size_t f = 0;
	while (f < 4 && strcmp(names[f], fname) != 0)
		f++;
	if (f == 4)
		return plain_fail(err, errlen,
				  "%s:%d: [[tls.certificate]]: unknown key '%s' (server_name, "
				  "certfile, keyfile, keyfile_password)",
				  file, line, fname);
	if (v->kind != HB_TV_STR || !*v->str)
		return plain_fail(err, errlen,
				  "%s:%d: [[tls.certificate]] %s: expected a non-empty string",
				  file, line, fname);
	if (i >= cfg->nssl_certs) {
		hb_config_cert_t *certs = realloc(cfg->ssl_certs, (i + 1) * sizeof *certs);
		if (!certs)
			return plain_fail(err, errlen, "%s: out of memory", file);
		memset(certs + cfg->nssl_certs, 0, (i + 1 - cfg->nssl_certs) * sizeof *certs);
		cfg->ssl_certs = certs;
		cfg->nssl_certs = i + 1;
	}
	hb_config_cert_t *c = &cfg->ssl_certs[i];
	char **slot = f == 0   ? &c->server_name
		      : f == 1 ? &c->certfile
		      : f == 2 ? &c->keyfile
			       : &c->keyfile_password;
	char *dir = f == 1 || f == 2 ? file_dir(file) : NULL;
	char *val = f == 1 || f == 2 ? (dir ? resolve_path(dir, v->str) : NULL) : strdup(v->str);
	free(dir);
	if (!val)
		return plain_fail(err, errlen, "%s: out of memory", file);
	free(*slot);
	*slot = val;
	return 0;
}

/* The hb_config_set_fn handed to the TOML loader. */
static int set_from_file(hb_config_t *cfg, const char *name, const hb_tval_t *v, const char *file,
			 int line, char *err, size_t errlen)
{
	if (strncmp(name, "functions.", 10) == 0)
		return add_function(cfg, name + 10, v, file, line, err, errlen);
	char cname[64];
	if (strncmp(name, "cluster.", 8) == 0 && strlen(name) < sizeof cname) {
		/* [cluster] enabled = ... is the key cluster_enabled */
		snprintf(cname, sizeof cname, "cluster_%s", name + 8);
		name = cname;
	}
	if (strncmp(name, "tls.certificate.", 16) == 0)
		return add_cert_field(cfg, name + 16, v, file, line, err, errlen);
	const struct key *k = key_named(name);
	if (!k || (k->flags & F_NOFILE)) {
		const char *near = closest_key(name, true);
		const char *at = line > 0 ? ":" : "";
		char num[16] = "";
		if (line > 0)
			snprintf(num, sizeof num, "%d", line);
		if (near)
			return plain_fail(err, errlen,
					  "%s%s%s: unknown key '%s' (did you mean '%s'?)", file, at,
					  num, name, near);
		return plain_fail(err, errlen, "%s%s%s: unknown key '%s'", file, at, num, name);
	}
	struct ctx c = {cfg, {SRC_FILE, file, line, false}, err, errlen, false, NULL};
	char *dir = NULL;
	if ((k->kind == K_PATHS || (k->flags & F_PATH)) && !(dir = file_dir(file)))
		return no_memory(&c);
	c.basedir = dir;
	int rc = tval_scalar(&c, k, v);
	free(dir);
	return rc;
}

static int apply_args(hb_config_t *cfg, const struct arg *args, int n, char *err, size_t errlen)
{
	bool seen[NKEYS] = {false};
	for (int i = 0; i < n; i++) {
		size_t idx = (size_t)(args[i].k - keys);
		if (!(args[i].k->flags & F_NOFILE)) {
			struct ctx c = {cfg,	   {SRC_CLI, NULL, 0, args[i].positional},
					err,	   errlen,
					seen[idx], NULL};
			seen[idx] = true;
			int rc = set_text(&c, args[i].k, args[i].val);
			if (rc < 0)
				return rc;
		}
	}
	return 0;
}

/* ---- environment ---- */

static const char *env_get(char **envp, const char *name)
{
	size_t n = strlen(name);
	for (; envp && *envp; envp++)
		if (strncmp(*envp, name, n) == 0 && (*envp)[n] == '=')
			return *envp + n + 1;
	return NULL;
}

/* Unknown HORNBEAM_* variables are ignored: Kubernetes injects HORNBEAM_PORT and
 * HORNBEAM_SERVICE_HOST for a Service named hornbeam. Empty variables count as unset. */
static int apply_env(hb_config_t *cfg, char **envp, char *err, size_t errlen)
{
	char name[80];
	for (size_t i = 0; i < NKEYS; i++) {
		if (keys[i].flags & F_NOFILE)
			continue;
		env_name(keys[i].name, name, sizeof name);
		const char *v = env_get(envp, name);
		if (!v || !*v)
			continue;
		struct ctx c = {cfg, {SRC_ENV, NULL, 0, false}, err, errlen, false, NULL};
		int rc = set_text(&c, &keys[i], v);
		if (rc < 0)
			return rc;
	}
	return 0;
}

/* ---- defaults, derived values, the whole load ---- */

static int apply_defaults(hb_config_t *cfg, char *err, size_t errlen)
{
	for (size_t i = 0; i < NKEYS; i++) {
		if (!keys[i].def)
			continue;
		struct ctx c = {cfg, {SRC_DEFAULT, NULL, 0, false}, err, errlen, false, NULL};
		int rc = set_text(&c, &keys[i], keys[i].def);
		if (rc < 0)
			return rc;
	}
	return 0;
}

/* ncpus = min(affinity mask, cgroup quota); workers defaults to it. */
static int derive_cpus(hb_config_t *cfg, char *err, size_t errlen)
{
	int n = hb_cpu_allowed(NULL, 0);
	cfg->cpus = calloc(n > 0 ? (size_t)n : 1, sizeof *cfg->cpus);
	if (!cfg->cpus)
		return plain_fail(err, errlen, "out of memory"), -ENOMEM;
	int got = n > 0 ? hb_cpu_allowed(cfg->cpus, n) : 0;
	if (got < 1) { /* unknown mask: say one CPU, the lowest */
		cfg->cpus[0] = 0;
		got = 1;
	}
	n = got < n ? got : (n > 0 ? n : 1);
	int quota = hb_cpu_quota("/sys/fs/cgroup");
	if (quota > 0 && quota < n)
		n = quota;
	cfg->ncpus = n;
	if (cfg->workers == 0) /* the processes share the CPUs */
		cfg->workers = n / (cfg->processes > 0 ? cfg->processes : 1);
	if (cfg->workers > 1024)
		cfg->workers = 1024;
	if (cfg->workers < 1)
		cfg->workers = 1;
	return 0;
}

/* A cluster needs its cookie: given, or read from cluster_cookie_file. */
static int check_cluster(hb_config_t *cfg, char *err, size_t errlen)
{
	if (!cfg->cluster_enabled)
		return 0;
	if (!cfg->cluster_cookie && cfg->cluster_cookie_file) {
		FILE *f = fopen(cfg->cluster_cookie_file, "r");
		char buf[1025];
		size_t n = f ? fread(buf, 1, sizeof buf - 1, f) : 0;
		if (f)
			fclose(f);
		if (!f)
			return plain_fail(err, errlen, "cluster_cookie_file: cannot read '%s': %s",
					  cfg->cluster_cookie_file, strerror(errno));
		while (n && (buf[n - 1] == '\n' || buf[n - 1] == '\r'))
			n--;
		buf[n] = '\0';
		if (n && !(cfg->cluster_cookie = strdup(buf)))
			return plain_fail(err, errlen, "out of memory"), -ENOMEM;
	}
	if (!cfg->cluster_cookie)
		return plain_fail(err, errlen,
				  "cluster enabled without a cookie: set cluster.cookie, "
				  "cluster.cookie_file or HORNBEAM_CLUSTER_COOKIE");
	if (cfg->cluster_certfile) /* as certfile turns ssl on */
		cfg->cluster_tls = 1;
	const char *miss = !cfg->cluster_certfile     ? "cluster_certfile"
			   : !cfg->cluster_keyfile    ? "cluster_keyfile"
			   : !cfg->cluster_cacertfile ? "cluster_cacertfile"
						      : NULL;
	if (cfg->cluster_tls && miss)
		return plain_fail(err, errlen,
				  "cluster_tls needs cluster_certfile, cluster_keyfile and "
				  "cluster_cacertfile (%s is missing)",
				  miss);
	if (!cfg->cluster_tls &&
	    (cfg->cluster_keyfile || cfg->cluster_cacertfile || cfg->cluster_keyfile_password))
		return plain_fail(
			err, errlen,
			"cluster_keyfile, cluster_keyfile_password and cluster_cacertfile "
			"need cluster_certfile (cluster_tls)");
	return 0;
}

/* certfile turns TLS on; TLS on needs the default pair, verify_client its CA file, and every
 * [[tls.certificate]] table its three keys. The files themselves are read when the server
 * builds its TLS context (src/proto/tls.c), which names a bad one. */
static int derive_tls(hb_config_t *cfg, char *err, size_t errlen)
{
	if (cfg->certfile)
		cfg->ssl = 1;
	if (!cfg->ssl) {
		if (cfg->nssl_binds || cfg->nssl_certs || cfg->keyfile)
			return plain_fail(err, errlen,
					  "TLS settings (ssl_bind, keyfile, [[tls.certificate]]) "
					  "need certfile, the default certificate");
		return 0;
	}
	if (!cfg->certfile || !cfg->keyfile)
		return plain_fail(err, errlen,
				  "ssl needs certfile and keyfile (the default certificate pair)");
	if (cfg->verify_client != HB_VERIFY_NONE && !cfg->cacertfile)
		return plain_fail(err, errlen, "verify_client = %s needs cacertfile",
				  cfg->verify_client == HB_VERIFY_REQUIRED ? "required"
									   : "optional");
	if (cfg->nssl_binds == 0) { /* gunicorn's rule: certfile makes every bind TLS */
		for (size_t i = 0; i < cfg->nbinds; i++)
			cfg->binds[i].tls = 1;
	} else { /* the listeners are binds (plain) then ssl_binds (TLS), in one list */
		hb_bind_t *b = realloc(cfg->binds, (cfg->nbinds + cfg->nssl_binds) * sizeof *b);
		if (!b)
			return plain_fail(err, errlen, "out of memory"), -ENOMEM;
		for (size_t i = 0; i < cfg->nssl_binds; i++) {
			b[cfg->nbinds + i] = cfg->ssl_binds[i];
			b[cfg->nbinds + i].tls = 1;
		}
		cfg->binds = b;
		cfg->nbinds += cfg->nssl_binds;
	}
	for (size_t i = 0; i < cfg->nssl_certs; i++) {
		const hb_config_cert_t *c = &cfg->ssl_certs[i];
		const char *miss = !c->server_name ? "server_name"
				   : !c->certfile  ? "certfile"
				   : !c->keyfile   ? "keyfile"
						   : NULL;
		if (miss)
			return plain_fail(err, errlen, "[[tls.certificate]] number %zu lacks %s",
					  i + 1, miss);
	}
	return 0;
}

static int same_bind(const hb_bind_t *a, const hb_bind_t *b)
{
	if (a->fd_bind || b->fd_bind) /* fd://N: the family is learnt from the socket later */
		return a->fd_bind && b->fd_bind && a->fd == b->fd;
	return a->family == b->family && a->port == b->port && strcmp(a->host, b->host) == 0 &&
	       strcmp(a->path, b->path) == 0;
}

/* Which listeners expect a PROXY header: all with proxy_protocol, else those named by
 * proxy_protocol_bind (each must be one of bind/ssl_bind, compared as parsed). */
static int derive_proxy(hb_config_t *cfg, char *err, size_t errlen)
{
	for (size_t i = 0; i < cfg->nbinds; i++)
		cfg->binds[i].proxy = cfg->proxy_protocol;
	for (size_t k = 0; k < cfg->nproxy_binds; k++) {
		int hit = 0;
		for (size_t i = 0; i < cfg->nbinds; i++)
			if (same_bind(&cfg->binds[i], &cfg->proxy_binds[k]))
				hit = cfg->binds[i].proxy = 1;
		if (!hit)
			return plain_fail(
				err, errlen,
				"proxy_protocol_bind %s is not one of the bind or ssl_bind "
				"addresses",
				cfg->proxy_binds[k].spec);
	}
	return 0;
}

static const char *config_path(const struct arg *args, int n, char **envp)
{
	const char *path = NULL;
	for (int i = 0; i < n; i++)
		if (strcmp(args[i].k->name, "config") == 0)
			path = args[i].val;
	if (!path) {
		path = env_get(envp, ENV_PREFIX "CONFIG");
		if (path && !*path)
			path = NULL;
	}
	return path;
}

static int load_file(hb_config_t *cfg, const char *path, hb_toml_loader_fn loader, char *err,
		     size_t errlen)
{
	if (!*path)
		return plain_fail(err, errlen, "--config: empty file name");
	if (!loader)
		return plain_fail(err, errlen, "%s: no TOML loader available", path);
	cfg->config_file = strdup(path);
	if (!cfg->config_file)
		return plain_fail(err, errlen, "out of memory"), -ENOMEM;
	int rc = loader(path, cfg, set_from_file, err, errlen);
	return rc < 0 ? rc : 0;
}

/* Every pythonpath entry must be a directory: a typo would otherwise surface later as an
 * ImportError far from its cause. */
static int check_pythonpath(const hb_config_t *cfg, char *err, size_t errlen)
{
	const struct key *k = key_named("pythonpath");
	const char *src = cfg->sources ? cfg->sources + (size_t)(k - keys) * SOURCE_LEN : "";
	struct stat st;
	for (size_t i = 0; i < cfg->npythonpath; i++) {
		const char *p = cfg->pythonpath[i];
		if (stat(p, &st) < 0 || !S_ISDIR(st.st_mode))
			return plain_fail(
				err, errlen, "pythonpath: '%s' is not a directory (%s; from %s)", p,
				stat(p, &st) < 0 ? strerror(errno) : "not a directory", src);
	}
	return 0;
}

static int load_sources(hb_config_t *cfg, const struct arg *args, int nargs, char **envp,
			hb_toml_loader_fn loader, char *err, size_t errlen)
{
	const char *path = config_path(args, nargs, envp);
	int rc = apply_defaults(cfg, err, errlen);
	if (rc == 0 && path)
		rc = load_file(cfg, path, loader, err, errlen);
	if (rc == 0)
		rc = apply_env(cfg, envp, err, errlen);
	if (rc == 0)
		rc = apply_args(cfg, args, nargs, err, errlen);
	if (rc == 0 && !cfg->app)
		rc = plain_fail(err, errlen,
				"no application given: pass MODULE:CALLABLE or set 'app'");
	if (rc == 0)
		rc = check_pythonpath(cfg, err, errlen);
	if (rc == 0)
		rc = derive_cpus(cfg, err, errlen);
	if (rc == 0)
		rc = check_cluster(cfg, err, errlen);
	if (rc == 0)
		rc = derive_tls(cfg, err, errlen);
	if (rc == 0)
		rc = derive_proxy(cfg, err, errlen);
	return rc;
}

int hb_config_load(hb_config_t *cfg, int argc, char **argv, char **envp, hb_toml_loader_fn loader,
		   char *err, size_t errlen)
{
	enum action act;
	int nargs = 0;
	struct hostport hp = {NULL, NULL, ""};
	memset(cfg, 0, sizeof *cfg);
	if (errlen)
		err[0] = '\0';
	struct arg *args = calloc(argc > 0 ? (size_t)argc : 1, sizeof *args);
	cfg->sources = calloc(NKEYS, SOURCE_LEN);
	if (!args || !cfg->sources) {
		free(args);
		hb_config_free(cfg);
		return plain_fail(err, errlen, "out of memory"), -ENOMEM;
	}
	int rc = parse_argv(argc, argv, args, &nargs, &act, &hp, err, errlen);
	bool load = act == ACT_RUN || act == ACT_CHECK || act == ACT_PRINT;
	if (rc == 0 && act == ACT_HELP)
		hb_config_usage(stdout);
	if (rc == 0 && act == ACT_VERSION)
		printf("hornbeam-uring %s\n", HB_VERSION);
	if (rc == 0 && load)
		rc = load_sources(cfg, args, nargs, envp, loader, err, errlen);
	if (rc == 0 && act == ACT_CHECK)
		printf("ok\n");
	if (rc == 0 && act == ACT_PRINT)
		hb_config_print(cfg, stdout);
	for (int i = 0; i < argc; i++)
		free(args[i].owned);
	free(args);
	if (rc < 0 || act != ACT_RUN)
		hb_config_free(cfg);
	return rc < 0		    ? rc
	       : act == ACT_RUN	    ? HB_CONFIG_OK
	       : act == ACT_VERSION ? HB_CONFIG_VERSION
				    : HB_CONFIG_EXIT;
}

void hb_config_free(hb_config_t *cfg)
{
	for (size_t i = 0; i < NKEYS; i++) {
		switch (keys[i].kind) {
		case K_STR:
		case K_APP:
			free(*(char **)field(cfg, keys[i].off));
			break;
		case K_BINDS:
		case K_PATHS:
		case K_STRS:
			clear_list(cfg, &keys[i]);
			break;
		case K_INT:
		case K_I64:
		case K_SECS:
		case K_MSECS:
		case K_BOOL:
		case K_ENUM:
			break;
		}
	}
	for (size_t i = 0; i < cfg->nfunctions; i++) {
		free(cfg->functions[i].name);
		free(cfg->functions[i].target);
	}
	free(cfg->functions);
	for (size_t i = 0; i < cfg->nssl_certs; i++) {
		free(cfg->ssl_certs[i].server_name);
		free(cfg->ssl_certs[i].certfile);
		free(cfg->ssl_certs[i].keyfile);
		free(cfg->ssl_certs[i].keyfile_password);
	}
	free(cfg->ssl_certs);
	free(cfg->cpus);
	free(cfg->sources);
	memset(cfg, 0, sizeof *cfg);
}
