#include "runtime/model.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <set>

#include "core/error.h"
#include "formats/gguf_keys.h"
#include "formats/llama_tensor_names.h"
#include "runtime/repack.h"
#include "tokenizers/tokenizer_loaders.h"

namespace gemkit::runtime {

namespace {

using gguf_key::arch_key;

// A key the file must have: throws gemkit::Error "FILE: KEY: missing" without it.
const GgufValue& required(const GgufFile& f, const std::string& key) {
  const GgufValue* v = f.find(key);
  if (!v) fail(f.path(), key + ": missing");
  return *v;
}

int64_t key_int(const GgufFile& f, const std::string& key) { return required(f, key).as_int(); }
float key_float(const GgufFile& f, const std::string& key) { return static_cast<float>(required(f, key).as_double()); }
bool key_bool(const GgufFile& f, const std::string& key) { return required(f, key).as_bool(); }

// A llama key that llama.cpp treats as optional, with its default.
float key_float(const GgufFile& f, const std::string& key, float fallback) {
  const GgufValue* v = f.find(key);
  return v ? static_cast<float>(v->as_double()) : fallback;
}

}  // namespace

Model::Model(const std::string& path) : file_(path) {
  file_bytes_ = std::filesystem::file_size(path);
  RuntimeConfig& c = config_;
  c.architecture = file_.get_string(gguf_key::kArchitecture, "");
  const bool compact = c.architecture == kCompactArchitecture;
  if (compact) {
    const int64_t version = file_.get_int(gguf_key::kFormatVersion, -1);
    if (version < 1 || version > int64_t(kCompactFormatVersion))
      fail(path, std::string(gguf_key::kFormatVersion) + ": this runtime reads versions 1 to " +
                     std::to_string(kCompactFormatVersion) + ", got " + std::to_string(version) +
                     (version > int64_t(kCompactFormatVersion) ? " (written by a newer gemkit)" : ""));
  } else if (c.architecture != kLlamaArchitecture) {
    fail(path, std::string(gguf_key::kArchitecture) + ": expected \"" + kLlamaArchitecture + "\" or \"" +
                   kCompactArchitecture + "\" (compact), got \"" + c.architecture + "\"");
  }
  const std::string& a = c.architecture;
  c.hidden = key_int(file_, arch_key(a, gguf_key::kEmbeddingLength));
  c.ffn = key_int(file_, arch_key(a, gguf_key::kFeedForwardLength));
  c.layers = key_int(file_, arch_key(a, gguf_key::kBlockCount));
  c.heads = key_int(file_, arch_key(a, gguf_key::kHeadCount));
  c.kv_heads = file_.get_int(arch_key(a, gguf_key::kHeadCountKv), c.heads);
  c.context = key_int(file_, arch_key(a, gguf_key::kContextLength));
  c.eps = key_float(file_, arch_key(a, gguf_key::kRmsEpsilon), 1e-5f);
  c.theta = key_float(file_, arch_key(a, gguf_key::kRopeFreqBase), 10000.f);
  if (c.heads <= 0 || c.hidden % c.heads != 0 || c.kv_heads <= 0 || c.heads % c.kv_heads != 0 || c.layers <= 0)
    fail(path, arch_key(a, gguf_key::kHeadCount) + " / head_count_kv / block_count: inconsistent (" +
                   std::to_string(c.heads) + ", " + std::to_string(c.kv_heads) + ", " + std::to_string(c.layers) + ")");
  c.head_dim = c.hidden / c.heads;
  if (file_.get_int(arch_key(a, gguf_key::kRopeDimensionCount), c.head_dim) != c.head_dim)
    fail(path, arch_key(a, gguf_key::kRopeDimensionCount) + ": partial RoPE is not supported");
  // The compact format's own keys: every one the exporter writes is required (no defaults).
  if (compact) {
    c.dtr_threshold = key_float(file_, gguf_key::kDtrThreshold);
    c.dtr_attention_only = key_bool(file_, gguf_key::kDtrAttentionOnly);
  }
  if (compact && file_.find(gguf_key::kScarExperts)) {
    const GgufValue& names = file_.get(gguf_key::kScarExperts);
    for (size_t i = 0; i < names.size(); ++i) c.scar_experts.push_back(std::string(names.string_at(i)));
    c.scar_general = key_bool(file_, gguf_key::kScarGeneralExpert);
    c.scar_scale = key_float(file_, gguf_key::kScarScale);
    c.scar_router_dim = key_int(file_, gguf_key::kScarRouterDim);
    c.scar_temperature = key_float(file_, gguf_key::kScarTemperature);
    c.scar_mass = key_float(file_, gguf_key::kScarMass);
    c.scar_max_experts = key_int(file_, gguf_key::kScarMaxExperts);
    if (file_.find(gguf_key::kScarGeneralBias)) c.scar_general_bias = key_float(file_, gguf_key::kScarGeneralBias);
    if (c.scar_general_bias != 0 && !c.scar_general)
      fail(path, std::string(gguf_key::kScarGeneralBias) + ": a bias for the general expert, but the file has none");
    if (c.scar_experts.empty() || c.scar_router_dim <= 0 || c.scar_max_experts < 1)
      fail(path, "gemkit.scar.*: expected experts, router_dim > 0 and max_experts >= 1");
  }

  std::set<std::string> used;
  auto weight = [&](const std::string& name, int64_t rows, int64_t cols, bool required = true) -> Weight {
    const GgufTensorInfo* t = file_.find_tensor(name);
    if (!t) {
      if (required) fail(path, "tensor " + name + ": missing");
      return {};
    }
    used.insert(name);
    const uint32_t id = t->type;
    if (!is_quant_type_id(id))
      fail(path, "tensor " + name + ": type " + std::to_string(id) + " is not supported (F32, F16, Q8_0, Q4_0)");
    if (t->dims.empty() || t->dims.size() > 2)
      fail(path, "tensor " + name + ": expected 1 or 2 dims, got " + std::to_string(t->dims.size()));
    Weight w;
    w.type = static_cast<QuantType>(id);
    w.cols = static_cast<int64_t>(t->dims[0]);
    w.rows = t->dims.size() > 1 ? static_cast<int64_t>(t->dims[1]) : 1;
    if (t->dims.size() > 2 || w.cols != cols || w.rows != rows)
      fail(path, "tensor " + name + ": expected [" + std::to_string(rows) + ", " + std::to_string(cols) + "], got dims " +
                     std::to_string(t->dims[0]) + (t->dims.size() > 1 ? "x" + std::to_string(t->dims[1]) : ""));
    w.row_bytes = quant_row_bytes(w.type, w.cols);
    w.data = file_.tensor_data(*t);
    return w;
  };
  const int64_t H = c.hidden, KVD = c.kv_heads * c.head_dim;
  const GgufTensorInfo* embd = file_.find_tensor(kGgufTokenEmbd);
  if (!embd || embd->dims.size() != 2) fail(path, std::string("tensor ") + kGgufTokenEmbd + ": missing or not 2-D");
  c.vocab = static_cast<int64_t>(embd->dims[1]);
  token_embd_ = weight(kGgufTokenEmbd, c.vocab, H);
  output_norm_ = weight(kGgufOutputNorm, 1, H);
  output_ = file_.find_tensor(kGgufOutput) ? weight(kGgufOutput, c.vocab, H) : token_embd_;
  for (int64_t i = 0; i < c.layers; ++i) {
    const std::string b = gguf_block_prefix(i);  // "blk.N.", for messages about several tensors
    auto name = [i](const char* stem, const char* part = "weight") { return gguf_block_tensor_name(i, stem, part); };
    Layer l;
    l.attn_norm = weight(name(kGgufAttnNorm), 1, H);
    l.q = weight(name(kGgufAttnQ), H, H);
    l.k = weight(name(kGgufAttnK), KVD, H);
    l.v = weight(name(kGgufAttnV), KVD, H);
    l.o = weight(name(kGgufAttnOutput), H, H);
    l.ffn_norm = weight(name(kGgufFfnNorm), 1, H);
    l.gate = weight(name(kGgufFfnGate), c.ffn, H);
    l.up = weight(name(kGgufFfnUp), c.ffn, H);
    l.down = weight(name(kGgufFfnDown), H, c.ffn);
    if (!c.scar_experts.empty() && file_.find_tensor(name(kCompactScarRouter, "query"))) {
      const int64_t E = int64_t(c.scar_experts.size()), R = c.scar_router_dim;
      const Weight q = weight(name(kCompactScarRouter, "query"), R, H), k = weight(name(kCompactScarRouter, "keys"), E, R);
      if (q.type != QuantType::F32 || k.type != QuantType::F32)
        fail(path, "tensor " + b + kCompactScarRouter + ".*: expected f32");
      l.scar = true;
      l.scar_query.assign(reinterpret_cast<const float*>(q.data), reinterpret_cast<const float*>(q.data) + R * H);
      l.scar_keys.assign(reinterpret_cast<const float*>(k.data), reinterpret_cast<const float*>(k.data) + E * R);
      const char* linear_names[kLinears] = {kGgufAttnQ,   kGgufAttnK, kGgufAttnV,  kGgufAttnOutput,
                                            kGgufFfnGate, kGgufFfnUp, kGgufFfnDown};
      const Weight* bases[kLinears] = {&l.q, &l.k, &l.v, &l.o, &l.gate, &l.up, &l.down};
      for (int li = 0; li < kLinears; ++li)
        for (int e = 0; e < int(E); ++e) {
          const std::string linear = name(linear_names[li]), expert = c.scar_experts[size_t(e)];
          const std::string a_name = compact_expert_tensor_name(linear, expert, kCompactLoraA);
          const std::string b_name = compact_expert_tensor_name(linear, expert, kCompactLoraB);
          const GgufTensorInfo* a = file_.find_tensor(a_name);
          if (!a) continue;
          const int64_t r = a->dims.size() == 2 ? int64_t(a->dims[1]) : 0;
          Expert x;
          x.index = e;
          x.a = weight(a_name, r, bases[li]->cols);
          x.b = weight(b_name, bases[li]->rows, r);
          for (const Weight* w : {&x.a, &x.b})
            if (w->type != QuantType::F32 && w->type != QuantType::F16 && w->type != QuantType::Q8_0)
              fail(path, "tensor " + compact_expert_tensor_name(linear, expert, "lora_*") + ": expected f32, f16 or q8_0");
          l.experts[li].push_back(x);
        }
    }
    for (const Weight* n : {&l.attn_norm, &l.ffn_norm})
      if (n->type != QuantType::F32) fail(path, "tensor " + b + "norm: expected f32");
    if (compact && file_.find_tensor(name(kCompactDtrRouter))) {
      const Weight rw = weight(name(kCompactDtrRouter), 1, H);
      const Weight rb = weight(name(kCompactDtrRouter, "bias"), 1, 1);
      if (rw.type != QuantType::F32 || rb.type != QuantType::F32)
        fail(path, "tensor " + b + kCompactDtrRouter + ".*: expected f32");
      l.routed = true;
      l.router_weight.assign(reinterpret_cast<const float*>(rw.data), reinterpret_cast<const float*>(rw.data) + H);
      std::memcpy(&l.router_bias, rb.data, 4);
    }
    layers_.push_back(std::move(l));
  }
  for (const auto& t : file_.tensors())
    if (!used.count(t.name)) fail(path, "tensor " + t.name + ": not part of the " + c.architecture + " format this runtime reads");
  if (output_norm_.type != QuantType::F32) fail(path, std::string("tensor ") + kGgufOutputNorm + ": expected f32");
  tokenizer_ = load_gguf_tokenizer(file_);
  if (kernels().gemm_q4_0x8) interleave_q4_0_weights();
}

void Model::interleave_q4_0_weights() {
  const bool tied = output_.data == token_embd_.data;
  std::vector<Weight*> matrices{&token_embd_};
  if (!tied) matrices.push_back(&output_);
  for (Layer& l : layers_)
    for (Weight* w : {&l.q, &l.k, &l.v, &l.o, &l.gate, &l.up, &l.down}) matrices.push_back(w);
  for (Weight* w : matrices) {
    if (w->type != QuantType::Q4_0 || !can_interleave_q4_0(w->rows, w->cols)) continue;
    const int64_t blocks = w->cols / 32, groups = w->rows / 8;
    auto& copy = interleaved_.emplace_back(new BlockQ4x8[size_t(groups * blocks)]);
    // A few hundred groups at a time, the mapped pages read so far released as it goes: peak
    // memory grows by one chunk, not by the matrix (SmolLM2's tied embedding is 16 MB).
    constexpr int64_t kChunk = 256;
    for (int64_t g0 = 0; g0 < groups; g0 += kChunk) {
      const int64_t g1 = std::min(groups, g0 + kChunk);
      interleave_q4_0(w->data + size_t(g0 * 8) * w->row_bytes, (g1 - g0) * 8, w->cols, copy.get() + g0 * blocks);
      release_mapped_pages(w->data + size_t(g0 * 8) * w->row_bytes, size_t((g1 - g0) * 8) * w->row_bytes);
    }
    w->data = reinterpret_cast<const uint8_t*>(copy.get());
    w->q4_0x8 = true;
  }
  if (tied) output_ = token_embd_;
}

int Model::routed_blocks() const {
  int n = 0;
  for (const auto& l : layers_) n += l.routed;
  return n;
}

// ---------------------------------------------------------------------------------------------

Session::Session(const Model& model, int64_t context, int threads)
    : model_(model), k_(kernels()), pool_(threads), context_(context) {
  const RuntimeConfig& c = model.config();
  if (context <= 0) fail("Session", "context must be positive");
  const int64_t KVD = c.kv_heads * c.head_dim;
  kcache_.assign(size_t(c.layers), std::vector<float>(size_t(context * KVD)));
  vcache_.assign(size_t(c.layers), std::vector<float>(size_t(context * KVD)));
  cache_len_.assign(size_t(c.layers), 0);
  decisions_.assign(size_t(c.layers), {});
  ensure_rows(1);
  // RoPE tables: theta^(-2i/d) per pair (llama.cpp's interleaved pairs; the exporter permuted
  // q and k rows accordingly).
  const int64_t half = c.head_dim / 2;
  rope_cos_.resize(size_t(context * half));
  rope_sin_ = rope_cos_;
  for (int64_t p = 0; p < context; ++p)
    for (int64_t i = 0; i < half; ++i) {
      const float freq = std::pow(c.theta, -2.0f * float(i) / float(c.head_dim));
      const float angle = float(p) * freq;
      rope_cos_[size_t(p * half + i)] = std::cos(angle);
      rope_sin_[size_t(p * half + i)] = std::sin(angle);
    }
}

void Session::ensure_rows(int64_t rows) {
  if (rows <= capacity_rows_) return;
  const RuntimeConfig& c = model_.config();
  const int64_t H = c.hidden, F = c.ffn, KVD = c.kv_heads * c.head_dim, W = std::max(H, F);
  const size_t R = size_t(rows);
  for (auto* v : {&h_, &xn_, &q_, &a_, &tmp_, &m_, &sub_, &sub_out_}) v->resize(R * size_t(H));
  kk_.resize(R * size_t(KVD));
  vv_.resize(R * size_t(KVD));
  g_.resize(R * size_t(F));
  u_.resize(R * size_t(F));
  in_.resize(R * size_t(W));
  xq_.resize(R * size_t(W / 32 + 1));
  sub_pos_.resize(R);
  sub_index_.resize(R);
  sub_gate_.resize(R);
  scar_choice_.resize(R);
  capacity_rows_ = rows;
}

size_t Session::kv_bytes() const {
  size_t n = 0;
  for (size_t i = 0; i < kcache_.size(); ++i) n += (kcache_[i].size() + vcache_[i].size()) * sizeof(float);
  return n;
}

void Session::reset() {
  length_ = 0;
  std::fill(cache_len_.begin(), cache_len_.end(), 0);
  stats_ = {};
  for (auto& d : decisions_) d.clear();
}

void Session::set_domain(const std::string& expert) {
  const auto& names = model_.config().scar_experts;
  if (expert.empty()) {
    forced_expert_ = -1;
    return;
  }
  const auto it = std::find(names.begin(), names.end(), expert);
  if (it == names.end()) fail("gemkit-run", "--domain " + expert + ": the model has no SCAR expert of that name");
  forced_expert_ = int(it - names.begin());
}

void Session::prepare_input(const float* x, int64_t rows, int64_t n, bool quantize) {
  std::copy(x, x + rows * n, in_.begin());
  if (quantize && n % 32 == 0)
    for (int64_t t = 0; t < rows; ++t) k_.quantize_q8(in_.data() + t * n, xq_.data() + t * (n / 32), n);
  if (quantize && (k_.gemm_q4_0 || k_.gemm_q4_0x8) && n % 64 == 0) {
    xp_.resize(size_t(rows * (n / 64)));
    for (int64_t t = 0; t < rows; ++t) make_act_pairs(xq_.data() + t * (n / 32), n / 32, xp_.data() + t * (n / 64));
  }
}

void Session::matmul(const Weight& w, int64_t rows, float* y) {
  const Kernels& k = k_;
  const BlockQ8* xq = xq_.data();
  const float* x = in_.data();
  const int64_t n = w.cols, nb = n / 32, out = w.rows;
  if (w.q4_0x8) {
    // Groups of eight interleaved rows (runtime/repack.h), split between the threads.
    const ActPair* xp = xp_.data();
    const BlockQ4x8* blocks = reinterpret_cast<const BlockQ4x8*>(w.data);
    pool_.parallel_for(out / 8, [&](int64_t g0, int64_t g1) {
      k.gemm_q4_0x8(blocks + g0 * nb, g1 - g0, xp, rows, n / 64, y + g0 * 8, out);
    });
    return;
  }
  const auto gemm = n % 64 != 0 ? nullptr : w.type == QuantType::Q4_0 ? k.gemm_q4_0 : w.type == QuantType::Q8_0 ? k.gemm_q8_0 : nullptr;
  if (gemm) {
    // Rows in groups of four (the kernels' tile height), so no thread gets a ragged tile.
    const ActPair* xp = xp_.data();
    pool_.parallel_for((out + 3) / 4, [&](int64_t g0, int64_t g1) {
      const int64_t r0 = g0 * 4, r1 = std::min(out, g1 * 4);
      gemm(w.data + size_t(r0) * w.row_bytes, w.row_bytes, r1 - r0, xp, rows, n / 64, y + r0, out);
    });
    return;
  }
  // Four weight rows per pass only for batches: measured on the 100M Q8_0 file it made prompts
  // 1.4x faster but single-token decoding 2x slower (four interleaved row streams instead of one
  // sequential stream; the prefetcher prefers the latter).
  const auto dot4 = rows < 4 ? nullptr : w.type == QuantType::Q4_0 ? k.dot4_q4_0 : w.type == QuantType::Q8_0 ? k.dot4_q8_0 : nullptr;
  pool_.parallel_for(out, [&](int64_t begin, int64_t end) {
    int64_t r = begin;
    if (dot4) {
      // Four rows at a time: the activation blocks are prepared once per four rows.
      float four[4];
      for (; r + 4 <= end; r += 4) {
        const uint8_t* row = w.data + size_t(r) * w.row_bytes;
        for (int64_t t = 0; t < rows; ++t) {
          dot4(row, w.row_bytes, xq + t * nb, n, four);
          for (int j = 0; j < 4; ++j) y[t * out + r + j] = four[j];
        }
      }
    }
    for (; r < end; ++r) {
      const uint8_t* row = w.data + size_t(r) * w.row_bytes;
      // The weight row stays in cache while it meets every input row.
      for (int64_t t = 0; t < rows; ++t) {
        float v = 0;
        switch (w.type) {
          case QuantType::Q8_0: v = k.dot_q8_0(row, xq + t * nb, n); break;
          case QuantType::Q4_0: v = k.dot_q4_0(row, xq + t * nb, n); break;
          case QuantType::F16: v = k.dot_f16(row, x + t * n, n); break;
          case QuantType::F32: v = k.dot_f32(row, x + t * n, n); break;
        }
        y[t * out + r] = v;
      }
    }
  });
}

namespace {

void rms_norm(const float* x, const Weight& w, float eps, int64_t n, float* out) {
  double ss = 0;
  for (int64_t i = 0; i < n; ++i) ss += double(x[i]) * x[i];
  const float scale = 1.0f / std::sqrt(float(ss / double(n)) + eps);
  const float* g = reinterpret_cast<const float*>(w.data);
  for (int64_t i = 0; i < n; ++i) out[i] = x[i] * scale * (g ? g[i] : 1.0f);
}

bool needs_q8(const Weight& w) { return is_block_quantized(w.type); }

}  // namespace

void Session::route_scar(const Layer& l, int64_t rows, const float* x) {
  const RuntimeConfig& c = model_.config();
  const int64_t H = c.hidden, R = c.scar_router_dim, E = int64_t(c.scar_experts.size());
  for (int64_t t = 0; t < rows; ++t) {
    auto& choice = scar_choice_[size_t(t)];
    choice.clear();
    if (forced_expert_ >= 0) {
      choice.push_back({forced_expert_, 1.0f});
      continue;
    }
    // q = W_q rmsnorm(x); z_e = q . k_e / (sqrt(R) T); p = softmax(z) (routing/expert_router.h).
    scar_t_.resize(size_t(std::max(H, E)));
    rms_norm(x + t * H, Weight{}, c.eps, H, scar_t_.data());
    scar_q_.resize(size_t(R));
    for (int64_t r = 0; r < R; ++r) scar_q_[size_t(r)] = k_.dot_f32(l.scar_query.data() + r * H, scar_t_.data(), H);
    std::vector<std::pair<float, int>>& p = scar_p_;
    p.resize(size_t(E));
    float mx = -INFINITY;
    for (int64_t e = 0; e < E; ++e) {
      float z = k_.dot_f32(l.scar_keys.data() + e * R, scar_q_.data(), R) / (std::sqrt(float(R)) * c.scar_temperature);
      if (e == 0 && c.scar_general) z += c.scar_general_bias;
      p[size_t(e)] = {z, int(e)};
      mx = std::max(mx, z);
    }
    double sum = 0;
    for (auto& [v, e] : p) sum += (v = std::exp(v - mx));
    for (auto& [v, e] : p) v = float(v / sum);
    std::stable_sort(p.begin(), p.end(), [](const auto& a, const auto& b) { return a.first > b.first; });
    // Experts by descending p while the mass before each is below tau, at most k_max.
    float before = 0;
    for (int64_t j = 0; j < E && j < c.scar_max_experts && before < c.scar_mass; ++j) {
      choice.push_back({p[size_t(j)].second, p[size_t(j)].first});
      before += p[size_t(j)].first;
    }
    for (auto& [e, g] : choice) g /= before;
  }
}

// One expert row against an activation row: Q8_0 rows against the row quantized to Q8_0 blocks
// (as the base's Q8_0 weights multiply it), f16 and f32 rows against the floats.
float Session::expert_dot(const Weight& w, int64_t row, const float* x, const BlockQ8* xq) const {
  const uint8_t* p = w.data + size_t(row) * w.row_bytes;
  switch (w.type) {
    case QuantType::Q8_0: return k_.dot_q8_0(p, xq, w.cols);
    case QuantType::F16: return k_.dot_f16(p, x, w.cols);
    default: return k_.dot_f32(p, x, w.cols);
  }
}

void Session::add_experts(const std::vector<Expert>& experts, int64_t rows, float* y) {
  const float scale = model_.config().scar_scale;
  for (int64_t t = 0; t < rows; ++t)
    for (const auto& [index, gate] : scar_choice_[size_t(t)])
      for (const Expert& x : experts) {
        if (x.index != index) continue;
        const int64_t r = x.a.rows, in = x.a.cols, out = x.b.rows;
        if (int64_t(scar_t_.size()) < r) scar_t_.resize(size_t(r));
        float* tmp = scar_t_.data();
        const float* xt = in_.data() + t * in;
        if (x.a.type == QuantType::Q8_0) {
          scar_xq_.resize(size_t(in / 32));
          k_.quantize_q8(xt, scar_xq_.data(), in);
        }
        for (int64_t j = 0; j < r; ++j) tmp[j] = expert_dot(x.a, j, xt, scar_xq_.data());
        if (x.b.type == QuantType::Q8_0) {
          scar_tq_.resize(size_t(r / 32));
          k_.quantize_q8(tmp, scar_tq_.data(), r);
        }
        const float g = gate * scale;
        for (int64_t o = 0; o < out; ++o) y[t * out + o] += g * expert_dot(x.b, o, tmp, scar_tq_.data());
      }
}

void Session::attention(int64_t layer, const Layer& l, int64_t rows, const int64_t* positions, const float* x,
                        float* out) {
  const RuntimeConfig& c = model_.config();
  const int64_t H = c.hidden, D = c.head_dim, half = D / 2, KVD = c.kv_heads * D;
  prepare_input(x, rows, H, needs_q8(l.q) || needs_q8(l.k) || needs_q8(l.v));
  if (l.scar) route_scar(l, rows, x);
  matmul(l.q, rows, q_.data());
  matmul(l.k, rows, kk_.data());
  matmul(l.v, rows, vv_.data());
  if (l.scar) {
    add_experts(l.experts[kQ], rows, q_.data());
    add_experts(l.experts[kK], rows, kk_.data());
    add_experts(l.experts[kV], rows, vv_.data());
  }
  const int64_t group = c.heads / c.kv_heads;
  const float scale = 1.0f / std::sqrt(float(D));
  float* K = kcache_[size_t(layer)].data();
  float* V = vcache_[size_t(layer)].data();
  // RoPE, then every row's key and value into the cache. Rows are in causal order, so row t
  // attends to the cache up to its own entry (first + t): appending them all first changes
  // nothing, and the rows' heads can then be computed in parallel.
  const int64_t first = cache_len_[size_t(layer)];
  for (int64_t t = 0; t < rows; ++t) {
    const float* cs = rope_cos_.data() + positions[t] * half;
    const float* sn = rope_sin_.data() + positions[t] * half;
    auto rope = [&](float* v, int64_t heads) {
      for (int64_t h = 0; h < heads; ++h)
        for (int64_t i = 0; i < half; ++i) {
          float& a = v[h * D + 2 * i];
          float& b = v[h * D + 2 * i + 1];
          const float x0 = a, x1 = b;
          a = x0 * cs[i] - x1 * sn[i];
          b = x0 * sn[i] + x1 * cs[i];
        }
    };
    rope(q_.data() + t * H, c.heads);
    rope(kk_.data() + t * KVD, c.kv_heads);
    std::copy(kk_.begin() + t * KVD, kk_.begin() + (t + 1) * KVD, K + (first + t) * KVD);
    std::copy(vv_.begin() + t * KVD, vv_.begin() + (t + 1) * KVD, V + (first + t) * KVD);
  }
  cache_len_[size_t(layer)] = first + rows;
  // One (row, head) per item: softmax(q k / sqrt(D)) v over the row's visible entries.
  pool_.parallel_for(rows * c.heads, [&](int64_t begin, int64_t end) {
    thread_local std::vector<float> att;
    att.resize(size_t(first + rows));
    for (int64_t item = begin; item < end; ++item) {
      const int64_t t = item / c.heads, h = item % c.heads, kv = h / group, n = first + t + 1;
      k_.attend_f32(q_.data() + t * H + h * D, K + kv * D, V + kv * D, KVD, n, D, scale, att.data(),
                    tmp_.data() + t * H + h * D);
    }
  });
  prepare_input(tmp_.data(), rows, H, needs_q8(l.o));
  matmul(l.o, rows, out);
  if (l.scar) add_experts(l.experts[kO], rows, out);
}

void Session::mlp(const Layer& l, int64_t rows, const float* x, float* out) {
  const RuntimeConfig& c = model_.config();
  const int64_t H = c.hidden, F = c.ffn;
  for (int64_t t = 0; t < rows; ++t) rms_norm(x + t * H, l.ffn_norm, c.eps, H, xn_.data() + t * H);
  prepare_input(xn_.data(), rows, H, needs_q8(l.gate) || needs_q8(l.up));
  if (l.scar) route_scar(l, rows, xn_.data());
  matmul(l.gate, rows, g_.data());
  matmul(l.up, rows, u_.data());
  if (l.scar) {
    add_experts(l.experts[kGate], rows, g_.data());
    add_experts(l.experts[kUp], rows, u_.data());
  }
  pool_.parallel_for(rows * F, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) g_[size_t(i)] = g_[size_t(i)] / (1.0f + std::exp(-g_[size_t(i)])) * u_[size_t(i)];
  });
  prepare_input(g_.data(), rows, F, needs_q8(l.down));
  matmul(l.down, rows, out);
  if (l.scar) add_experts(l.experts[kDown], rows, out);
}

