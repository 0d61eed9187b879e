/* SPDX-License-Identifier: MIT */
/*
 * Unit tests for the spec parser (fs/ml/spec.c).  spec_check_text: a
 * valid spec written in two pieces, cut at every byte, is never refused
 * before its end (jansson calls a cut number, literal or escape invalid
 * syntax); bad text still fails at the write that carries it, with line
 * and column.  spec_params: a table of params objects, good and bad.
 * spec_resolve: a table of specs, good and bad, against a repository on a
 * memory store and a real LMDB index in a temp dir, with stub plugins
 * (train "lin", "reg", "km"; tune "grid") in place of loaded ones; each
 * bad spec gives its errno, the field it names, the problem text and the
 * place it points at.  problem_check_fields (fs/base/problem.c), which
 * every spec parser calls for its fields: a table of objects, each
 * problem's exact text, line and column, and a list of names too long for
 * the message.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "repo.h"
#include "failalloc.h"
#include "fixture_fs.h"
#include "fs.h"
#include "plugin.h"
#include "problem.h"
#include "spec.h"
#include "tap.h"

static const char *const valid[] = {
	"{\"dataset\": \"iris@1\", \"algorithm\": \"logistic\", "
	"\"params\": {\"l2\": 0.001, \"max_iter\": 1e3, \"tol\": -1.5E-4}, "
	"\"split\": {\"train\": 0.6, \"stratify\": true, \"seed\": 42}, "
	"\"model\": \"caf\\u00e9\", \"search\": null, \"x\": false, "
	"\"y\": [-0, 1E+2, \"\\\"\\\\\\/\\b\\f\\n\\r\\t\"]}",
	"{\"a\":[true,false,null,0,-1,2.5e-3]}",
	/* a real whose digits, cut, are an integer too big for jansson
	 * (found by tests/fuzz spec_fuzz) */
	"{\"lr\": 77777777777777777777777777777777777777777777771e-2, "
	"\"b\": -99999999999999999999999.5}",
	/* raw UTF-8 of 2, 3 and 4 bytes: a write may cut a character */
	"{\"model\": \"caf\xc3\xa9\", \"memory\": \"\xce\xbf\", "
	"\"note\": \"\xe2\x82\xac \xf0\x9f\x98\x80\"}",
};

static const struct {
	const char *text;
	const char *msg; /* substring of the problem */
	unsigned col;
} bad[] = {
	{ "{\"a\": tru}", "invalid token", 9 },
	{ "{\"a\": 1.x", "invalid token", 0 },
	{ "{\"a\" 1", "':' expected", 0 },
	{ "{\"a\": 1} x", "end of file expected", 0 },
	{ "[1, 2]", "a spec is a JSON object", 1 },
	{ "{\"a\": nan}", "invalid token", 0 },
	{ "{\"a\": \"\\x\"}", "invalid escape", 0 },
	{ "{\"a\": \"\xce\"}", "unable to decode byte", 0 },
};

static void test_check_text(void)
{
	struct problem pb;
	char msg[200];

	for (size_t i = 0; i < sizeof(valid) / sizeof(valid[0]); i++) {
		size_t len = strlen(valid[i]), failed = 0, at = 0;

		for (size_t k = 0; k <= len; k++) {
			memset(&pb, 0, sizeof(pb));
			if (spec_check_text(valid[i], k, false, &pb) < 0 &&
			    !failed++)
				at = k;
		}
		snprintf(msg, sizeof(msg),
			 "valid spec %zu cut at each of %zu bytes", i, len + 1);
		ok(failed == 0, msg);
		if (failed)
			printf("#   first refused at byte %zu: %s\n", at,
			       pb.msg);
		memset(&pb, 0, sizeof(pb));
		is_int(spec_check_text(valid[i], len, true, &pb), 0,
		       "and whole, at close");
		memset(&pb, 0, sizeof(pb));
		is_int(spec_check_text(valid[i], len - 1, true, &pb), -EINVAL,
		       "cut, at close: incomplete");
		ok(strstr(pb.msg, "incomplete JSON") != NULL, pb.msg);
	}
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		memset(&pb, 0, sizeof(pb));
		is_int(spec_check_text(bad[i].text, strlen(bad[i].text), false,
				       &pb),
		       -EINVAL, bad[i].text);
		ok(strstr(pb.msg, bad[i].msg) != NULL, pb.msg);
		if (bad[i].col)
			is_int(pb.col, bad[i].col, "its column");
	}
}

/* --- spec_params --- */

