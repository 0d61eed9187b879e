/* SPDX-License-Identifier: MIT */
/*
 * The node table: the kernel's inodes, found by inode number (every FUSE
 * op) and by path (lookup of a name the kernel already knows).  Two
 * chained hash tables under fs->nodes_lock; any FUSE worker enters.
 *
 * A node holds one reference for the table while the kernel knows it
 * (nlookup > 0), one per open handle, and one per child node (through
 * child->parent).  forget brings nlookup to zero and drops the table's
 * reference; the last node_put() unlinks and frees it, so an op still
 * running on a forgotten node keeps a valid pointer.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <fuse_lowlevel.h>

#include "fs.h"
#include "node.h"

static size_t node_hash_str(const char *s)
{
	size_t h = 1469598103934665603ULL; /* FNV-1a */

	while (*s) {
		h ^= (unsigned char)*s++;
		h *= 1099511628211ULL;
	}
	return h;
}

static size_t node_hash_ino(uint64_t ino)
{
	return (size_t)(ino * 0x9E3779B97F4A7C15ULL);
}

static void node_free(struct node *n)
{
	while (n->retired) {
		struct node_retired *r = n->retired;

		n->retired = r->next;
		free(r->path);
		free(r->compbuf);
		free(r);
	}
	free(n->compbuf);
	free(n->path);
	free(n);
}

static struct node *node_new(struct fs *fs, struct node *parent,
			     const char *name, const struct node_type *type)
{
	struct node *n;
	size_t plen = parent ? strlen(parent->path) : 0;
	size_t nlen = strlen(name);
	char *p;

	if (parent && parent->depth >= NODE_MAX_DEPTH)
		return NULL;
	n = calloc(1, sizeof(*n));
	if (!n)
		return NULL;
	n->path = malloc(plen + nlen + 2);
	n->compbuf = malloc(plen + nlen + 2);
	if (!n->path || !n->compbuf) {
		node_free(n);
		return NULL;
	}
	if (plen)
		sprintf(n->path, "%s/%s", parent->path, name);
	else
		strcpy(n->path, name);
	n->name = n->path + strlen(n->path) - nlen;
	strcpy(n->compbuf, n->path);
	for (p = strtok(n->compbuf, "/"); p; p = strtok(NULL, "/"))
		n->comp[n->depth++] = p;
	n->fs = fs;
	n->type = type;
	n->parent = parent;
	return n;
}

static int node_table_grow(struct fs *fs)
{
	size_t nb = fs->nbuckets * 2;
	struct node **bi = calloc(nb, sizeof(*bi));
	struct node **bp = calloc(nb, sizeof(*bp));

	if (!bi || !bp) {
		free(bi);
		free(bp);
		return -ENOMEM;
	}
	for (size_t i = 0; i < fs->nbuckets; i++) {
		struct node *n, *next;

		for (n = fs->by_ino[i]; n; n = next) {
			size_t h = node_hash_ino(n->ino) & (nb - 1);

			next = n->next_ino;
			n->next_ino = bi[h];
			bi[h] = n;
		}
		for (n = fs->by_path[i]; n; n = next) {
			size_t h = node_hash_str(n->path) & (nb - 1);

			next = n->next_path;
			n->next_path = bp[h];
			bp[h] = n;
		}
	}
	free(fs->by_ino);
	free(fs->by_path);
	fs->by_ino = bi;
	fs->by_path = bp;
	fs->nbuckets = nb;
	return 0;
}

/* Under nodes_lock. */
static void node_insert(struct fs *fs, struct node *n)
{
	size_t hi, hp;

	if (fs->nnodes >= fs->nbuckets)
		node_table_grow(fs); /* on failure chains just get longer */
	hi = node_hash_ino(n->ino) & (fs->nbuckets - 1);
	hp = node_hash_str(n->path) & (fs->nbuckets - 1);
	n->next_ino = fs->by_ino[hi];
	fs->by_ino[hi] = n;
	n->next_path = fs->by_path[hp];
	fs->by_path[hp] = n;
	fs->nnodes++;
}

