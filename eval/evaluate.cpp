#include "eval/evaluate.h"

#include <chrono>
#include <cstdio>
#include <memory>

#include "core/error.h"
#include "core/torch_compat.h"
#include "eval/classification.h"
#include "eval/multiple_choice.h"
#include "eval/perplexity.h"
#include "eval/scorer.h"
#include "eval/tasks.h"
#include "model/checkpoint.h"
#include "routing/gem_modules.h"
#include "tokenizers/chat_template.h"
#include "tokenizers/tokenizer.h"

namespace gemkit::eval {
namespace {

Result skipped(const std::string& kind, const std::string& key, const std::string& domain, int64_t items,
               const std::string& why) {
  Result r;
  r.kind = kind;
  r.key = key;
  r.domain = domain;
  r.items = items;
  r.skipped = why;
  return r;
}

}  // namespace

Report run_evaluation(const EvalOptions& o) {
  const auto start = std::chrono::steady_clock::now();
  if (o.tasks.empty() && o.corpus.empty())
    fail("gemkit eval", "nothing to evaluate: give --tasks (task files or a suite folder) and/or --corpus");
  // Inputs first: a malformed task file fails before the model is loaded.
  const std::vector<Task> tasks = o.tasks.empty() ? std::vector<Task>{} : load_tasks(o.tasks, o.split, o.max_items);
  const std::vector<Corpus> corpora =
      o.corpus.empty() ? std::vector<Corpus>{} : load_corpora(o.corpus, o.split, o.max_documents, o.model_path);

  const torch::Device device = compat::parse_device(o.device);
  Pretrained pre = load_pretrained(o.model_path, device);
  // A routed checkpoint (gem.json) runs with its token router and experts, by the inference
  // rules: DTR's threshold, SCAR's variable-k routing.
  std::unique_ptr<GemModules> gem = load_gem_modules(pre.model, o.model_path);
  const ModelConfig& cfg = pre.config;
  std::unique_ptr<Tokenizer> tok = load_tokenizer(o.model_path);
  const int64_t seq_len = std::min(o.seq_len, cfg.max_position_embeddings);
  const int64_t pad = tok->special().pad >= 0 ? tok->special().pad : (cfg.pad_token_id >= 0 ? cfg.pad_token_id : 0);
  Scorer scorer(pre.model, o.batch_size, seq_len, pad);
  if (o.bf16 && !compat::cpu_has_native_bf16())
    fail("eval.precision", "bf16 needs a CPU with AVX512_BF16 or AMX (this one would emulate it, slower than fp32); use fp32");
  scorer.set_bf16(o.bf16);

  int64_t params = 0;
  for (const auto& p : pre.model->parameters()) params += p.numel();
  Report report;
  report.model = {{"path", o.model_path},
                  {"architecture", cfg.architecture},
                  {"family", family_name(cfg.family)},
                  {"head", head_name(cfg.head)},
                  {"layers", cfg.num_hidden_layers},
                  {"hidden_size", cfg.hidden_size},
                  {"heads", cfg.num_attention_heads},
                  {"kv_heads", cfg.num_key_value_heads},
                  {"vocab_size", cfg.vocab_size},
                  {"max_position_embeddings", cfg.max_position_embeddings},
                  {"parameters", params},
                  {"dtype", cfg.torch_dtype}};
  if (o.scar_general_bias) {
    if (!gem || !gem->scar()) fail("eval.scar_general_bias", o.model_path + " has no SCAR experts (no gem.json with scar)");
    gem->set_scar_general_bias(*o.scar_general_bias);
  }
  if (gem) {
    report.model["routing"] = gem_config_to_json(gem->config());
    report.model["routing"]["dtr_rule"] = o.dtr_rule;
    if (TokenRouters* dtr = gem->dtr())
      for (auto& r : (*dtr)->routers()) r->set_top_k_at_inference(o.dtr_rule == "top-k");
    // Top-k looks at the whole row: a prompt's result would depend on its continuation.
    if (o.dtr_rule == "top-k" && gem->dtr()) scorer.set_prefix_sharing(false);
  }
  report.tokenizer = {{"kind", tok->kind()}, {"vocab_size", tok->vocab_size()}};
  report.settings = {{"split", o.split},
                     {"tasks", o.tasks},
                     {"corpus", o.corpus},
                     {"device", device.str()},
                     {"batch_size", o.batch_size},
                     {"seq_len", seq_len},
                     {"max_items", o.max_items},
                     {"max_documents", o.max_documents},
                     {"max_tokens", o.max_tokens},
                     {"precision", o.bf16 ? "bf16" : "fp32"},
                     {"bootstrap", {{"resamples", o.bootstrap.resamples},
                                    {"seed", o.bootstrap.seed},
                                    {"confidence", o.bootstrap.confidence},
                                    {"method", "percentile"}}},
                     {"task_format", o.task_format},
                     {"prompts", o.task_format == "chat"
                                     ? nlohmann::json{{"multiple_choice", "user: {context} + choices; assistant: {choice}<end of turn>"},
                                                      {"classification", "user: {text} + labels; assistant: {label}<end of turn>"}}
                                     : nlohmann::json{{"multiple_choice", "{context}\\nAnswer: {choice}"},
                                                      {"classification", "{text}\\nLabel: {label}"}}},
                     {"accuracy_norm", "log-likelihood per UTF-8 byte of ' {choice}'"}};

  const bool causal = cfg.head == Head::CausalLM;
  const bool head = cfg.head == Head::SequenceClassification;
  if (o.task_format != "text" && o.task_format != "chat")
    fail("eval.task_format", "expected text or chat, got '" + o.task_format + "'");
  std::unique_ptr<ChatTemplate> chat;
  if (o.task_format == "chat" && !tasks.empty()) chat = std::make_unique<ChatTemplate>(ChatTemplate::from_folder(o.model_path));
  const TaskPrompts prompts = chat ? TaskPrompts(*chat) : TaskPrompts();
  for (const Corpus& c : corpora) {
    if (!causal) {
      report.results.push_back(skipped("perplexity", c.domain, c.domain, int64_t(c.documents.size()),
                                       "perplexity needs a causal LM, the model is " + cfg.architecture));
      continue;
    }
    if (gem) gem->metrics();  // reset the routing figures
    report.results.push_back(evaluate_perplexity(scorer, *tok, c, seq_len, o.bootstrap, o.max_tokens));
    if (gem)
      for (const auto& [key, value] : gem->metrics()) report.results.back().stats[key] = value;
  }
  for (const Task& t : tasks) {
    const int64_t n = int64_t(t.items.size());
    if (t.type == TaskType::MultipleChoice) {
      if (causal) report.results.push_back(evaluate_multiple_choice(scorer, *tok, t, o.bootstrap, prompts));
      else report.results.push_back(skipped("multiple_choice", t.key, t.domain, n,
                                            "multiple choice needs a causal LM, the model is " + cfg.architecture));
    } else if (causal) {
      report.results.push_back(evaluate_label_words(scorer, *tok, t, o.bootstrap, prompts));
    } else if (head) {
      // A head is trained for one label set; tasks it cannot answer are skipped, not fatal.
      std::vector<int32_t> label_map;
      try {
        label_map = head_label_map(cfg.source_json, cfg.num_labels, t.labels, o.model_path + "/config.json");
      } catch (const Error& e) {
        report.results.push_back(skipped("classification", t.key, t.domain, n, e.what()));
        continue;
      }
      report.results.push_back(evaluate_classification_head(scorer, *tok, t, label_map, o.bootstrap));
    } else {
      report.results.push_back(skipped("classification", t.key, t.domain, n,
                                       "needs a causal LM or a classification head, the model is " + cfg.architecture));
    }
  }
  report.elapsed_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return report;
}

}  // namespace gemkit::eval
