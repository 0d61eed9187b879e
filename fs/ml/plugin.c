/* SPDX-License-Identifier: MIT */
/*
 * The plugin loader (see plugin.h).  Called once: by the daemon on a
 * thread of its own from mount time, by the job program at its start;
 * read-only afterwards.
 */
#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "config.h"
#include "deadline.h"
#include "fs.h"
#include "names.h"
#include "strbuf.h"
#include "plugin.h"

const char *plugin_stage_name(unsigned stage)
{
	switch (stage) {
	case MLFS_STAGE_PREP:
		return "prep";
	case MLFS_STAGE_TRAIN:
		return "train";
	case MLFS_STAGE_TUNE:
		return "tune";
	case MLFS_STAGE_SERVE:
		return "serve";
	case MLFS_STAGE_MONITOR:
		return "monitor";
	default:
		return NULL;
	}
}

/* Which ops a stage requires, by their offset in its ops struct. */
static int check_train_ops(const struct mlfs_train_ops *o, char *msg,
			   size_t msglen)
{
	if (o->size < offsetof(struct mlfs_train_ops, fini) + sizeof(o->fini)) {
		snprintf(msg, msglen, "train ops too small (%zu bytes)",
			 o->size);
		return -EINVAL;
	}
	if (!o->init || !o->fit || !o->outputs || !o->predict || !o->save ||
	    !o->load || !o->fini) {
		snprintf(msg, msglen, "train ops missing a required op");
		return -EINVAL;
	}
	if (!(o->tasks & (MLFS_TASK_CLASSIFICATION | MLFS_TASK_REGRESSION |
			  MLFS_TASK_CLUSTERING))) {
		snprintf(msg, msglen, "train plugin declares no task");
		return -EINVAL;
	}
	return 0;
}

static int check_tune_ops(const struct mlfs_tune_ops *o, char *msg,
			  size_t msglen)
{
	if (o->size < offsetof(struct mlfs_tune_ops, fini) + sizeof(o->fini)) {
		snprintf(msg, msglen, "tune ops too small (%zu bytes)",
			 o->size);
		return -EINVAL;
	}
	if (!o->init || !o->next || !o->report || !o->fini) {
		snprintf(msg, msglen, "tune ops missing a required op");
		return -EINVAL;
	}
	return 0;
}

static int check_prep_ops(const struct mlfs_prep_ops *o, char *msg,
			  size_t msglen)
{
	if (o->size < offsetof(struct mlfs_prep_ops, out_free) +
			      sizeof(o->out_free)) {
		snprintf(msg, msglen, "prep ops too small (%zu bytes)",
			 o->size);
		return -EINVAL;
	}
	if (!o->check || !o->run || !o->out_free) {
		snprintf(msg, msglen, "prep ops missing a required op");
		return -EINVAL;
	}
	return 0;
}

bool plugin_prep_by_rows(const struct plugin *pl,
			 const struct mlfs_param *params, size_t nparams)
{
	const struct mlfs_prep_ops *o = pl->desc->ops;

	if (pl->desc->stage != MLFS_STAGE_PREP ||
	    o->size < offsetof(struct mlfs_prep_ops, by_rows) +
			      sizeof(o->by_rows) ||
	    !o->by_rows)
		return false;
	return o->by_rows(params, nparams) != 0;
}

