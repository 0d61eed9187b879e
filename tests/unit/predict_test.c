/* SPDX-License-Identifier: MIT */
/*
 * Unit tests for predict's scoring streams (fs/predict.c) on a model
 * served from an in-memory store, with a stub regression plugin that
 * scores every row 0.5: what is checked is how rows become answers, not
 * the model.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "ds.h"
#include "fs.h"
#include "hash.h"
#include "mlcore.h"
#include "node.h"
#include "plugin.h"
#include "predict.h"
#include "store.h"
#include "tap.h"

static int stub_inst;

static int stub_init(const struct mlfs_host *host, unsigned task,
		     const struct mlfs_param *params, size_t nparams,
		     void **inst, char *msg, size_t msglen)
{
	(void)host;
	(void)task;
	(void)params;
	(void)nparams;
	(void)msg;
	(void)msglen;
	*inst = &stub_inst;
	return 0;
}

static size_t stub_outputs(void *inst)
{
	(void)inst;
	return 1;
}

static int stub_predict(void *inst, const struct mlfs_matrix *x,
			struct mlfs_matrix *out)
{
	(void)inst;
	for (size_t r = 0; r < x->rows; r++)
		out->data[r * out->ld] = 0.5f;
	return 0;
}

static int stub_load(void *inst, const void *buf, size_t len)
{
	(void)inst;
	(void)buf;
	(void)len;
	return 0;
}

static void stub_fini(void *inst)
{
	(void)inst;
}

static const struct mlfs_train_ops stub_ops = {
	.size = sizeof(stub_ops),
	.tasks = MLFS_TASK_REGRESSION,
	.init = stub_init,
	.outputs = stub_outputs,
	.predict = stub_predict,
	.load = stub_load,
	.fini = stub_fini,
};

static const struct mlfs_plugin stub = {
	.abi_major = MLFS_ABI_MAJOR, .abi_minor = MLFS_ABI_MINOR,
	.stage = MLFS_STAGE_TRAIN, .name = "stub", .ops = &stub_ops,
};

/* A model of one numeric input x, in fs's store; 0 or -errno. */
static int serve_stub(struct fs *fs, struct served **out)
{
	static const char csv[] = "x,y\n1,1\n2,2\n3,3\n";
	static const size_t feat[] = { 0 };
	static const size_t rows[] = { 0, 1, 2 };
	struct problem pb = { 0 };
	struct table *t = NULL;
	struct fx *fx = NULL;
	json_t *hdr = NULL;
	void *file = NULL;
	size_t len;
	char hash[HASH_HEX_LEN + 1];
	char key[128];
	char msg[256];
	int rc;

	rc = table_parse(csv, sizeof(csv) - 1, &t, &pb);
	if (rc == 0)
		rc = fx_fit(t, feat, NULL, 1, rows, 3, &fx, &pb);
	if (rc < 0)
		goto out;
	hdr = json_pack("{s:s, s:s, s:[], s:s, s:o, s:{}, s:[s], s:i}",
			"plugin", "stub", "task", "regression", "classes",
			"label", "y", "features", fx_to_json(fx), "params",
			"inputs", "x", "outputs", 1);
	rc = hdr ? model_encode(hdr, "", 0, &file, &len) : -ENOMEM;
	if (rc < 0)
		goto out;
	hash_hex(file, len, hash);
	ds_blob_key(hash, key, sizeof(key));
	rc = store_put(fs->store, key, file, len);
	if (rc == 0)
		rc = served_get(fs, hash, out, msg, sizeof(msg));
out:
	free(file);
	json_decref(hdr);
	fx_free(fx);
	table_free(t);
	return rc;
}

static size_t count_lines(const struct strbuf *sb)
{
	size_t n = 0;

	for (size_t i = 0; i < sb->len; i++)
		n += sb->buf[i] == '\n';
	return n;
}

/*
 * A row over the limit that arrives in the same write as a full batch
 * (the eight rows a new stream has room for) gets its error line after
 * their answers: the line once went one slot past the batch's arrays.
 */
static void test_long_row_after_full_batch(struct served *m)
{
	static const char row[] = "1\n";
	size_t head = 8 * (sizeof(row) - 1);
	size_t len = head + PREDICT_MAX_LINE + 1;
	struct strbuf out = { 0 };
	struct pstream *s;
	char *buf = malloc(len);
	int rc;

	if (!buf || pstream_new(m, &s) < 0) {
		ok(0, "long row after a full batch: setup");
		free(buf);
		return;
	}
	for (int i = 0; i < 8; i++)
		memcpy(buf + i * (sizeof(row) - 1), row, sizeof(row) - 1);
	memset(buf + head, '7', PREDICT_MAX_LINE + 1);
	rc = pstream_write(s, buf, len, &out);
	is_int(rc, -E2BIG, "a row over the limit is -E2BIG");
	rc = pstream_write(s, "8\n2\n", 4, &out);
	is_int(rc, 0, "the rest of the long row is skipped");
	is_int(pstream_finish(s, &out), 0, "finish");
	is_int(count_lines(&out), 10, "eight answers, one error, one answer");
	ok(out.buf && strstr(out.buf, "0.5\n0.5\nerror: row longer than") &&
		   strcmp(out.buf + out.len - 4, "0.5\n") == 0,
	   "the error line stands in the long row's place");
	pstream_free(s);
	sb_free(&out);
	free(buf);
}

int main(void)
{
	struct plugin pl = { .desc = &stub, .path = "stub.so" };
	struct plugin_set ps = { .ok = &pl, .nok = 1 };
	struct fs fs = { .plugins = &ps };
	struct served *m = NULL;

	plan(6);
	fs.log_fp = stderr;
	if (store_mem_open(&fs.store) < 0 || serve_stub(&fs, &m) < 0) {
		ok(0, "the stub model loads");
		return done();
	}
	ok(1, "the stub model loads");
	test_long_row_after_full_batch(m);
	served_put(m);
	served_cache_clear();
	store_close(fs.store);
	return done();
}
