/* SPDX-License-Identifier: MIT */
/*
 * ds (the dataset repository) over a memory store and a real LMDB index:
 * versions, identical content, bad CSV, schema overrides, aliases,
 * removal, rebuild from the store, and a store that fails call N.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include "repo.h"
#include "failalloc.h"
#include "fixture_fs.h"
#include "fs.h"
#include "meta.h"
#include "store.h"
#include "tap.h"

static const char iris[] = "a,b,species\n1,2,x\n3,4,y\n5,6,x\n";

static int count_ver(void *arg, unsigned ver)
{
	(void)ver;
	(*(int *)arg)++;
	return 0;
}

/*
 * The catalog table against the store: every entry is the exact bytes of
 * its object, and every manifest under datasets/ has one.  Returns the
 * number of differences.
 */
struct cat_check {
	struct fs *fs;
	struct meta_txn *t;
	int bad;
};

static int cat_entry(void *arg, const char *key, const char *val, size_t len)
{
	struct cat_check *cc = arg;
	char *buf = NULL;
	size_t blen;

	if (store_get(cc->fs->store, key, 1 << 20, &buf, &blen) < 0 ||
	    blen != len || memcmp(buf, val, len) != 0) {
		fprintf(stderr, "# catalog entry %s differs from the store\n",
			key);
		cc->bad++;
	}
	free(buf);
	return 0;
}

static int cat_object(void *arg, const char *key, const struct store_stat *st)
{
	struct cat_check *cc = arg;

	(void)st;
	if (meta_has(cc->t, META_CAT, key) != 1) {
		fprintf(stderr, "# %s has no catalog entry\n", key);
		cc->bad++;
	}
	return 0;
}

static int catalog_differences(struct fs *fs)
{
	struct cat_check cc = { fs, NULL, 0 };

	if (meta_txn_begin(fs->meta, true, &cc.t) < 0)
		return -1;
	meta_scan(cc.t, META_CAT, "", NULL, cat_entry, &cc);
	store_list(fs->store, "datasets/", cat_object, &cc);
	meta_txn_abort(cc.t);
	return cc.bad;
}

static int nversions(struct fs *fs, const char *name)
{
	int n = 0;

	repo_versions(fs, &repo_datasets, name, count_ver, &n);
	return n;
}

static int count_key(void *arg, const char *key, const struct store_stat *st)
{
	(void)st;
	if (strstr(key, "/v") && strstr(key, ".json"))
		(*(int *)arg)++;
	return 0;
}

/* Bytes allocated to the files in the store's staging folder. */
static long long tmp_blocks(struct fs *fs)
{
	char tmp[4096], *slash;
	long long bytes = 0;
	struct dirent *de;
	struct stat st;
	DIR *d;

	if (store_tmp_path(fs->store, tmp, sizeof(tmp)) < 0 ||
	    !(slash = strrchr(tmp, '/')))
		return -1;
	*slash = '\0';
	d = opendir(tmp);
	while (d && (de = readdir(d)))
		if (fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) ==
			    0 &&
		    S_ISREG(st.st_mode))
			bytes += (long long)st.st_blocks * 512;
	if (d)
		closedir(d);
	return bytes;
}

/*
 * A follow that another process writes into (repo_follow_writer): only
 * appends reach the file, a writer left open stops the publish, and the
 * version is the bytes written.
 */
