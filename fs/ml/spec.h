/* SPDX-License-Identifier: MIT */
/*
 * Training specs (train/<job>.json): syntax checks as bytes arrive, and
 * resolution of a complete spec into the job's plan.  See spec.c.
 */
#ifndef MLFS_FS_SPEC_H
#define MLFS_FS_SPEC_H

#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>

#include "mlfs_plugin.h"
#include "node.h"
#include "problem.h"

struct fs;

#define SPEC_MAX (1 << 20) /* bytes of one spec */

/*
 * spec_check_text: is text[0..len) a JSON object so far?  Incomplete
 * input is accepted unless final.  -EINVAL with pb (line, column and
 * jansson's reason), -EFBIG past SPEC_MAX.
 */
int spec_check_text(const char *text, size_t len, bool final,
		    struct problem *pb);

/*
 * spec_check_json: spec_check_text, then, once text is a complete JSON
 * object, fields(spec, text, pb) on it (which may fill in defaults): the
 * way every kind of spec is judged as it is written.  *out (if out) is
 * the checked spec; NULL while incomplete and not final.  0, or
 * fields' -errno or spec_check_text's, with pb.
 */
int spec_check_json(const char *text, size_t len, bool final,
		    int (*fields)(json_t *spec, const char *text,
				  struct problem *pb),
		    json_t **out, struct problem *pb);

/*
 * spec_may_write_model: may writer add a version to model (judged as
 * mkdir in models/<model>/ would be)?  0 if so or if the model does not
 * exist yet; -EACCES if not; other -errno from the index.
 */
struct host_user;
int spec_may_write_model(struct fs *fs, const struct host_user *writer,
			 const char *model);

/*
 * spec_resolve: check a complete spec against the platform (DESIGN.md's
 * fields; the dataset version, label and features in its schema; the
 * algorithm's plugin and its params; split; search; limits) and build the
 * job's plan (*plan, owned by the caller).  -EINVAL with pb naming the
 * field, its line and column; -EACCES when ctx may not read the dataset
 * or add a version to the model.
 */
int spec_resolve(struct fs *fs, const char *job, const char *text,
		 const struct fs_ctx *ctx, json_t **plan, struct problem *pb);

/*
 * spec_params: a params object as an mlfs_param array (*out, *n; strings
 * borrowed from params, list values in *lists).  Free *out and *lists.
 */
int spec_params(json_t *params, struct mlfs_param **out, size_t *n,
		double **lists, char *msg, size_t msglen);

#endif
