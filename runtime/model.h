// The runtime's model: a llama-architecture GGUF file ("llama", as llama.cpp runs it) or
// gemkit's compact format (architecture "gemkit": the same tensors plus the token router of
// each routed block, which the runtime executes for real), memory-mapped, every weight used in
// the type it is stored in. Torch-free.
//
// Compact format (written by `gemkit export compact`, export/compact_export.h; key and tensor
// names in formats/gguf_keys.h and formats/llama_tensor_names.h):
//   general.architecture = "gemkit", gemkit.format_version = 1 or 2 (kCompactFormatVersion; a
//   reader refuses other versions)
//   gemkit.{context_length, embedding_length, block_count, feed_forward_length,
//           attention.head_count, attention.head_count_kv, rope.dimension_count,
//           rope.freq_base, attention.layer_norm_rms_epsilon, vocab_size}   as llama.*
//   gemkit.dtr.threshold (f32), gemkit.dtr.attention_only (bool), both required
//   tensors: the llama names, plus blk.N.dtr_router.weight [hidden] and blk.N.dtr_router.bias [1]
//   (f32) for each routed block N. Any other tensor name is refused.
//   SCAR (optional): gemkit.scar.experts (names in index order, "general" first when
//   gemkit.scar.general_expert), gemkit.scar.{scale, router_dim, temperature, mass, max_experts},
//   all required when gemkit.scar.experts is there, and gemkit.scar.general_bias (optional: 0);
//   tensors blk.N.scar_router.query [router_dim, hidden], blk.N.scar_router.keys [experts,
//   router_dim], and per adapted linear blk.N.<linear>.expert.<name>.lora_a [r, in] / .lora_b
//   [out, r] (f32 in version 1, f16 in version 2). Each of a block's two groups (attention:
//   q/k/v/o; MLP: gate/up/down) routes a token once from its normalised input, as routing/scar.h
//   does.
// DTR at inference: a token is processed by routed block N when sigmoid(w . rmsnorm(h) + b) >
// threshold; its residual update is scaled by that gate; a skipped token writes nothing into
// that block's KV cache (gemkit's LibTorch model does the same: routing/token_router.h).
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "formats/block_quant.h"
#include "formats/gguf.h"
#include "runtime/kernels.h"
#include "runtime/thread_pool.h"
#include "tokenizers/tokenizer.h"

namespace gemkit::runtime {

struct Weight {
  QuantType type = QuantType::F32;
  int64_t rows = 0, cols = 0;  // PyTorch order: [out, in]
  const uint8_t* data = nullptr;
  size_t row_bytes = 0;
  // Q4_0 rows interleaved eight at a time (runtime/repack.h), when the kernel set multiplies that
  // layout: data then points at rows / 8 groups of cols / 32 BlockQ4x8 held by the model.
  bool q4_0x8 = false;
};

// One SCAR domain expert on one linear layer: y += gate * scale * B (A x).
struct Expert {
  int index = 0;  // in RuntimeConfig::scar_experts
  Weight a, b;    // A [r, in], B [out, r]: f32 (format 1), f16 (format 2) or Q8_0 (where rows fit)
};

enum LinearId { kQ, kK, kV, kO, kGate, kUp, kDown, kLinears };

struct Layer {
  Weight attn_norm, q, k, v, o, ffn_norm, gate, up, down;
  bool routed = false;
  std::vector<float> router_weight;
  float router_bias = 0;
  // SCAR: the block's router (query [router_dim, hidden], keys [experts, router_dim]) and the
  // experts of each linear layer.
  bool scar = false;
  std::vector<float> scar_query, scar_keys;
  std::vector<Expert> experts[kLinears];
};

struct RuntimeConfig {
  std::string architecture;  // "llama" or "gemkit"
  int64_t hidden = 0, ffn = 0, layers = 0, heads = 0, kv_heads = 0, head_dim = 0, vocab = 0, context = 0;
  float eps = 1e-6f, theta = 10000.f;
  float dtr_threshold = 0.5f;
  bool dtr_attention_only = false;
  // SCAR (compact format): expert names in index order ("general" first when it exists).
  std::vector<std::string> scar_experts;
  bool scar_general = true;
  float scar_scale = 1, scar_temperature = 1, scar_mass = 0.65f;
  float scar_general_bias = 0;  // nats added to the general expert's logit (optional key)
  int64_t scar_router_dim = 0, scar_max_experts = 2;
};

class Model {
 public:
  // Maps and validates the file; throws gemkit::Error naming the file, key or tensor.
  explicit Model(const std::string& path);
  const RuntimeConfig& config() const { return config_; }
  const std::vector<Layer>& layers() const { return layers_; }
  const Weight& token_embd() const { return token_embd_; }
  const Weight& output_norm() const { return output_norm_; }
  const Weight& output() const { return output_; }  // token_embd when tied
  const Tokenizer& tokenizer() const { return *tokenizer_; }
  uint64_t file_bytes() const { return file_bytes_; }
  int routed_blocks() const;

