// Recipe schema, TOML parsing/validation, overrides and serialisation.
#include "train/recipe.h"

#include <toml++/toml.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <set>
#include <sstream>

#include "core/error.h"
#include "core/file_io.h"
#include "core/utf8.h"
#include "model/lora.h"
#include "quant/qat.h"
#include "routing/scar.h"
#include "routing/token_router.h"

namespace gemkit {

// ---------------------------------------------------------------------------------------------
// The schema: every valid key, one line each. Only keys that a command reads belong here.
// Defaults are written the way they would be on the command line ("0.8", "cpu", "a,b"). Keys
// that configure a module's options struct (lora.*, dtr.*, scar.*, quant.activations) take
// their default from that struct, so the module and the recipe cannot disagree.
namespace {
using T = RecipeType;
constexpr double kInf = std::numeric_limits<double>::infinity();
constexpr double kMaxInt = 9.2e18;  // below INT64_MAX so the double comparison is exact enough

std::string format_double(double x);  // below, with the TOML output

// Defaults as command-line text.
std::string text(double v) { return format_double(v); }
std::string text(int64_t v) { return std::to_string(v); }
std::string text(uint64_t v) { return std::to_string(v); }
std::string text(bool v) { return v ? "true" : "false"; }
std::string text(const std::vector<std::string>& list) {
  std::string out;
  for (const std::string& s : list) out += (out.empty() ? "" : ",") + s;
  return out;
}
}  // namespace

const std::vector<RecipeKey>& recipe_schema() {
  static const std::vector<RecipeKey> schema = [] {
    const LoraOptions lora;
    const TokenRouterOptions dtr;
    const ScarOptions scar;
    const QatOptions qat;
    return std::vector<RecipeKey>{
        // model: which checkpoint a command works on, and where it runs.
        {"model.path", T::String, std::nullopt, -kInf, kInf, "", "checkpoint folder (Hugging Face layout)"},
        {"model.device", T::String, "cpu", -kInf, kInf, "cpu|cuda", "device to run on"},
        // model.init: the architecture of a randomly initialised model (`gemkit model init`).
        {"model.init.architecture", T::String, "LlamaForCausalLM", -kInf, kInf, "LlamaForCausalLM|Qwen2ForCausalLM|BertForMaskedLM|BertForSequenceClassification", "Hugging Face architecture (decides family and head)"},
        {"model.init.vocab_size", T::Int, std::nullopt, 8, kMaxInt, "", "vocabulary size; default: the tokenizer's"},
        {"model.init.hidden_size", T::Int, "256", 8, 65536, "", "model width"},
        {"model.init.intermediate_size", T::Int, "688", 8, 262144, "", "MLP width"},
        {"model.init.num_hidden_layers", T::Int, "4", 1, 256, "", "number of transformer blocks"},
        {"model.init.num_attention_heads", T::Int, "4", 1, 256, "", "query heads (must divide hidden_size)"},
        {"model.init.num_key_value_heads", T::Int, std::nullopt, 1, 256, "", "key/value heads (GQA); default: num_attention_heads"},
        {"model.init.max_position_embeddings", T::Int, "512", 8, 1048576, "", "longest sequence"},
        {"model.init.rope_theta", T::Float, "10000.0", 1, 1e9, "", "RoPE base (decoder family)"},
        {"model.init.tie_word_embeddings", T::Bool, "true", -kInf, kInf, "", "share the input embedding and output matrix"},
        {"model.init.num_labels", T::Int, "2", 1, 100000, "", "classes (BertForSequenceClassification)"},
        {"model.init.seed", T::Int, "0", 0, kMaxInt, "", "random seed of the initialisation"},
        // tokenizer: SentencePiece training (`gemkit tokenizer train`).
        {"tokenizer.input", T::StringList, std::nullopt, -kInf, kInf, "", "text files to train on (one sentence or paragraph per line)"},
        {"tokenizer.out", T::String, std::nullopt, -kInf, kInf, "", "output folder (gets tokenizer.model and tokenizer.vocab)"},
        {"tokenizer.vocab_size", T::Int, "8000", 16, 1048576, "", "vocabulary size"},
        {"tokenizer.model_type", T::String, "bpe", -kInf, kInf, "bpe|unigram", "SentencePiece algorithm"},
        {"tokenizer.character_coverage", T::Float, "0.9995", 0.5, 1.0, "", "share of characters covered by the vocabulary"},
        {"tokenizer.normalization_rule", T::String, "identity", -kInf, kInf, "identity|nmt_nfkc|nfkc|nmt_nfkc_cf|nfkc_cf", "text normalization before training and encoding"},
        {"tokenizer.byte_fallback", T::Bool, "true", -kInf, kInf, "", "unknown characters become UTF-8 byte tokens"},
        {"tokenizer.split_digits", T::Bool, "false", -kInf, kInf, "", "every digit is its own piece"},
        {"tokenizer.input_sentence_size", T::Int, "0", 0, kMaxInt, "", "lines sampled for training; 0: all"},
        {"tokenizer.seed", T::Int, "42", 0, 4294967295.0, "", "random seed of the trainer"},
        // generation: sampling (`gemkit generate`).
        {"generation.prompt", T::String, std::nullopt, -kInf, kInf, "", "text to continue"},
        {"generation.max_new_tokens", T::Int, "64", 1, 1000000, "", "tokens to generate"},
        {"generation.temperature", T::Float, "0.8", 0.0, 100.0, "", "sampling temperature; 0: greedy"},
        {"generation.top_k", T::Int, "40", 0, 1000000000, "", "sample among the k most likely tokens; 0: all"},
        {"generation.top_p", T::Float, "0.95", 0.0, 1.0, "", "nucleus sampling mass; 1: off"},
        {"generation.seed", T::Int, "0", 0, kMaxInt, "", "random seed of the sampler"},
        // eval: `gemkit eval` (eval/evaluate.h): perplexity per domain, task scores, bootstrap intervals.
        {"eval.tasks", T::String, std::nullopt, -kInf, kInf, "", "suite or domain folder, or comma-separated task JSONL files"},
        {"eval.corpus", T::String, std::nullopt, -kInf, kInf, "", "suite or domain folder, or comma-separated corpus JSONL files, for perplexity"},
        {"eval.split", T::String, "test", -kInf, kInf, "train|validation|test", "split of the tasks and the corpus"},
        {"eval.out", T::String, std::nullopt, -kInf, kInf, "", "report JSON path (markdown next to it); default out/eval/<model>.json"},
        {"eval.batch_size", T::Int, "8", 1, 100000, "", "rows per forward pass (padded to the longest)"},
        {"eval.seq_len", T::Int, "512", 2, 1048576, "", "longest row in tokens; capped at max_position_embeddings"},
        {"eval.precision", T::String, "fp32", -kInf, kInf, "fp32|bf16", "bf16: autocast mixed precision for the forward passes (log-probabilities in fp32); needs a CPU with AVX512_BF16 or AMX"},
        {"eval.max_items", T::Int, "0", 0, kMaxInt, "", "items per task, the first ones (quick runs); 0: all"},
        {"eval.max_documents", T::Int, "0", 0, kMaxInt, "", "documents per corpus file for perplexity; 0: all"},
        {"eval.max_tokens", T::Int, "0", 0, kMaxInt, "",
         "tokens per corpus for perplexity (whole documents in file order until reached); 0: all"},
        {"eval.bootstrap_resamples", T::Int, "1000", 1, 1000000, "", "bootstrap resamples per figure"},
        {"eval.confidence", T::Float, "0.95", 0.5, 0.999, "", "confidence level of the percentile intervals"},
        {"eval.seed", T::Int, "1234", 0, kMaxInt, "", "seed of the bootstrap resampling"},
        {"eval.task_format", T::String, "text", -kInf, kInf, "text|chat", "task items as running text (\"{context}\\nAnswer:\", base models) or as a chat turn through the model's chat template (instruct models)"},
        {"eval.scar_general_bias", T::Float, std::nullopt, -1e3, 1e3, "", "routed checkpoints with SCAR: the general expert's router logit bias to evaluate with (default: the checkpoint's)"},
        {"eval.dtr_rule", T::String, "threshold", -kInf, kInf, "threshold|top-k", "token router rule of a routed checkpoint: threshold (causal) or top-k (the training rule)"},
        // train: the training loop (`gemkit train`, train/trainer.h).
        {"train.data", T::StringList, std::nullopt, -kInf, kInf, "", "token shards to train on (gemkit data prepare)"},
        {"train.data_weights", T::StringList, std::nullopt, -kInf, kInf, "", "relative share of rows per train.data shard; default: equal"},
        {"train.validation", T::String, std::nullopt, -kInf, kInf, "", "held-out token shard for val_loss; default: none"},
        {"train.tokenizer", T::String, std::nullopt, -kInf, kInf, "", "tokenizer of a randomly initialised model (when model.path is not set)"},
        {"train.mode", T::String, "full", -kInf, kInf, "full|frozen|lora", "full: every weight trains; frozen: only added modules train; lora: low-rank adapters (lora.*) on a frozen base"},
        {"train.batch_size", T::Int, "8", 1, 1000000, "", "rows per micro-batch"},
        {"train.seq_len", T::Int, "256", 2, 1048576, "", "tokens per row"},
        {"train.chat_loss", T::String, "answers", -kInf, kInf, "answers|all", "chat examples in the data: train on the assistant's answers only, or on every token"},
        {"train.chat_overflow", T::String, "drop", -kInf, kInf, "drop|truncate", "a chat example longer than seq_len: dropped (counted on stderr) or cut to its first seq_len tokens"},
        {"train.grad_accum", T::Int, "1", 1, 100000, "", "micro-batches per optimizer step"},
        {"train.lr", T::Float, "3e-4", 0.0, 10.0, "", "peak learning rate"},
        {"train.schedule", T::String, "cosine", -kInf, kInf, "constant|linear|cosine", "learning-rate decay after warmup"},
        {"train.warmup_steps", T::Int, "0", 0, kMaxInt, "", "linear warmup steps"},
        {"train.min_lr_ratio", T::Float, "0.1", 0.0, 1.0, "", "final learning rate / peak (linear, cosine)"},
        {"train.weight_decay", T::Float, "0.1", 0.0, 10.0, "", "AdamW weight decay on matrices"},
        {"train.no_decay", T::StringList, "norm,bias,embed,LayerNorm", -kInf, kInf, "", "parameter-name substrings exempt from weight decay (1-D parameters always are)"},
        {"train.beta1", T::Float, "0.9", 0.0, 1.0, "", "AdamW beta1"},
        {"train.beta2", T::Float, "0.95", 0.0, 1.0, "", "AdamW beta2"},
        {"train.eps", T::Float, "1e-8", 0.0, 1.0, "", "AdamW epsilon"},
        {"train.mofo_fraction", T::Float, "1.0", 1e-6, 1.0, "",
         "MoFO: share of each parameter tensor's entries updated per step, those with the largest momentum; 1: AdamW"},
        {"train.max_grad_norm", T::Float, "1.0", 0.0, kInf, "", "clip the global gradient norm to this; 0: off"},
        {"train.max_steps", T::Int, "0", 0, kMaxInt, "", "budget in optimizer steps; 0: none (some budget must be set)"},
        {"train.max_tokens", T::Int, "0", 0, kMaxInt, "", "budget in real tokens seen; 0: none"},
        {"train.max_epochs", T::Float, "0", 0.0, kInf, "", "budget in epochs of the first train.data shard; 0: none"},
        {"train.checkpoint_every", T::Int, "100", 0, kMaxInt, "", "steps between checkpoints; 0: only the final one"},
        {"train.keep_last", T::Int, "3", 0, kMaxInt, "", "newest checkpoints kept (the best is kept too); 0: all"},
        {"train.eval_every", T::Int, "0", 0, kMaxInt, "", "steps between validations (also at every checkpoint); 0: checkpoints only"},
        {"train.eval_max_batches", T::Int, "0", 0, kMaxInt, "", "validation batches used; 0: the whole held-out shard"},
        {"train.best_metric", T::String, "val_loss", -kInf, kInf, "", "metric that picks RUN/best; empty: none"},
        {"train.best_mode", T::String, "min", -kInf, kInf, "min|max", "whether lower or higher best_metric is better"},
        {"train.max_consecutive_nonfinite", T::Int, "5", 1, kMaxInt, "", "stop after this many skipped non-finite steps in a row"},
        {"train.outlier_window", T::Int, "0", 0, 100000, "", "steps in the rolling z-score window for outlier skipping; 0: off"},
        {"train.outlier_zscore", T::Float, "6.0", 0.0, kInf, "", "skip a step whose loss or grad norm is this many sd above the window"},
        {"train.log_every", T::Int, "10", 1, kMaxInt, "", "steps between console lines when stdout is not a terminal"},
        {"train.seed", T::Int, "0", 0, kMaxInt, "", "seed of data order, masking and the trainer's RNG"},
        {"train.precision", T::String, "fp32", -kInf, kInf, "fp32|bf16", "bf16: autocast mixed precision (matrix products in bf16; weights, gradients, optimizer state, norms and the loss in fp32); needs a CPU with AVX512_BF16 or AMX"},
        {"train.loss_chunk_tokens", T::Int, "1024", 0, kMaxInt, "", "causal LM loss in chunks of this many positions, never holding [batch, seq, vocab] logits (used when no loss term reads the logits); 0: full logits"},
        {"train.lora_merge_on_save", T::Bool, "false", -kInf, kInf, "", "lora mode: also write RUN/merged, a Hugging Face checkpoint with the adapters folded in"},
        // lora: adapters of train.mode = "lora" (model/lora.h; written as PEFT adapter folders).
        {"lora.rank", T::Int, text(lora.rank), 1, 65536, "", "adapter rank r"},
        {"lora.alpha", T::Float, text(lora.alpha), 1e-9, 1e9, "", "scale numerator: scale = alpha / r (alpha / sqrt(r) with rslora)"},
        {"lora.rslora", T::Bool, text(lora.rslora), -kInf, kInf, "", "rank-stabilised scale alpha / sqrt(r)"},
        {"lora.dropout", T::Float, text(lora.dropout), 0.0, 0.999, "", "dropout on the adapter input while training"},
        {"lora.target_modules", T::StringList, text(lora.target_modules), -kInf, kInf, "", "module names, \"re:<regex>\" or \"all-linear\" (PEFT's rules)"},
        {"lora.seed", T::Int, text(lora.seed), 0, kMaxInt, "", "seed of the adapter initialisation and dropout masks"},
        // dtr: Dynamic Token Router (routing/token_router.h; docs/design/gem-method.md section 2).
        {"dtr.enabled", T::Bool, "false", -kInf, kInf, "", "route tokens around whole blocks (Mixture-of-Depths, causal)"},
        {"dtr.blocks", T::StringList, std::nullopt, -kInf, kInf, "", "routed block indices; default: every other block, never the first or last"},
        {"dtr.capacity", T::Float, text(dtr.capacity), 1e-6, 1.0, "", "training: share of each sequence's tokens a routed block processes (top-k)"},
        {"dtr.threshold", T::Float, text(dtr.threshold), 1e-6, 0.999999, "", "inference: a token is processed when its gate exceeds this"},
        {"dtr.initial_bias", T::Float, text(dtr.initial_bias), -100, 100, "", "router bias at start (gate sigmoid(3) = 0.95: close to the dense model)"},
        {"dtr.attention_only", T::Bool, text(dtr.attention_only), -kInf, kInf, "", "route attention only; the MLP runs on every token"},
        {"dtr.anneal_steps", T::Int, text(dtr.anneal_steps), 0, kMaxInt, "", "capacity goes from 1.0 to dtr.capacity over this many steps"},
        {"dtr.seed", T::Int, text(dtr.seed), 0, kMaxInt, "", "seed of the router initialisation"},
        {"dtr.aux_weight", T::Float, "0.01", 0.0, 1e6, "", "weight of the causal predictor's binary cross-entropy"},
        // scar: Sparse Cross-Attention Router (routing/scar.h; docs/design/gem-method.md section 3).
        {"scar.enabled", T::Bool, "false", -kInf, kInf, "", "domain experts (low-rank adapters) chosen per token by a cross-attention router"},
        {"scar.experts", T::StringList, std::nullopt, -kInf, kInf, "", "domain expert names (domain names of the token shards, e.g. law)"},
        {"scar.frozen_experts", T::StringList, std::nullopt, -kInf, kInf, "", "experts that do not train: adapters and router key rows kept as model.path's earlier stage left them"},
        {"scar.frozen_query", T::Bool, "false", -kInf, kInf, "", "the routers' query projections do not train (sequential stages after the first)"},
        {"scar.general_expert", T::Bool, text(scar.general_expert), -kInf, kInf, "", "expert 0 \"general\": the untouched base path"},
        {"scar.blocks", T::StringList, std::nullopt, -kInf, kInf, "", "routed block indices; default: every block"},
        {"scar.target_modules", T::StringList, text(scar.target_modules), -kInf, kInf, "", "linears of each routed block that get expert adapters"},
        {"scar.rank", T::Int, text(scar.rank), 1, 65536, "", "expert adapter rank r"},
        {"scar.alpha", T::Float, text(scar.alpha), 1e-9, 1e9, "", "expert adapter scale numerator (scale = alpha / r)"},
        {"scar.router_dim", T::Int, text(scar.router.router_dim), 1, 65536, "", "router query/key dimension d_r"},
        {"scar.temperature", T::Float, text(scar.router.temperature), 1e-6, 1e6, "", "router softmax temperature"},
        {"scar.mass", T::Float, text(scar.router.mass), 1e-6, 1.0, "", "tau: experts are added by descending probability until their mass reaches this"},
        {"scar.max_experts", T::Int, text(scar.router.max_experts), 1, 1024, "", "k_max: most experts per token"},
        {"scar.general_bias", T::Float, "0", -1e3, 1e3, "", "nats added to the general expert's router logit (0 in training; an inference shift of the router's prior towards the base path)"},
        {"scar.balance_weight", T::Float, "0.01", 0.0, 1e6, "", "weight of the load-balance loss"},
        {"scar.z_weight", T::Float, "1e-3", 0.0, 1e6, "", "weight of the router z-loss"},
        {"scar.supervision_weight", T::Float, "0.1", 0.0, 1e6, "", "weight of the domain-supervision loss (sequences with a known domain)"},
        {"scar.seed", T::Int, text(scar.seed), 0, kMaxInt, "", "seed of the router and expert initialisation"},
        // akp: adaptive knowledge preservation (methods/akp.h; docs/design/gem-method.md section 4).
        // Replay is data mixing: put a general shard in train.data with its share in train.data_weights.
        {"akp.kd_weight", T::Float, "0", 0.0, 1e6, "", "lambda_kd: distillation from the model before fine-tuning; 0: off"},
        {"akp.temperature", T::Float, "2.0", 1e-3, 1e3, "", "distillation temperature T (the loss is scaled by T^2)"},
        {"akp.kd_domain_weight", T::String, "router", -kInf, kInf, "router|all|none", "distillation weight of domain tokens: SCAR's P(general), 1, or 0 (replay tokens always 1)"},
        {"akp.ewc_weight", T::Float, "0", 0.0, 1e12, "", "lambda_ewc: EWC with the base's diagonal Fisher; 0: off"},
        {"akp.fisher_data", T::String, std::nullopt, -kInf, kInf, "", "general token shard for the Fisher"},
        {"akp.fisher_sequences", T::Int, "64", 1, kMaxInt, "", "sequences the Fisher is averaged over"},
        {"akp.fisher_seed", T::Int, "0", 0, kMaxInt, "", "seed of the labels sampled from the model (true Fisher)"},
        {"akp.fisher_cache", T::String, "out/cache/fisher", -kInf, kInf, "", "folder of cached Fisher files (keyed by model, data and options)"},
        {"akp.ewc_previous", T::String, std::nullopt, -kInf, kInf, "", "online EWC, a later stage: the previous stage's RUN/ewc_anchor.safetensors"},
        {"akp.ewc_gamma", T::Float, "1.0", 0.0, 1.0, "", "online EWC: F <- gamma F + F_new at the end of a stage"},
        {"akp.l2sp_weight", T::Float, "0", 0.0, 1e12, "", "L2-SP: 1/2 |theta - theta*|^2 (the EWC penalty with F = 1); 0: off"},
        {"akp.budget", T::Float, "0", 0.0, 10.0, "", "forgetting budget: allowed relative rise of the general loss; 0: fixed lambdas"},
        {"akp.budget_every", T::Int, "50", 1, kMaxInt, "", "steps between general-loss measurements"},
        {"akp.budget_data", T::String, std::nullopt, -kInf, kInf, "", "held-out general token shard the budget is measured on"},
        {"akp.budget_batches", T::Int, "4", 1, kMaxInt, "", "batches of akp.budget_data per measurement"},
        {"akp.budget_reference", T::String, "start", -kInf, kInf, "start|base|routed", "loss the rise is measured against: the trained model as training starts (routers attached), the base network, or (frozen base) the same routed network with its experts and adapters off, at each measurement"},
        // quant: quantization-aware training (methods/qat.h; docs/design/gem-method.md section 5).
        {"quant.qat", T::Bool, "false", -kInf, kInf, "", "fake-quantize weights as the export will store them (straight-through gradient)"},
        {"quant.policy", T::StringList, std::nullopt, -kInf, kInf, "", "\"NAME_GLOB=TYPE\" rules, first match wins (f32|f16|q8_0|q4_0); default: hybrid (attention, embeddings q8_0; MLP q4_0)"},
        {"quant.start_step", T::Int, "0", 0, kMaxInt, "", "fake quantization starts at this optimizer step (float training before)"},
        {"quant.activations", T::Bool, text(qat.activations), -kInf, kInf, "", "also fake-quantize quantized layers' inputs to q8_0 blocks, as llama.cpp's CPU path does"},
        {"quant.distill_weight", T::Float, "0", 0.0, 1e6, "", "lambda_q: KL from the float model's logits to the fake-quantized ones; 0: off"},
        {"quant.temperature", T::Float, "1.0", 1e-3, 1e3, "", "temperature of L_Q"},
    };
  }();
  return schema;
}

const RecipeKey* recipe_find_key(const std::string& path) {
  for (const RecipeKey& k : recipe_schema())
    if (k.path == path) return &k;
  return nullptr;
}

const char* recipe_type_name(RecipeType t) {
  switch (t) {
    case T::String: return "a string";
    case T::Int: return "an integer";
    case T::Float: return "a number";
    case T::Bool: return "a boolean (true or false)";
    case T::StringList: return "a list of strings";
  }
  return "?";
}

// ---------------------------------------------------------------------------------------------
// Key lookup helpers.
namespace {

size_t edit_distance(const std::string& a, const std::string& b) {
  std::vector<size_t> prev(b.size() + 1), cur(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) prev[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    cur[0] = i;
    for (size_t j = 1; j <= b.size(); ++j)
      cur[j] = std::min({prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (a[i - 1] != b[j - 1])});
    std::swap(prev, cur);
  }
  return prev[b.size()];
}

// True when `path` names a table of the schema ("model", "model.init").
bool is_table(const std::string& path) {
  for (const RecipeKey& k : recipe_schema())
    if (k.path.size() > path.size() && k.path.compare(0, path.size(), path) == 0 &&
        k.path[path.size()] == '.')
      return true;
  return false;
}

std::string unknown_key_message(const std::string& path) {
  return "unknown key; did you mean " + recipe_nearest_key(path) + "?";
}

std::string describe_range(const RecipeKey& k) {
  std::ostringstream s;
  s << "expected a value in [" << k.min << ", " << k.max << "]";
  return s.str();
}

std::string choices_text(const std::string& choices) {
  std::string out = choices;
  std::replace(out.begin(), out.end(), '|', ',');
  size_t pos = 0;
  while ((pos = out.find(',', pos)) != std::string::npos) out.replace(pos, 1, ", "), pos += 2;
  return out;
}

// Checks range / choices of an already typed value; returns "" or the problem.
std::string check_value(const RecipeKey& k, const RecipeValue& v) {
  if (k.type == T::Int || k.type == T::Float) {
    double x = k.type == T::Int ? double(std::get<int64_t>(v)) : std::get<double>(v);
    if (!std::isfinite(x) || x < k.min || x > k.max) {
      std::ostringstream s;
      s << describe_range(k) << ", got ";
      if (k.type == T::Int) s << std::get<int64_t>(v); else s << x;
      return s.str();
    }
  }
  if (k.type == T::String && !k.choices.empty()) {
    const std::string& s = std::get<std::string>(v);
    std::string bar = "|" + k.choices + "|";
    if (bar.find("|" + s + "|") == std::string::npos)
      return "expected one of " + choices_text(k.choices) + ", got '" + s + "'";
  }
  return "";
}

std::string trim(const std::string& s) {
  size_t b = s.find_first_not_of(" \t"), e = s.find_last_not_of(" \t");
  return b == std::string::npos ? "" : s.substr(b, e - b + 1);
}

// Turns a parsed TOML node into a typed value, or returns the problem.
std::string from_toml_node(const RecipeKey& k, const toml::node& node, RecipeValue* out) {
  auto got = [&]() {
    switch (node.type()) {
      case toml::node_type::string: return "got a string";
      case toml::node_type::integer: return "got an integer";
      case toml::node_type::floating_point: return "got a number";
      case toml::node_type::boolean: return "got a boolean";
      case toml::node_type::array: return "got a list";
      case toml::node_type::table: return "got a table";
      default: return "got a date/time";
    }
  };
  std::string expected = std::string("expected ") + recipe_type_name(k.type) + ", " + got();
  switch (k.type) {
    case T::String:
      if (!node.is_string()) return expected;
      *out = *node.value<std::string>();
      return "";
    case T::Int:
      if (!node.is_integer()) return expected;
      *out = *node.value<int64_t>();
      return "";
    case T::Float:  // integers are numbers too: temperature = 1
      if (node.is_floating_point()) *out = *node.value<double>();
      else if (node.is_integer()) *out = double(*node.value<int64_t>());
      else return expected;
      return "";
    case T::Bool:
      if (!node.is_boolean()) return expected;
      *out = *node.value<bool>();
      return "";
    case T::StringList: {
      const toml::array* a = node.as_array();
      if (!a) return expected;
      std::vector<std::string> list;
      for (const toml::node& e : *a) {
        if (!e.is_string()) return "expected a list of strings, got a list with a non-string element";
        list.push_back(*e.value<std::string>());
      }
      *out = std::move(list);
      return "";
    }
  }
  return expected;
}

// Flattens `table` into dotted keys, validating each; problems go to `errors`.
void collect(const toml::table& table, const std::string& prefix, const std::string& where,
             std::map<std::string, RecipeValue>* values, std::vector<std::string>* errors) {
  for (auto&& [key, node] : table) {
    std::string path = prefix.empty() ? std::string(key.str()) : prefix + "." + std::string(key.str());
    const RecipeKey* k = recipe_find_key(path);
    if (k) {
      RecipeValue v;
      std::string problem = from_toml_node(*k, node, &v);
      if (problem.empty()) problem = check_value(*k, v);
      if (problem.empty()) (*values)[path] = std::move(v);
      else errors->push_back(where + ": " + path + ": " + problem);
    } else if (const toml::table* sub = node.as_table()) {
      collect(*sub, path, where, values, errors);  // unknown tables: report their leaves
    } else if (is_table(path)) {
      errors->push_back(where + ": " + path + ": is a table ([" + path + "]), not a value");
    } else {
      errors->push_back(where + ": " + path + ": " + unknown_key_message(path));
    }
  }
}

// ---------------------------------------------------------------------------------------------
// TOML output. toml++ prints doubles with 17 digits (0.80000000000000004); these print the
// shortest text that reads back to the same value.
std::string format_double(double x) {
  char buf[64];
  if (x == std::floor(x) && std::fabs(x) < 1e15) {  // 500000.0, not 5e+05
    std::snprintf(buf, sizeof buf, "%.1f", x);
    return buf;
  }
  for (int precision = 1; precision <= 17; ++precision) {
    std::snprintf(buf, sizeof buf, "%.*g", precision, x);
    if (std::strtod(buf, nullptr) == x) break;
  }
  std::string s = buf;
  if (s.find_first_of(".eEn") == std::string::npos) s += ".0";  // TOML: a float needs a '.'
  return s;
}

std::string quote(const std::string& s) {
  std::string out = "\"";
  for (unsigned char c : s) {
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\t': out += "\\t"; break;
      case '\r': out += "\\r"; break;
      default:
        if (c < 0x20 || c == 0x7f) {
          char buf[8];
          std::snprintf(buf, sizeof buf, "\\u%04x", c);
          out += buf;
        } else {
          out += char(c);
        }
    }
  }
  return out + "\"";
}

}  // namespace

