/* SPDX-License-Identifier: MIT */
/*
 * log.h - levelled log lines to stderr or syslog.
 *
 *	nwc_err("%s: block %u: checksum mismatch", path, idx);
 *
 * One line per message, no trailing period, context first.  The level and
 * the sink are process-wide settings made once by main() before threads
 * start; nwc_log() itself is thread-safe (one write per line).
 */
#ifndef NWC_LOG_H
#define NWC_LOG_H

#include "codec/common/base.h"

enum nwc_log_level {
	NWC_LOG_ERR = 0,
	NWC_LOG_WARN,
	NWC_LOG_INFO,
	NWC_LOG_DEBUG,
};

/* Set the threshold: messages above @level are dropped.  Default WARN. */
void nwc_log_set_level(enum nwc_log_level level);
enum nwc_log_level nwc_log_get_level(void);

/* Parse "err", "warn", "info" or "debug"; returns 0 or -EINVAL. */
int nwc_log_parse_level(const char *s, enum nwc_log_level *out);

/* Send lines to syslog(3) under @ident instead of stderr. */
void nwc_log_use_syslog(const char *ident);

/* Prefix for stderr lines, usually the program name.  Not copied. */
void nwc_log_set_prefix(const char *prefix);

void nwc_log(enum nwc_log_level level, const char *fmt, ...) NWC_PRINTF(2, 3);

#define nwc_err(...) nwc_log(NWC_LOG_ERR, __VA_ARGS__)
#define nwc_warn(...) nwc_log(NWC_LOG_WARN, __VA_ARGS__)
#define nwc_info(...) nwc_log(NWC_LOG_INFO, __VA_ARGS__)
#define nwc_dbg(...) nwc_log(NWC_LOG_DEBUG, __VA_ARGS__)

#endif /* NWC_LOG_H */