int plugin_load_file(const char *path, struct plugin *out, char *msg,
		     size_t msglen)
{
	const struct mlfs_plugin *d;
	char base[NAME_MAX + 1];
	const char *slash = strrchr(path, '/');
	void *h;
	size_t blen;
	int fd, rc;

	memset(out, 0, sizeof(*out));
	snprintf(base, sizeof(base), "%s", slash ? slash + 1 : path);
	blen = strlen(base);
	if (blen > 3 && strcmp(base + blen - 3, ".so") == 0)
		base[blen - 3] = '\0';
	h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
	if (!h) {
		snprintf(msg, msglen, "dlopen: %s", dlerror());
		return -EINVAL;
	}
	d = dlsym(h, "mlfs_plugin");
	rc = -EINVAL;
	if (!d) {
		snprintf(msg, msglen, "no symbol \"mlfs_plugin\"");
		goto out_close;
	}
	if (d->abi_major != MLFS_ABI_MAJOR) {
		snprintf(msg, msglen, "ABI %u.%u, this mlfs takes %d.x",
			 d->abi_major, d->abi_minor, MLFS_ABI_MAJOR);
		goto out_close;
	}
	if (!plugin_stage_name(d->stage)) {
		snprintf(msg, msglen, "unknown stage %u", d->stage);
		goto out_close;
	}
	if (!d->name || strcmp(d->name, base) != 0) {
		snprintf(msg, msglen,
			 "name \"%s\" does not match the file name \"%s\"",
			 d->name ? d->name : "(null)", base);
		goto out_close;
	}
	if (node_name_check(d->name, NULL) < 0) {
		snprintf(msg, msglen, "name \"%s\" is not a valid name",
			 d->name);
		goto out_close;
	}
	if (!d->ops) {
		snprintf(msg, msglen, "no ops");
		goto out_close;
	}
	if (d->stage == MLFS_STAGE_TRAIN) {
		rc = check_train_ops(d->ops, msg, msglen);
		if (rc < 0)
			goto out_close;
	}
	if (d->stage == MLFS_STAGE_TUNE) {
		rc = check_tune_ops(d->ops, msg, msglen);
		if (rc < 0)
			goto out_close;
	}
	if (d->stage == MLFS_STAGE_PREP) {
		rc = check_prep_ops(d->ops, msg, msglen);
		if (rc < 0)
			goto out_close;
	}
	out->path = realpath(path, NULL);
	if (!out->path) {
		rc = -ENOMEM;
		snprintf(msg, msglen, "%s", strerror(errno));
		goto out_close;
	}
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0 || hash_fd(fd, out->hash) < 0)
		snprintf(out->hash, sizeof(out->hash), "unknown");
	if (fd >= 0)
		close(fd);
	out->desc = d;
	out->handle = h;
	return 0;
out_close:
	dlclose(h);
	return rc;
}

static int add_refused(struct plugin_set *ps, const char *path,
		       const char *msg)
{
	char **nr = realloc(ps->refused, (ps->nrefused + 1) * sizeof(*nr));

	if (!nr)
		return -ENOMEM;
	ps->refused = nr;
	if (asprintf(&ps->refused[ps->nrefused], "%s: %s", path, msg) < 0)
		return -ENOMEM;
	ps->nrefused++;
	return 0;
}

static int load_one(struct plugin_set *ps, const char *path)
{
	struct plugin p, *np;
	char msg[512];

	if (plugin_load_file(path, &p, msg, sizeof(msg)) < 0)
		return add_refused(ps, path, msg);
	for (size_t i = 0; i < ps->nok; i++) {
		if (ps->ok[i].desc->stage == p.desc->stage &&
		    strcmp(ps->ok[i].desc->name, p.desc->name) == 0) {
			snprintf(msg, sizeof(msg),
				 "%s plugin \"%s\" already loaded from %s",
				 plugin_stage_name(p.desc->stage),
				 p.desc->name, ps->ok[i].path);
			dlclose(p.handle);
			free(p.path);
			return add_refused(ps, path, msg);
		}
	}
	np = realloc(ps->ok, (ps->nok + 1) * sizeof(*np));
	if (!np) {
		dlclose(p.handle);
		free(p.path);
		return -ENOMEM;
	}
	ps->ok = np;
	ps->ok[ps->nok++] = p;
	return 0;
}