static void test_follow_direct(struct fs *fs, const struct fs_ctx *ctx)
{
	static const char head[] = "a,b\n1,2\n", more[] = "3,4\n";
	struct repo_origin o = { "prepare", NULL, NULL, 0, 0, 0 };
	struct problem pb = { 0 };
	struct repo_follow *f;
	struct iovec iov = { (void *)"9", 1 };
	char *buf = NULL;
	size_t len = 0;
	unsigned ver = 0;
	bool created = false;
	json_t *man = NULL;
	int w;

	if (repo_create(fs, &repo_datasets, "direct", 0755, ctx, &pb) < 0 ||
	    repo_follow_start(fs, 1 << 20, &f) < 0) {
		ok(false, "direct: a dataset and a follow");
		return;
	}
	w = repo_follow_writer(f);
	if (w == -ENOTTY || w == -EOPNOTSUPP) {
		skip("direct: no append-only attribute where the store's "
		     "staging files are");
		repo_follow_drop(f);
		return;
	}
	ok(w >= 0, "direct: a writer for another process");
	is_int((int)write(w, head, strlen(head)), (int)strlen(head),
	       "direct: it appends");
	is_int((int)pwritev2(w, &iov, 1, 0, RWF_NOAPPEND), -1,
	       "direct: it cannot write at the start");
	is_int(errno, EPERM, "direct: EPERM");
	ok(fcntl(w, F_SETFL, 0) < 0 && errno == EPERM,
	   "direct: it cannot clear O_APPEND");
	ok(ftruncate(w, 0) < 0 && errno == EPERM, "direct: nor truncate");
	is_int(repo_follow_grew(f), 0, "direct: grew");
	is_int((int)repo_follow_copied(f), (int)strlen(head),
	       "direct: what it wrote is taken");
	is_int(repo_follow_seal(f), -EBUSY,
	       "direct: a writer still open stops the seal");
	is_int((int)write(w, more, strlen(more)), (int)strlen(more),
	       "direct: appends more");
	is_int(fallocate(w, FALLOC_FL_KEEP_SIZE, 0, 8 << 20), 0,
	       "direct: it may reserve blocks past the end");
	close(w);
	is_int(repo_follow_seal(f), 0, "direct: sealed once it is closed");
	ok(tmp_blocks(fs) < (1 << 20),
	   "direct: the seal frees what it reserved");
	is_int(repo_follow_publish(f, "direct", &o, &ver, &created, &pb), 0,
	       "direct: published");
	ok(created && ver == 1, "direct: as v1");
	if (repo_version(fs, &repo_datasets, "direct", 1, &man) == 0)
		store_get(fs->store,
			  json_string_value(json_object_get(man, "blob")),
			  1 << 20, &buf, &len);
	ok(buf && len == strlen(head) + strlen(more) &&
		   memcmp(buf, "a,b\n1,2\n3,4\n", len) == 0,
	   "direct: the version is the bytes appended");
	free(buf);
	json_decref(man);

	/*
	 * Dropped with its writer still open and followed by a scan (past
	 * 16 MiB): the scan stops before the attribute goes, so that the
	 * writer's truncation then cannot pull pages from under it.
	 */
	if (repo_follow_start(fs, 64 << 20, &f) == 0) {
		static char row[1 << 16];
		bool all = true;

		w = repo_follow_writer(f);
		ok(w >= 0, "direct: a second writer");
		memset(row, 'x', sizeof(row));
		for (size_t i = 0; i < sizeof(row); i += 64)
			row[i + 63] = '\n';
		for (int i = 0; w >= 0 && i < 320; i++)
			all &= write(w, row, sizeof(row)) == (ssize_t)sizeof(row);
		ok(all && repo_follow_grew(f) == 0, "direct: 20 MiB followed");
		repo_follow_drop(f);
		ok(w >= 0 && ftruncate(w, 0) == 0,
		   "direct: once dropped, the writer may truncate it");
		if (w >= 0)
			close(w);
	}

	/* a copy left append-only by a daemon that stopped goes too */
	{
		char tmp[4096];
		const char *slash;
		int fd, dfd = -1;

		if (store_tmp_path(fs->store, tmp, sizeof(tmp)) == 0 &&
		    (fd = open(tmp, O_RDWR | O_CREAT | O_EXCL, 0600)) >= 0) {
			is_int(store_append_only(fd, true), 0,
			       "direct: a file made append-only");
			close(fd);
			slash = strrchr(tmp, '/');
			*(char *)slash = '\0';
			dfd = open(tmp, O_RDONLY | O_DIRECTORY);
			ok(unlinkat(dfd, slash + 1, 0) < 0 && errno == EPERM,
			   "direct: which unlinkat alone cannot remove");
			is_int(store_unlinkat(dfd, slash + 1), 0,
			       "direct: store_unlinkat removes it");
			ok(faccessat(dfd, slash + 1, F_OK, 0) < 0,
			   "direct: gone");
			close(dfd);
		}
	}
}

