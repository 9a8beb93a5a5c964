#include "core/log.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

/* Process-wide, written once by hb_log_init() before other threads exist, then read-only. */
static struct {
	hb_log_level_t level;
	int access_fd;
} log_cfg = {HB_LOG_INFO, -1};

/* Serializes access-log batches (each a write of whole lines) across io threads. */
static pthread_mutex_t access_mu = PTHREAD_MUTEX_INITIALIZER;

static const char *const level_names[] = {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"};

int hb_log_init(hb_log_level_t level, const char *access_log_path)
{
	log_cfg.level = level;
	log_cfg.access_fd = -1;
	if (!access_log_path)
		return 0;
	if (strcmp(access_log_path, "-") == 0) {
		log_cfg.access_fd = STDOUT_FILENO;
		return 0;
	}
	int fd = open(access_log_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
	if (fd < 0)
		return -errno;
	log_cfg.access_fd = fd;
	return 0;
}

int hb_log_reopen(const char *access_log_path)
{
	if (!access_log_path || strcmp(access_log_path, "-") == 0 || log_cfg.access_fd < 0)
		return 0;
	int fd = open(access_log_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
	if (fd < 0)
		return -errno;
	int rc = dup3(fd, log_cfg.access_fd, O_CLOEXEC) < 0 ? -errno : 0;
	close(fd);
	return rc;
}

int hb_log_level_parse(const char *name)
{
	for (int i = 0; i <= HB_LOG_CRITICAL; i++)
		if (strcasecmp(name, level_names[i]) == 0)
			return i;
	return -1;
}

int hb_log_enabled(hb_log_level_t level)
{
	return level >= log_cfg.level;
}

/* "[2026-11-26 10:17:00.123 +0000] [pid] [LEVEL] " like gunicorn's error log. */
static size_t log_prefix(char *buf, size_t cap, hb_log_level_t level)
{
	struct timespec ts;
	struct tm tm;

	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	size_t n = strftime(buf, cap, "[%Y-%m-%d %H:%M:%S", &tm);
	int m = snprintf(buf + n, cap - n, ".%03ld +0000] [%d] [%s] ", ts.tv_nsec / 1000000L,
			 (int)getpid(), level_names[level]);
	return n + (m > 0 ? (size_t)m : 0);
}

static void write_all(int fd, const char *p, size_t len)
{
	while (len > 0) {
		ssize_t w = write(fd, p, len);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			return;
		}
		p += w;
		len -= (size_t)w;
	}
}

void hb_vlog(hb_log_level_t level, const char *fmt, va_list ap)
{
	char buf[4096];

	if (!hb_log_enabled(level))
		return;
	size_t n = log_prefix(buf, sizeof(buf), level);
	int m = vsnprintf(buf + n, sizeof(buf) - n - 1, fmt, ap);
	if (m < 0)
		m = 0;
	n += (size_t)m;
	if (n > sizeof(buf) - 2)
		n = sizeof(buf) - 2;
	buf[n++] = '\n';
	write_all(STDERR_FILENO, buf, n);
}

void hb_log(hb_log_level_t level, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	hb_vlog(level, fmt, ap);
	va_end(ap);
}

void hb_log_block(hb_log_level_t level, const char *text, size_t len)
{
	while (len > 0) {
		const char *nl = memchr(text, '\n', len);
		size_t line = nl ? (size_t)(nl - text) : len;
		if (line > 0 || nl == NULL)
			hb_log(level, "%.*s", (int)line, text);
		if (!nl)
			break;
		len -= line + 1;
		text = nl + 1;
	}
}

int hb_log_access_enabled(void)
{
	return log_cfg.access_fd >= 0;
}

void hb_log_access_write(const char *lines, size_t len)
{
	if (log_cfg.access_fd < 0)
		return;
	pthread_mutex_lock(&access_mu);
	write_all(log_cfg.access_fd, lines, len);
	pthread_mutex_unlock(&access_mu);
}
