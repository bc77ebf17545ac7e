/*
 * The minimal Qwen chat template (ChatML): each message as
 * "<|im_start|>{role}\n{content}<|im_end|>\n", then "<|im_start|>assistant\n" to open the
 * reply. Tools, thinking blocks and system-prompt defaults of the full Jinja template are
 * left out on purpose.
 */
#include <stdlib.h>
#include <string.h>

#include "gattn/tokenizer.h"

ga_status ga_tok_chat_format(const char *const *roles, const char *const *contents, int n,
                             char **out, ga_err *err) {
    static const char open[] = "<|im_start|>", close[] = "<|im_end|>\n",
                      reply[] = "<|im_start|>assistant\n";
    *out = NULL;
    if (n < 0 || (n > 0 && (!roles || !contents)))
        return ga_err_set(err, GA_ERR_ARG, "chat: bad message arrays");
    size_t total = sizeof reply;
    for (int i = 0; i < n; i++) {
        if (!roles[i] || !contents[i])
            return ga_err_set(err, GA_ERR_ARG, "chat: message %d has no role or content", i);
        if (!roles[i][0] || strchr(roles[i], '\n'))
            return ga_err_set(err, GA_ERR_ARG,
                              "chat: message %d: role must be one non-empty "
                              "line",
                              i);
        total += strlen(open) + strlen(roles[i]) + 1 + strlen(contents[i]) + strlen(close);
    }
    char *s = malloc(total);
    if (!s) return ga_err_set(err, GA_ERR_OOM, "chat: out of memory");
    char *p = s;
    for (int i = 0; i < n; i++)
        p = stpcpy(stpcpy(stpcpy(stpcpy(stpcpy(p, open), roles[i]), "\n"), contents[i]), close);
    strcpy(p, reply);
    *out = s;
    return GA_OK;
}
