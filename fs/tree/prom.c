/* SPDX-License-Identifier: MIT */
/*
 * .mlfs/metrics.prom: the daemon's own figures in Prometheus text
 * exposition (a node_exporter textfile collector takes the file as it
 * is): FUSE operations, the block cache, S3, the export queue, jobs by
 * state, models in memory.  Made when read.
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "bcache.h"
#include "fs.h"
#include "jsonout.h"
#include "predict.h"
#include "prom.h"
#include "runner.h"
#include "store.h"

static void one(struct strbuf *out, const char *name, const char *type,
		const char *help, uint64_t v)
{
	sb_prom_family(out, name, type, help);
	sb_printf(out, "%s %" PRIu64 "\n", name, v);
}

int daemon_prom_show(struct node *n, struct strbuf *out)
{
	return daemon_prom(n->fs, out);
}

int daemon_prom(struct fs *fs, struct strbuf *out)
{
	struct bcache_stats st;
	unsigned queued, running, ended;
	uint64_t req, retries, failed;

	sb_prom_family(out, "mlfs_fuse_operations_total", "counter",
		       "FUSE requests served, by operation.");
	sb_printf(out,
		  "mlfs_fuse_operations_total{op=\"lookup\"} %" PRIu64 "\n"
		  "mlfs_fuse_operations_total{op=\"getattr\"} %" PRIu64 "\n"
		  "mlfs_fuse_operations_total{op=\"open\"} %" PRIu64 "\n"
		  "mlfs_fuse_operations_total{op=\"read\"} %" PRIu64 "\n"
		  "mlfs_fuse_operations_total{op=\"write\"} %" PRIu64 "\n"
		  "mlfs_fuse_operations_total{op=\"flush\"} %" PRIu64 "\n",
		  (uint64_t)fs->n_lookup, (uint64_t)fs->n_getattr,
		  (uint64_t)fs->n_open, (uint64_t)fs->n_read,
		  (uint64_t)fs->n_write, (uint64_t)fs->n_flush);
	sb_prom_family(out, "mlfs_fuse_bytes_total", "counter",
		       "Bytes read and written through the mount.");
	sb_printf(out,
		  "mlfs_fuse_bytes_total{direction=\"read\"} %" PRIu64 "\n"
		  "mlfs_fuse_bytes_total{direction=\"write\"} %" PRIu64 "\n",
		  (uint64_t)fs->bytes_read, (uint64_t)fs->bytes_written);
	one(out, "mlfs_versions_created_total", "counter",
	    "Versions made of any kind.", (uint64_t)fs->n_versions);
	one(out, "mlfs_writes_rejected_total", "counter",
	    "Writes refused as bad input.", (uint64_t)fs->n_rejected);
	one(out, "mlfs_models_in_memory", "gauge",
	    "Models loaded for predict.", (uint64_t)served_cached(fs));
	one(out, "mlfs_uptime_seconds", "gauge", "Seconds since the mount.",
	    (uint64_t)(time(NULL) - fs->mounted));
	job_counts(fs, &queued, &running, &ended);
	sb_prom_family(out, "mlfs_jobs", "gauge", "Jobs, by state.");
	sb_printf(out,
		  "mlfs_jobs{state=\"queued\"} %u\n"
		  "mlfs_jobs{state=\"running\"} %u\n"
		  "mlfs_jobs{state=\"ended\"} %u\n",
		  queued, running, ended);
	store_s3_counters(&req, &retries, &failed);
	one(out, "mlfs_s3_requests_total", "counter",
	    "S3 requests made (each once, however many attempts).", req);
	one(out, "mlfs_s3_retries_total", "counter",
	    "S3 attempts after a request's first.", retries);
	one(out, "mlfs_s3_errors_total", "counter", "S3 requests that failed.",
	    failed);
	/* a local store has no cache: zeros, so dashboards need no case */
	if (!bcache_is_cache(fs->store) || bcache_stats(fs->store, &st) < 0)
		memset(&st, 0, sizeof(st));
	{
		one(out, "mlfs_cache_hits_total", "counter",
		    "Reads answered from the block cache.", st.hits);
		one(out, "mlfs_cache_misses_total", "counter",
		    "Reads that waited for a fetch.", st.misses);
		one(out, "mlfs_cache_bytes", "gauge", "Bytes the cache keeps.",
		    st.bytes_cached);
		one(out, "mlfs_cache_evictions_total", "counter",
		    "Blocks evicted for room.", st.evictions);
		one(out, "mlfs_export_queue", "gauge",
		    "Objects waiting for their export to the store.",
		    st.exports_queued);
		one(out, "mlfs_export_queue_bytes", "gauge",
		    "Bytes waiting for their export to the store.",
		    st.bytes_outbox);
		one(out, "mlfs_exports_total", "counter",
		    "Exports that succeeded.", st.exports_done);
		one(out, "mlfs_export_failures_total", "counter",
		    "Export attempts that failed.", st.export_failures);
	}
	return out->err;
}