static const struct {
	const char *params; /* JSON text, ' for " */
	int rc;
	const char *msg;    /* substring of the message, ' for " */
	const char *types;  /* the params' types in order: N B S L */
	size_t nlist[4];    /* list lengths */
} params_cases[] = {
	{ "{}", 0, NULL, "", { 0 } },
	{ "{'l2': 0.5, 'fit': true, 'solver': 'lbfgs', 'hidden': [64, 32]}",
	  0, NULL, "NBSL", { 0, 0, 0, 2 } },
	{ "{'a': [], 'b': [1], 'c': [2, 3.5, -4e2]}", 0, NULL, "LLL",
	  { 0, 1, 3 } },
	{ "{'a': 1e308, 'b': -0, 'c': false, 'd': ''}", 0, NULL, "NNBS",
	  { 0 } },
	{ "{'a': null}", -EINVAL,
	  "'a': must be a number, string, boolean or list of numbers", "",
	  { 0 } },
	{ "{'a': 1, 'b': {'c': 1}}", -EINVAL,
	  "'b': must be a number, string, boolean or list of numbers", "",
	  { 0 } },
	{ "{'a': [1, 'x']}", -EINVAL, "'a': a list of numbers", "", { 0 } },
	{ "{'a': [[1]]}", -EINVAL, "'a': a list of numbers", "", { 0 } },
	{ "{'a': [1, null]}", -EINVAL, "'a': a list of numbers", "", { 0 } },
	{ "{'a': [true]}", -EINVAL, "'a': a list of numbers", "", { 0 } },
	{ "{'ok': [1, 2], 'bad': [1, {}]}", -EINVAL,
	  "'bad': a list of numbers", "", { 0 } },
};

/* text with ' for ", into buf */
static const char *dq(const char *text, char *buf, size_t len)
{
	size_t i;

	for (i = 0; text[i] && i + 1 < len; i++)
		buf[i] = text[i] == '\'' ? '"' : text[i];
	buf[i] = '\0';
	return buf;
}

static char type_letter(unsigned type)
{
	switch (type) {
	case MLFS_PARAM_NUMBER:
		return 'N';
	case MLFS_PARAM_BOOL:
		return 'B';
	case MLFS_PARAM_STRING:
		return 'S';
	case MLFS_PARAM_LIST:
		return 'L';
	default:
		return '?';
	}
}

static void test_params(void)
{
	char text[512], want[512], msg[400], name[600];

	for (size_t i = 0; i < sizeof(params_cases) / sizeof(params_cases[0]);
	     i++) {
		json_t *j = json_loads(dq(params_cases[i].params, text,
					  sizeof(text)),
				       JSON_PRESERVE_ORDER, NULL);
		struct mlfs_param *ps = NULL;
		double *lists = NULL;
		size_t n = 99;
		char types[8] = "";
		bool lists_ok = true;
		int rc;

		msg[0] = '\0';
		rc = spec_params(j, &ps, &n, &lists, msg, sizeof(msg));
		snprintf(name, sizeof(name), "params %s", text);
		is_int(rc, params_cases[i].rc, name);
		if (rc < 0) {
			ok(ps == NULL && lists == NULL && n == 0,
			   "refused: nothing returned");
			dq(params_cases[i].msg, want, sizeof(want));
			ok(strstr(msg, want) != NULL, msg);
			json_decref(j);
			continue;
		}
		for (size_t k = 0; k < n && k < 7; k++) {
			types[k] = type_letter(ps[k].type);
			types[k + 1] = '\0';
			if (ps[k].type == MLFS_PARAM_LIST)
				lists_ok = lists_ok &&
					   ps[k].nlist ==
						   params_cases[i].nlist[k];
		}
		is_str(types, params_cases[i].types, "types in order");
		ok(lists_ok, "list lengths");
		/* each list holds its own values */
		for (size_t k = 0; k < n; k++) {
			json_t *v = json_object_get(j, ps[k].name);

			for (size_t e = 0; ps[k].type == MLFS_PARAM_LIST &&
					   e < ps[k].nlist;
			     e++)
				lists_ok = lists_ok &&
					   ps[k].list[e] ==
						   json_number_value(
							   json_array_get(v, e));
		}
		ok(lists_ok, "list values");
		free(ps);
		free(lists);
		json_decref(j);
	}

	/* allocation N fails: -ENOMEM and nothing kept, until none does */
	{
		json_t *j = json_loads("{\"a\": [1, 2], \"b\": 3}", 0, NULL);
		bool fired = true;
		int bad = 0, rc = 0;

		for (unsigned n = 1; fired && n < 100; n++) {
			struct mlfs_param *ps = NULL;
			double *lists = NULL;
			size_t np = 0;

			failalloc_arm(n);
			rc = spec_params(j, &ps, &np, &lists, msg,
					 sizeof(msg));
			fired = failalloc_fired();
			failalloc_arm(0);
			bad += rc != 0 && (rc != -ENOMEM || ps || lists);
			free(ps);
			free(lists);
		}
		is_int(bad, 0, "spec_params: failed allocations give -ENOMEM");
		is_int(rc, 0, "and then it succeeds");
		json_decref(j);
	}
}

