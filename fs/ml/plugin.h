/* SPDX-License-Identifier: MIT */
/*
 * The plugin loader: every .so under the plugin directory (and its stage
 * subdirectories) is opened with dlopen(RTLD_NOW | RTLD_LOCAL) and its
 * descriptor checked: ABI major, stage, name matching the file name,
 * required ops.  Good plugins are kept for the life of the process; bad
 * ones are listed with the reason and never used.  Loading happens once,
 * at startup (daemon) or in the job program; after that the registry is
 * read-only and any thread may look plugins up.
 */
#ifndef MLFS_FS_PLUGIN_H
#define MLFS_FS_PLUGIN_H

#include <stdbool.h>
#include <stddef.h>

#include "hash.h"
#include "mlfs_plugin.h"

struct strbuf;

struct plugin {
	const struct mlfs_plugin *desc; /* in the loaded object */
	char *path;                     /* absolute file path */
	char hash[HASH_HEX_LEN + 1];    /* xxh3-128 of the file */
	void *handle;                   /* dlopen's */
};

struct plugin_set {
	struct plugin *ok;   /* loaded */
	size_t nok;
	char **refused;      /* "file: reason" lines */
	size_t nrefused;
};

/*
 * plugin_load_dir: load every plugin below dir (one level of
 * subdirectories).  A missing dir gives an empty set.  -ENOMEM.
 */
int plugin_load_dir(const char *dir, struct plugin_set **out);
/*
 * plugin_load_file: load one file; 0 and *out, or -EINVAL with the reason
 * in msg.  Used by plugin_load_dir.
 */
int plugin_load_file(const char *path, struct plugin *out, char *msg,
		     size_t msglen);
void plugin_set_free(struct plugin_set *ps);

/* Find by stage and name; NULL if none. */
const struct plugin *plugin_find(const struct plugin_set *ps, unsigned stage,
				 const char *name);
/* The model-format major a train plugin declares (ABI 1.2; 1 before). */
unsigned plugin_model_format(const struct plugin *pl);
/* Whether a prep plugin may run on parts of a table (ABI 1.4 by_rows). */
bool plugin_prep_by_rows(const struct plugin *pl,
			 const struct mlfs_param *params, size_t nparams);
/* .mlfs/plugins: "name stage abi file" lines, then refused ones. */
int plugin_render(const struct plugin_set *ps, struct strbuf *out);
const char *plugin_stage_name(unsigned stage);

struct fs;
/*
 * The daemon's set, loaded by a thread of its own, not at the start: the
 * train plugins bring in OpenBLAS, 30-40 ms from a cold page cache, and
 * while dlopen runs no other thread can be created, so a fresh mount's
 * services and first requests would wait for it.  plugin_load_start
 * makes the thread (dir absolute: the daemon may chdir), which loads
 * when fs_plugins() is first called or when the time plugin_load_after
 * sets comes, whichever is first.  loaded, if not NULL, runs on that
 * thread with the set (NULL, and err the -errno, if it could not be
 * read) before anyone sees it.  -errno if no thread could start.
 */
int plugin_load_start(struct fs *fs, const char *dir,
		      void (*loaded)(struct fs *fs, struct plugin_set *ps,
				     int err));
/* Load delay_ms from now, if nothing wanted them sooner. */
void plugin_load_after(struct fs *fs, unsigned delay_ms);
/* fs's plugins: waits for the thread if one loads them.  NULL when
 * none could be read (or none were wanted before plugin_load_join);
 * plugin_find and plugin_render take NULL. */
const struct plugin_set *fs_plugins(struct fs *fs);
/* Waits for the thread, if one started (it loads only if they were
 * wanted); then fs->plugins is final. */
void plugin_load_join(struct fs *fs);

/* The default plugin directory: the build tree's when the binary runs
 * from it, else the installed one.  exe_dir is the binary's directory. */
const char *plugin_default_dir(void);

#endif