std::string recipe_format_value(const RecipeValue& v) {
  struct Visitor {
    std::string operator()(const std::string& s) const { return quote(s); }
    std::string operator()(int64_t i) const { return std::to_string(i); }
    std::string operator()(double d) const { return format_double(d); }
    std::string operator()(bool b) const { return b ? "true" : "false"; }
    std::string operator()(const std::vector<std::string>& list) const {
      std::string out = "[";
      for (size_t i = 0; i < list.size(); ++i) out += (i ? ", " : "") + quote(list[i]);
      return out + "]";
    }
  };
  return std::visit(Visitor{}, v);
}


std::string recipe_nearest_key(const std::string& path) {
  const std::string* best = nullptr;
  size_t best_d = 0;
  for (const RecipeKey& k : recipe_schema()) {
    size_t d = edit_distance(path, k.path);
    if (!best || d < best_d) best = &k.path, best_d = d;
  }
  return best ? *best : "";
}

// ---------------------------------------------------------------------------------------------
// Values from text (command line and schema defaults).
RecipeValue recipe_parse_value(const RecipeKey& k, const std::string& text,
                               const std::string& where) {
  auto bad = [&](const std::string& what) -> RecipeValue {
    fail(where, k.path + ": " + what);
  };
  // Every value is written back into TOML (resolved_recipe.toml, which --resume reads), and
  // TOML is UTF-8 (fuzzer finding: an override with invalid bytes was saved unreadable).
  if (const size_t bad_at = invalid_utf8_offset(text); bad_at != std::string::npos)
    return bad("expected UTF-8 text, got an invalid byte at offset " + std::to_string(bad_at));
  RecipeValue v;
  std::string t = trim(text);
  switch (k.type) {
    case T::String:
      v = text;
      break;
    case T::Int: {
      errno = 0;
      char* end = nullptr;
      long long x = std::strtoll(t.c_str(), &end, 10);
      if (t.empty() || *end != '\0' || errno == ERANGE)
        return bad("expected an integer, got '" + text + "'");
      v = int64_t(x);
      break;
    }
    case T::Float: {
      errno = 0;
      char* end = nullptr;
      double x = std::strtod(t.c_str(), &end);
      if (t.empty() || *end != '\0' || errno == ERANGE || !std::isfinite(x))
        return bad("expected a number, got '" + text + "'");
      v = x;
      break;
    }
    case T::Bool:
      if (t == "true") v = true;
      else if (t == "false") v = false;
      else return bad("expected true or false, got '" + text + "'");
      break;
    case T::StringList: {
      // "a,b,c" on the command line; an empty value is the empty list.
      std::vector<std::string> list;
      if (!t.empty()) {
        std::string item;
        std::istringstream in(text);
        while (std::getline(in, item, ',')) list.push_back(trim(item));
      }
      v = std::move(list);
      break;
    }
  }
  std::string problem = check_value(k, v);
  if (!problem.empty()) bad(problem);
  return v;
}

