/* SPDX-License-Identifier: MIT */
/*
 * meta (the LMDB index): open/create, put/get/del, prefix scans with a
 * resume point, drop, errno translation, and allocation failures.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "failalloc.h"
#include "meta.h"
#include "tap.h"

static int count_cb(void *arg, const char *key, const char *val, size_t len)
{
	int *n = arg;

	(void)key;
	(void)val;
	(void)len;
	(*n)++;
	return 0;
}

static int stop_cb(void *arg, const char *key, const char *val, size_t len)
{
	(void)arg;
	(void)key;
	(void)val;
	(void)len;
	return -EINTR;
}

int main(void)
{
	char dir[] = "/tmp/meta_test.XXXXXX";
	char cmd[128];
	struct meta *m;
	struct meta_txn *t;
	bool created;
	char *val;
	size_t len;
	int rc, n;

	if (!mkdtemp(dir))
		return 77;
	rc = meta_open(dir, &m, &created);
	is_int(rc, 0, "open a new index");
	ok(created, "it was created");

	is_int(meta_txn_begin(m, false, &t), 0, "write txn");
	is_int(meta_put(t, META_REC, "iris", "{}", 2), 0, "put");
	is_int(meta_put(t, META_VER, "iris/0000000001", "a", 1), 0, "put v1");
	is_int(meta_put(t, META_VER, "iris/0000000002", "b", 1), 0, "put v2");
	is_int(meta_put(t, META_VER, "irisx/0000000001", "c", 1), 0, "put x");
	is_int(meta_txn_commit(t), 0, "commit");

	is_int(meta_txn_begin(m, true, &t), 0, "read txn");
	is_int(meta_get(t, META_REC, "iris", &val, &len), 0, "get");
	is_str(val, "{}", "value");
	is_int(len, 2, "length");
	free(val);
	is_int(meta_get(t, META_REC, "nope", &val, &len), -ENOENT, "missing");
	ok(val == NULL, "out is NULL on failure");
	is_int(meta_get(t, META_REC, "", &val, &len), -ENOENT, "empty key");
	is_int(meta_has(t, META_VER, "iris/0000000002"), 1, "has");
	n = 0;
	is_int(meta_scan(t, META_VER, "iris/", NULL, count_cb, &n), 0, "scan");
	is_int(n, 2, "prefix scan stops at the prefix");
	n = 0;
	meta_scan(t, META_VER, "iris/", "iris/0000000001", count_cb, &n);
	is_int(n, 1, "resume after a key");
	is_int(meta_scan(t, META_VER, "", NULL, stop_cb, NULL), -EINTR,
	       "callback stops the scan with its code");
	meta_txn_abort(t);

	/* allocation failures: every run fails cleanly or succeeds */
	for (unsigned i = 1;; i++) {
		failalloc_arm(i);
		rc = meta_txn_begin(m, true, &t);
		if (rc == 0) {
			rc = meta_get(t, META_REC, "iris", &val, &len);
			if (rc == 0)
				free(val);
			meta_txn_abort(t);
		}
		if (!failalloc_fired()) {
			failalloc_arm(0);
			is_int(rc, 0, "allocation loop ends in success");
			break;
		}
		failalloc_arm(0);
		if (rc != -ENOMEM) {
			is_int(rc, -ENOMEM, "allocation failure is ENOMEM");
			break;
		}
	}

	is_int(meta_txn_begin(m, false, &t), 0, "write txn");
	is_int(meta_del(t, META_REC, "iris"), 0, "del");
	is_int(meta_del(t, META_REC, "iris"), -ENOENT, "del missing");
	is_int(meta_drop(t, META_VER), 0, "drop");
	/* drop_prefix takes the keys under it and nothing beside them */
	is_int(meta_put(t, META_CAT, "datasets/a/v1.json", "1", 1), 0, "put");
	is_int(meta_put(t, META_CAT, "datasets/b/v1.json", "2", 1), 0, "put");
	is_int(meta_put(t, META_CAT, "datasetsx", "3", 1), 0, "put");
	is_int(meta_put(t, META_CAT, "jobs/j.json", "4", 1), 0, "put");
	is_int(meta_drop_prefix(t, META_CAT, "datasets/"), 0, "drop prefix");
	is_int(meta_has(t, META_CAT, "datasets/a/v1.json"), 0, "dropped a");
	is_int(meta_has(t, META_CAT, "datasets/b/v1.json"), 0, "dropped b");
	is_int(meta_has(t, META_CAT, "datasetsx"), 1, "kept beside");
	is_int(meta_has(t, META_CAT, "jobs/j.json"), 1, "kept after");
	is_int(meta_drop_prefix(t, META_CAT, "models/"), 0, "none to drop");
	is_int(meta_txn_commit(t), 0, "commit");
	meta_close(m);

	rc = meta_open(dir, &m, &created);
	is_int(rc, 0, "reopen");
	ok(!created, "existing index");
	is_int(meta_txn_begin(m, true, &t), 0, "read txn");
	is_int(meta_has(t, META_VER, "iris/0000000001"), 0, "dropped");
	meta_txn_abort(t);
	meta_close(m);
	meta_close(NULL);

	/* a scratch index: kept over a clean close, started again after
	 * any other end (its mark of a clean close missing) */
	{
		char sdir[160], mark[200];

		snprintf(sdir, sizeof(sdir), "%s/scratch", dir);
		snprintf(mark, sizeof(mark), "%s/clean", sdir);
		is_int(meta_open_scratch(sdir, &m), 0, "a scratch index");
		ok(access(mark, F_OK) < 0, "no clean mark while open");
		is_int(meta_txn_begin(m, false, &t), 0, "write txn");
		is_int(meta_put(t, META_ONLINE, "s/a", "1", 1), 0, "put");
		is_int(meta_txn_commit(t), 0, "commit");
		meta_close(m);
		ok(access(mark, F_OK) == 0, "a clean close leaves its mark");
		is_int(meta_open_scratch(sdir, &m), 0, "reopened");
		is_int(meta_txn_begin(m, true, &t), 0, "read txn");
		is_int(meta_has(t, META_ONLINE, "s/a"), 1, "kept");
		meta_txn_abort(t);
		meta_close(m);
		unlink(mark); /* as a crash leaves it */
		is_int(meta_open_scratch(sdir, &m), 0, "opened after a crash");
		is_int(meta_txn_begin(m, true, &t), 0, "read txn");
		is_int(meta_has(t, META_ONLINE, "s/a"), 0, "started again");
		meta_txn_abort(t);
		meta_close(m);
	}

	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	if (system(cmd) != 0)
		return 1;
	return done();
}
