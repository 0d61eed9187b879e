/* SPDX-License-Identifier: MIT */
/*
 * Loading the built-in plugins for the unit programs (plugs.h), the one
 * copy of what prep_test.c and train_test.c each did in main().
 */
#include <dlfcn.h>
#include <errno.h>
#include <stdio.h>

#include "plugs.h"

int plugs_open(const char *dir, struct plug *plugs, size_t n)
{
	for (size_t p = 0; p < n; p++) {
		char path[4096];

		snprintf(path, sizeof(path), "%s/%s.so", dir, plugs[p].name);
		plugs[p].handle = dlopen(path, RTLD_NOW | RTLD_LOCAL);
		if (!plugs[p].handle) {
			printf("Bail out! %s\n", dlerror());
			goto out_close;
		}
		plugs[p].desc = dlsym(plugs[p].handle, "mlfs_plugin");
		if (!plugs[p].desc) {
			printf("Bail out! %s: no mlfs_plugin\n", path);
			goto out_close;
		}
	}
	return 0;
out_close:
	plugs_close(plugs, n);
	return -ENOENT;
}

void plugs_close(struct plug *plugs, size_t n)
{
	for (size_t p = 0; p < n; p++) {
		if (plugs[p].handle)
			dlclose(plugs[p].handle);
		plugs[p].handle = NULL;
		plugs[p].desc = NULL;
	}
}