/* --- spec_resolve --- */

/*
 * Stub train plugins: "lin" (classification and regression; params l2
 * >= 0 and max_iter), "reg" (regression only), "km" (clustering only),
 * and a tune plugin "grid".  init judges params as a real plugin does,
 * naming the param first.
 */
static int stub_init(const struct mlfs_host *host, unsigned task,
		     const struct mlfs_param *params, size_t nparams,
		     void **inst, char *msg, size_t msglen)
{
	static int the_inst;

	(void)host;
	(void)task;
	for (size_t i = 0; i < nparams; i++) {
		const struct mlfs_param *p = &params[i];

		if (strcmp(p->name, "l2") == 0) {
			if (p->type != MLFS_PARAM_NUMBER || p->number < 0) {
				snprintf(msg, msglen,
					 "\"l2\": must be >= 0, got %g",
					 p->number);
				return -EINVAL;
			}
		} else if (strcmp(p->name, "max_iter") != 0) {
			snprintf(msg, msglen, "\"%s\": unknown parameter",
				 p->name);
			return -EINVAL;
		}
	}
	*inst = &the_inst;
	return 0;
}

static void stub_fini(void *inst)
{
	(void)inst;
}

#define STUB_OPS(var, t)                                                     \
	static const struct mlfs_train_ops var = {                           \
		.size = sizeof(struct mlfs_train_ops),                       \
		.tasks = (t),                                                \
		.init = stub_init,                                           \
		.fini = stub_fini,                                           \
	}
STUB_OPS(lin_ops, MLFS_TASK_CLASSIFICATION | MLFS_TASK_REGRESSION);
STUB_OPS(reg_ops, MLFS_TASK_REGRESSION);
STUB_OPS(km_ops, MLFS_TASK_CLUSTERING);

static const struct mlfs_plugin stubs[] = {
	{ .abi_major = MLFS_ABI_MAJOR, .abi_minor = MLFS_ABI_MINOR,
	  .stage = MLFS_STAGE_TRAIN, .name = "lin", .ops = &lin_ops },
	{ .abi_major = MLFS_ABI_MAJOR, .abi_minor = MLFS_ABI_MINOR,
	  .stage = MLFS_STAGE_TRAIN, .name = "reg", .ops = &reg_ops },
	{ .abi_major = MLFS_ABI_MAJOR, .abi_minor = MLFS_ABI_MINOR,
	  .stage = MLFS_STAGE_TRAIN, .name = "km", .ops = &km_ops },
	{ .abi_major = MLFS_ABI_MAJOR, .abi_minor = MLFS_ABI_MINOR,
	  .stage = MLFS_STAGE_TUNE, .name = "grid", .ops = NULL },
};

#define SEARCH(extra) "'search': {'method': 'grid', " extra "}"
#define SPACE "'space': {'l2': {'log_uniform': [0.001, 1]}}"
#define BASE "{'dataset': 'iris', 'algorithm': 'lin', "

/*
 * Each spec (' for "), resolved by uid: its errno; for 0 the plan's task,
 * else the field the problem names first ("\"field\": ...", NULL: none),
 * a substring of the problem and the text it points at (NULL: 1:1).
 */
