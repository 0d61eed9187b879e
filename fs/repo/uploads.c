/* SPDX-License-Identifier: MIT */
/*
 * Multipart uploads a crash left behind (uploads.h).  A large export is a
 * multipart upload (cache/store_s3.c), whose parts are billed until the
 * upload completes or is aborted; a writer killed in the middle leaves
 * them for ever, invisible to a LIST of the objects.  The writer sweeps
 * them at mount and at gc.  Called by main() before the FUSE loop and by
 * a FUSE worker running gc; holds no lock.
 */
#include <errno.h>
#include <string.h>
#include <syslog.h>
#include <time.h>

#include "fs.h"
#include "store.h"
#include "uploads.h"

int uploads_sweep(struct fs *fs)
{
	time_t before = time(NULL) - (time_t)fs->opts.gc_grace;
	unsigned n = 0;
	int rc;

	if (!fs->s3 || __atomic_load_n(&fs->opts.read_only, __ATOMIC_RELAXED))
		return 0;
	/*
	 * Not one of ours: every upload of this mount began after it, so
	 * a long export is never cut by a gc, whatever the grace.  Times
	 * are whole seconds: one begun in the mount's second is spared.
	 */
	if (before > fs->mounted)
		before = fs->mounted;
	rc = store_s3_abort_uploads(fs->s3, (int64_t)before, &n);
	if (rc == -EOPNOTSUPP) {
		fs_log(fs, LOG_NOTICE, "s3: the server does not list multipart "
				       "uploads; uploads a crash cut are left "
				       "to the bucket's lifecycle rules");
		rc = 0;
	} else if (rc < 0) {
		fs_log(fs, LOG_WARNING, "s3: sweeping old multipart uploads "
					"failed: %s; the next mount or gc tries "
					"again", strerror(-rc));
	}
	if (n)
		fs_log(fs, LOG_INFO, "s3: aborted %u multipart upload%s a crash "
				     "left behind", n, n == 1 ? "" : "s");
	return rc;
}
