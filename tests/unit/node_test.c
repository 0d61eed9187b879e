/* SPDX-License-Identifier: MIT */
/*
 * Unit tests for the node table (fs/engine/node.c), without FUSE: a table
 * of steps (lookup, forget, open and close a handle, rename) run against
 * one table, each with the result it must give; then many nodes (every
 * bucket chained, the table grown), names at their limits and the depth
 * limit.  Inode numbers are never reused, which is why the glue can
 * answer every entry with generation 1.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fs.h"
#include "node.h"
#include "tap.h"

/* The glue's types are the tree's; these stand in for them. */
static const struct node_type leaf_type = { .name = "leaf", .mode = S_IFLNK | 0777 };
static const struct node_type file_type = { .name = "file", .mode = S_IFREG | 0444 };
static const struct node_type dir_type = { .name = "dir", .mode = S_IFDIR | 0755 };
const struct node_type root_type = { .name = "", .mode = S_IFDIR | 0755 };

enum op {
	LOOKUP,  /* path type: node_child under its parent (by ino) */
	FORGET,  /* path n: node_forget of the ino path last got */
	OPEN,    /* path: hold a reference, as an open handle does */
	CLOSE,   /* path: drop it */
	MOVE,    /* path to: node_move in path's directory */
	GONE,    /* path: the ino path last got is no longer found */
};

enum ino_is {
	ANY,
	SAME, /* the ino path got before */
	NEW,  /* one never handed out before */
	OLD,  /* one handed out before */
};

static const struct step {
	enum op op;
	const char *path;
	const char *arg;              /* LOOKUP: d, f or l; MOVE: new name */
	uint64_t n;                   /* FORGET: count */
	int rc;                       /* LOOKUP */
	enum ino_is ino;              /* LOOKUP */
	uint64_t nlookup;             /* after the step, of path's node */
	const char *why;
} steps[] = {
	{ LOOKUP, "datasets", "d", 0, 0, NEW, 1, "first lookup" },
	{ LOOKUP, "datasets", "d", 0, 0, SAME, 2, "again: counted" },
	{ LOOKUP, "datasets/iris", "d", 0, 0, NEW, 1, "a child" },
	{ LOOKUP, "datasets/iris/v1", "d", 0, 0, NEW, 1, "a grandchild" },
	{ LOOKUP, "datasets/iris/prod", "l", 0, 0, NEW, 1, "an alias" },
	{ FORGET, "datasets", NULL, 1, 0, ANY, 1, "forget 1 of 2" },
	{ LOOKUP, "datasets", "d", 0, 0, SAME, 2, "still the same node" },
	{ FORGET, "datasets", NULL, 2, 0, ANY, 0,
	  "forgotten: kept while children hold it" },
	{ LOOKUP, "datasets", "d", 0, 0, NEW, 1,
	  "looked up again: a new inode, never a reused one" },
	{ LOOKUP, "datasets/iris/v1/data.csv", "f", 0, 0, NEW, 1, "a file" },
	{ OPEN, "datasets/iris/v1/data.csv", NULL, 0, 0, ANY, 1, "open" },
	{ FORGET, "datasets/iris/v1/data.csv", NULL, 1, 0, ANY, 0,
	  "forgotten while open" },
	{ FORGET, "datasets/iris/v1/data.csv", NULL, 1, 0, ANY, 0,
	  "a second forget of a forgotten node changes nothing" },
	{ LOOKUP, "datasets/iris/v1/data.csv", "f", 0, 0, NEW, 1,
	  "looked up while the old one is open: a new inode" },
	{ CLOSE, "datasets/iris/v1/data.csv", NULL, 0, 0, ANY, 1,
	  "the old one closed" },
	{ LOOKUP, "datasets/iris/v1/data.csv", "f", 0, 0, SAME, 2,
	  "the new one stays" },
	{ FORGET, "datasets/iris/v1/data.csv", NULL, 99, 0, ANY, 0,
	  "forget more than counted: zero, not a wrap" },
	{ GONE, "datasets/iris/v1/data.csv", NULL, 0, 0, ANY, 0, "freed" },
	{ LOOKUP, "datasets/iris/v1", "f", 0, 0, NEW, 1,
	  "same path, another type: another node" },
	{ LOOKUP, "datasets/iris/tmp", "l", 0, 0, NEW, 1, "an alias" },
	{ MOVE, "datasets/iris/tmp", "prod2", 0, 0, ANY, 1,
	  "renamed (ln -sfn)" },
	{ LOOKUP, "datasets/iris/prod2", "l", 0, 0, SAME, 2,
	  "found by its new name, same inode" },
	{ LOOKUP, "datasets/iris/tmp", "l", 0, 0, NEW, 1,
	  "the old name is a new node" },
	{ MOVE, "datasets/iris", "iris2", 0, 0, ANY, 0,
	  "a directory is not moved (leaves only)" },
	{ LOOKUP, "datasets/iris/v1", "d", 0, 0, OLD, 2,
	  "its subtree keeps its paths" },
	{ MOVE, "datasets/iris/nope", "x", 0, 0, ANY, 0,
	  "moving an unknown name does nothing" },
	{ FORGET, "", NULL, 1000, 0, ANY, 0, "the root is never forgotten" },
	{ LOOKUP, "models", "d", 0, 0, NEW, 1, "and still serves lookups" },
	{ LOOKUP, "datasets/iris/v1", "x", 0, -EINVAL, ANY, 0,
	  "(bad test type)" },
};

