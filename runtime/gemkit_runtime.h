/* gemkit's edge runtime, C API. Runs llama GGUF files exported by gemkit (F32, F16, Q8_0,
 * Q4_0) and gemkit's compact format (token routing executed), without LibTorch.
 *
 *   char err[256];
 *   gk_model* m = gk_model_load("model.gguf", err, sizeof err);
 *   gk_session* s = gk_session_new(m, 512, 2, err, sizeof err);
 *   int32_t ids[512]; int n = gk_tokenize(m, "Hello", 1, ids, 512);
 *   const float* logits = gk_eval(s, ids, n, err, sizeof err);       // [gk_vocab_size(m)]
 *   uint64_t rng = 42; int32_t next = gk_sample(logits, gk_vocab_size(m), 0.8f, 40, 0.95f, &rng);
 *   gk_session_free(s); gk_model_free(m);
 *
 * Functions that can fail return NULL / a negative value and write a message naming the file,
 * key or value into err (when err is not NULL). */
#ifndef GEMKIT_RUNTIME_H
#define GEMKIT_RUNTIME_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct gk_model gk_model;
typedef struct gk_session gk_session;

gk_model* gk_model_load(const char* path, char* err, size_t err_len);
void gk_model_free(gk_model* model);
int32_t gk_vocab_size(const gk_model* model);
int32_t gk_bos_token(const gk_model* model);  /* -1: none */
int32_t gk_eos_token(const gk_model* model);  /* -1: none */
/* What gk_tokenize, gk_detokenize and gk_sample return when they fail (an id outside the
 * vocabulary, no memory); no C++ exception ever leaves a gk_* function. */
#define GK_ERROR INT32_MIN

/* Token ids of text into out (at most max); returns the count, or -(needed) when max is too
 * small. add_bos: prepend the model's BOS when it has one. */
int32_t gk_tokenize(const gk_model* model, const char* text, int add_bos, int32_t* out, int32_t max);
/* The text of ids into out (NUL-terminated, at most max bytes); returns the length, or
 * -(needed) when max is too small, or GK_ERROR for an id outside the vocabulary. */
int32_t gk_detokenize(const gk_model* model, const int32_t* ids, int32_t n, char* out, int32_t max);

gk_session* gk_session_new(const gk_model* model, int32_t context, int32_t threads, char* err, size_t err_len);
void gk_session_free(gk_session* session);
void gk_session_reset(gk_session* session);
/* Appends n tokens to the session's KV cache; returns the logits after the last one (valid
 * until the next call), or NULL on error (full context, bad id). */
const float* gk_eval(gk_session* session, const int32_t* tokens, int32_t n, char* err, size_t err_len);
/* SCAR (compact format): send every token to this domain expert ("" or NULL: routed, the
 * default). Returns 0, or -1 with a message for an unknown name. */
int gk_session_set_domain(gk_session* session, const char* domain, char* err, size_t err_len);
/* Bytes of the session's KV cache (allocated for its whole context). */
size_t gk_session_kv_bytes(const gk_session* session);
/* Share of (token, routed block) pairs the token router processed; 1 without routing. */
double gk_realised_capacity(const gk_session* session);

/* The kernel set in use: "portable", "avx2", "avx512", "avx512_vnni", "neon" or "neon_dotprod"
 * (the best the CPU runs; GEMKIT_RUNTIME_KERNELS=NAME forces one it runs). */
const char* gk_kernels_name(void);

/* Temperature <= 0: greedy. top_k <= 0 and top_p >= 1 disable those filters. state: the
 * caller's RNG state (any non-zero seed), advanced. */
int32_t gk_sample(const float* logits, int32_t n_vocab, float temperature, int32_t top_k, float top_p, uint64_t* state);

#ifdef __cplusplus
}
#endif

#endif
