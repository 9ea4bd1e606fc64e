// gemkit train RECIPE [key=value ...] [--out RUN_DIR] [--resume] [--device cpu|cuda]:
// fine-tunes model.path, or pretrains a model.init.* architecture from random weights, on the
// token shards of train.data. Everything the run produces goes to RUN_DIR (README "Training").
// The methods the recipe enables (LoRA, GEM, AKP, QAT: methods/methods.h) attach to the
// trainer in turn and write their final files after the run.
// Data parallel with torchrun's variables (RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT): every
// rank runs this same command; rank 0 writes the run folder (train/trainer.h).
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "cli/commands.h"
#include "cli/recipe_args.h"
#include "core/error.h"
#include "core/file_io.h"
#include "core/torch_compat.h"
#include "data/loader.h"
#include "methods/methods.h"
#include "model/checkpoint.h"
#include "tokenizers/tokenizer.h"
#include "train/batch_stream.h"
#include "train/checkpointing.h"
#include "train/distributed.h"
#include "train/model_init.h"
#include "train/recipe.h"
#include "train/trainer.h"

namespace gemkit::cli {
namespace {

namespace fs = std::filesystem;

struct TrainArgs {
  std::string recipe, out, device;
  std::vector<std::string> overrides;
  bool resume = false;
};

BatchKind batch_kind(Head head) {
  switch (head) {
    case Head::CausalLM: return BatchKind::CausalLM;
    case Head::MaskedLM: return BatchKind::MaskedLM;
    case Head::SequenceClassification: return BatchKind::Classification;
    case Head::None: break;
  }
  fail("model", "a model without a head cannot be trained (no loss)");
}

// The model to train: model.path's checkpoint, or random weights for model.init.* with the
// tokenizer of train.tokenizer. Returns the folder whose tokenizer files checkpoints carry.
std::string make_model(const Recipe& r, const torch::Device& device, Transformer& model) {
  if (r.has("model.path")) {
    model = load_pretrained(r.get_string("model.path"), device).model;
    return r.get_string("model.path");
  }
  if (!r.has("train.tokenizer"))
    fail("model.path", "not set: give a checkpoint to fine-tune, or train.tokenizer (and model.init.*) to "
                       "train a model from random weights");
  const std::string tok_path = r.get_string("train.tokenizer");
  std::unique_ptr<Tokenizer> tok = load_tokenizer(tok_path);
  const ModelConfig config = model_init_config(r, *tok);
  torch::manual_seed(uint64_t(r.get_int("model.init.seed")));
  model = Transformer(config);
  model->to(device);
  return is_directory(tok_path) ? tok_path : fs::path(tok_path).parent_path().string();
}

std::vector<TokenBatch> validation_batches(const Recipe& r, const LoaderOptions& train_options) {
  std::vector<TokenBatch> batches;
  if (!r.has("train.validation")) return batches;
  const std::string shard = r.get_string("train.validation");
  const int64_t limit = r.get_int("train.eval_max_batches");
  if (train_options.kind == BatchKind::CausalLM) {
    batches = sequential_batches(shard, train_options);
  } else {
    // Masked LM and classification need their own row format: one unshuffled pass.
    LoaderOptions o = train_options;
    o.shuffle = false;
    Loader loader({{shard, 1.0}}, o);
    while (loader.epoch() < 1.0 && batches.size() < 100000) batches.push_back(loader.next());
  }
  if (limit > 0 && int64_t(batches.size()) > limit) batches.resize(size_t(limit));
  return batches;
}

void train(const TrainArgs& a) {
  Recipe r = Recipe::load(a.recipe);
  for (const std::string& o : a.overrides) r.apply_override(o);
  if (!a.device.empty()) r.set("model.device", a.device, "--device");
  r.resolve();
  resolve_model_reference(r);
  if (!r.has("train.data")) fail(a.recipe, "train.data: not set (token shards to train on)");

  const TrainMode mode = parse_train_mode(r.get_string("train.mode"), "train.mode");
  if (mode != TrainMode::Lora && r.get_bool("train.lora_merge_on_save"))
    fail("train.lora_merge_on_save", "only applies to train.mode = \"lora\"");

  // Every rank checks its arguments before the rendezvous, so a bad recipe fails fast on
  // each of them rather than leaving the others waiting for the store's timeout.
  const char* world_env = std::getenv("WORLD_SIZE");
  const int64_t world_hint = world_env ? std::atoll(world_env) : 1;
  if (world_hint > 1 && r.get_int("train.batch_size") % world_hint != 0)
    fail("train.batch_size", std::to_string(r.get_int("train.batch_size")) + " is not divisible by WORLD_SIZE " +
                                 std::to_string(world_hint) + ": every rank trains on batch_size / WORLD_SIZE rows "
                                 "of the combined batch");
  const std::string run_dir = a.out.empty() ? "out/train/" + fs::path(a.recipe).stem().string() : a.out;
  if (!a.resume && !list_checkpoints(run_dir).empty())
    fail(run_dir, "already holds checkpoints of a run; pass --resume to continue it or choose another --out");

  Distributed dist = Distributed::from_env();
  const bool main_rank = dist.is_main();
  fs::create_directories(run_dir);
  if (main_rank) r.save((fs::path(run_dir) / "resolved_recipe.toml").string());

  const torch::Device device = compat::parse_device(r.get_string("model.device"));
  // LibTorch seeds its global CPU generator from the OS at start-up; seeded here, whatever draws
  // from it (a freshly initialised head, dropout of the model's own modules) repeats from run to
  // run, and the generator state each checkpoint stores is the same for the same recipe.
  // Pretraining re-seeds with model.init.seed for the initial weights (make_model).
  torch::manual_seed(uint64_t(r.get_int("train.seed")));
  Transformer model{nullptr};
  const std::string tokenizer_source = make_model(r, device, model);

  // Data: the shards of train.data mixed by train.data_weights.
  const std::vector<std::string>& shards = r.get_strings("train.data");
  std::vector<double> weights(shards.size(), 1.0);
  if (r.has("train.data_weights")) {
    const std::vector<std::string>& w = r.get_strings("train.data_weights");
    if (w.size() != shards.size())
      fail("train.data_weights", "expected one weight per train.data shard (" + std::to_string(shards.size()) +
                                     "), got " + std::to_string(w.size()));
    for (size_t i = 0; i < w.size(); ++i) {
      char* end = nullptr;
      weights[i] = std::strtod(w[i].c_str(), &end);
      if (end == w[i].c_str() || *end || !(weights[i] > 0)) fail("train.data_weights", "expected positive numbers, got " + w[i]);
    }
  }
  std::vector<SourceSpec> sources;
  for (size_t i = 0; i < shards.size(); ++i) sources.push_back({shards[i], weights[i]});
  LoaderOptions lo = loader_options_for_shard(shards[0], batch_kind(model->config().head));
  lo.batch_size = r.get_int("train.batch_size");
  lo.seq_len = r.get_int("train.seq_len");
  lo.seed = uint64_t(r.get_int("train.seed"));
  lo.chat_answers_only = r.get_string("train.chat_loss") == "answers";
  lo.chat_overflow = r.get_string("train.chat_overflow") == "truncate" ? LoaderOptions::ChatOverflow::Truncate
                                                                        : LoaderOptions::ChatOverflow::Drop;
  if (lo.seq_len > model->config().max_position_embeddings && model->config().family == Family::Encoder)
    fail("train.seq_len", "longer than the model's max_position_embeddings (" +
                              std::to_string(model->config().max_position_embeddings) + ")");
  // Data parallel: every rank reads the same combined batches (train.batch_size rows) and the
  // trainer gives each rank its rows, so the loader position in a checkpoint is everyone's.
  Loader loader(sources, lo);
  LoaderStream stream(loader);

  TrainerOptions options = trainer_options_from_recipe(r);
  options.run_dir = run_dir;
  options.device = device;
  options.recipe_toml = r.to_toml();
  options.tokenizer_source = tokenizer_source;
  options.distributed = &dist;
  options.console = main_rank;
  Trainer trainer(model, stream, options);
  trainer.set_validation(validation_batches(r, lo));

  // The methods (methods/): LoRA, GEM routing, knowledge preservation, QAT, as the recipe
  // enables them; each adds its modules, loss terms and hooks to the trainer.
  MethodContext context{r};
  context.model = model;
  context.mode = mode;
  context.domains = source_domains(shards);
  context.loader = lo;
  context.run_dir = run_dir;
  context.base_model = r.has("model.path") ? r.get_string("model.path") : tokenizer_source;
  context.tokenizer_source = tokenizer_source;
  const std::vector<std::unique_ptr<Method>> methods = enabled_methods(r);
  for (const std::unique_ptr<Method>& m : methods) {
    m->attach(trainer, context);
    context.attached.push_back(m.get());
  }

  int64_t params = 0, trainable = 0;
  for (const auto& p : model->parameters()) {
    params += p.numel();
    if (p.requires_grad()) trainable += p.numel();
  }
  for (const std::unique_ptr<Method>& m : methods) trainable += m->added_parameters();
  if (main_rank) {
    std::printf("training %s (%lld parameters, %lld trainable) on %zu shard(s), %lld steps planned -> %s\n",
                model->config().architecture.c_str(), (long long)params, (long long)trainable, shards.size(),
                (long long)trainer.planned_steps(), run_dir.c_str());
    if (dist.enabled())
      std::printf("data parallel: %d ranks of %lld rows each (%s)\n", dist.world_size(),
                  (long long)(lo.batch_size / dist.world_size()), dist.backend().c_str());
  }
  if (a.resume && !trainer.resume() && main_rank)
    std::printf("no checkpoint in %s yet: starting from step 0\n", run_dir.c_str());
  trainer.run();
  if (main_rank)
    for (const std::unique_ptr<Method>& m : methods) m->finish(context);
  dist.barrier();  // the other ranks exit after rank 0's last files
  if (main_rank)
    std::printf("done: %lld steps, %lld tokens; checkpoints in %s (latest: %s)\n", (long long)trainer.steps_done(),
                (long long)trainer.tokens_seen(), run_dir.c_str(), latest_checkpoint(run_dir).value_or("none").c_str());
}

}  // namespace

void add_train_command(CLI::App& app) {
  auto a = std::make_shared<TrainArgs>();
  CLI::App* cmd = app.add_subcommand("train", "train a model from a recipe (fine-tuning or pretraining)");
  cmd->add_option("recipe", a->recipe, "recipe TOML file (recipes/train/*.toml)")->required();
  cmd->add_option("overrides", a->overrides, "recipe overrides: key.path=value, or ~key.path to remove a key");
  cmd->add_option("--out,-o", a->out, "run folder (default: out/train/<recipe name>)");
  cmd->add_flag("--resume", a->resume, "continue from the run folder's newest checkpoint");
  cmd->add_option("--device", a->device, "cpu, cuda or cuda:N (recipe key model.device)");
  cmd->callback([a] { train(*a); });
}

}  // namespace gemkit::cli