#define SLOTS 64

struct slot {
	const char *path;
	uint64_t ino;
	struct node *held;
};

static struct slot slots[SLOTS];
static uint64_t max_ino;

static struct slot *slot_of(const char *path)
{
	for (int i = 0; i < SLOTS; i++) {
		if (slots[i].path && strcmp(slots[i].path, path) == 0)
			return &slots[i];
		if (!slots[i].path) {
			slots[i].path = path;
			return &slots[i];
		}
	}
	abort();
}

static const struct node_type *type_of(const char *t)
{
	switch (t[0]) {
	case 'd':
		return &dir_type;
	case 'f':
		return &file_type;
	case 'l':
		return &leaf_type;
	default:
		return NULL;
	}
}

/* The ino of path's parent, as last looked up. */
static uint64_t parent_ino(const char *path)
{
	const char *sl = strrchr(path, '/');
	char dir[256];

	if (!sl)
		return 1;
	snprintf(dir, sizeof(dir), "%.*s", (int)(sl - path), path);
	for (int i = 0; i < SLOTS; i++)
		if (slots[i].path && strcmp(slots[i].path, dir) == 0)
			return slots[i].ino;
	return 0;
}

static uint64_t nlookup_of(struct fs *fs, uint64_t ino)
{
	struct node *n = node_get_ino(fs, ino);
	uint64_t c;

	if (!n)
		return 0;
	c = n->nlookup;
	node_put(n);
	return c;
}

static void run_step(struct fs *fs, const struct step *s)
{
	struct slot *sl = slot_of(s->path);
	char name[300];
	struct node *dir, *n;
	int rc;

	snprintf(name, sizeof(name), "%s %s: %s",
		 (const char *[]){ "lookup", "forget", "open", "close",
				   "move", "gone" }[s->op],
		 s->path[0] ? s->path : "/", s->why);
	switch (s->op) {
	case LOOKUP: {
		const struct node_type *t = type_of(s->arg);

		dir = node_get_ino(fs, parent_ino(s->path));
		if (!dir || !t) {
			is_int(-EINVAL, s->rc, name);
			if (dir)
				node_put(dir);
			return;
		}
		rc = node_child(dir, strrchr(s->path, '/')
					     ? strrchr(s->path, '/') + 1
					     : s->path,
				t, &n);
		node_put(dir);
		is_int(rc, s->rc, name);
		if (rc < 0)
			return;
		ok(strcmp(n->path, s->path) == 0 && n->type == t,
		   "its path and type");
		if (s->ino == SAME)
			is_int(n->ino, sl->ino, "the same inode");
		else if (s->ino == NEW)
			ok(n->ino > max_ino, "an inode never used before");
		else if (s->ino == OLD)
			ok(n->ino <= max_ino, "an inode handed out before");
		if (n->ino > max_ino)
			max_ino = n->ino;
		sl->ino = n->ino;
		node_put(n);
		break;
	}
	case FORGET:
		if (!s->path[0])
			sl->ino = 1;
		node_forget(fs, sl->ino, s->n);
		ok(1, name);
		break;
	case OPEN:
		sl->held = node_get_ino(fs, sl->ino);
		ok(sl->held != NULL, name);
		break;
	case CLOSE:
		node_put(sl->held);
		sl->held = NULL;
		ok(1, name);
		break;
	case MOVE: {
		char to[256];
		const char *base = strrchr(s->path, '/');

		dir = node_get_ino(fs, parent_ino(s->path));
		if (!dir) {
			ok(0, name);
			return;
		}
		node_move(dir, base + 1, s->arg);
		node_put(dir);
		snprintf(to, sizeof(to), "%.*s/%s", (int)(base - s->path),
			 s->path, s->arg);
		n = sl->ino ? node_get_ino(fs, sl->ino) : NULL;
		if (s->nlookup) {
			/* moved: the node has the new path, and the slot */
			ok(n && strcmp(n->path, to) == 0 &&
				   strcmp(n->name, s->arg) == 0 &&
				   strcmp(n->comp[n->depth - 1], s->arg) == 0,
			   name);
			slot_of(strdup(to))->ino = sl->ino;
			sl->ino = 0;
		} else {
			ok(!n || strcmp(n->path, s->path) == 0, name);
		}
		if (n)
			node_put(n);
		return;
	}
	case GONE:
		n = node_get_ino(fs, sl->ino);
		ok(n == NULL, name);
		if (n)
			node_put(n);
		return;
	}
	if (s->op != MOVE)
		is_int(nlookup_of(fs, sl->ino), s->nlookup, "its lookup count");
}

