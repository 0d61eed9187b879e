/* SPDX-License-Identifier: MIT */
/*
 * A staged CSV scanned while it is written: a thread that follows the
 * appends to a staging file (a `cp` into datasets/<d>/data.csv) and
 * scans, hashes and starts writing back what has arrived, so that the
 * close that publishes it only finishes the work.
 */
#ifndef MLFS_REPO_STAGESCAN_H
#define MLFS_REPO_STAGESCAN_H

#include <stdint.h>

#include "csv.h"
#include "hash.h"
#include "problem.h"

struct stage_scan;

/*
 * stage_scan_start: follow the staging file fd (duplicated: the caller
 * keeps its own), whose size will never pass max_size.  NULL when it is
 * not worth a thread (as many as there are cores already follow files)
 * or resources are short: the publish then scans at close.
 */
struct stage_scan *stage_scan_start(int fd, uint64_t max_size);

/*
 * stage_scan_grew: bytes [0, size) of the file are written and will not
 * change again: the caller promises that every later write appends, and
 * ends the scan (stage_scan_cancel) before any other write or truncation.
 * Any thread; the caller serialises its calls for one scan.
 */
void stage_scan_grew(struct stage_scan *s, uint64_t size);

/* stage_scan_cancel: stop following and free (NULL: nothing). */
void stage_scan_cancel(struct stage_scan *s);

/*
 * stage_scan_end: the file is whole at size bytes: finish, free s, and
 * give what csv_scan() and hash_hex() of the whole file would (*info
 * the caller's).  -EINVAL/-EFBIG with pb for bad CSV, exactly as
 * csv_scan() says it; -EAGAIN if the file could not be followed (the
 * caller scans it itself); -ENOMEM.
 */
int stage_scan_end(struct stage_scan *s, uint64_t size,
		   struct csv_info **info, char hash[HASH_HEX_LEN + 1],
		   struct problem *pb);

#endif