// One block on `rows` rows of h (in place), positions given per row.
void Session::block(int64_t li, int64_t rows, const int64_t* positions, float* h) {
  const RuntimeConfig& c = model_.config();
  const Layer& l = model_.layers()[size_t(li)];
  const int64_t H = c.hidden;
  if (!l.routed) {
    for (int64_t t = 0; t < rows; ++t) rms_norm(h + t * H, l.attn_norm, c.eps, H, xn_.data() + t * H);
    attention(li, l, rows, positions, xn_.data(), a_.data());
    for (int64_t i = 0; i < rows * H; ++i) h[i] += a_[size_t(i)];
    mlp(l, rows, h, m_.data());
    for (int64_t i = 0; i < rows * H; ++i) h[i] += m_[size_t(i)];
    return;
  }
  // DTR: gate each row, gather the processed ones into sub_, run the block on them, scatter.
  int64_t k = 0;
  for (int64_t t = 0; t < rows; ++t) {
    rms_norm(h + t * H, Weight{}, c.eps, H, xn_.data());
    float r = l.router_bias;
    for (int64_t i = 0; i < H; ++i) r += l.router_weight[size_t(i)] * xn_[size_t(i)];
    const float gate = 1.0f / (1.0f + std::exp(-r));
    const bool processed = gate > c.dtr_threshold;
    ++stats_.routed_decisions;
    stats_.routed_processed += processed;
    decisions_[size_t(li)].push_back(processed);
    if (!processed) continue;
    std::copy(h + t * H, h + (t + 1) * H, sub_.begin() + k * H);
    sub_pos_[size_t(k)] = positions[t];
    sub_index_[size_t(k)] = t;
    sub_gate_[size_t(k)] = gate;
    ++k;
  }
  if (k > 0) {
    for (int64_t j = 0; j < k; ++j) rms_norm(sub_.data() + j * H, l.attn_norm, c.eps, H, xn_.data() + j * H);
    attention(li, l, k, sub_pos_.data(), xn_.data(), a_.data());
    if (c.dtr_attention_only) {
      for (int64_t j = 0; j < k; ++j)
        for (int64_t i = 0; i < H; ++i) h[sub_index_[size_t(j)] * H + i] += sub_gate_[size_t(j)] * a_[size_t(j * H + i)];
    } else {
      // The block's whole residual update, scaled by the gate: h + g (a + mlp(h + a)).
      for (int64_t i = 0; i < k * H; ++i) sub_out_[size_t(i)] = sub_[size_t(i)] + a_[size_t(i)];
      mlp(l, k, sub_out_.data(), m_.data());
      for (int64_t j = 0; j < k; ++j)
        for (int64_t i = 0; i < H; ++i)
          h[sub_index_[size_t(j)] * H + i] += sub_gate_[size_t(j)] * (a_[size_t(j * H + i)] + m_[size_t(j * H + i)]);
    }
  }
  if (c.dtr_attention_only) {  // the MLP runs on every row
    mlp(l, rows, h, m_.data());
    for (int64_t i = 0; i < rows * H; ++i) h[i] += m_[size_t(i)];
  }
}