/* Under nodes_lock. */
static void node_remove(struct fs *fs, struct node *n)
{
	struct node **pp;

	pp = &fs->by_ino[node_hash_ino(n->ino) & (fs->nbuckets - 1)];
	while (*pp && *pp != n)
		pp = &(*pp)->next_ino;
	if (*pp)
		*pp = n->next_ino;
	pp = &fs->by_path[node_hash_str(n->path) & (fs->nbuckets - 1)];
	while (*pp && *pp != n)
		pp = &(*pp)->next_path;
	if (*pp)
		*pp = n->next_path;
	fs->nnodes--;
}

int node_table_init(struct fs *fs)
{
	struct node *root;

	pthread_mutex_init(&fs->nodes_lock, NULL);
	fs->nbuckets = 1024;
	fs->by_ino = calloc(fs->nbuckets, sizeof(*fs->by_ino));
	fs->by_path = calloc(fs->nbuckets, sizeof(*fs->by_path));
	root = node_new(fs, NULL, "", &root_type);
	if (!fs->by_ino || !fs->by_path || !root) {
		free(root);
		free(fs->by_ino);
		free(fs->by_path);
		return -ENOMEM;
	}
	root->ino = FUSE_ROOT_ID;
	root->nlookup = 1;
	root->refs = 1;
	fs->next_ino = FUSE_ROOT_ID + 1;
	node_insert(fs, root);
	fs->root = root;
	return 0;
}

void node_table_free(struct fs *fs)
{
	for (size_t i = 0; i < fs->nbuckets; i++) {
		struct node *n, *next;

		for (n = fs->by_ino ? fs->by_ino[i] : NULL; n; n = next) {
			next = n->next_ino;
			node_free(n);
		}
	}
	free(fs->by_ino);
	free(fs->by_path);
	fs->by_ino = NULL;
	fs->by_path = NULL;
	pthread_mutex_destroy(&fs->nodes_lock);
}

void node_ref(struct node *n)
{
	atomic_fetch_add(&n->refs, 1);
}

void node_put(struct node *n)
{
	while (n) {
		struct fs *fs = n->fs;
		struct node *parent;

		/*
		 * Take the lock before dropping the last reference so that a
		 * concurrent lookup by path cannot find a node being freed.
		 */
		pthread_mutex_lock(&fs->nodes_lock);
		if (atomic_fetch_sub(&n->refs, 1) != 1) {
			pthread_mutex_unlock(&fs->nodes_lock);
			return;
		}
		node_remove(fs, n);
		pthread_mutex_unlock(&fs->nodes_lock);
		parent = n->parent;
		node_free(n);
		n = parent;
	}
}

struct node *node_get_ino(struct fs *fs, uint64_t ino)
{
	struct node *n;

	pthread_mutex_lock(&fs->nodes_lock);
	n = fs->by_ino[node_hash_ino(ino) & (fs->nbuckets - 1)];
	while (n && n->ino != ino)
		n = n->next_ino;
	if (n)
		atomic_fetch_add(&n->refs, 1);
	pthread_mutex_unlock(&fs->nodes_lock);
	return n;
}

int node_child(struct node *parent, const char *name,
	       const struct node_type *type, struct node **out)
{
	struct fs *fs = parent->fs;
	struct node *n, *fresh;
	size_t h;

	*out = NULL;
	/* Build outside the lock; most lookups of a new name need it. */
	fresh = node_new(fs, parent, name, type);
	if (!fresh)
		return parent->depth >= NODE_MAX_DEPTH ? -ENOENT : -ENOMEM;
	pthread_mutex_lock(&fs->nodes_lock);
	h = node_hash_str(fresh->path) & (fs->nbuckets - 1);
	for (n = fs->by_path[h]; n; n = n->next_path)
		if (n->nlookup > 0 && n->type == type &&
		    strcmp(n->path, fresh->path) == 0)
			break;
	if (n) {
		atomic_fetch_add(&n->nlookup, 1);
		atomic_fetch_add(&n->refs, 1);
		pthread_mutex_unlock(&fs->nodes_lock);
		node_free(fresh);
		*out = n;
		return 0;
	}
	fresh->ino = fs->next_ino++;
	fresh->nlookup = 1;
	fresh->refs = 2; /* the table's and the caller's */
	atomic_fetch_add(&parent->refs, 1);
	node_insert(fs, fresh);
	pthread_mutex_unlock(&fs->nodes_lock);
	*out = fresh;
	return 0;
}