// ---------------------------------------------------------------------------------------------
// Recipe.
Recipe Recipe::from_toml_text(const std::string& text, const std::string& where) {
  toml::table table;
  try {
    table = toml::parse(std::string_view(text), std::string_view(where));
  } catch (const toml::parse_error& e) {
    fail(where + ":" + std::to_string(e.source().begin.line) + ":" +
             std::to_string(e.source().begin.column),
         "TOML syntax error: " + std::string(e.description()));
  }
  Recipe r;
  r.source_ = where;
  std::vector<std::string> errors;
  collect(table, "", where, &r.values_, &errors);
  if (!errors.empty()) {
    std::string message;
    for (size_t i = 0; i < errors.size(); ++i) message += (i ? "\n" : "") + errors[i];
    throw Error(message);
  }
  return r;
}

Recipe Recipe::load(const std::string& path) {
  if (!file_exists(path)) fail(path, "recipe file not found");
  return from_toml_text(read_text_file(path), path);
}

void Recipe::set(const std::string& path, const std::string& value_text, const std::string& where) {
  const RecipeKey* k = recipe_find_key(path);
  if (!k) fail(where, path + ": " + unknown_key_message(path));
  values_[path] = recipe_parse_value(*k, value_text, where);
}

void Recipe::apply_override(const std::string& arg, const std::string& where) {
  if (!arg.empty() && arg[0] == '~') {
    std::string path = trim(arg.substr(1));
    if (!recipe_find_key(path)) fail(where, path + ": " + unknown_key_message(path));
    values_.erase(path);
    return;
  }
  size_t eq = arg.find('=');
  if (eq == std::string::npos)
    fail(where, "'" + arg + "': expected key.path=value or ~key.path");
  set(trim(arg.substr(0, eq)), arg.substr(eq + 1), where);
}

