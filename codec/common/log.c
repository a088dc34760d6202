/* SPDX-License-Identifier: MIT */
/* log.c - the log sink: formats one line and writes it with one call. */
#include "codec/common/base.h"

#include <stdarg.h>
#include <stdio.h>
#include <syslog.h>
#include <unistd.h>

#include "codec/common/cli.h"
#include "codec/common/log.h"

static enum nwc_log_level log_level = NWC_LOG_WARN;
static bool log_syslog;
static const char *log_prefix;

void nwc_log_set_level(enum nwc_log_level level)
{
	log_level = level;
}

enum nwc_log_level nwc_log_get_level(void)
{
	return log_level;
}

int nwc_log_parse_level(const char *s, enum nwc_log_level *out)
{
	static const char *const names[] = { "err", "warn", "info", "debug" };

	for (size_t i = 0; i < NWC_ARRAY_SIZE(names); i++) {
		if (!strcmp(s, names[i])) {
			*out = (enum nwc_log_level)i;
			return 0;
		}
	}
	return -EINVAL;
}

void nwc_log_use_syslog(const char *ident)
{
	openlog(ident, LOG_PID, LOG_DAEMON);
	log_syslog = true;
}

void nwc_log_set_prefix(const char *prefix)
{
	log_prefix = prefix;
}

void nwc_log(enum nwc_log_level level, const char *fmt, ...)
{
	static const int prio[] = { LOG_ERR, LOG_WARNING, LOG_INFO, LOG_DEBUG };
	static const char *const tag[] = { "error", "warning", "info", "debug" };
	char msg[1024], line[1200];
	va_list ap;
	int n = 0;

	if (level > log_level)
		return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (log_syslog) {
		/* one message, one line: control characters as \xHH */
		nwc_escape_to(line, sizeof(line), msg, strlen(msg), false);
		syslog(prio[level], "%s", line);
		return;
	}
	if (log_prefix)
		n = snprintf(line, sizeof(line), "%s: ", log_prefix);
	if (level != NWC_LOG_INFO)
		n += snprintf(line + n, sizeof(line) - (size_t)n, "%s: ",
			      tag[level]);
	n += (int)nwc_escape_to(line + n, sizeof(line) - (size_t)n - 1, msg,
				strlen(msg), false);
	line[n++] = '\n';
	/* One write(2) so lines from concurrent threads do not interleave. */
	if (write(STDERR_FILENO, line, (size_t)n) < 0)
		return;
}
