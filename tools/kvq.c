/* kvq.c — the `kvq` command: dispatches `kvq <command> [options]` to tools/cmd_*.c. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <hdf5.h>

#include "cli.h"

typedef struct {
    const char *name, *summary;
    int (*run)(int, char **);
} command;

static const command commands[] = {
#define KVQ_COMMAND(name, summary) {#name, summary, kvq_cmd_##name},
#include "commands.def"
#undef KVQ_COMMAND
    {NULL, NULL, NULL}
};

static void usage(FILE *f) {
    fprintf(f, "usage: kvq <command> [options]\n\n"
               "KV-cache quantization toolchain (KVQuant): capture, fit, evaluate, inspect.\n\n"
               "commands:\n");
    for (const command *c = commands; c->name; c++) fprintf(f, "  %-10s %s\n", c->name, c->summary);
    fprintf(f, "\n`kvq <command> --help` describes each one; `man kvq` or docs/cli.md the whole tool.\n");
}

/* The engine runs OpenMP loops between OpenBLAS calls, and OpenBLAS has threads of its own: with
 * libgomp's default spin-waiting the idle OpenMP threads take the cores BLAS needs (2 threads ran
 * at 0.6x of 1 on the 2-core dev machine; passive: 1.4x, docs/BENCHMARKS.md). libgomp reads the
 * policy only at start-up, so when the user has not chosen one, run again once with it set. */
static void ensure_passive_omp_wait(char **argv) {
    if (getenv("OMP_WAIT_POLICY")) return;
    setenv("OMP_WAIT_POLICY", "PASSIVE", 1);
    execv("/proc/self/exe", argv);   /* returns only on failure: then go on as we are */
}

int main(int argc, char **argv) {
    ensure_passive_omp_wait(argv);
    /* HDF5 closes what is still open from an atexit handler; after an H5Fclose that failed (a write
     * past RLIMIT_FSIZE, say) HDF5 1.10 crashes there. kvq closes its files itself, so it turns the
     * handler off (before any other HDF5 call) and such a failure exits with its status, not 139. */
    H5dont_atexit();
    if (argc < 2) { usage(stderr); return KVQ_EXIT_USAGE; }
    if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
        usage(stdout);
        return KVQ_EXIT_OK;
    }
    if (!strcmp(argv[1], "--version")) { printf("kvq %s\n", KVQ_VERSION); return KVQ_EXIT_OK; }
    for (const command *c = commands; c->name; c++)
        if (!strcmp(argv[1], c->name)) return c->run(argc - 1, argv + 1);
    fprintf(stderr, "kvq: unknown command '%s'\n\n", argv[1]);
    usage(stderr);
    return KVQ_EXIT_USAGE;
}