void Recipe::resolve() {
  for (const RecipeKey& k : recipe_schema())
    if (k.value && !has(k.path))
      values_[k.path] = recipe_parse_value(k, *k.value, "recipe schema default");
}

namespace {
template <typename V>
const V& get_as(const std::map<std::string, RecipeValue>& values, const std::string& path,
                const std::string& source) {
  const RecipeKey* k = recipe_find_key(path);
  if (!k) fail("recipe", path + ": not a schema key (gemkit bug)");
  auto it = values.find(path);
  if (it == values.end())
    fail(source.empty() ? "recipe" : source,
         path + ": not set (no default; give it in the recipe, as " + path + "=VALUE or with the "
         "command's flag)");
  const V* v = std::get_if<V>(&it->second);
  if (!v) fail("recipe", path + ": read as the wrong type (gemkit bug)");
  return *v;
}
}  // namespace

const std::string& Recipe::get_string(const std::string& path) const {
  return get_as<std::string>(values_, path, source_);
}
int64_t Recipe::get_int(const std::string& path) const { return get_as<int64_t>(values_, path, source_); }
double Recipe::get_float(const std::string& path) const { return get_as<double>(values_, path, source_); }
bool Recipe::get_bool(const std::string& path) const { return get_as<bool>(values_, path, source_); }
const std::vector<std::string>& Recipe::get_strings(const std::string& path) const {
  return get_as<std::vector<std::string>>(values_, path, source_);
}