void node_forget(struct fs *fs, uint64_t ino, uint64_t nlookup)
{
	struct node *n = node_get_ino(fs, ino);
	bool last;

	if (!n)
		return;
	/*
	 * Under the lock, so that node_child() never revives a node whose
	 * count is on its way to zero.
	 */
	pthread_mutex_lock(&fs->nodes_lock);
	/*
	 * A node already at zero (forgotten, kept by an open handle) has
	 * no table reference left to drop; and the root's count stops at
	 * zero instead of wrapping.
	 */
	last = ino != FUSE_ROOT_ID && n->nlookup > 0 && n->nlookup <= nlookup;
	n->nlookup = n->nlookup > nlookup ? n->nlookup - nlookup : 0;
	pthread_mutex_unlock(&fs->nodes_lock);
	if (last)
		node_put(n); /* the table's reference */
	node_put(n);
}

void node_move(struct node *dir, const char *from, const char *to)
{
	struct fs *fs = dir->fs;
	struct node *src, *dst, *n;
	struct node_retired *r;
	size_t h;

	/* Build the old and the new path the same way node_child does. */
	src = node_new(fs, dir, from, &root_type);
	dst = node_new(fs, dir, to, &root_type);
	r = malloc(sizeof(*r));
	if (!src || !dst || !r)
		goto out_free;
	pthread_mutex_lock(&fs->nodes_lock);
	h = node_hash_str(src->path) & (fs->nbuckets - 1);
	for (n = fs->by_path[h]; n; n = n->next_path)
		if (strcmp(n->path, src->path) == 0 && !node_is_dir(n->type))
			break;
	if (n) {
		node_remove(fs, n);
		/*
		 * An op running on n may hold the old strings: retire them
		 * with the node instead of freeing them now.
		 */
		r->path = n->path;
		r->compbuf = n->compbuf;
		r->next = n->retired;
		n->retired = r;
		r = NULL;
		n->path = dst->path;
		n->compbuf = dst->compbuf;
		n->name = dst->name;
		memcpy(n->comp, dst->comp, sizeof(n->comp));
		n->depth = dst->depth;
		dst->path = NULL;
		dst->compbuf = NULL;
		node_insert(fs, n);
	}
	pthread_mutex_unlock(&fs->nodes_lock);
out_free:
	free(r);
	if (src)
		node_free(src);
	if (dst)
		node_free(dst);
}

int node_resolve(struct node *dir, const char *name,
		 const struct node_type **type)
{
	const struct node_type *t;

	*type = NULL;
	if (!node_is_dir(dir->type))
		return -ENOTDIR;
	for (t = dir->type->children; t && t->name; t++) {
		if (strcmp(t->name, name) == 0) {
			*type = t;
			return 0;
		}
	}
	if (!dir->type->lookup)
		return -ENOENT;
	return dir->type->lookup(dir, name, type);
}


int node_walk(struct fs *fs, const char *path, struct node **out)
{
	struct node *n = fs->root, *child;
	const struct node_type *t;
	char *copy = strdup(path), *save = NULL, *c;
	int rc = 0;

	*out = NULL;
	if (!copy)
		return -ENOMEM;
	for (c = strtok_r(copy, "/", &save); c; c = strtok_r(NULL, "/", &save)) {
		if (strcmp(c, ".") == 0 || strcmp(c, "..") == 0) {
			rc = -ENOENT;
			break;
		}
		rc = node_resolve(n, c, &t);
		if (rc < 0)
			break;
		child = node_new(fs, n, c, t);
		if (!child) {
			rc = n->depth >= NODE_MAX_DEPTH ? -ENOENT : -ENOMEM;
			break;
		}
		n = child;
	}
	free(copy);
	if (rc < 0) {
		node_walk_free(n);
		return rc;
	}
	*out = n;
	return 0;
}

void node_walk_free(struct node *n)
{
	/* the walk's own nodes, up to the root (the table's) */
	while (n && n != n->fs->root) {
		struct node *parent = n->parent;

		node_free(n);
		n = parent;
	}
}