static const struct {
	const char *text;
	int rc;
	const char *field;
	const char *msg;
	const char *at;
	uid_t uid;
} resolve_cases[] = {
	/* good */
	{ "{'dataset': 'iris', 'algorithm': 'lin'}", 0, NULL,
	  "classification", NULL, 0 },
	{ "{'dataset': 'iris@1', 'algorithm': 'lin', 'params': {'l2': 0.5}, "
	  "'split': {'train': 0.8, 'test': 0.2, 'seed': 7, 'stratify': false}, "
	  SEARCH("'trials': 3, 'parallel': 2, 'max_failed': 0, "
		 "'metric': 'accuracy', 'goal': 'maximize', " SPACE)
	  ", 'model': 'm1', 'timeout': 60, 'memory': '2G', "
	  "'features': ['a', 'b'], 'label': 'species'}",
	  0, NULL, "classification", NULL, 0 },
	{ "{'dataset': 'iris', 'algorithm': 'km'}", 0, NULL, "clustering",
	  NULL, 0 },
	{ "{'dataset': 'nums', 'algorithm': 'reg'}", 0, NULL, "regression",
	  NULL, 0 },
	{ "{'dataset': 'nums', 'algorithm': 'lin', 'task': 'regression', "
	  "'memory': 1048576, 'timeout': '1.5'}",
	  0, NULL, "regression", NULL, 0 },
	{ "{'dataset': 'secret', 'algorithm': 'lin'}", 0, NULL,
	  "classification", NULL, 0 },
	/* syntax and fields */
	{ "[1, 2]", -EINVAL, NULL, "a spec is a JSON object", NULL, 0 },
	{ "{'dataset': 'iris', 'dataset': 'iris'}", -EINVAL, NULL,
	  "duplicate object key", "': 'iris'}", 0 },
	{ "{'dataset': 'iris', 'algorithm': 'lin', 'lambda': 1}", -EINVAL,
	  "lambda", "unknown field", "'lambda'", 0 },
	{ "{\n  'dataset': 'iris',\n  'algorithm': 'lin',\n  'Model': 'x'\n}",
	  -EINVAL, "Model", "unknown field", "'Model'", 0 },
	/* dataset */
	{ "{'algorithm': 'lin'}", -EINVAL, "dataset", "is required", NULL, 0 },
	{ "{'dataset': 5, 'algorithm': 'lin'}", -EINVAL, "dataset",
	  "must be a string 'name' or 'name@version'", "'dataset'", 0 },
	{ "{'dataset': null, 'algorithm': 'lin'}", -EINVAL, "dataset",
	  "must be a string", "'dataset'", 0 },
	{ "{'dataset': 'iris@0', 'algorithm': 'lin'}", -EINVAL, "dataset",
	  "'iris@0' is not a dataset name or name@version", "'dataset'", 0 },
	{ "{'dataset': 'x@', 'algorithm': 'lin'}", -EINVAL, "dataset",
	  "'x@' is not a dataset name", "'dataset'", 0 },
	{ "{'dataset': '../a', 'algorithm': 'lin'}", -EINVAL, "dataset",
	  "'../a' is not a dataset name", "'dataset'", 0 },
	{ "{'dataset': '@1', 'algorithm': 'lin'}", -EINVAL, "dataset",
	  "not a dataset name", "'dataset'", 0 },
	{ "{'dataset': '', 'algorithm': 'lin'}", -EINVAL, "dataset",
	  "not a dataset name", "'dataset'", 0 },
	{ "{'dataset': 'iris@1x', 'algorithm': 'lin'}", -EINVAL, "dataset",
	  "not a dataset name", "'dataset'", 0 },
	{ "{'dataset': 'iris@1@2', 'algorithm': 'lin'}", -EINVAL, "dataset",
	  "not a dataset name", "'dataset'", 0 },
	{ "{'dataset': 'iris@-1', 'algorithm': 'lin'}", -EINVAL, "dataset",
	  "not a dataset name", "'dataset'", 0 },
	{ "{'dataset': 'iris@ 1', 'algorithm': 'lin'}", -EINVAL, "dataset",
	  "not a dataset name", "'dataset'", 0 },
	{ "{'dataset': 'iris@+1', 'algorithm': 'lin'}", -EINVAL, "dataset",
	  "not a dataset name", "'dataset'", 0 },
	{ "{'dataset': 'iris@1000000000', 'algorithm': 'lin'}", -EINVAL,
	  "dataset", "not a dataset name", "'dataset'", 0 },
	{ "{'dataset': 'a/b', 'algorithm': 'lin'}", -EINVAL, "dataset",
	  "not a dataset name", "'dataset'", 0 },
	{ "{'dataset': '.hidden', 'algorithm': 'lin'}", -EINVAL, "dataset",
	  "not a dataset name", "'dataset'", 0 },
	{ "{'dataset': 'nope', 'algorithm': 'lin'}", -EINVAL, "dataset",
	  "no dataset 'nope'", "'dataset'", 0 },
	{ "{'dataset': 'iris@9', 'algorithm': 'lin'}", -EINVAL, "dataset",
	  "dataset 'iris' has no version 9", "'dataset'", 0 },
	{ "{'dataset': 'empty', 'algorithm': 'lin'}", -EINVAL, "dataset",
	  "dataset 'empty' has no version yet", "'dataset'", 0 },
	{ "{'dataset': 'secret', 'algorithm': 'lin'}", -EACCES, "dataset",
	  "'secret': permission denied", "'dataset'", 1000 },
	/* algorithm, label, task */
	{ "{'dataset': 'iris'}", -EINVAL, "algorithm", "is required", NULL,
	  0 },
	{ "{'dataset': 'iris', 'algorithm': 3}", -EINVAL, "algorithm",
	  "must be a string", "'algorithm'", 0 },
	{ "{'dataset': 'iris', 'algorithm': 'xgboost'}", -EINVAL,
	  "algorithm", "no train plugin 'xgboost'", "'algorithm'", 0 },
	{ "{'dataset': 'iris', 'algorithm': 'grid'}", -EINVAL, "algorithm",
	  "no train plugin 'grid'", "'algorithm'", 0 },
	{ BASE "'label': 5}", -EINVAL, "label", "must be a column name",
	  "'label'", 0 },
	{ BASE "'label': 'zz'}", -EINVAL, "label", "no column 'zz' in iris@1",
	  "'label'", 0 },
	{ BASE "'task': 'ranking'}", -EINVAL, "task",
	  "must be classification, regression or clustering", "'task'", 0 },
	{ BASE "'task': 1}", -EINVAL, "task", "must be classification",
	  "'task'", 0 },
	{ BASE "'task': 'regression'}", -EINVAL, "label",
	  "regression needs a numeric label, 'species' is", "'label'", 0 },
	{ "{'dataset': 'iris', 'algorithm': 'reg'}", -EINVAL, "algorithm",
	  "'reg' does not do classification", "'algorithm'", 0 },
	{ "{'dataset': 'iris', 'algorithm': 'km', 'task': 'classification'}",
	  -EINVAL, "task", "'km' does not do classification", "'task'", 0 },
	{ "{'dataset': 'ids', 'algorithm': 'lin'}", -EINVAL, "label",
	  "the dataset has no label column: name one", NULL, 0 },
	{ "{'dataset': 'ids', 'algorithm': 'lin', 'task': 'regression'}",
	  -EINVAL, "label", "the dataset has no label column: name one", NULL,
	  0 },
	{ "{'dataset': 'ids', 'algorithm': 'lin', "
	  "'task': 'classification'}",
	  -EINVAL, "label", "the dataset has no label column: name one", NULL,
	  0 },
	/* features */
	{ BASE "'features': []}", -EINVAL, "features",
	  "must be a non-empty list of column names", "'features'", 0 },
	{ BASE "'features': 'a'}", -EINVAL, "features",
	  "must be a non-empty list", "'features'", 0 },
	{ BASE "'features': ['a', 'zz']}", -EINVAL, "features",
	  "no column 'zz'", "'features'", 0 },
	{ BASE "'features': [1]}", -EINVAL, "features", "no column '?'",
	  "'features'", 0 },
	{ BASE "'features': ['species']}", -EINVAL, "features",
	  "'species' is the label", "'features'", 0 },
	{ BASE "'features': ['note']}", -EINVAL, "features",
	  "'note' is a text column", "'features'", 0 },
	/* params */
	{ BASE "'params': [1]}", -EINVAL, "params", "must be an object",
	  "'params'", 0 },
	{ BASE "'params': {'l2': null}}", -EINVAL, "params",
	  "'l2': must be a number, string, boolean or list of numbers",
	  "'params'", 0 },
	{ BASE "'params': {'l2': [1, 'x']}}", -EINVAL, "params",
	  "'l2': a list of numbers", "'params'", 0 },
	{ BASE "'params': {'l2': -1}}", -EINVAL, "l2",
	  "must be >= 0, got -1", "'l2'", 0 },
	{ BASE "'params': {'max_iter': 5, 'zz': 1}}", -EINVAL, "zz",
	  "unknown parameter", "'zz'", 0 },
	/* split */
	{ BASE "'split': 0.8}", -EINVAL, "split", "must be an object",
	  "'split'", 0 },
	{ BASE "'split': {'train': 1.5}}", -EINVAL, "train",
	  "must be a fraction in [0, 1]", "'train'", 0 },
	{ BASE "'split': {'train': -0.1}}", -EINVAL, "train",
	  "must be a fraction in [0, 1]", "'train'", 0 },
	{ BASE "'split': {'test': '0.2'}}", -EINVAL, "test",
	  "must be a fraction in [0, 1]", "'test'", 0 },
	{ BASE "'split': {'validation': null}}", -EINVAL, "validation",
	  "must be a fraction", "'validation'", 0 },
	{ BASE "'split': {'train': 0.5, 'test': 0.1}}", -EINVAL, "split",
	  "sum to 1, got 0.5 + 0 + 0.1", "'split'", 0 },
	{ BASE "'split': {'train': 0.8, 'validation': 0.3}}", -EINVAL,
	  "split", "sum to 1, got 0.8 + 0.3 + -0.1", "'split'", 0 },
	{ BASE "'split': {'train': 0, 'test': 1}}", -EINVAL, "split",
	  "sum to 1", "'split'", 0 },
	{ BASE "'split': {'seed': -1}}", -EINVAL, "seed",
	  "must be an integer >= 0", "'seed'", 0 },
	{ BASE "'split': {'seed': 1.5}}", -EINVAL, "seed",
	  "must be an integer >= 0", "'seed'", 0 },
	{ BASE "'split': {'stratify': 'yes'}}", -EINVAL, "stratify",
	  "must be true or false", "'stratify'", 0 },
	{ BASE "'split': {'folds': 5}}", -EINVAL, "folds",
	  "unknown field of 'split'", "'folds'", 0 },
	/* search */
	{ BASE "'search': 1}", -EINVAL, "search", "must be an object",
	  "'search'", 0 },
	{ BASE SEARCH(SPACE ", 'budget': 3") "}", -EINVAL, "budget",
	  "unknown field of 'search'", "'budget'", 0 },
	{ BASE "'search': {" SPACE "}}", -EINVAL, "method",
	  "must name a tune plugin (grid, random, halving; see .mlfs/plugins), "
	  "got '?'",
	  NULL, 0 },
	{ BASE "'search': {'method': 'bayes', " SPACE "}}", -EINVAL, "method",
	  "got 'bayes'", "'method'", 0 },
	{ BASE "'search': {'method': 'lin', " SPACE "}}", -EINVAL, "method",
	  "got 'lin'", "'method'", 0 },
	{ BASE SEARCH("'trials': 0, " SPACE) "}", -EINVAL, "trials",
	  "must be an integer in [1, 10000]", "'trials'", 0 },
	{ BASE SEARCH("'trials': 2.5, " SPACE) "}", -EINVAL, "trials",
	  "must be an integer in [1, 10000]", "'trials'", 0 },
	{ BASE SEARCH("'parallel': 10001, " SPACE) "}", -EINVAL, "parallel",
	  "must be an integer in [1, 10000]", "'parallel'", 0 },
	{ BASE SEARCH("'max_failed': -1, " SPACE) "}", -EINVAL, "max_failed",
	  "must be an integer in [0, 10000]", "'max_failed'", 0 },
	{ BASE SEARCH("'metric': 5, " SPACE) "}", -EINVAL, "metric",
	  "must be a string", "'metric'", 0 },
	{ BASE SEARCH("'goal': 'up', " SPACE) "}", -EINVAL, "goal",
	  "must be maximize or minimize", "'goal'", 0 },
	{ BASE SEARCH("'trials': 3") "}", -EINVAL, "space",
	  "must be an object of parameters", NULL, 0 },
	{ BASE SEARCH("'space': {}") "}", -EINVAL, "space",
	  "must be an object of parameters", "'space'", 0 },
	{ BASE SEARCH("'space': [1]") "}", -EINVAL, "space",
	  "must be an object of parameters", "'space'", 0 },
	{ BASE SEARCH("'space': {'l2': [0, 1]}") "}", -EINVAL, "l2",
	  "must be one of {'uniform': [a, b]}", "'l2'", 0 },
	{ BASE SEARCH("'space': {'l2': {'uniform': [0, 1], 'int': [0, 1]}}")
	  "}", -EINVAL, "l2", "must be one of", "'l2'", 0 },
	{ BASE SEARCH("'space': {'l2': {'uniform': [1, 0]}}") "}", -EINVAL,
	  "l2", "bad uniform range", "'l2'", 0 },
	{ BASE SEARCH("'space': {'l2': {'uniform': [0, 1, 2]}}") "}",
	  -EINVAL, "l2", "bad uniform range", "'l2'", 0 },
	{ BASE SEARCH("'space': {'l2': {'uniform': ['a', 1]}}") "}",
	  -EINVAL, "l2", "bad uniform range", "'l2'", 0 },
	{ BASE SEARCH("'space': {'l2': {'log_uniform': [0, 1]}}") "}",
	  -EINVAL, "l2", "bad log_uniform range", "'l2'", 0 },
	{ BASE SEARCH("'space': {'max_iter': {'int': [0.5, 2]}}") "}",
	  -EINVAL, "max_iter", "bad int range", "'max_iter'", 0 },
	{ BASE SEARCH("'space': {'l2': {'choice': []}}") "}", -EINVAL, "l2",
	  "bad choice range", "'l2'", 0 },
	{ BASE SEARCH("'space': {'l2': {'choice': 1}}") "}", -EINVAL, "l2",
	  "bad choice range", "'l2'", 0 },
	{ BASE SEARCH("'space': {'l2': {'normal': [0, 1]}}") "}", -EINVAL,
	  "normal", "unknown kind of range", "'normal'", 0 },
	/* model, timeout, memory */
	{ BASE "'model': '../x'}", -EINVAL, "model",
	  "'../x' is not a valid name", "'model'", 0 },
	{ BASE "'model': 5}", -EINVAL, "model", "'?' is not a valid name",
	  "'model'", 0 },
	{ BASE "'model': ''}", -EINVAL, "model", "'' is not a valid name",
	  "'model'", 0 },
	{ BASE "'timeout': 0}", -EINVAL, "timeout",
	  "must be a positive number", "'timeout'", 0 },
	{ BASE "'timeout': -5}", -EINVAL, "timeout",
	  "must be a positive number", "'timeout'", 0 },
	{ BASE "'timeout': true}", -EINVAL, "timeout",
	  "must be a positive number", "'timeout'", 0 },
	{ BASE "'timeout': 'abc'}", -EINVAL, "timeout",
	  "must be a positive number", "'timeout'", 0 },
	{ BASE "'timeout': '10x'}", -EINVAL, "timeout",
	  "must be a positive number", "'timeout'", 0 },
	{ BASE "'timeout': '10', 'memory': '2Q'}", -EINVAL, "memory",
	  "must be a positive number", "'memory'", 0 },
	{ BASE "'memory': -5}", -EINVAL, "memory",
	  "must be a positive number", "'memory'", 0 },
	{ BASE "'memory': '0G'}", -EINVAL, "memory",
	  "must be a positive number", "'memory'", 0 },
	{ BASE "'memory': '2GB '}", -EINVAL, "memory",
	  "must be a positive number", "'memory'", 0 },
	{ BASE "'memory': 'nan'}", -EINVAL, "memory",
	  "must be a positive number", "'memory'", 0 },
	{ BASE "'timeout': 'inf'}", -EINVAL, "timeout",
	  "must be a positive number", "'timeout'", 0 },
	{ BASE "'timeout': '1e999'}", -EINVAL, "timeout",
	  "must be a positive number", "'timeout'", 0 },
};