std::string Recipe::to_toml() const {
  // Sections in order of first appearance in the schema; keys in schema order within each.
  std::vector<std::string> sections;
  for (const RecipeKey& k : recipe_schema()) {
    size_t dot = k.path.rfind('.');
    std::string section = dot == std::string::npos ? "" : k.path.substr(0, dot);
    if (std::find(sections.begin(), sections.end(), section) == sections.end())
      sections.push_back(section);
  }
  std::ostringstream out;
  bool first = true;
  for (const std::string& section : sections) {
    bool header = false;
    for (const RecipeKey& k : recipe_schema()) {
      size_t dot = k.path.rfind('.');
      if ((dot == std::string::npos ? "" : k.path.substr(0, dot)) != section) continue;
      auto it = values_.find(k.path);
      if (it == values_.end()) continue;
      if (!header && !section.empty()) {
        out << (first ? "" : "\n") << "[" << section << "]\n";
        first = false;
      }
      header = true;
      out << k.path.substr(dot + 1) << " = " << recipe_format_value(it->second) << "  # " << k.doc << "\n";
    }
  }
  return out.str();
}

void Recipe::save(const std::string& path) const {
  write_text_file_atomic(path, "# Resolved recipe written by gemkit (defaults and overrides applied).\n" +
                                   to_toml());
}

}  // namespace gemkit