 private:
  void interleave_q4_0_weights();  // every Q4_0 matrix that can be (Weight::q4_0x8)

  GgufFile file_;
  RuntimeConfig config_;
  std::vector<Layer> layers_;
  Weight token_embd_, output_norm_, output_;
  std::unique_ptr<Tokenizer> tokenizer_;
  uint64_t file_bytes_ = 0;
  std::vector<std::unique_ptr<BlockQ4x8[]>> interleaved_;  // the interleaved copies
};

struct SessionStats {
  int64_t tokens = 0;                    // evaluated
  int64_t routed_decisions = 0;          // token x routed block
  int64_t routed_processed = 0;          // of which processed
  double realised_capacity() const { return routed_decisions ? double(routed_processed) / double(routed_decisions) : 1.0; }
};

// One sequence: the KV cache and the scratch buffers. eval() appends tokens.
class Session {
 public:
  Session(const Model& model, int64_t context, int threads);
  // Evaluates the tokens after those already in the cache; returns the logits [vocab] of the
  // last one (all_logits: of every one, row after row). Throws when the context is full.
  const std::vector<float>& eval(const std::vector<int32_t>& tokens, bool all_logits = false);
  void reset();
  // SCAR: every token to this expert (by name; "" routes again). Throws for an unknown name.
  void set_domain(const std::string& expert);
  int64_t length() const { return length_; }
  size_t kv_bytes() const;
  const SessionStats& stats() const { return stats_; }
  // Per routed block and evaluated token: whether it was processed (for tests against LibTorch).
  const std::vector<std::vector<uint8_t>>& routing_decisions() const { return decisions_; }

 private:
  // The forward pass on a batch of rows (tokens at consecutive positions, or DTR's processed
  // subset of them): every buffer holds rows of its width; T = 1 when decoding. Weights are read
  // once per batch (matrix-matrix), so a prompt costs far less than T single-token passes.
  void ensure_rows(int64_t rows);
  void block(int64_t layer, int64_t rows, const int64_t* positions, float* h);
  void attention(int64_t layer, const Layer& l, int64_t rows, const int64_t* positions, const float* x, float* out);
  void mlp(const Layer& l, int64_t rows, const float* x, float* out);
  // y[t, r] = W[r] . in_[t] for t < rows (in_ / xq_ prepared by prepare_input).
  void matmul(const Weight& w, int64_t rows, float* y);
  void prepare_input(const float* x, int64_t rows, int64_t n, bool quantize);
  // SCAR: the decision of each row of a group (expert index, gate) from its input, and the
  // experts' share y[t] += sum gate * scale * B (A in_[t]).
  void route_scar(const Layer& l, int64_t rows, const float* x);
  void add_experts(const std::vector<Expert>& experts, int64_t rows, float* y);
  float expert_dot(const Weight& w, int64_t row, const float* x, const BlockQ8* xq) const;

  const Model& model_;
  const Kernels& k_;
  ThreadPool pool_;
  int64_t context_, length_ = 0, capacity_rows_ = 0;
  std::vector<std::vector<float>> kcache_, vcache_;  // per layer [context, kv_heads * head_dim]
  std::vector<int64_t> cache_len_;                   // entries per layer (DTR: fewer)
  // Row buffers (rows x width), grown to the largest batch seen.
  std::vector<float> h_, xn_, q_, kk_, vv_, a_, tmp_, g_, u_, m_, logits_, in_, sub_, sub_out_;
  std::vector<BlockQ8> xq_;
  std::vector<ActPair> xp_;  // xq_ laid out for the matrix kernels (when the row length allows)
  std::vector<int64_t> sub_pos_, sub_index_;
  std::vector<float> sub_gate_;
  std::vector<float> rope_cos_, rope_sin_;
  std::vector<std::vector<std::pair<int, float>>> scar_choice_;  // per row
  std::vector<float> scar_q_, scar_t_;
  std::vector<BlockQ8> scar_xq_, scar_tq_;  // a Q8_0 expert's input row and its A x, quantized
  std::vector<std::pair<float, int>> scar_p_;  // (probability, expert) of one row
  int forced_expert_ = -1;
  SessionStats stats_;
  std::vector<std::vector<uint8_t>> decisions_;
};

}  // namespace gemkit::runtime
