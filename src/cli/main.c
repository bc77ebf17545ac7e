/* gattn: the command-line entry point; dispatches to one subcommand per file. */
#include <stdio.h>
#include <string.h>

#include "cli.h"

static const ga_cmd COMMANDS[] = {
    {"info", ga_cmd_info, "describe a model folder (variant, shapes, parameters, memory)"},
    {"logits", ga_cmd_logits, "print next-token logits for a token sequence as JSON"},
    {"write-model", ga_cmd_write_model, "write a random-weight model folder (any shape/variant)"},
    {"tokenize", ga_cmd_tokenize, "text to token ids with a model's tokenizer.json"},
    {"detokenize", ga_cmd_detokenize, "token ids back to text"},
    {"viz", ga_cmd_viz, "draw attention heatmaps and print attention-sink metrics"},
    {"generate", ga_cmd_generate, "generate text (or ids) from a prompt, streamed or batched"},
    {"bench", ga_cmd_bench, "benchmark prefill and decode of baseline vs gated variants"},
    {"perplexity", ga_cmd_perplexity, "NLL and perplexity of a text, per model and context"},
    {"serve", ga_cmd_serve, "OpenAI-compatible HTTP server with continuous batching"},
};

static void usage(FILE *f) {
    fprintf(f, "gattn %s: inference for Qwen3 models with gated attention\n\n", ga_version());
    fprintf(f, "usage: gattn <command> [options]   (gattn <command> --help for its options)\n\n");
    for (size_t i = 0; i < sizeof COMMANDS / sizeof COMMANDS[0]; i++)
        fprintf(f, "  %-12s %s\n", COMMANDS[i].name, COMMANDS[i].summary);
}

int main(int argc, char **argv) {
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
        usage(stdout);
        return 0;
    }
    if (!strcmp(argv[1], "--version")) {
        printf("gattn %s\n", ga_version());
        return 0;
    }
    for (size_t i = 0; i < sizeof COMMANDS / sizeof COMMANDS[0]; i++)
        if (!strcmp(argv[1], COMMANDS[i].name)) return COMMANDS[i].run(argc - 1, argv + 1);
    fprintf(stderr, "gattn: error: unknown command '%s' (gattn --help lists them)\n", argv[1]);
    return 2;
}
