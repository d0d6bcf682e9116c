/* cli.h — what every `kvq` subcommand shares: the command table, exit codes, status-to-message
 * reporting, a progress bar on stderr, and a tiny JSON writer for --json output. Not library code:
 * only tools/ includes it. */
#ifndef KVQ_CLI_H
#define KVQ_CLI_H

#include <stddef.h>
#include <stdio.h>
#include "kvq_status.h"

/* Exit codes (docs/cli.md). */
enum {
    KVQ_EXIT_OK = 0,
    KVQ_EXIT_FAIL = 1,    /* the work failed (computation, CUDA, out of memory) */
    KVQ_EXIT_USAGE = 2,   /* bad command line */
    KVQ_EXIT_INPUT = 3,   /* an input file or its data is invalid (corrupt, mismatched, NaN) */
    KVQ_EXIT_IO = 4       /* reading or writing a file failed (missing, unwritable, disk full) */
};

/* Each subcommand: int kvq_cmd_NAME(int argc, char **argv), argv[0] == "NAME". */
#define KVQ_COMMAND(name, summary) int kvq_cmd_##name(int argc, char **argv);
#include "commands.def"
#undef KVQ_COMMAND

/* Map a status to an exit code. */
int kvq_exit_code(kvq_status s);
/* Print "kvq CMD: <what>: <status message>[: why]" on stderr and return kvq_exit_code(s). */
int kvq_report(const char *cmd, kvq_status s, const char *what, const char *why);

/* Progress bar on stderr, drawn only when stderr is a terminal (or KVQ_PROGRESS=1); at most ~10
 * redraws per second. `unit` names what is counted ("tokens", "samples"). */
typedef struct kvq_progress {
    const char *label, *unit;
    size_t total, done;
    double t0, last_draw;
    int enabled;
} kvq_progress;
void kvq_progress_start(kvq_progress *p, const char *label, const char *unit, size_t total);
void kvq_progress_update(kvq_progress *p, size_t done);
void kvq_progress_end(kvq_progress *p);
double kvq_now(void);   /* monotonic seconds */

/* Minimal JSON writer: objects/arrays with automatic commas; strings escaped. */
typedef struct kvq_json_out {
    FILE *f;
    int depth;
    int need_comma[64];
} kvq_json_out;
void kvq_jo_begin(kvq_json_out *j, FILE *f);
void kvq_jo_obj(kvq_json_out *j, const char *key);     /* key NULL inside arrays / at top */
void kvq_jo_arr(kvq_json_out *j, const char *key);
void kvq_jo_end(kvq_json_out *j, char close);          /* '}' or ']' */
void kvq_jo_str(kvq_json_out *j, const char *key, const char *v);
void kvq_jo_num(kvq_json_out *j, const char *key, double v);   /* NaN/Inf written as null */
void kvq_jo_int(kvq_json_out *j, const char *key, long long v);
void kvq_jo_bool(kvq_json_out *j, const char *key, int v);
void kvq_jo_finish(kvq_json_out *j);                   /* newline */

#endif
