/* SPDX-License-Identifier: MIT */
/*
 * Logging and the .mlfs/errors ring: where bad input is reported.  Any
 * thread; the ring is under fs->errors_lock.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <time.h>

#include "fs.h"

/* Append "<time> <line>" to the .mlfs/errors ring, shown to uid. */
static void errors_add(struct fs *fs, uid_t uid, const char *line)
{
	char stamp[32], *copy;
	struct tm tm;
	time_t now = time(NULL);

	gmtime_r(&now, &tm);
	strftime(stamp, sizeof(stamp), "%Y-%m-%dT%H:%M:%SZ", &tm);
	if (asprintf(&copy, "%s %s\n", stamp, line) >= 0) {
		char *old;

		pthread_mutex_lock(&fs->errors_lock);
		/* .mlfs/errors is a stream: offsets stay absolute */
		old = fs->errors[fs->errors_next];
		if (old) {
			fs->errors_dropped += strlen(old);
			fs->errors_bytes -= strlen(old);
		}
		fs->errors_bytes += strlen(copy);
		free(old);
		fs->errors[fs->errors_next] = copy;
		fs->errors_uid[fs->errors_next] = uid;
		fs->errors_next = (fs->errors_next + 1) % FS_ERRORS_KEEP;
		fs->errors_total++;
		pthread_mutex_unlock(&fs->errors_lock);
	}
}

void fs_problem(struct fs *fs, uid_t uid, const struct problem *pb)
{
	char line[1200];

	problem_format(pb, line, sizeof(line));
	atomic_fetch_add(&fs->n_rejected, 1);
	errors_add(fs, uid, line);
	fs_log(fs, LOG_NOTICE, "rejected: %s", line);
}

int fs_refused(struct fs *fs, uid_t uid, const char *dir, const char *name,
	       int rc, const char *fmt, ...)
{
	struct problem pb = { 0 };
	char why[400];
	va_list ap;

	if (rc != -EPERM && rc != -EACCES)
		return rc;
	if (!name)
		snprintf(pb.path, sizeof(pb.path), "%s", dir);
	else
		snprintf(pb.path, sizeof(pb.path), "%s%s%s", dir,
			 dir[0] ? "/" : "", name);
	va_start(ap, fmt);
	vsnprintf(why, sizeof(why), fmt, ap);
	va_end(ap);
	snprintf(pb.msg, sizeof(pb.msg), "%s: %s",
		 rc == -EPERM ? "operation not permitted" : "permission denied",
		 why);
	fs_problem(fs, uid, &pb);
	return rc;
}

void fs_damage(struct fs *fs, uid_t uid, const struct problem *pb)
{
	char line[1200];

	problem_format(pb, line, sizeof(line));
	errors_add(fs, uid, line);
	fs_log(fs, LOG_WARNING, "damaged: %s", line);
}

void fs_log(struct fs *fs, int prio, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	if (fs->log_fp) {
		flockfile(fs->log_fp);
		fprintf(fs->log_fp, "mlfs: ");
		vfprintf(fs->log_fp, fmt, ap);
		fputc('\n', fs->log_fp);
		fflush(fs->log_fp);
		funlockfile(fs->log_fp);
	} else {
		vsyslog(prio, fmt, ap);
	}
	va_end(ap);
}