/* A dataset name of mode made by uid 0, with text as v1 (NULL: none). */
static int make_dataset(struct fs *fs, const char *name, mode_t mode,
			const char *text)
{
	struct fs_ctx ctx = { 0, 0, 1, 022, NULL };
	struct problem pb = { 0 };
	unsigned ver;
	bool created;
	int rc;

	rc = repo_create(fs, &repo_datasets, name, mode, &ctx, &pb);
	if (rc < 0 || !text)
		return rc;
	rc = fixture_fs_publish(fs, name, text, &ver, &created, &pb);
	if (rc < 0)
		fprintf(stderr, "# publish %s: %s\n", name, pb.msg);
	return rc;
}

/* The line and column where at starts in text (1:1 for NULL). */
static void where(const char *text, const char *at, unsigned *line,
		  unsigned *col)
{
	const char *p = at ? strstr(text, at) : NULL, *ls = text;

	*line = 1;
	*col = 1;
	if (!p)
		return;
	for (const char *c = text; c < p; c++)
		if (*c == '\n') {
			(*line)++;
			ls = c + 1;
		}
	*col = (unsigned)(p - ls) + 1;
}

static void test_resolve(void)
{
	char dir[] = "/tmp/spec_test.XXXXXX", idx[300];
	struct plugin pls[sizeof(stubs) / sizeof(stubs[0])];
	struct plugin_set ps = { .ok = pls, .nok = sizeof(pls) / sizeof(pls[0]) };
	struct fixture_fs_opts opts = { .index = idx, .plugins = &ps };
	struct fs fs;
	int setup = 0;

	for (size_t i = 0; i < ps.nok; i++)
		pls[i] = (struct plugin){ .desc = &stubs[i],
					  .path = (char *)"stub.so" };
	if (!mkdtemp(dir)) {
		skip("spec_resolve: no temp dir");
		return;
	}
	snprintf(idx, sizeof(idx), "%s/index", dir);
	if (fixture_fs_setup(&fs, &opts) < 0) {
		ok(0, "spec_resolve: repository set up");
		return;
	}
	setup |= make_dataset(&fs, "iris", 0755,
			      "a,b,note,species\n1,2,hello,x\n3,4,world,y\n"
			      "5,6,foo,x\n");
	{
		struct repo_origin o = { "schema", NULL, NULL, 0, 0, 0 };
		struct problem pb = { 0 };

		/* iris@1 stays as published; note is text from v2 on */
		setup |= ds_set_schema(&fs, "iris",
				       "{\"columns\": [{\"name\": \"note\", "
				       "\"type\": \"text\"}]}",
				       &o, &pb);
	}
	setup |= make_dataset(&fs, "nums", 0755, "a,y\n1,1.5\n2,2.5\n3,3.5\n");
	setup |= make_dataset(&fs, "secret", 0700, "a,y\n1,x\n2,y\n3,x\n");
	setup |= make_dataset(&fs, "empty", 0755, NULL);
	setup |= make_dataset(&fs, "ids", 0755,
			      "id,when\n1,2020-01-01\n2,2020-01-02\n"
			      "3,2020-01-03\n");
	is_int(setup, 0, "spec_resolve: datasets made");

	for (size_t i = 0;
	     i < sizeof(resolve_cases) / sizeof(resolve_cases[0]); i++) {
		char text[1024], want[512], at[128], name[1100], field[140];
		struct fs_ctx ctx = { resolve_cases[i].uid,
				      resolve_cases[i].uid, 1, 022, NULL };
		struct problem pb = { 0 };
		json_t *plan = (json_t *)&ctx; /* must be set to NULL */
		unsigned line, col;
		int rc;

		dq(resolve_cases[i].text, text, sizeof(text));
		dq(resolve_cases[i].msg, want, sizeof(want));
		rc = spec_resolve(&fs, "j1", text, &ctx, &plan, &pb);
		snprintf(name, sizeof(name), "resolve %s", text);
		/* a test name is one TAP line */
		for (char *c = name; *c; c++)
			if (*c == '\n')
				*c = ' ';
		is_int(rc, resolve_cases[i].rc, name);
		if (resolve_cases[i].rc == 0) {
			is_str(json_string_value(json_object_get(plan, "task")),
			       want, "the plan's task");
			if (rc < 0)
				printf("#   problem: %d:%d: %s\n", pb.line,
				       pb.col, pb.msg);
			json_decref(plan);
			continue;
		}
		ok(plan == NULL, "no plan");
		if (rc == 0)
			json_decref(plan);
		ok(strstr(pb.msg, want) != NULL, pb.msg);
		if (resolve_cases[i].field) {
			snprintf(field, sizeof(field), "\"%s\": ",
				 resolve_cases[i].field);
			ok(strncmp(pb.msg, field, strlen(field)) == 0,
			   "names the field first");
		}
		where(text,
		      resolve_cases[i].at
			      ? dq(resolve_cases[i].at, at, sizeof(at))
			      : NULL,
		      &line, &col);
		if (!tap_ok(pb.line == line && pb.col == col, __FILE__,
			    __LINE__, "pb.line:pb.col", "points at its place"))
			printf("#   got %u:%u, want %u:%u\n", pb.line, pb.col,
			       line, col);
	}
	fixture_fs_teardown(&fs);
	fixture_fs_rmrf(dir);
}

