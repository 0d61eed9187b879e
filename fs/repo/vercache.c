/* SPDX-License-Identifier: MIT */
/*
 * Versions' manifests parsed once (repo_version_shared, repo.h).  Parsing
 * a model version's 3 KB manifest with jansson was most of the daemon's
 * own time in predict's open + write + read + close (perf: jansson 18 %,
 * malloc and free most of libc's 20 %).  A small table, least recently
 * used out, under one mutex held only to look up and to swap an entry.
 */
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fs.h"
#include "repo.h"
#include "repo_int.h"

#define VCACHE_KEEP 64

struct vcache_ent {
	char key[NAME_MAX + 96]; /* kind, name, incarnation, version */
	json_t *man;             /* never changed once here */
	uint64_t used;
};

int repo_vcache_open(struct repo *r)
{
	r->vcache.e = calloc(VCACHE_KEEP, sizeof(*r->vcache.e));
	if (!r->vcache.e)
		return -ENOMEM;
	pthread_mutex_init(&r->vcache.m, NULL);
	return 0;
}

void repo_vcache_close(struct repo *r)
{
	if (!r->vcache.e)
		return;
	for (size_t i = 0; i < VCACHE_KEEP; i++)
		json_decref(r->vcache.e[i].man);
	free(r->vcache.e);
	r->vcache.e = NULL;
	pthread_mutex_destroy(&r->vcache.m);
}

int repo_version_shared(struct fs *fs, const struct repo_kind *k,
			const char *name, json_t *rec, unsigned ver,
			json_t **man)
{
	struct repo *r = fs->repo;
	const char *inc = json_string_value(json_object_get(rec, "incarnation"));
	struct vcache_ent *v;
	char key[NAME_MAX + 96];
	int rc;

	*man = NULL;
	if (!inc || !ver)
		return repo_version(fs, k, name, ver, man);
	snprintf(key, sizeof(key), "%s/%s/%s/%u", k->dir, name, inc, ver);
	pthread_mutex_lock(&r->vcache.m);
	for (size_t i = 0; i < VCACHE_KEEP; i++) {
		v = &r->vcache.e[i];
		if (v->man && strcmp(v->key, key) == 0) {
			v->used = ++r->vcache.tick;
			*man = json_incref(v->man);
			pthread_mutex_unlock(&r->vcache.m);
			return 0;
		}
	}
	pthread_mutex_unlock(&r->vcache.m);
	rc = repo_version(fs, k, name, ver, man);
	if (rc < 0 || json_is_true(json_object_get(*man, "pending")) ||
	    !repo_same_incarnation(rec, *man))
		return rc;
	pthread_mutex_lock(&r->vcache.m);
	v = &r->vcache.e[0];
	for (size_t i = 1; i < VCACHE_KEEP; i++)
		if (r->vcache.e[i].used < v->used)
			v = &r->vcache.e[i];
	json_decref(v->man);
	snprintf(v->key, sizeof(v->key), "%s", key);
	v->man = json_incref(*man);
	v->used = ++r->vcache.tick;
	pthread_mutex_unlock(&r->vcache.m);
	return 0;
}