/* Many nodes: every lookup finds its own, and forgetting all empties it. */
static void test_many(struct fs *fs)
{
	enum { N = 5000 };
	uint64_t *inos = calloc(N, sizeof(*inos));
	struct node *dir, *n;
	char name[32];
	int bad = 0;

	if (!inos || node_child(fs->root, "many", &dir_type, &dir) < 0) {
		ok(0, "many: setup");
		free(inos);
		return;
	}
	for (int i = 0; i < N; i++) {
		snprintf(name, sizeof(name), "n%d", i);
		if (node_child(dir, name, &file_type, &n) < 0) {
			bad++;
			continue;
		}
		inos[i] = n->ino;
		node_put(n);
	}
	is_int(bad, 0, "5000 nodes made");
	ok(fs->nbuckets >= N, "the table grew");
	for (int i = 0; i < N; i++) {
		snprintf(name, sizeof(name), "n%d", i);
		if (node_child(dir, name, &file_type, &n) < 0) {
			bad++;
			continue;
		}
		bad += n->ino != inos[i] || strcmp(n->name, name) != 0 ||
		       n->nlookup != 2;
		node_put(n);
		n = node_get_ino(fs, inos[i]);
		bad += !n || strcmp(n->name, name) != 0;
		if (n)
			node_put(n);
	}
	is_int(bad, 0, "each found again by path and by inode");
	for (int i = 0; i < N; i++)
		node_forget(fs, inos[i], 2);
	for (int i = 0; i < N; i++) {
		n = node_get_ino(fs, inos[i]);
		bad += n != NULL;
		if (n)
			node_put(n);
	}
	is_int(bad, 0, "all forgotten and freed");
	node_forget(fs, dir->ino, 1);
	node_put(dir);
	free(inos);
}

/* Names at their limits, and the depth limit. */
static void test_limits(struct fs *fs)
{
	static char longname[4097];
	static const struct {
		const char *name; /* NULL: longname */
		size_t len;       /* of longname */
	} names[] = {
		{ "a", 0 },      { "v1", 0 },    { "x y", 0 },
		{ "caf\xc3\xa9", 0 }, { "..a", 0 }, { NULL, 255 },
		{ NULL, 256 },   { NULL, 4096 },
	};
	struct node *n, *chain[NODE_MAX_DEPTH + 1] = { 0 };
	int depth = 0, rc;

	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		const char *nm = names[i].name;
		char label[80];

		if (!nm) {
			memset(longname, 'n', names[i].len);
			longname[names[i].len] = '\0';
			nm = longname;
		}
		rc = node_child(fs->root, nm, &file_type, &n);
		snprintf(label, sizeof(label), "name of %zu bytes", strlen(nm));
		is_int(rc, 0, label);
		if (rc < 0)
			continue;
		ok(strcmp(n->name, nm) == 0 && strcmp(n->path, nm) == 0 &&
			   n->depth == 1 && strcmp(n->comp[0], nm) == 0,
		   "its name, path and component");
		node_forget(fs, n->ino, 1);
		node_put(n);
	}
	chain[0] = fs->root;
	node_ref(fs->root);
	for (depth = 1; depth <= NODE_MAX_DEPTH; depth++) {
		rc = node_child(chain[depth - 1], "d", &dir_type, &chain[depth]);
		if (rc < 0)
			break;
	}
	is_int(depth, NODE_MAX_DEPTH + 1, "nodes down to the depth limit");
	ok(chain[NODE_MAX_DEPTH] &&
		   chain[NODE_MAX_DEPTH]->depth == NODE_MAX_DEPTH &&
		   strcmp(chain[NODE_MAX_DEPTH]->path, "d/d/d/d/d/d/d/d") == 0,
	   "the deepest has every component");
	rc = node_child(chain[NODE_MAX_DEPTH], "d", &dir_type, &n);
	is_int(rc, -ENOENT, "one deeper is refused");
	for (depth = NODE_MAX_DEPTH; depth >= 1; depth--) {
		node_forget(fs, chain[depth]->ino, 1);
		node_put(chain[depth]);
	}
	node_put(fs->root);
}

int main(void)
{
	struct fs fs;

	memset(&fs, 0, sizeof(fs));
	if (node_table_init(&fs) < 0)
		return skip_all("no memory");
	is_int(fs.root->ino, 1, "the root is inode 1");
	max_ino = 1;
	for (size_t i = 0; i < sizeof(steps) / sizeof(steps[0]); i++)
		run_step(&fs, &steps[i]);
	test_many(&fs);
	test_limits(&fs);
	node_table_free(&fs);
	return done();
}