/* --- problem_check_fields --- */

static const char *const abc[] = { "a", "b", "c", NULL };
static const char *const ab[] = { "a", "b", NULL };
static const char *const a_only[] = { "a", NULL };

static const struct {
	const char *text;
	const char *const *allowed;
	const char *of;
	const char *msg; /* NULL: no problem */
	unsigned line;
	unsigned col;
} fields_cases[] = {
	{ "{\"a\": 1, \"c\": {\"zz\": 2}}", abc, NULL, NULL, 0, 0 },
	{ "[1, 2]", abc, NULL, NULL, 0, 0 },
	{ "{\n  \"a\": 1,\n   \"zz\": 2\n}", abc, NULL,
	  "\"zz\": unknown field (expected a, b or c)", 3, 4 },
	{ "{\"b\": 1, \"x\": 2, \"y\": 3}", ab, "monitor",
	  "\"x\": unknown field of monitor (expected a or b)", 1, 10 },
	{ "{\"x\": 1}", a_only, "\"split\"",
	  "\"x\": unknown field of \"split\" (expected a)", 1, 2 },
	/* a key written with an escape is not found as written: 1:1 */
	{ "{\"\\u0078\": 1}", a_only, NULL,
	  "\"x\": unknown field (expected a)", 1, 1 },
};

