/* gemkit's edge runtime from plain C (gemkit_runtime.h), the calls an Android (JNI) or iOS app
 * makes: load a model, tokenize a prompt, evaluate it, sample, evaluate each new token, free.
 *
 *   gemkit-c-example MODEL.gguf "PROMPT" [NEW_TOKENS]
 *
 * Greedy decoding (temperature 0). Prints one line per new token (its id and its logit, which
 * the ARM64 check compares across architectures: tests/runtime/check_aarch64.sh), then the text. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/gemkit_runtime.h"

int main(int argc, char** argv) {
  if (argc < 3) {
    fprintf(stderr, "usage: %s MODEL.gguf PROMPT [NEW_TOKENS]\n", argv[0]);
    return 2;
  }
  const int new_tokens = argc > 3 ? atoi(argv[3]) : 16;
  char err[512];
  gk_model* model = gk_model_load(argv[1], err, sizeof err);
  if (!model) {
    fprintf(stderr, "error: %s\n", err);
    return 1;
  }
  /* Room for the prompt's ids: a negative count says how many are needed. */
  int32_t capacity = 64;
  int32_t* ids = malloc(sizeof(int32_t) * (size_t)(capacity + new_tokens));
  int32_t n = gk_tokenize(model, argv[2], 1, ids, capacity);
  if (n < 0) {
    capacity = -n;
    ids = realloc(ids, sizeof(int32_t) * (size_t)(capacity + new_tokens));
    n = gk_tokenize(model, argv[2], 1, ids, capacity);
  }
  gk_session* session = gk_session_new(model, n + new_tokens, 1, err, sizeof err);
  if (!session) {
    fprintf(stderr, "error: %s\n", err);
    return 1;
  }
  const float* logits = gk_eval(session, ids, n, err, sizeof err);
  const int32_t vocab = gk_vocab_size(model), eos = gk_eos_token(model);
  uint64_t rng = 1; /* unused by greedy sampling, advanced all the same */
  int32_t total = n;
  for (int i = 0; i < new_tokens && logits; ++i) {
    const int32_t next = gk_sample(logits, vocab, 0.0f, 0, 1.0f, &rng);
    printf("token %d id %d logit %.6f\n", i, next, logits[next]);
    if (next == eos) break;
    ids[total++] = next;
    logits = gk_eval(session, &next, 1, err, sizeof err);
  }
  if (!logits) {
    fprintf(stderr, "error: %s\n", err);
    return 1;
  }
  char text[4096];
  const int32_t len = gk_detokenize(model, ids, total, text, (int32_t)sizeof text);
  printf("text %s\n", len >= 0 ? text : "(longer than 4096 bytes)");
  printf("kernels %s\n", gk_kernels_name());
  gk_session_free(session);
  gk_model_free(model);
  free(ids);
  return 0;
}
