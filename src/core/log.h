/* log.h: the error log (stderr, levels, timestamps) and the access log.
 *
 * Process-wide state is set once by hb_log_init() on the main thread before any other thread
 * starts and is read-only afterwards; every function here may be called from any thread.
 * A line is written with one write(2) so lines from threads never interleave.
 */
#ifndef HB_CORE_LOG_H
#define HB_CORE_LOG_H

#include <stdarg.h>
#include <stddef.h>

typedef enum {
	HB_LOG_DEBUG = 0,
	HB_LOG_INFO,
	HB_LOG_WARNING,
	HB_LOG_ERROR,
	HB_LOG_CRITICAL,
} hb_log_level_t;

/* Sets the threshold and the access log destination (NULL: off, "-": stdout, else a file
 * opened for append). Returns 0 or -errno when the file cannot be opened. */
int hb_log_init(hb_log_level_t level, const char *access_log_path);

/* Opens the access log file again (logrotate moved it; SIGUSR1) and puts it in place of the
 * old one under the same descriptor, so a line being written by another thread goes to one file
 * or the other, whole. No-op when the log is off or stdout. Returns 0 or -errno (the old file
 * stays in use). */
int hb_log_reopen(const char *access_log_path);

/* Parses "debug|info|warning|error|critical"; returns the level or -1. */
int hb_log_level_parse(const char *name);

int hb_log_enabled(hb_log_level_t level);
void hb_log(hb_log_level_t level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void hb_vlog(hb_log_level_t level, const char *fmt, va_list ap);

/* Writes raw bytes (a multi-line traceback, wsgi.errors output) at a level, each line
 * prefixed like hb_log's lines. */
void hb_log_block(hb_log_level_t level, const char *text, size_t len);

/* Writes preformatted access-log lines (each ending in a newline) with one write under a lock,
 * so batches of different threads never interleave. No-op when the access log is off. */
void hb_log_access_write(const char *lines, size_t len);
int hb_log_access_enabled(void);

#define hb_debug(...) hb_log(HB_LOG_DEBUG, __VA_ARGS__)
#define hb_info(...) hb_log(HB_LOG_INFO, __VA_ARGS__)
#define hb_warn(...) hb_log(HB_LOG_WARNING, __VA_ARGS__)
#define hb_error(...) hb_log(HB_LOG_ERROR, __VA_ARGS__)

#endif
