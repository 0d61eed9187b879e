/* SPDX-License-Identifier: MIT */
/*
 * The lineage check after a rebuild: manifests gone from the bucket,
 * and the model versions trained on them, reported once.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "bcache.h"
#include "catalog.h"
#include "csv.h"
#include "repo.h"
#include "fs.h"
#include "hash.h"
#include "hostfile.h"
#include "jsonout.h"
#include "meta.h"
#include "reap.h"
#include "remote.h"
#include "repo_int.h"
#include "store.h"

struct lineage_scan {
	struct meta_txn *t;
	json_t *missing; /* key -> {"users": {verb: ["name vN", ...]},
			    "uids": {uid: true}} */
};

/* Note uid of record name of k (if readable) in the entry's "uids". */
static void lineage_uid(struct meta_txn *t, const struct repo_kind *k,
			const char *name, json_t *ent)
{
	char *val, uid[16], key[512];
	size_t len;
	json_t *rec;

	repo_index_key(k, name, key, sizeof(key));
	if (meta_get(t, META_REC, key, &val, &len) < 0)
		return;
	rec = json_loadb(val, len, 0, NULL);
	free(val);
	if (json_is_integer(json_object_get(rec, "uid"))) {
		snprintf(uid, sizeof(uid), "%u", repo_rec_uint(rec, "uid"));
		json_object_set_new(json_object_get(ent, "uids"), uid,
				    json_true());
	}
	json_decref(rec);
}

/* The entry of key in missing, made if need be (NULL: no memory). */
static json_t *lineage_ent(json_t *missing, const char *key)
{
	json_t *ent = json_object_get(missing, key);

	if (json_is_object(ent))
		return ent;
	ent = json_pack("{s:{}, s:{}}", "users", "uids");
	if (json_object_set_new(missing, key, ent) < 0)
		return NULL;
	return ent;
}

/* Version v of n, which who's version (at slash) names by r: indexed? */
static void lineage_note(struct lineage_scan *ls, const struct repo_kind *k,
			 const struct repo_ref *r, const char *who,
			 const char *slash, const char *n, unsigned v)
{
	char vkey[512], mkey[600], user[600];
	json_t *ent, *list;

	repo_version_key(r->to, n, v, vkey, sizeof(vkey));
	if (meta_has(ls->t, META_VER, vkey) != 0)
		return;
	snprintf(mkey, sizeof(mkey), "%s/%s/v%u.json", r->to->dir, n, v);
	snprintf(user, sizeof(user), "%.*s", (int)(slash - who), who);
	ent = lineage_ent(ls->missing, mkey);
	if (!ent)
		return;
	list = json_object_get(json_object_get(ent, "users"), r->verb);
	if (!list) {
		list = json_array();
		json_object_set_new(json_object_get(ent, "users"), r->verb,
				    list);
	}
	json_array_append_new(list, json_sprintf("%s v%u", user,
						 (unsigned)strtoul(slash + 1,
								   NULL, 10)));
	lineage_uid(ls->t, k, user, ent);
}

/* A version: are the versions its manifest names (repo_ref) indexed? */
static int lineage_one(void *arg, const char *key, const char *val,
		       size_t len)
{
	struct lineage_scan *ls = arg;
	const struct repo_kind *k = repo_kind_of_key(key);
	const char *who = k ? key + strlen(k->dir) + 1 : NULL;
	const char *slash = who ? strchr(who, '/') : NULL;
	json_t *man;

	if (!slash || !k->refs)
		return 0;
	man = json_loadb(val, len, 0, NULL);
	for (const struct repo_ref *r = k->refs; r->field; r++) {
		const char *n;
		unsigned v;

		for (size_t i = 0; repo_ref_get(man, r, i, &n, &v); i++)
			lineage_note(ls, k, r, who, slash, n, v);
	}
	json_decref(man);
	return 0;
}

/*
 * After a rebuild: manifests gone from the bucket.  Those the catalog
 * names and the LIST lacks (gone, from a writer's rebuild, or NULL), and
 * the dataset versions model versions were trained on that the index
 * lacks (rmdir of a version a model uses is EBUSY, so it went missing).
 * Each goes to the log and .mlfs/errors once while it stays missing,
 * naming the models trained on it (meta.json and EBUSY reasons say so
 * too, from the index).
 */
void repo_lineage_check(struct fs *fs, json_t *gone)
{
	struct lineage_scan ls = { NULL, json_object() };
	const char *key, *uid, *verb;
	json_t *ent, *u, *list;
	size_t i;

	if (!ls.missing || meta_txn_begin(fs->meta, true, &ls.t) < 0) {
		json_decref(ls.missing);
		return;
	}
	json_object_foreach(gone, key, u)
		lineage_ent(ls.missing, key);
	meta_scan(ls.t, META_VER, "", NULL, lineage_one, &ls);
	/* the missing object's owner sees it too, if its record is there */
	json_object_foreach(ls.missing, key, ent) {
		const struct repo_kind *k = repo_kind_of_key(key);
		char name[300];

		if (k && sscanf(key + strlen(k->dir), "/%299[^/]/", name) == 1)
			lineage_uid(ls.t, k, name, ent);
	}
	meta_txn_abort(ls.t);
	pthread_mutex_lock(&fs->repo->lineage.m);
	json_object_foreach(ls.missing, key, ent) {
		struct problem pb = { 0 };
		size_t off;

		if (json_object_get(fs->repo->lineage.reported, key))
			continue;
		snprintf(pb.path, sizeof(pb.path), "%s", key);
		off = (size_t)snprintf(pb.msg, sizeof(pb.msg),
				       "missing from the bucket");
		json_object_foreach(json_object_get(ent, "users"), verb, list) {
			json_array_foreach(list, i, u) {
				if (off < sizeof(pb.msg))
					off += (size_t)snprintf(
						pb.msg + off,
						sizeof(pb.msg) - off, "%s%s%s%s",
						i ? ", " : "; ", i ? "" : verb,
						i ? "" : " it: ",
						json_string_value(u));
			}
		}
		/* shown to each owner concerned, else to root alone */
		if (!json_object_size(json_object_get(ent, "uids")))
			fs_damage(fs, 0, &pb);
		json_object_foreach(json_object_get(ent, "uids"), uid, u)
			fs_damage(fs, (uid_t)strtoul(uid, NULL, 10), &pb);
	}
	json_decref(fs->repo->lineage.reported);
	fs->repo->lineage.reported = ls.missing; /* once back, reported again if lost */
	pthread_mutex_unlock(&fs->repo->lineage.m);
}
