#include "model/transformer.h"

#include "core/error.h"
#include "model/chunked_loss.h"
#include "model/loss.h"

namespace gemkit {

// ---------------------------------------------------------------------------------------------
// Config validation: every size the model divides or allocates by, named by its field.

static void require_positive(int64_t value, const char* field) {
  if (value <= 0)
    fail(std::string("ModelConfig.") + field, "must be positive, got " + std::to_string(value));
}
static void require_positive(double value, const char* field) {
  if (!(value > 0))
    fail(std::string("ModelConfig.") + field, "must be positive, got " + std::to_string(value));
}

static void validate_rope_scaling(const RopeScaling& s) {
  if (s.type == "default") return;
  if (s.type != "linear" && s.type != "llama3")
    fail("ModelConfig.rope_scaling.type",
         "expected \"default\", \"linear\" or \"llama3\", got \"" + s.type + "\"");
  require_positive(s.factor, "rope_scaling.factor");
  if (s.type == "llama3") {
    require_positive(s.low_freq_factor, "rope_scaling.low_freq_factor");
    require_positive(s.original_max_position_embeddings, "rope_scaling.original_max_position_embeddings");
    if (!(s.high_freq_factor > s.low_freq_factor))
      fail("ModelConfig.rope_scaling.high_freq_factor",
           "must exceed low_freq_factor " + std::to_string(s.low_freq_factor) + ", got " +
               std::to_string(s.high_freq_factor));
  }
}

void validate_config(const ModelConfig& c) {
  require_positive(c.vocab_size, "vocab_size");
  require_positive(c.hidden_size, "hidden_size");
  require_positive(c.intermediate_size, "intermediate_size");
  require_positive(c.num_hidden_layers, "num_hidden_layers");
  require_positive(c.num_attention_heads, "num_attention_heads");
  // An explicit head_dim (decoder) sizes the heads on its own; otherwise they split hidden_size.
  if (c.explicit_head_dim < 0) require_positive(c.explicit_head_dim, "explicit_head_dim");
  if (c.explicit_head_dim > 0 && c.family == Family::Encoder)
    fail("ModelConfig.explicit_head_dim", "the encoder family splits hidden_size into its heads, got " +
                                              std::to_string(c.explicit_head_dim));
  if (c.explicit_head_dim == 0 && c.hidden_size % c.num_attention_heads != 0)
    fail("ModelConfig.num_attention_heads",
         "hidden_size " + std::to_string(c.hidden_size) + " is not divisible by " +
             std::to_string(c.num_attention_heads) + " heads");
  if (!is_known_activation(c.hidden_act))
    fail("ModelConfig.hidden_act", "unknown activation '" + c.hidden_act + "'");
  if (c.head == Head::SequenceClassification) require_positive(c.num_labels, "num_labels");

  if (c.family == Family::Decoder) {
    require_positive(c.num_key_value_heads, "num_key_value_heads");
    if (c.num_attention_heads % c.num_key_value_heads != 0)
      fail("ModelConfig.num_key_value_heads",
           std::to_string(c.num_attention_heads) + " attention heads are not divisible by " +
               std::to_string(c.num_key_value_heads) + " key/value heads");
    if (c.head_dim() % 2 != 0)
      fail("ModelConfig.num_attention_heads",
           "head_dim " + std::to_string(c.head_dim()) + " must be even for rotary embeddings");
    require_positive(c.rms_norm_eps, "rms_norm_eps");
    require_positive(c.rope_theta, "rope_theta");
    validate_rope_scaling(c.rope_scaling);
    if (c.head == Head::MaskedLM)
      fail("ModelConfig.head", "the decoder family has no masked-LM head");
  } else {
    require_positive(c.max_position_embeddings, "max_position_embeddings");
    require_positive(c.type_vocab_size, "type_vocab_size");
    require_positive(c.layer_norm_eps, "layer_norm_eps");
    if (c.num_key_value_heads != 0 && c.num_key_value_heads != c.num_attention_heads)
      fail("ModelConfig.num_key_value_heads", "the encoder family has no grouped-query attention");
    if (c.head == Head::CausalLM) fail("ModelConfig.head", "the encoder family has no causal-LM head");
  }
}

// ---------------------------------------------------------------------------------------------
// Construction: modules are registered under Scopes so that parameter names are HF names.

TransformerImpl::TransformerImpl(const ModelConfig& config) : config_(config) {
  validate_config(config_);
  const ModelConfig& c = config_;
  const int64_t H = c.hidden_size;

  if (c.family == Family::Decoder) {
    auto model = register_module("model", Scope());
    embed_tokens_ = model->register_module("embed_tokens", make_embedding(c.vocab_size, H));
    auto layers = model->register_module("layers", Scope());
    for (int64_t i = 0; i < c.num_hidden_layers; ++i)
      base_blocks_.push_back(layers->register_module(std::to_string(i),
                                                     std::make_shared<DecoderBlock>(c)));
    final_norm_ = model->register_module("norm", RMSNorm(H, c.rms_norm_eps));
    if (c.head == Head::CausalLM && !c.tie_word_embeddings)
      lm_head_ = register_module("lm_head", Linear(H, c.vocab_size, false));
    if (c.head == Head::SequenceClassification)
      score_ = register_module("score", Linear(H, c.num_labels, false));
    rope_.theta = c.rope_theta;
    rope_.head_dim = c.head_dim();
    rope_.scaling = c.rope_scaling;
  } else {
    // BertFor* checkpoints put the body under "bert."; a bare BertModel does not.
    torch::nn::Module* body = this;
    if (c.bert_prefix) body = register_module("bert", Scope()).get();
    auto embeddings = body->register_module("embeddings", Scope());
    word_embeddings_ = embeddings->register_module("word_embeddings", make_embedding(c.vocab_size, H));
    position_embeddings_ = embeddings->register_module(
        "position_embeddings", make_embedding(c.max_position_embeddings, H));
    token_type_embeddings_ = embeddings->register_module(
        "token_type_embeddings", make_embedding(c.type_vocab_size, H));
    embeddings_norm_ = embeddings->register_module("LayerNorm", make_layer_norm(H, c.layer_norm_eps));
    auto encoder = body->register_module("encoder", Scope());
    auto layers = encoder->register_module("layer", Scope());
    for (int64_t i = 0; i < c.num_hidden_layers; ++i)
      base_blocks_.push_back(layers->register_module(std::to_string(i),
                                                     std::make_shared<EncoderBlock>(c)));
    if (c.head == Head::MaskedLM) {
      // The decoder matrix is tied to the word embeddings; only its bias is a parameter.
      auto predictions = register_module("cls", Scope())->register_module("predictions", Scope());
      auto transform = predictions->register_module("transform", Scope());
      mlm_transform_ = transform->register_module("dense", Linear(H, H, true));
      mlm_norm_ = transform->register_module("LayerNorm", make_layer_norm(H, c.layer_norm_eps));
      mlm_bias_ = predictions->register_parameter("bias", torch::zeros({c.vocab_size}));
    }
    if (c.head == Head::SequenceClassification) {
      auto pooler = body->register_module("pooler", Scope());
      pooler_ = pooler->register_module("dense", Linear(H, H, true));
      classifier_ = register_module("classifier", Linear(H, c.num_labels, true));
    }
  }
  active_blocks_ = base_blocks_;
  index_linears();
}

void TransformerImpl::index_linears() {
  for (const auto& item : named_modules("", /*include_self=*/false)) {
    auto linear = std::dynamic_pointer_cast<LinearImpl>(item.value());
    if (!linear) continue;
    linear_paths_.push_back(item.key());
    linears_.emplace(item.key(), Linear(linear));
  }
}

std::set<std::string> TransformerImpl::ignorable_checkpoint_tensors() const {
  const ModelConfig& c = config_;
  std::set<std::string> names;
  if (c.family == Family::Decoder) {
    // Older Llama checkpoints saved the RoPE frequencies; gemkit recomputes them.
    for (int64_t i = 0; i < c.num_hidden_layers; ++i)
      names.insert("model.layers." + std::to_string(i) + ".self_attn.rotary_emb.inv_freq");
    if (c.head != Head::CausalLM || c.tie_word_embeddings) names.insert("lm_head.weight");
    if (c.head != Head::SequenceClassification) names.insert("score.weight");
    return names;
  }
  const std::string body = c.bert_prefix ? "bert." : "";
  names.insert(body + "embeddings.position_ids");
  names.insert("cls.seq_relationship.weight");  // next-sentence head of BertForPreTraining
  names.insert("cls.seq_relationship.bias");
  names.insert("cls.predictions.decoder.weight");  // tied to the word embeddings
  names.insert("cls.predictions.decoder.bias");    // tied to cls.predictions.bias
  if (c.head != Head::MaskedLM)
    for (const char* n : {"cls.predictions.bias", "cls.predictions.transform.dense.weight",
                          "cls.predictions.transform.dense.bias",
                          "cls.predictions.transform.LayerNorm.weight",
                          "cls.predictions.transform.LayerNorm.bias"})
      names.insert(n);
  if (c.head != Head::SequenceClassification)
    for (const std::string& n : {body + "pooler.dense.weight", body + "pooler.dense.bias",
                                std::string("classifier.weight"), std::string("classifier.bias")})
      names.insert(n);
  return names;
}

// ---------------------------------------------------------------------------------------------
// Forward: embeddings -> blocks -> head. Data flows top to bottom.

// Packed documents: the position of each token within its segment (segments are contiguous).
static torch::Tensor positions_in_segments(const torch::Tensor& segments) {
  const int64_t B = segments.size(0), T = segments.size(1);
  auto index = torch::arange(T, segments.options()).unsqueeze(0).expand({B, T});
  auto starts = torch::ones({B, T}, segments.options().dtype(torch::kBool));
  if (T > 1) starts.narrow(1, 1, T - 1).copy_(segments.narrow(1, 1, T - 1) != segments.narrow(1, 0, T - 1));
  auto segment_start = std::get<0>(torch::where(starts, index, torch::zeros_like(index)).cummax(1));
  return index - segment_start;
}

ModelOutput TransformerImpl::forward(const torch::Tensor& input_ids, const ForwardOptions& options) {
  if (input_ids.dim() != 2) fail("Transformer::forward", "input_ids must be [batch, seq]");
  if (options.attention_mask.defined() && options.attention_mask.sizes() != input_ids.sizes())
    fail("Transformer::forward", "attention_mask must have the shape of input_ids");
  if (options.segment_ids.defined()) {
    if (options.segment_ids.sizes() != input_ids.sizes())
      fail("Transformer::forward", "segment_ids must have the shape of input_ids");
    if (options.cache) fail("Transformer::forward", "segment_ids (packed documents) cannot be used with a KV cache");
  }
  return config_.family == Family::Decoder ? forward_decoder(input_ids, options)
                                           : forward_encoder(input_ids, options);
}

torch::Tensor TransformerImpl::run_blocks(torch::Tensor h, const BlockContext& context,
                                          KVCache* cache) {
  for (int64_t i = 0; i < num_blocks(); ++i) {
    BlockContext ctx = context;
    ctx.layer_index = i;
    ctx.kv = cache ? &cache->layer(i) : nullptr;
    h = active_blocks_[static_cast<size_t>(i)]->forward(h, ctx);
  }
  return h;
}

ModelOutput TransformerImpl::forward_decoder(const torch::Tensor& input_ids,
                                             const ForwardOptions& options) {
  const int64_t B = input_ids.size(0), T = input_ids.size(1);
  KVCache* cache = options.cache;
  if (cache && cache->num_layers() != num_blocks())
    fail("Transformer::forward", "KV cache has " + std::to_string(cache->num_layers()) +
                                     " layers, the model " + std::to_string(num_blocks()));
  auto id_opts = input_ids.options().dtype(torch::kInt64);

  // Which tokens are real, and their positions (continuing from the cache).
  BlockContext ctx;
  ctx.causal = true;
  torch::Tensor valid;
  if (options.attention_mask.defined()) {
    valid = options.attention_mask.to(torch::kBool);
    ctx.token_valid = valid;
  }
  if (options.segment_ids.defined()) ctx.segments = options.segment_ids.to(torch::kInt64);
  if (options.position_ids.defined()) {
    ctx.positions = options.position_ids.to(torch::kInt64);
  } else if (ctx.segments.defined()) {
    ctx.positions = positions_in_segments(ctx.segments);
  } else if (valid.defined()) {
    ctx.positions = (valid.to(torch::kInt64).cumsum(1) - 1).clamp_min(0);
  } else {
    ctx.positions = torch::arange(T, id_opts).unsqueeze(0).expand({B, T});
  }
  if (!options.position_ids.defined() && cache && cache->length() > 0) {
    if (cache->next_positions().size(0) != B)
      fail("Transformer::forward", "batch size differs from the KV cache's; clear() it first");
    ctx.positions = ctx.positions + cache->next_positions().unsqueeze(1);
  }

  LinearHook* embedding_hook = embedding_hook_enabled_ ? embedding_hook_.get() : nullptr;
  const torch::Tensor table = embedding_hook ? embedding_hook->transform_weight(embed_tokens_->weight) : embed_tokens_->weight;
  auto h = embedding_hook ? torch::nn::functional::embedding(input_ids, table) : embed_tokens_(input_ids);
  std::tie(ctx.cos, ctx.sin) = rope_.tables(ctx.positions, h.scalar_type());
  h = final_norm_(run_blocks(h, ctx, cache));
  if (cache) cache->advance(valid.defined() ? valid : torch::ones({B, T}, id_opts.dtype(torch::kBool)));

  ModelOutput out;
  out.hidden = h;
  if (config_.head == Head::CausalLM && !options.skip_logits) {
    out.logits = output_logits(options.last_token_logits_only ? h.narrow(1, T - 1, 1) : h);
  } else if (config_.head == Head::SequenceClassification) {
    // Pool the last real token of each row (HF LlamaForSequenceClassification): from the
    // attention mask, else from pad_token_id, else the last position.
    torch::Tensor real = valid;
    if (!real.defined() && config_.pad_token_id >= 0) real = input_ids != config_.pad_token_id;
    torch::Tensor last;
    if (real.defined()) {
      auto index = torch::arange(T, id_opts).unsqueeze(0).expand({B, T});
      last = torch::where(real, index, torch::full({}, -1, id_opts)).amax(1).clamp_min(0);
    } else {
      last = torch::full({B}, T - 1, id_opts);
    }
    auto pooled = h.index({torch::arange(B, id_opts), last});  // [B, hidden]
    out.logits = score_(pooled);
  }
  return out;
}

ModelOutput TransformerImpl::forward_encoder(const torch::Tensor& input_ids,
                                             const ForwardOptions& options) {
  const int64_t B = input_ids.size(0), T = input_ids.size(1);
  if (options.cache) fail("Transformer::forward", "the encoder family has no KV cache");
  if (T > config_.max_position_embeddings)
    fail("Transformer::forward", "sequence of " + std::to_string(T) +
                                     " tokens exceeds max_position_embeddings " +
                                     std::to_string(config_.max_position_embeddings));
  auto id_opts = input_ids.options().dtype(torch::kInt64);

  BlockContext ctx;
  ctx.causal = false;
  if (options.segment_ids.defined()) ctx.segments = options.segment_ids.to(torch::kInt64);
  ctx.positions = options.position_ids.defined() ? options.position_ids.to(torch::kInt64)
                  : ctx.segments.defined()      ? positions_in_segments(ctx.segments)
                                                : torch::arange(T, id_opts).unsqueeze(0).expand({B, T});
  if (options.attention_mask.defined()) ctx.token_valid = options.attention_mask.to(torch::kBool);
  auto token_types = options.token_type_ids.defined() ? options.token_type_ids.to(torch::kInt64)
                                                      : torch::zeros({B, T}, id_opts);

  auto h = word_embeddings_(input_ids) + position_embeddings_(ctx.positions) +
           token_type_embeddings_(token_types);
  h = run_blocks(embeddings_norm_(h), ctx, nullptr);

  ModelOutput out;
  out.hidden = h;
  if (config_.head == Head::MaskedLM) {
    auto t = mlm_norm_(activation(config_.hidden_act, mlm_transform_(h)));
    out.logits = torch::nn::functional::linear(t, word_embeddings_->weight, mlm_bias_);
  } else if (config_.head == Head::SequenceClassification) {
    auto pooled = torch::tanh(pooler_(h.select(1, 0)));  // the [CLS] token
    out.logits = classifier_(pooled);
  }
  return out;
}

torch::Tensor TransformerImpl::loss(const ModelOutput& output, const torch::Tensor& labels) const {
  switch (config_.head) {
    case Head::CausalLM: return causal_lm_loss(output.logits, labels);
    case Head::MaskedLM: return masked_lm_loss(output.logits, labels);
    case Head::SequenceClassification: return classification_loss(output.logits, labels);
    case Head::None: break;
  }
  fail("Transformer::loss", "a model without a head has no loss");
}

torch::Tensor TransformerImpl::output_logits(const torch::Tensor& x) {
  if (config_.head != Head::CausalLM) fail("Transformer::output_logits", "needs a CausalLM head");
  if (lm_head_) return lm_head_(x);
  LinearHook* hook = embedding_hook_enabled_ ? embedding_hook_.get() : nullptr;
  if (!hook) return torch::nn::functional::linear(x, embed_tokens_->weight);
  return torch::nn::functional::linear(hook->transform_input(x), hook->transform_weight(embed_tokens_->weight));
}

bool TransformerImpl::chunked_lm_loss_supported() const {
  return config_.head == Head::CausalLM && (!lm_head_ || !lm_head_->hooks_enabled() || lm_head_->hooks().empty());
}

torch::Tensor TransformerImpl::chunked_lm_loss(const torch::Tensor& hidden, const torch::Tensor& labels,
                                               int64_t chunk_tokens) const {
  if (!chunked_lm_loss_supported())
    fail("Transformer::chunked_lm_loss", "needs a CausalLM whose lm_head has no hooks (use loss() on the logits)");
  // The same output layer as forward(): lm_head, or the tied embedding table through the
  // embedding hook (fake quantization of the table and of its input).
  torch::Tensor x = hidden, weight;
  if (lm_head_) {
    weight = lm_head_->weight;
  } else {
    LinearHook* hook = embedding_hook_enabled_ ? embedding_hook_.get() : nullptr;
    weight = hook ? hook->transform_weight(embed_tokens_->weight) : embed_tokens_->weight;
    if (hook) x = hook->transform_input(x);
  }
  const int64_t B = x.size(0), T = x.size(1), H = x.size(2);
  // Position t predicts labels[t + 1], as causal_lm_loss.
  const torch::Tensor inputs = x.narrow(1, 0, T - 1).reshape({B * (T - 1), H});
  const torch::Tensor targets = labels.narrow(1, 1, T - 1).reshape({B * (T - 1)});
  return chunked_cross_entropy(inputs, weight, targets, chunk_tokens);
}

// ---------------------------------------------------------------------------------------------
// Hooks.

Linear TransformerImpl::linear(const std::string& path) const {
  auto it = linears_.find(path);
  if (it == linears_.end())
    fail("Transformer::linear", "no linear layer at '" + path + "' (see linear_paths())");
  return it->second;
}

void TransformerImpl::set_linear_hooks_enabled(bool enabled) {
  for (auto& item : linears_) item.second->set_hooks_enabled(enabled);
  embedding_hook_enabled_ = enabled;
}

static void check_block_index(int64_t i, int64_t n) {
  if (i < 0 || i >= n)
    fail("Transformer::block", "index " + std::to_string(i) + " out of range (" +
                                   std::to_string(n) + " blocks)");
}

BlockPtr TransformerImpl::block(int64_t i) const {
  check_block_index(i, num_blocks());
  return active_blocks_[static_cast<size_t>(i)];
}

BlockPtr TransformerImpl::base_block(int64_t i) const {
  check_block_index(i, num_blocks());
  return base_blocks_[static_cast<size_t>(i)];
}

void TransformerImpl::set_block(int64_t i, BlockPtr wrapper) {
  check_block_index(i, num_blocks());
  active_blocks_[static_cast<size_t>(i)] = wrapper ? wrapper : base_blocks_[static_cast<size_t>(i)];
}

torch::Device TransformerImpl::device() const {
  for (const auto& p : parameters()) return p.device();
  return torch::Device(torch::kCPU);
}

}  // namespace gemkit
