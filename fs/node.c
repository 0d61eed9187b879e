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
	last = ino != FUSE_ROOT_ID && n->nlookup <= nlookup;
	n->nlookup = last ? 0 : n->nlookup - nlookup;
	pthread_mutex_unlock(&fs->nodes_lock);
	if (last)
		node_put(n); /* the table's reference */
	node_put(n);
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

int node_name_check(const char *name, struct problem *pb)
{
	size_t len = strlen(name);
	unsigned v;

	if (len == 0)
		return problem_set(pb, 0, 0, "empty name");
	if (len > 255)
		return problem_set(pb, 0, 0, "name longer than 255 bytes");
	if (name[0] == '.')
		return problem_set(pb, 0, 0,
				   "name \"%s\" starts with '.'", name);
	if (strcmp(name, "latest") == 0 || node_name_is_version(name, &v))
		return problem_set(pb, 0, 0, "name \"%s\" is reserved", name);
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)name[i];

		if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		    (c >= '0' && c <= '9') || c == '.' || c == '_' ||
		    c == '-')
			continue;
		if (c >= 0x20 && c < 0x7f)
			return problem_set(pb, 0, (unsigned)i + 1,
					   "name \"%s\" has '%c' (allowed: "
					   "letters, digits, '.', '_', '-')",
					   name, c);
		return problem_set(pb, 0, (unsigned)i + 1,
				   "name has byte 0x%02x (allowed: letters, "
				   "digits, '.', '_', '-')",
				   c);
	}
	return 0;
}

bool node_name_is_version(const char *name, unsigned *ver)
{
	unsigned long v = 0;
	const char *p;

	if (name[0] != 'v' || !name[1])
		return false;
	for (p = name + 1; *p; p++) {
		if (*p < '0' || *p > '9')
			return false;
		v = v * 10 + (unsigned long)(*p - '0');
		if (v > 999999999UL)
			return false;
	}
	/* "v01" is not a version name: one spelling per version */
	if (name[1] == '0')
		return false;
	*ver = (unsigned)v;
	return true;
}

int sb_append(struct strbuf *sb, const char *s, size_t len)
{
	size_t max = sb->max ? sb->max : (size_t)64 << 20;

	if (sb->err)
		return sb->err;
	if (sb->len + len + 1 > sb->cap) {
		size_t cap = sb->cap ? sb->cap : 256;
		char *nb;

		while (cap < sb->len + len + 1)
			cap *= 2;
		if (cap > max + 1) {
			if (sb->len + len + 1 > max + 1) {
				sb->err = -E2BIG;
				return sb->err;
			}
			cap = max + 1;
		}
		nb = realloc(sb->buf, cap);
		if (!nb) {
			sb->err = -ENOMEM;
			return sb->err;
		}
		sb->buf = nb;
		sb->cap = cap;
	}
	memcpy(sb->buf + sb->len, s, len);
	sb->len += len;
	sb->buf[sb->len] = '\0';
	return 0;
}

int sb_puts(struct strbuf *sb, const char *s)
{
	return sb_append(sb, s, strlen(s));
}

int sb_printf(struct strbuf *sb, const char *fmt, ...)
{
	char small[512];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(small, sizeof(small), fmt, ap);
	va_end(ap);
	if (n < 0)
		return -EINVAL;
	if ((size_t)n < sizeof(small))
		return sb_append(sb, small, (size_t)n);
	{
		char *big = malloc((size_t)n + 1);
		int rc;

		if (!big)
			return sb->err = -ENOMEM;
		va_start(ap, fmt);
		vsnprintf(big, (size_t)n + 1, fmt, ap);
		va_end(ap);
		rc = sb_append(sb, big, (size_t)n);
		free(big);
		return rc;
	}
}

void sb_free(struct strbuf *sb)
{
	free(sb->buf);
	sb->buf = NULL;
	sb->len = sb->cap = 0;
}