static int name_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The .so files in dir and its subdirectories, sorted. */
static int scan(const char *dir, int depth, char ***list, size_t *n)
{
	struct dirent *de;
	DIR *d = opendir(dir);

	if (!d)
		return errno == ENOENT ? 0 : -errno;
	while ((de = readdir(d))) {
		char path[PATH_MAX];
		struct stat st;
		size_t len = strlen(de->d_name);
		char **nl;

		if (de->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
		if (stat(path, &st) < 0)
			continue;
		if (S_ISDIR(st.st_mode) && depth == 0) {
			scan(path, 1, list, n);
			continue;
		}
		if (!S_ISREG(st.st_mode) || len < 4 ||
		    strcmp(de->d_name + len - 3, ".so") != 0)
			continue;
		nl = realloc(*list, (*n + 1) * sizeof(*nl));
		if (!nl)
			break;
		*list = nl;
		nl[*n] = strdup(path);
		if (nl[*n])
			(*n)++;
	}
	closedir(d);
	return 0;
}

int plugin_load_dir(const char *dir, struct plugin_set **out)
{
	struct plugin_set *ps;
	char **files = NULL;
	size_t n = 0;
	int rc;

	*out = NULL;
	ps = calloc(1, sizeof(*ps));
	if (!ps)
		return -ENOMEM;
	rc = scan(dir, 0, &files, &n);
	if (n)
		qsort(files, n, sizeof(*files), name_cmp);
	for (size_t i = 0; i < n && rc == 0; i++)
		rc = load_one(ps, files[i]);
	for (size_t i = 0; i < n; i++)
		free(files[i]);
	free(files);
	if (rc < 0) {
		plugin_set_free(ps);
		return rc;
	}
	*out = ps;
	return 0;
}

void plugin_set_free(struct plugin_set *ps)
{
	if (!ps)
		return;
	for (size_t i = 0; i < ps->nok; i++) {
		/* descriptors may still be referenced by loaded models:
		 * the process keeps the objects mapped until it exits */
		free(ps->ok[i].path);
	}
	for (size_t i = 0; i < ps->nrefused; i++)
		free(ps->refused[i]);
	free(ps->ok);
	free(ps->refused);
	free(ps);
}

unsigned plugin_model_format(const struct plugin *pl)
{
	const struct mlfs_train_ops *o = pl->desc->ops;

	if (pl->desc->stage != MLFS_STAGE_TRAIN ||
	    o->size < offsetof(struct mlfs_train_ops, model_format) +
			      sizeof(o->model_format) ||
	    o->model_format == 0)
		return 1;
	return o->model_format;
}

const struct plugin *plugin_find(const struct plugin_set *ps, unsigned stage,
				 const char *name)
{
	for (size_t i = 0; ps && i < ps->nok; i++)
		if (ps->ok[i].desc->stage == stage &&
		    strcmp(ps->ok[i].desc->name, name) == 0)
			return &ps->ok[i];
	return NULL;
}

int plugin_render(const struct plugin_set *ps, struct strbuf *out)
{
	int rc = 0;

	for (size_t i = 0; ps && i < ps->nok && rc == 0; i++) {
		const struct mlfs_plugin *d = ps->ok[i].desc;

		rc = sb_printf(out, "%s %s %u.%u %s %s\n", d->name,
			       plugin_stage_name(d->stage), d->abi_major,
			       d->abi_minor, d->version ? d->version : "-",
			       ps->ok[i].path);
	}
	for (size_t i = 0; ps && i < ps->nrefused && rc == 0; i++)
		rc = sb_printf(out, "refused %s\n", ps->refused[i]);
	return rc;
}

struct plugin_loader {
	pthread_mutex_t m;
	pthread_cond_t done_cv;
	pthread_cond_t want_cv;
	bool wanted; /* someone waits: load now */
	bool stop;   /* unmount: load only if wanted */
	bool done;   /* fs->plugins is final */
	bool timed;  /* until is set: load then */
	struct timespec until;
	pthread_t th;
	char *dir;
	struct fs *fs;
	void (*loaded)(struct fs *fs, struct plugin_set *ps, int err);
};

static void *loader_main(void *arg)
{
	struct plugin_loader *l = arg;
	struct plugin_set *ps = NULL;
	int rc;

	pthread_mutex_lock(&l->m);
	while (!l->wanted && !l->stop) {
		if (!l->timed)
			pthread_cond_wait(&l->want_cv, &l->m);
		else if (cond_wait_until(&l->want_cv, &l->m, &l->until) != 0)
			break; /* the time came */
	}
	if (l->stop && !l->wanted) {
		l->done = true;
		pthread_mutex_unlock(&l->m);
		return NULL;
	}
	pthread_mutex_unlock(&l->m);
	rc = plugin_load_dir(l->dir, &ps);
	if (rc < 0)
		ps = NULL; /* no plugin is found */
	if (l->loaded)
		l->loaded(l->fs, ps, rc);
	pthread_mutex_lock(&l->m);
	l->fs->plugins = ps;
	l->done = true;
	pthread_cond_broadcast(&l->done_cv);
	pthread_mutex_unlock(&l->m);
	return NULL;
}

static void loader_free(struct plugin_loader *l)
{
	pthread_mutex_destroy(&l->m);
	pthread_cond_destroy(&l->done_cv);
	pthread_cond_destroy(&l->want_cv);
	free(l->dir);
	free(l);
}

int plugin_load_start(struct fs *fs, const char *dir,
		      void (*loaded)(struct fs *fs, struct plugin_set *ps,
				     int err))
{
	struct plugin_loader *l = calloc(1, sizeof(*l));
	pthread_condattr_t ca;

	if (!l)
		return -ENOMEM;
	l->dir = strdup(dir);
	if (!l->dir) {
		free(l);
		return -ENOMEM;
	}
	l->fs = fs;
	l->loaded = loaded;
	pthread_mutex_init(&l->m, NULL);
	pthread_cond_init(&l->done_cv, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&l->want_cv, &ca);
	pthread_condattr_destroy(&ca);
	fs->plugin_loader = l;
	if (pthread_create(&l->th, NULL, loader_main, l) != 0) {
		fs->plugin_loader = NULL;
		loader_free(l);
		return -EAGAIN;
	}
	return 0;
}

void plugin_load_after(struct fs *fs, unsigned delay_ms)
{
	struct plugin_loader *l = fs->plugin_loader;

	if (!l)
		return;
	pthread_mutex_lock(&l->m);
	l->until = deadline_in(delay_ms);
	l->timed = true;
	pthread_cond_signal(&l->want_cv);
	pthread_mutex_unlock(&l->m);
}

const struct plugin_set *fs_plugins(struct fs *fs)
{
	struct plugin_loader *l = fs->plugin_loader;

	if (l) {
		pthread_mutex_lock(&l->m);
		if (!l->wanted) {
			l->wanted = true;
			pthread_cond_signal(&l->want_cv);
		}
		while (!l->done)
			pthread_cond_wait(&l->done_cv, &l->m);
		pthread_mutex_unlock(&l->m);
	}
	return fs->plugins;
}

void plugin_load_join(struct fs *fs)
{
	struct plugin_loader *l = fs->plugin_loader;

	if (!l)
		return;
	pthread_mutex_lock(&l->m);
	l->stop = true; /* no waiting out the delay, nor loading, now */
	pthread_cond_signal(&l->want_cv);
	pthread_mutex_unlock(&l->m);
	pthread_join(l->th, NULL);
	fs->plugin_loader = NULL;
	loader_free(l);
}

const char *plugin_default_dir(void)
{
	static char exe[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	char *slash;

	if (n > 0) {
		exe[n] = '\0';
		slash = strrchr(exe, '/');
		if (slash) {
			*slash = '\0';
			/* build/fs/mlfs runs with build/plugins */
			if (strcmp(exe, MLFS_BUILD_FSDIR) == 0)
				return MLFS_BUILD_PLUGINDIR;
		}
	}
	return MLFS_PLUGINDIR;
}