static void test_check_fields(void)
{
	const char *many[41];
	char names[40][32], want[80];
	struct problem pb;
	json_t *obj;

	for (size_t i = 0; i < sizeof(fields_cases) / sizeof(fields_cases[0]);
	     i++) {
		const char *text = fields_cases[i].text;
		char name[64];
		int rc;

		obj = json_loads(text, 0, NULL);
		memset(&pb, 0, sizeof(pb));
		rc = problem_check_fields(&pb, text, obj,
					  fields_cases[i].allowed,
					  fields_cases[i].of);
		json_decref(obj);
		/* a test name is one TAP line */
		snprintf(name, sizeof(name), "problem_check_fields case %zu",
			 i);
		is_int(rc, fields_cases[i].msg ? -EINVAL : 0, name);
		if (!fields_cases[i].msg)
			continue;
		is_str(pb.msg, fields_cases[i].msg, "the problem's text");
		is_int(pb.line, fields_cases[i].line, "its line");
		is_int(pb.col, fields_cases[i].col, "its column");
	}
	/* 40 names of 23 characters are more than the message holds: cut */
	for (size_t i = 0; i < 40; i++) {
		snprintf(names[i], sizeof(names[i]),
			 "name_%02zu_abcdefghijklmno", i);
		many[i] = names[i];
	}
	many[40] = NULL;
	obj = json_pack("{s:i}", "zz", 1);
	memset(&pb, 0, sizeof(pb));
	is_int(problem_check_fields(&pb, NULL, obj, many, "a thing"), -EINVAL,
	       "a long list of names");
	json_decref(obj);
	snprintf(want, sizeof(want),
		 "\"zz\": unknown field of a thing (expected %s, ", many[0]);
	ok(strncmp(pb.msg, want, strlen(want)) == 0, pb.msg);
	ok(strstr(pb.msg, " or ") == NULL, "cut before the last name");
	is_int(problem_check_fields(NULL, NULL, NULL, many, NULL), 0,
	       "no object: no problem");
}

int main(void)
{
	test_check_text();
	test_params();
	test_resolve();
	test_check_fields();
	return done();
}