const std::vector<float>& Session::eval(const std::vector<int32_t>& tokens, bool all_logits) {
  const RuntimeConfig& c = model_.config();
  const int64_t T = int64_t(tokens.size()), H = c.hidden, V = c.vocab;
  if (T == 0) fail("gemkit-run", "nothing to evaluate");
  if (length_ + T > context_)
    fail("gemkit-run", "the context of " + std::to_string(context_) + " tokens is full (" + std::to_string(length_) +
                           " used, " + std::to_string(T) + " more asked)");
  for (const int32_t token : tokens)
    if (token < 0 || token >= V) fail("gemkit-run", "token id " + std::to_string(token) + " outside the vocabulary");
  // A long prompt goes through in batches of kBatchRows: the row buffers stay small (peak
  // memory), and the matrix kernels take 64 tokens per pass over the weights anyway.
  constexpr int64_t kBatchRows = 64;
  logits_.resize(size_t((all_logits ? T : 1) * V));
  std::vector<int64_t> positions;
  const Weight& e = model_.token_embd();
  for (int64_t t0 = 0; t0 < T; t0 += kBatchRows) {
    const int64_t rows = std::min(kBatchRows, T - t0);
    ensure_rows(rows);
    positions.resize(size_t(rows));
    for (int64_t t = 0; t < rows; ++t) {
      const int64_t token = tokens[size_t(t0 + t)];
      if (e.q4_0x8)
        dequantize_row_q4_0x8(reinterpret_cast<const BlockQ4x8*>(e.data), H, token, h_.data() + t * H);
      else
        dequantize_row(e.type, e.data + size_t(token) * e.row_bytes, H, h_.data() + t * H);
      positions[size_t(t)] = length_ + t;
    }
    for (int64_t li = 0; li < c.layers; ++li) block(li, rows, positions.data(), h_.data());
    length_ += rows;
    stats_.tokens += rows;
    // The head: every row, or the prompt's last one.
    const bool last_batch = t0 + rows == T;
    if (!all_logits && !last_batch) continue;
    const int64_t first = all_logits ? 0 : rows - 1, n = rows - first;
    for (int64_t t = 0; t < n; ++t) rms_norm(h_.data() + (first + t) * H, model_.output_norm(), c.eps, H, xn_.data() + t * H);
    prepare_input(xn_.data(), n, H, needs_q8(model_.output()));
    matmul(model_.output(), n, logits_.data() + (all_logits ? t0 * V : 0));
  }
  return logits_;
}

}  // namespace gemkit::runtime
