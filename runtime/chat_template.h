/* The DeepSeek chat format (the chat template of DeepSeek-MoE, V2-Lite and V2 chat models, which
 * dsq chat also follows): BOS, then per message "{system}\n\n", "User: {u}\n\n" or
 * "Assistant: {a}<EOS>", ending with the generation prompt "Assistant:". */
#ifndef DSQ_CHAT_TEMPLATE_H
#define DSQ_CHAT_TEMPLATE_H

#include <stddef.h>

#include "error.h"
#include "generate.h"
#include "tokenizer.h"

typedef enum { CHAT_SYSTEM, CHAT_USER, CHAT_ASSISTANT } chat_role;

typedef struct {
    chat_role role;
    const char *text;
    size_t len;
} chat_message;

/* Appends the token ids of the rendered conversation to out. Text between BOS/EOS is encoded as
 * one piece, as Hugging Face encodes the rendered template (added tokens written in a message
 * become their ids there too). */
int chat_template_tokens(const tokenizer *tok, const chat_message *msgs, int n, token_list *out,
                         dsq_error *err);

#endif
