/* kvq.c — the `kvq` command: dispatches `kvq <command> [options]` to tools/cmd_*.c. */
#include <stdio.h>
#include <string.h>

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

int main(int argc, char **argv) {
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