int main(void)
{
	char dir[] = "/tmp/ds_test.XXXXXX", idx[300], idx2[300], msg[256];
	struct fs_ctx ctx = { 0, 0, 1, 022, NULL };
	struct fixture_fs_opts opts = { .index = idx };
	struct problem pb = { 0 };
	struct fs fs;
	unsigned ver, av;
	bool created;
	json_t *man;
	int rc;

	if (!mkdtemp(dir))
		return 77;
	snprintf(idx, sizeof(idx), "%s/index", dir);
	snprintf(idx2, sizeof(idx2), "%s/index2", dir);
	if (fixture_fs_setup(&fs, &opts) < 0)
		return 77;

	is_int(repo_format_check(&fs, msg, sizeof(msg)), 0, "format created");
	is_int(repo_format_check(&fs, msg, sizeof(msg)), 0, "format accepted");
	store_put(fs.store, "mlfs-format", "2.0\n", 4);
	is_int(repo_format_check(&fs, msg, sizeof(msg)), -EPROTO,
	       "unknown major refused");
	ok(strstr(msg, "2.0") != NULL, "message quotes the format");
	store_put(fs.store, "mlfs-format", "1.7\n", 4);
	is_int(repo_format_check(&fs, msg, sizeof(msg)), 0, "minor is fine");

	/* which keys the block cache verifies against the hash they name */
	{
		static const struct {
			const char *key;
			bool blob;
		} keys[] = {
			{ "blobs/3f/3f24db4cf6a05e0b3ab392f13afaa1de", true },
			{ "blobs/3F/3F24DB4CF6A05E0B3AB392F13AFAA1DE", false },
			{ "blobs/3e/3f24db4cf6a05e0b3ab392f13afaa1de", false },
			{ "blobs/3f/3f24db4cf6a05e0b3ab392f13afaa1d", false },
			{ "blobs/3f/3f24db4cf6a05e0b3ab392f13afaa1de0", false },
			{ "blobs/3f/3f24db4cf6a05e0b3ab392f13afaa1dz", false },
			{ "blobs/zz/not-a-hash", false },
			{ "datasets/3f/3f24db4cf6a05e0b3ab392f13afaa1de", false },
			{ "blobs/3f3f24db4cf6a05e0b3ab392f13afaa1de12", false },
		};
		char h[HASH_HEX_LEN + 1], k[80];
		int bad = 0;

		for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
			bad += repo_blob_hash(keys[i].key, h) != keys[i].blob;
		is_int(bad, 0, "repo_blob_hash: blob keys and others");
		repo_blob_key("0123456789abcdef0123456789abcdef", k, sizeof(k));
		ok(repo_blob_hash(k, h) &&
			   strcmp(h, "0123456789abcdef0123456789abcdef") == 0,
		   "repo_blob_hash reads what repo_blob_key writes");
	}

	is_int(repo_create(&fs, &repo_datasets, ".x", 0755, &ctx, &pb), -EINVAL, "bad name");
	ok(strstr(pb.msg, "starts with '.'") != NULL, "problem says why");
	is_int(repo_create(&fs, &repo_datasets, "iris", 0755, &ctx, &pb), 0, "create");
	is_int(repo_create(&fs, &repo_datasets, "iris", 0755, &ctx, &pb), -EEXIST, "exists");

	is_int(fixture_fs_publish(&fs, "iris", iris, &ver, &created, &pb), 0,
	       "publish");
	ok(created && ver == 1, "v1 created");
	is_int(fixture_fs_publish(&fs, "iris", iris, &ver, &created, &pb), 0,
	       "same");
	ok(!created && ver == 1, "identical content makes no version");
	is_int(fixture_fs_publish(&fs, "iris", "a,b\n1\n", &ver, &created,
				  &pb),
	       -EINVAL, "ragged CSV");
	is_int(pb.line, 2, "line of the problem");
	is_int(nversions(&fs, "iris"), 1, "still one version");
	is_int(fixture_fs_publish(&fs, "nope", iris, &ver, &created, &pb),
	       -ENOENT, "no such dataset");

	is_int(repo_version(&fs, &repo_datasets, "iris", 0, &man), 0, "latest manifest");
	is_int(json_integer_value(json_object_get(man, "rows")), 3, "rows");
	is_str(json_string_value(json_object_get(json_object_get(man, "schema"),
						 "label")),
	       "species", "label defaults to the last column");
	json_decref(man);

	{
		struct repo_origin o = { "schema", NULL, NULL, 0, 0, 0 };

		is_int(ds_set_schema(&fs, "iris", "{\"label\": \"a\"}", &o,
				     &pb),
		       0, "schema override");
		is_int(nversions(&fs, "iris"), 2, "makes v2");
		is_int(ds_set_schema(&fs, "iris",
				     "{\"columns\": [{\"name\": \"zz\"}]}", &o,
				     &pb),
		       -EINVAL, "missing column");
		ok(strstr(pb.msg, "zz") != NULL, "names the column");
		is_int(ds_set_schema(&fs, "iris", "{\"label\": ", &o, &pb),
		       -EINVAL, "incomplete JSON");
	}

	is_int(repo_alias_set(&fs, &repo_datasets, "iris", "prod", "v1", false, &pb), 0,
	       "alias");
	is_int(repo_alias_set(&fs, &repo_datasets, "iris", "prod", "v2", false, &pb), -EEXIST,
	       "alias exists");
	is_int(repo_alias_set(&fs, &repo_datasets, "iris", "x", "v9", false, &pb), -ENOENT,
	       "alias to a missing version");
	is_int(repo_alias_set(&fs, &repo_datasets, "iris", "x", "../v1", false, &pb), -EINVAL,
	       "alias outside the dataset");
	is_int(repo_alias_set(&fs, &repo_datasets, "iris", "tmp1", "v2", false, &pb), 0, "tmp");
	is_int(repo_alias_rename(&fs, &repo_datasets, "iris", "tmp1", "prod", 0), 0,
	       "rename over (ln -sfn)");
	is_int(repo_alias_get(&fs, &repo_datasets, "iris", "prod", &av), 0, "get");
	is_int(av, 2, "prod moved to v2");
	is_int(repo_alias_get(&fs, &repo_datasets, "iris", "tmp1", &av), -ENOENT, "tmp gone");
	is_int(repo_remove_version(&fs, &repo_datasets, "iris", 2, NULL), -EBUSY, "alias pins v2");
	is_int(repo_remove_version(&fs, &repo_datasets, "iris", 1, NULL), 0, "remove v1");
	is_int(nversions(&fs, "iris"), 1, "one left");
	is_int(catalog_differences(&fs), 0, "catalog table is the store's bytes");

	test_follow_direct(&fs, &ctx);

	/* a fresh index rebuilt from the store sees the same */
	{
		struct meta *old = fs.meta;
		bool c;

		is_int(meta_open(idx2, &fs.meta, &c), 0, "second index");
		is_int(repo_rebuild(&fs), 0, "rebuild");
		is_int(catalog_differences(&fs), 0, "catalog table rebuilt");
		is_int(nversions(&fs, "iris"), 1, "versions rebuilt");
		is_int(repo_alias_get(&fs, &repo_datasets, "iris", "prod", &av), 0, "alias");
		is_int(av, 2, "alias rebuilt");
		is_int(fixture_fs_publish(&fs, "iris",
					  "a,b,species\n7,7,x\n", &ver,
					  &created, &pb),
		       0, "publish after rebuild");
		is_int(ver, 3, "version numbers are not reused");
		meta_close(fs.meta);
		fs.meta = old;
	}
	is_int(repo_alias_del(&fs, &repo_datasets, "iris", "prod"), 0, "del alias");
	is_int(repo_remove(&fs, &repo_datasets, "iris", NULL), 0, "remove dataset");
	is_int(repo_remove(&fs, &repo_datasets, "iris", NULL), -ENOENT, "gone");

	/* a third kind: versions by repo_commit, kept by what names them */
	{
		struct repo_origin o = { "spec", NULL, NULL, 0, 0, 0 };
		json_t *m;

		is_int(repo_create(&fs, &repo_features, "cust", 0755, &ctx, &pb),
		       0, "feature set made");
		m = json_pack("{s:s, s:{s:s}}", "feature_set", "cust", "spec",
			      "entity", "id");
		is_int(repo_commit(&fs, &repo_features, "cust", m, &o, &ver,
				 &created),
		       0, "feature set v1");
		ok(created && ver == 1, "a new version");
		json_decref(m);
		m = json_pack("{s:s, s:{s:s}}", "feature_set", "cust", "spec",
			      "entity", "id");
		is_int(repo_commit(&fs, &repo_features, "cust", m, &o, &ver,
				 &created),
		       0, "the same spec");
		ok(!created && ver == 1, "makes no version");
		json_decref(m);
		m = json_object();
		is_int(repo_commit(&fs, &repo_features, "nosuch", m, &o, &ver,
				 &created),
		       -ENOENT, "no such feature set");
		json_decref(m);
		/* a model version trained on it keeps it */
		m = json_pack("{s:s, s:[{s:s, s:i}], s:{}}", "model", "m",
			      "feature_sets", "name", "cust", "version", 1,
			      "files");
		is_int(repo_commit_model(&fs, "m", m, &ctx, &ver), 0,
		       "model trained on it");
		json_decref(m);
		memset(&pb, 0, sizeof(pb));
		is_int(repo_remove_version(&fs, &repo_features, "cust", 1, &pb),
		       -EBUSY, "its version is busy");
		ok(strstr(pb.msg, "model m was trained on v1") != NULL,
		   pb.msg);
		is_int(repo_remove(&fs, &repo_features, "cust", &pb), -EBUSY,
		       "and the set");
		is_int(repo_remove(&fs, &repo_models, "m", NULL), 0,
		       "model removed");
		is_int(repo_remove(&fs, &repo_features, "cust", NULL), 0,
		       "then the set goes");
	}
	fixture_fs_teardown(&fs);

	/* a store that fails call N: each run fails cleanly */
	for (unsigned n = 1;; n++) {
		char d[320];
		struct fixture_fs_opts fopts = { .index = d };
		struct store *mem;
		int listed = 0, rc2;

		snprintf(d, sizeof(d), "%s/f%u", dir, n);
		if (store_mem_open(&mem) < 0 ||
		    store_faulty_open(mem, n, EIO, &fopts.store) < 0 ||
		    fixture_fs_setup(&fs, &fopts) < 0)
			return 1;
		rc = repo_create(&fs, &repo_datasets, "d", 0755, &ctx, &pb);
		if (rc == 0)
			rc = fixture_fs_publish(&fs, "d", iris, &ver,
						&created, &pb);
		if (rc == 0)
			rc = fixture_fs_publish(&fs, "d", "a,b\n1,2\n", &ver,
						&created, &pb);
		/* what the index says matches what the store holds */
		rc2 = store_list(fs.store, "datasets/", count_key, &listed);
		if (rc2 == 0 && listed != nversions(&fs, "d")) {
			is_int(listed, nversions(&fs, "d"),
			       "store and index agree after a failure");
			fixture_fs_teardown(&fs);
			break;
		}
		if (rc == 0 && n > store_faulty_calls(fs.store)) {
			/* past the last call: nothing failed this time */
			is_int(nversions(&fs, "d"), 2, "fault loop ends");
			ok(n > 6, "faults were injected into every call");
			fixture_fs_teardown(&fs);
			break;
		}
		if (rc == 0) {
			/* a tolerated failure (a HEAD): the result is whole */
			if (nversions(&fs, "d") != 2) {
				is_int(nversions(&fs, "d"), 2,
				       "tolerated failure still completes");
				fixture_fs_teardown(&fs);
				break;
			}
			fixture_fs_teardown(&fs);
			continue;
		}
		if (rc != -EIO) {
			is_int(rc, -EIO, "injected error comes back");
			fixture_fs_teardown(&fs);
			break;
		}
		fixture_fs_teardown(&fs);
	}
	failalloc_arm(0);
	fixture_fs_rmrf(dir);
	return done();
}
