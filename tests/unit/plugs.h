/* SPDX-License-Identifier: MIT */
/*
 * The built-in plugins a unit program drives, dlopened from the build
 * tree as the daemon would (RTLD_NOW | RTLD_LOCAL), each from
 * <dir>/<name>.so.  Single-threaded setup and teardown.
 */
#ifndef MLFS_TESTS_UNIT_PLUGS_H
#define MLFS_TESTS_UNIT_PLUGS_H

#include <stddef.h>

struct mlfs_plugin;

struct plug {
	const char *name;               /* the file's name, without .so */
	void *handle;                   /* dlopen's, or NULL */
	const struct mlfs_plugin *desc; /* its mlfs_plugin, in handle */
};

/*
 * plugs_open: dlopen each of the n plugs from dir and find its
 * mlfs_plugin.  A built-in plugin that does not load is a bug: the first
 * that fails is named in a TAP "Bail out!" line, the ones opened before
 * it are closed, and the result is -ENOENT.  0 on success; plugs_close()
 * undoes it.
 */
int plugs_open(const char *dir, struct plug *plugs, size_t n);

/* plugs_close: dlclose what plugs_open() opened; NULL handles are skipped. */
void plugs_close(struct plug *plugs, size_t n);

#endif
