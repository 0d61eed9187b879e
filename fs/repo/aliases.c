/* SPDX-License-Identifier: MIT */
/*
 * Aliases: names that point to a version of an object.
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

bool repo_alias_uses(json_t *rec, unsigned ver, const char **alias)
{
	const char *k;
	json_t *v;

	json_object_foreach(json_object_get(rec, "aliases"), k, v) {
		if ((unsigned)json_integer_value(v) == ver) {
			*alias = k;
			return true;
		}
	}
	return false;
}

int repo_alias_get(struct fs *fs, const struct repo_kind *k, const char *name, const char *alias,
		 unsigned *ver)
{
	json_t *rec, *v;
	int rc;

	rc = repo_get(fs, k, name, &rec);
	if (rc < 0)
		return rc;
	v = json_object_get(json_object_get(rec, "aliases"), alias);
	*ver = v ? (unsigned)json_integer_value(v) : 0;
	json_decref(rec);
	return v ? 0 : -ENOENT;
}

static int alias_store(struct fs *fs, const struct repo_kind *k, const char *name, json_t *rec)
{
	char key[512];
	int rc;

	repo_record_key(k, name, key, sizeof(key));
	rc = repo_put_json(fs, key, rec);
	if (rc < 0)
		return rc;
	return repo_index_update(fs, k, name, rec, 0, NULL);
}

int repo_alias_set(struct fs *fs, const struct repo_kind *k, const char *name, const char *alias,
		 const char *target, bool replace, struct problem *pb)
{
	unsigned ver;
	json_t *rec = NULL, *man = NULL;
	int rc;

	rc = node_name_check(alias, pb);
	if (rc < 0)
		return rc;
	if (strncmp(target, "./", 2) == 0)
		target += 2;
	if (!node_name_is_version(target, &ver))
		return problem_set(pb, 0, 0,
				   "alias target \"%s\": must be v<n> of this "
				   "dataset",
				   target);
	repo_lock(fs);
	rc = repo_get(fs, k, name, &rec);
	if (rc < 0)
		goto out_unlock;
	rc = repo_version(fs, k, name, ver, &man);
	if (rc < 0)
		goto out_unlock;
	if (!replace && json_object_get(json_object_get(rec, "aliases"), alias)) {
		rc = -EEXIST;
		goto out_unlock;
	}
	json_object_set_new(json_object_get(rec, "aliases"), alias,
			    json_integer(ver));
	rc = alias_store(fs, k, name, rec);
out_unlock:
	pthread_mutex_unlock(&fs->ds_lock);
	json_decref(man);
	json_decref(rec);
	return rc;
}

int repo_alias_del(struct fs *fs, const struct repo_kind *k, const char *name, const char *alias)
{
	json_t *rec;
	int rc;

	repo_lock(fs);
	rc = repo_get(fs, k, name, &rec);
	if (rc < 0)
		goto out_unlock;
	if (json_object_del(json_object_get(rec, "aliases"), alias) < 0)
		rc = -ENOENT;
	else
		rc = alias_store(fs, k, name, rec);
	json_decref(rec);
out_unlock:
	pthread_mutex_unlock(&fs->ds_lock);
	return rc;
}

int repo_alias_rename(struct fs *fs, const struct repo_kind *k, const char *name, const char *from,
		    const char *to, unsigned flags)
{
	struct problem pb = { 0 };
	json_t *rec, *aliases, *v;
	int rc;

	/* RENAME_NOREPLACE is 1, RENAME_EXCHANGE 2 */
	if (flags & ~1u)
		return -EINVAL;
	rc = node_name_check(to, &pb);
	if (rc < 0)
		return -EPERM; /* over latest, v<n>, or a bad name */
	repo_lock(fs);
	rc = repo_get(fs, k, name, &rec);
	if (rc < 0)
		goto out_unlock;
	aliases = json_object_get(rec, "aliases");
	v = json_object_get(aliases, from);
	if (!v) {
		rc = -ENOENT;
	} else if ((flags & 1) && json_object_get(aliases, to)) {
		rc = -EEXIST;
	} else if (strcmp(from, to) != 0) {
		/* one record write: the alias moves atomically */
		json_object_set(aliases, to, v);
		json_object_del(aliases, from);
		rc = alias_store(fs, k, name, rec);
	}
	json_decref(rec);
out_unlock:
	pthread_mutex_unlock(&fs->ds_lock);
	return rc;
}

int repo_ref_resolve(struct fs *fs, const struct repo_kind *k,
		     const char *ref, char *name, size_t nlen, unsigned *ver,
		     json_t **rec, char *why, size_t whylen)
{
	const char *at = strchr(ref, '@');
	size_t n = at ? (size_t)(at - ref) : strlen(ref);
	json_t *r, *aliases, *man;

	*ver = 0;
	if (rec)
		*rec = NULL;
	snprintf(name, nlen, "%.*s", (int)n, ref);
	if (repo_get(fs, k, name, &r) < 0) {
		snprintf(why, whylen, "no %s \"%s\"", k->noun, name);
		return -EINVAL;
	}
	aliases = json_object_get(r, "aliases");
	if (at && at[1] >= '0' && at[1] <= '9')
		*ver = (unsigned)strtoul(at + 1, NULL, 10);
	else if (at && strcmp(at + 1, "latest") != 0)
		*ver = (unsigned)json_integer_value(
			json_object_get(aliases, at + 1));
	else if (!at && json_object_get(aliases, "production"))
		*ver = (unsigned)json_integer_value(
			json_object_get(aliases, "production"));
	else
		*ver = (unsigned)json_integer_value(json_object_get(r, "latest"));
	if (*ver == 0) {
		snprintf(why, whylen, "%s \"%s\" has no %s", k->noun, name,
			 at ? "such alias" : "version yet");
		json_decref(r);
		return -EINVAL;
	}
	if (repo_version(fs, k, name, *ver, &man) < 0) {
		snprintf(why, whylen, "%s \"%s\" has no version %u", k->noun,
			 name, *ver);
		json_decref(r);
		return -EINVAL;
	}
	json_decref(man);
	if (rec)
		*rec = r;
	else
		json_decref(r);
	return 0;
}
