#include "train/trainer.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <filesystem>

#include "core/error.h"
#include "core/file_io.h"
#include "core/torch_compat.h"
#include "formats/safetensors.h"
#include "model/batch_tensors.h"
#include "model/checkpoint.h"
#include "model/state_dict.h"
#include "train/checkpointing.h"
#include "train/distributed.h"
#include "train/recipe.h"

namespace gemkit {
namespace fs = std::filesystem;
using json = nlohmann::json;

constexpr const char* kStateFormat = "gemkit-trainer-state";
constexpr int kStateVersion = 1;

TrainMode parse_train_mode(const std::string& name, const std::string& where) {
  if (name == "full") return TrainMode::Full;
  if (name == "frozen") return TrainMode::FrozenBase;
  if (name == "lora") return TrainMode::Lora;
  fail(where, "unknown training mode '" + name + "'; expected full, frozen or lora");
}

TrainerOptions trainer_options_from_recipe(const Recipe& r) {
  TrainerOptions o;
  o.mode = parse_train_mode(r.get_string("train.mode"), "train.mode");
  o.optimizer.weight_decay = r.get_float("train.weight_decay");
  o.optimizer.beta1 = r.get_float("train.beta1");
  o.optimizer.beta2 = r.get_float("train.beta2");
  o.optimizer.eps = r.get_float("train.eps");
  o.optimizer.no_decay = r.get_strings("train.no_decay");
  o.optimizer.mofo_fraction = r.get_float("train.mofo_fraction");
  o.schedule = parse_schedule_kind(r.get_string("train.schedule"), "train.schedule");
  o.lr = r.get_float("train.lr");
  o.warmup_steps = r.get_int("train.warmup_steps");
  o.min_lr_ratio = r.get_float("train.min_lr_ratio");
  o.max_grad_norm = r.get_float("train.max_grad_norm");
  o.grad_accum = r.get_int("train.grad_accum");
  o.max_steps = r.get_int("train.max_steps");
  o.max_tokens = r.get_int("train.max_tokens");
  o.max_epochs = r.get_float("train.max_epochs");
  o.checkpoint_every = r.get_int("train.checkpoint_every");
  o.keep_last = r.get_int("train.keep_last");
  o.eval_every = r.get_int("train.eval_every");
  o.best_metric = r.get_string("train.best_metric");
  o.best_lower_is_better = r.get_string("train.best_mode") == "min";
  o.max_consecutive_nonfinite = r.get_int("train.max_consecutive_nonfinite");
  o.outlier_window = r.get_int("train.outlier_window");
  o.outlier_zscore = r.get_float("train.outlier_zscore");
  o.log_every = r.get_int("train.log_every");
  o.seed = uint64_t(r.get_int("train.seed"));
  o.bf16 = r.get_string("train.precision") == "bf16";
  o.loss_chunk_tokens = r.get_int("train.loss_chunk_tokens");
  return o;
}

// ---------------------------------------------------------------------------------------------
// Set-up.

Trainer::Trainer(Transformer model, BatchStream& stream, TrainerOptions options)
    : model_(std::move(model)), stream_(stream), options_(std::move(options)), console_(options_.log_every) {
  const TrainerOptions& o = options_;
  if (o.run_dir.empty()) fail("Trainer", "run_dir is required");
  if (o.max_steps <= 0 && o.max_tokens <= 0 && o.max_epochs <= 0)
    fail("train.max_steps", "no budget: set train.max_steps, train.max_tokens or train.max_epochs");
  if (o.grad_accum < 1) fail("train.grad_accum", "expected at least 1");
  if (o.bf16 && o.device.is_cpu() && !compat::cpu_has_native_bf16())
    fail("train.precision", "bf16 needs a CPU with AVX512_BF16 or AMX (this one would emulate it, slower than fp32); use fp32");

  // The schedule needs the run's length in steps; token and epoch budgets are converted with
  // the stream's nominal batch size (packed rows are full, so this is exact but for the last
  // partial batch of an epoch).
  const double tokens_per_step = double(stream_.tokens_per_batch() * o.grad_accum);
  int64_t planned = o.max_steps > 0 ? o.max_steps : INT64_MAX;
  if (o.max_tokens > 0) planned = std::min(planned, int64_t(std::ceil(double(o.max_tokens) / tokens_per_step)));
  if (o.max_epochs > 0)
    planned = std::min(planned, int64_t(std::ceil(o.max_epochs * double(stream_.tokens_per_epoch()) / tokens_per_step)));
  schedule_.kind = o.schedule;
  schedule_.peak_lr = o.lr;
  schedule_.warmup_steps = o.warmup_steps;
  schedule_.total_steps = std::max<int64_t>(1, planned);
  schedule_.min_lr_ratio = o.min_lr_ratio;

  rng_.seed(o.seed);
  model_->to(o.device);
  model_->train();
  if (o.mode == TrainMode::FrozenBase || o.mode == TrainMode::Lora)
    for (auto& p : model_->parameters()) p.set_requires_grad(false);
  fs::create_directories(o.run_dir);
  start_ = std::chrono::steady_clock::now();
}

Trainer::~Trainer() = default;

void Trainer::add_parameters(const std::map<std::string, torch::Tensor>& named, bool trainable) {
  if (optimizer_built_) fail("Trainer::add_parameters", "called after training started");
  for (const auto& [name, p] : named) {
    if (added_.count(name)) fail("Trainer::add_parameters", "duplicate parameter name " + name);
    added_[name] = p;
    if (!trainable) frozen_.insert(name);
  }
}

void Trainer::add_loss_term(LossTerm term) {
  for (const LossTerm& t : terms_)
    if (t.name == term.name) fail("Trainer::add_loss_term", "duplicate loss term " + term.name);
  if (!term.fn) fail("Trainer::add_loss_term", "loss term " + term.name + " has no function");
  terms_.push_back(std::move(term));
}

LossTerm& Trainer::loss_term(const std::string& name) {
  for (LossTerm& t : terms_)
    if (t.name == name) return t;
  fail("Trainer::loss_term", "no loss term named " + name);
}

void Trainer::add_checkpoint_hook(CheckpointHook hook) { checkpoint_hooks_.push_back(std::move(hook)); }
void Trainer::add_step_hook(StepHook hook) { step_hooks_.push_back(std::move(hook)); }

void Trainer::set_validation(std::vector<TokenBatch> batches) { validation_ = std::move(batches); }

void Trainer::add_evaluator(std::function<std::map<std::string, double>(Transformer&, int64_t)> fn) {
  evaluators_.push_back(std::move(fn));
}

bool Trainer::is_main() const { return !options_.distributed || options_.distributed->is_main(); }

bool Trainer::data_parallel() const { return options_.distributed && options_.distributed->enabled(); }

// Every rank starts the first step of a session from rank 0's weights (fresh init or resume);
// optimizer moments are zero or read from the same checkpoint on every rank, so identical
// gradients keep the ranks identical from here on.
void Trainer::sync_parameters() {
  if (parameters_synced_) return;
  parameters_synced_ = true;
  if (!data_parallel()) return;
  std::vector<torch::Tensor> params;
  for (const auto& p : model_->parameters()) params.push_back(p);
  for (const auto& [name, p] : added_) params.push_back(p);
  torch::NoGradGuard no_grad;
  options_.distributed->broadcast_parameters(params, 0);
}

// The optimizer is built lazily (first step or resume) so that add_parameters can come after
// construction; the trainable set is fixed from then on.
void Trainer::build_optimizer() {
  if (optimizer_built_) return;
  trainable_.clear();
  for (const auto& item : model_->named_parameters())
    if (item.value().requires_grad()) trainable_.emplace_back(item.key(), item.value());
  for (const auto& [name, p] : added_) {
    p.set_requires_grad(!frozen_.count(name));
    if (!frozen_.count(name)) trainable_.emplace_back(name, p);
  }
  optimizer_ = make_optimizer(trainable_, options_.optimizer);
  optimizer_built_ = true;

  // MFU bookkeeping: embedding lookups are not matmuls; a tied output matrix is one.
  const ModelConfig& c = model_->config();
  int64_t matmul_params = 0;
  for (const auto& item : model_->named_parameters())
    if (item.key().find("embed") == std::string::npos) matmul_params += item.value().numel();
  if (c.tie_word_embeddings && c.head != Head::SequenceClassification) matmul_params += c.vocab_size * c.hidden_size;
  for (const auto& [name, p] : added_) matmul_params += p.numel();
  matmul_params_ = matmul_params;
  if (options_.measure_mfu) peak_flops_ = measured_matmul_peak_flops(options_.device.str());
}

// ---------------------------------------------------------------------------------------------
// One optimizer step.
namespace {

bool finite(double x) { return std::isfinite(x); }

double mean(const std::deque<double>& v) {
  double s = 0;
  for (double x : v) s += x;
  return s / double(v.size());
}

double stddev(const std::deque<double>& v, double m) {
  double s = 0;
  for (double x : v) s += (x - m) * (x - m);
  return std::sqrt(s / double(v.size()));
}

// Rows [begin, end) of a batch (a data-parallel rank's share of the combined batch).
TokenBatch slice_rows(const TokenBatch& b, int64_t begin, int64_t end) {
  TokenBatch out;
  out.rows = end - begin;
  out.seq_len = b.seq_len;
  auto cut = [&](const std::vector<int32_t>& v, int64_t width) {
    if (v.empty()) return std::vector<int32_t>();
    return std::vector<int32_t>(v.begin() + begin * width, v.begin() + end * width);
  };
  out.input_ids = cut(b.input_ids, b.seq_len);
  out.labels = cut(b.labels, b.seq_len);
  out.attention_mask = cut(b.attention_mask, b.seq_len);
  out.segment_ids = cut(b.segment_ids, b.seq_len);
  out.domain_ids = cut(b.domain_ids, 1);
  out.source_ids = cut(b.source_ids, 1);
  out.class_labels = cut(b.class_labels, 1);
  return out;
}

}  // namespace

StepRecord Trainer::step() {
  build_optimizer();
  sync_parameters();
  const auto t0 = std::chrono::steady_clock::now();
  const Head head = model_->config().head;
  const int64_t k = options_.grad_accum;
  StepRecord r;
  r.step = step_;

  // 1. The learning rate of this step: a pure function of the step counter.
  r.lr = lr_at(schedule_, step_);
  optimizer_.set_lr(r.lr);

  // 2. The micro-batches, and how many loss targets each carries: the head's loss is a mean
  //    over targets, so micro-batch i's share of the step's loss is n_i / N.
  //    Data parallel: the stream yields the combined micro-batch on every rank; this rank keeps
  //    its rows. N (and the token count) are those of the combined batches: every rank sees
  //    them whole, so the global counts need no all-reduce.
  const int world = data_parallel() ? options_.distributed->world_size() : 1;
  const int rank = data_parallel() ? options_.distributed->rank() : 0;
  std::vector<TokenBatch> micro(static_cast<size_t>(k));
  std::vector<int64_t> targets(static_cast<size_t>(k));  // this rank's rows
  int64_t total_targets = 0;                              // all ranks' rows
  for (int64_t i = 0; i < k; ++i) {
    TokenBatch combined = stream_.next();
    r.tokens += combined.tokens();
    total_targets += loss_target_count(combined, head);
    if (world > 1) {
      if (combined.rows % world != 0)
        fail("train.batch_size", "a batch of " + std::to_string(combined.rows) + " rows cannot be split evenly over " +
                                     std::to_string(world) + " ranks (WORLD_SIZE); use a multiple of it");
      const int64_t per_rank = combined.rows / world;
      combined = slice_rows(combined, rank * per_rank, (rank + 1) * per_rank);
    }
    targets[size_t(i)] = loss_target_count(combined, head);
    micro[size_t(i)] = std::move(combined);
  }
  last_seq_len_ = micro[0].seq_len;
  for (const LossTerm& term : terms_) r.terms[term.name] = 0;

  // 3. Forward and backward of each micro-batch; gradients accumulate in .grad().
  for (const StepHook& hook : step_hooks_)
    if (hook.before) hook.before(step_);
  optimizer_.adamw->zero_grad();
  for (int64_t i = 0; i < k; ++i) {
    const TokenBatch& batch = micro[size_t(i)];
    const BatchTensors t = batch_to_tensors(batch, options_.device);
    ForwardOptions forward;
    forward.attention_mask = t.attention_mask;
    forward.segment_ids = t.segment_ids;  // packed documents attend only within their own
    forward.skip_logits = chunked_loss();
    const compat::AutocastScope autocast(options_.device, options_.bf16);
    const ModelOutput output = model_->forward(t.input_ids, forward);

    torch::Tensor loss = torch::zeros({}, torch::TensorOptions().device(options_.device));
    if (targets[size_t(i)] > 0) {
      const torch::Tensor& labels = head == Head::SequenceClassification ? t.class_labels : t.labels;
      const torch::Tensor task = forward.skip_logits ? model_->chunked_lm_loss(output.hidden, labels, options_.loss_chunk_tokens)
                                                     : model_->loss(output, labels);
      // Single process: sum_i mean_i * n_i / N is the mean over all N targets of the step.
      // Data parallel: with the GLOBAL N, sum over ranks and micro-batches of mean * n / N is
      // that same mean, i.e. the ranks' losses must be SUMMED; average_gradients divides the
      // summed gradient by W, so each rank scales its task loss by W (exact in real arithmetic
      // whatever the ranks' target counts; floating point differs only in summation order).
      const double share = double(targets[size_t(i)]) / double(total_targets);
      loss = loss + task * (share * double(world));
      r.task_loss += task.item<double>() * share;
    }
    // Extra terms are means over their micro-batch: each contributes 1/k of the step (and,
    // data parallel, the mean over ranks: average_gradients divides by W, unscaled here).
    const StepContext context{model_, output, batch, t, step_, i, rng_};
    for (const LossTerm& term : terms_) {
      const torch::Tensor value = term.fn(context);
      if (!value.defined()) continue;
      loss = loss + value * (term.weight / double(k));
      r.terms[term.name] += value.item<double>() / double(k);
    }
    // A micro-batch (or a rank's share of it) without loss targets and without extra terms
    // has nothing to differentiate; its gradient is zero (average_gradients counts it so).
    if (loss.requires_grad()) loss.backward();
  }
  if (data_parallel()) {
    // The step's loss as one process on the combined batches reports it.
    r.task_loss = options_.distributed->all_reduce_sum(r.task_loss);
    for (auto& [name, value] : r.terms) value = options_.distributed->all_reduce_mean(value);
  }
  r.loss = r.task_loss;
  for (const LossTerm& term : terms_) r.loss += term.weight * r.terms[term.name];
  if (after_backward) after_backward(step_);

  // 4. Data parallel: every rank ends with the gradient of the combined batch.
  std::vector<torch::Tensor> params;
  for (const auto& np : trainable_) params.push_back(np.second);
  if (data_parallel()) options_.distributed->average_gradients(params);

  // 5. Global gradient norm, and whether this step's update is applied.
  std::vector<torch::Tensor> norms;
  for (const torch::Tensor& p : params)
    if (p.grad().defined()) norms.push_back(p.grad().detach().norm(2).to(torch::kFloat64));
  r.grad_norm = norms.empty() ? 0.0 : torch::stack(norms).norm(2).item<double>();
  if (!finite(r.loss)) r.skip_reason = "non-finite loss";
  else if (!finite(r.grad_norm)) r.skip_reason = "non-finite grad norm";
  const bool nonfinite = !r.skip_reason.empty();
  consecutive_nonfinite_ = nonfinite ? consecutive_nonfinite_ + 1 : 0;
  if (!nonfinite) is_outlier(r.loss, r.grad_norm, r.skip_reason);
  r.skipped = !r.skip_reason.empty();

  // 6. Clip and update; a skipped step leaves parameters and optimizer state untouched.
  if (!r.skipped) {
    if (options_.max_grad_norm > 0 && r.grad_norm > options_.max_grad_norm) {
      const double scale = options_.max_grad_norm / (r.grad_norm + 1e-6);
      torch::NoGradGuard no_grad;
      for (torch::Tensor& p : params)
        if (p.grad().defined()) p.grad().mul_(scale);
    }
    optimizer_.step();
    if (options_.outlier_window > 0) {
      recent_loss_.push_back(r.loss);
      recent_grad_norm_.push_back(r.grad_norm);
      if (int64_t(recent_loss_.size()) > options_.outlier_window) {
        recent_loss_.pop_front();
        recent_grad_norm_.pop_front();
      }
    }
  }
  optimizer_.adamw->zero_grad();
  tokens_seen_ += r.tokens;
  ++step_;
  history_.push_back(r);

  // 7. Report, validate, checkpoint.
  const bool checkpoint_due = options_.checkpoint_every > 0 && step_ % options_.checkpoint_every == 0;
  const bool eval_due = (options_.eval_every > 0 && step_ % options_.eval_every == 0) ||
                        (checkpoint_due && (!validation_.empty() || !evaluators_.empty()));
  // The hooks first: their figures describe the step's own forward passes, not validation's.
  std::map<std::string, double> figures;
  for (const StepHook& hook : step_hooks_)
    if (hook.after) figures.merge(hook.after(r.step));
  std::map<std::string, double> eval;
  if (eval_due) eval = run_evaluators();
  log_step(r, std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(), eval, figures);
  if (nonfinite && consecutive_nonfinite_ >= options_.max_consecutive_nonfinite) {
    if (options_.console && is_main()) console_.finish();
    fail("training", std::to_string(consecutive_nonfinite_) + " consecutive steps with a " + r.skip_reason +
                         " (last at step " + std::to_string(step_) +
                         "); stopping. Lower train.lr, raise train.warmup_steps or check the data; "
                         "the last checkpoint is intact");
  }
  if (checkpoint_due) save_checkpoint();
  return r;
}

bool Trainer::is_outlier(double loss, double grad_norm, std::string& reason) const {
  // A spike is judged against the steps that were applied before it, so one bad batch
  // cannot raise the bar for the next; only upward deviations count.
  if (options_.outlier_window <= 0 || int64_t(recent_loss_.size()) < options_.outlier_window) return false;
  const double ml = mean(recent_loss_), sl = stddev(recent_loss_, ml);
  const double mg = mean(recent_grad_norm_), sg = stddev(recent_grad_norm_, mg);
  char buf[96];
  if (sl > 0 && (loss - ml) / sl > options_.outlier_zscore) {
    std::snprintf(buf, sizeof buf, "outlier loss (z %.1f)", (loss - ml) / sl);
    reason = buf;
  } else if (sg > 0 && (grad_norm - mg) / sg > options_.outlier_zscore) {
    std::snprintf(buf, sizeof buf, "outlier grad norm (z %.1f)", (grad_norm - mg) / sg);
    reason = buf;
  }
  return !reason.empty();
}

bool Trainer::budget_reached() const {
  const TrainerOptions& o = options_;
  return (o.max_steps > 0 && step_ >= o.max_steps) || (o.max_tokens > 0 && tokens_seen_ >= o.max_tokens) ||
         (o.max_epochs > 0 && stream_.epoch() >= o.max_epochs);
}

void Trainer::run(int64_t stop_after_steps) {
  build_optimizer();
  while (!budget_reached() && (stop_after_steps < 0 || step_ < stop_after_steps)) step();
  if (options_.console && is_main()) console_.finish();
  // The final state is always checkpointed (unless the last step just did it).
  if (!(options_.checkpoint_every > 0 && step_ % options_.checkpoint_every == 0) && step_ > 0) {
    if ((!validation_.empty() || !evaluators_.empty()) && last_eval_step_ != step_) {
      std::map<std::string, double> eval = run_evaluators();
      if (is_main() && log_) {
        json line = {{"step", step_}};
        for (const auto& [key, value] : eval) line[key] = finite(value) ? json(value) : json(nullptr);
        log_->write(line.dump());
      }
    }
    save_checkpoint();
  }
}

// ---------------------------------------------------------------------------------------------
// Validation.

double Trainer::validate() {
  if (validation_.empty()) return std::nan("");
  torch::NoGradGuard no_grad;
  model_->eval();
  const Head head = model_->config().head;
  double sum = 0;
  int64_t count = 0;
  for (const TokenBatch& batch : validation_) {
    const int64_t n = loss_target_count(batch, head);
    if (n == 0) continue;
    const BatchTensors t = batch_to_tensors(batch, options_.device);
    ForwardOptions forward;
    forward.attention_mask = t.attention_mask;
    forward.segment_ids = t.segment_ids;
    // Validation has no loss terms: chunked whenever the model allows it.
    forward.skip_logits = options_.loss_chunk_tokens > 0 && model_->chunked_lm_loss_supported();
    const compat::AutocastScope autocast(options_.device, options_.bf16);
    const ModelOutput output = model_->forward(t.input_ids, forward);
    const torch::Tensor& labels = head == Head::SequenceClassification ? t.class_labels : t.labels;
    const torch::Tensor loss = forward.skip_logits ? model_->chunked_lm_loss(output.hidden, labels, options_.loss_chunk_tokens)
                                                   : model_->loss(output, labels);
    sum += loss.item<double>() * double(n);
    count += n;
  }
  model_->train();
  return count > 0 ? sum / double(count) : std::nan("");
}

bool Trainer::chunked_loss() const {
  if (options_.loss_chunk_tokens <= 0 || !model_->chunked_lm_loss_supported()) return false;
  for (const LossTerm& term : terms_)
    if (term.needs_logits) return false;
  return true;
}

std::map<std::string, double> Trainer::run_evaluators() {
  std::map<std::string, double> metrics;
  if (!validation_.empty()) metrics["val_loss"] = validate();
  for (auto& fn : evaluators_)
    for (const auto& [key, value] : fn(model_, step_)) metrics[key] = value;
  last_eval_ = metrics;
  last_eval_step_ = step_;
  return metrics;
}

// ---------------------------------------------------------------------------------------------
// Reporting.

void Trainer::log_step(const StepRecord& r, double seconds, const std::map<std::string, double>& eval,
                       const std::map<std::string, double>& figures) {
  if (!is_main()) return;
  const double session = std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  const double tokens_per_s = seconds > 0 ? double(r.tokens) / seconds : 0;
  const double flops = train_flops_per_token(model_->config(), matmul_params_, last_seq_len_);
  const double mfu = peak_flops_ > 0 ? flops * tokens_per_s / peak_flops_ : 0;
  auto number = [](double x) { return finite(x) ? json(x) : json(nullptr); };  // JSON has no NaN

  json line;
  line["step"] = r.step + 1;  // optimizer updates done, as in checkpoint names
  line["loss"] = number(r.loss);
  line["loss/task"] = number(r.task_loss);
  for (const auto& [name, value] : r.terms) line["loss/" + name] = number(value);
  line["lr"] = r.lr;
  line["grad_norm"] = number(r.grad_norm);
  line["tokens"] = r.tokens;
  line["tokens_seen"] = tokens_seen_;
  line["epoch"] = stream_.epoch();
  line["tokens_per_s"] = tokens_per_s;
  line["mfu"] = mfu;
  line["peak_rss_mb"] = peak_rss_mb();
  line["step_s"] = seconds;
  line["elapsed_s"] = elapsed_before_ + session;
  line["skipped"] = r.skipped;
  if (r.skipped) line["skip_reason"] = r.skip_reason;
  for (const auto& [key, value] : figures) line[key] = number(value);
  for (const auto& [key, value] : eval) line[key] = number(value);
  if (!log_) log_ = std::make_unique<MetricsLog>((fs::path(options_.run_dir) / "metrics.jsonl").string(), r.step > 0);
  log_->write(line.dump());

  if (!options_.console) return;
  ++session_steps_;
  const double eta = session / double(session_steps_) * double(std::max<int64_t>(0, schedule_.total_steps - step_));
  console_.update(r.step, schedule_.total_steps, r.loss, r.lr, r.grad_norm, tokens_per_s, eta, r.skipped);
  if (r.skipped) console_.message("step " + std::to_string(r.step + 1) + " skipped: " + r.skip_reason);
  if (!eval.empty()) {
    std::string text = "step " + std::to_string(r.step + 1) + ":";
    for (const auto& [key, value] : eval) {
      char buf[64];
      std::snprintf(buf, sizeof buf, " %s %.4f", key.c_str(), value);
      text += buf;
    }
    console_.message(text);
  }
}

// ---------------------------------------------------------------------------------------------
// Checkpoints.

std::string Trainer::save_checkpoint() {
  build_optimizer();
  // Data parallel: rank 0 writes, the others wait for it at a barrier, so no rank runs ahead
  // (or resumes) while the checkpoint is incomplete. The ranks' states are identical.
  if (!is_main()) {
    options_.distributed->barrier();
    return "";
  }
  // The best metric is decided before writing, so the saved state already knows it.
  if (!options_.best_metric.empty() && last_eval_step_ == step_) {
    auto it = last_eval_.find(options_.best_metric);
    if (it != last_eval_.end() && finite(it->second)) {
      const bool better = !best_value_ || (options_.best_lower_is_better ? it->second < *best_value_
                                                                         : it->second > *best_value_);
      if (better) {
        best_value_ = it->second;
        best_step_ = step_;
      }
    }
  }
  const std::string metrics_path = (fs::path(options_.run_dir) / "metrics.jsonl").string();
  const std::string folder = write_checkpoint(options_.run_dir, step_, [&](const std::string& tmp) {
    // The model in Hugging Face layout, always fp32 so a resumed run continues from the exact
    // bits (a checkpoint stored in bf16 is widened once, at the first save).
    SaveOptions save;
    save.tokenizer_source = options_.tokenizer_source;
    save_pretrained(model_, TensorDtypes{}, tmp, save);
    maybe_kill_for_test(step_);  // the test's kill -9 lands here, mid-checkpoint

    if (!added_.empty()) {
      SafetensorsWriter writer;
      for (const auto& [name, p] : added_) {
        torch::Tensor c = p.detach().to(torch::kCPU).contiguous();
        writer.add(name, to_safetensors_dtype(c.scalar_type(), name), c.sizes().vec(), c.data_ptr(),
                   size_t(c.nbytes()), std::make_shared<torch::Tensor>(c));
      }
      writer.write((fs::path(tmp) / kExtraTensorsFile).string());
    }
    std::map<std::string, int64_t> adam_steps;
    optimizer_.save_state((fs::path(tmp) / "optimizer.safetensors").string(), adam_steps);
    if (log_ || file_exists(metrics_path))
      write_text_file_atomic((fs::path(tmp) / "metrics.jsonl").string(),
                             file_exists(metrics_path) ? read_text_file(metrics_path) : "");
    if (!options_.recipe_toml.empty())
      write_text_file_atomic((fs::path(tmp) / "resolved_recipe.toml").string(), options_.recipe_toml);
    for (const CheckpointHook& hook : checkpoint_hooks_)
      if (hook.save) hook.save(tmp);

    json state;
    state["format"] = kStateFormat;
    state["format_version"] = kStateVersion;
    state["step"] = step_;
    state["tokens_seen"] = tokens_seen_;
    state["elapsed_s"] = elapsed_before_ +
                         std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
    state["schedule"] = {{"total_steps", schedule_.total_steps}, {"peak_lr", schedule_.peak_lr},
                         {"warmup_steps", schedule_.warmup_steps}};
    state["optimizer_steps"] = adam_steps;
    state["rng"] = {{"torch_cpu", torch_rng_state_hex()},
                    // Only a CUDA run has CUDA randomness to keep; a CPU run on a GPU machine
                    // must not initialise CUDA (a process that forks after that cannot use it).
                    {"torch_cuda", options_.device.is_cuda() ? cuda_rng_state_hex() : ""},
                    {"trainer", mt19937_state_text(rng_)}};
    state["loader"] = stream_.state_json();
    state["consecutive_nonfinite"] = consecutive_nonfinite_;
    state["recent_loss"] = recent_loss_;
    state["recent_grad_norm"] = recent_grad_norm_;
    state["best_metric"] = options_.best_metric;
    state["best_value"] = best_value_ ? json(*best_value_) : json(nullptr);
    state["best_step"] = best_step_;
    json eval = json::object();
    for (const auto& [key, value] : last_eval_) eval[key] = finite(value) ? json(value) : json(nullptr);
    state["last_eval"] = eval;
    state["last_eval_step"] = last_eval_step_;
    json weights = json::object();
    for (const LossTerm& t : terms_) weights[t.name] = t.weight;
    state["loss_term_weights"] = weights;
    // Written last: a folder with trainer_state.json is complete (checkpointing.h).
    write_text_file_atomic((fs::path(tmp) / kTrainerStateFile).string(), state.dump(1));
  });
  set_checkpoint_pointer(options_.run_dir, "latest", step_);
  if (best_step_ == step_) set_checkpoint_pointer(options_.run_dir, "best", step_);
  prune_checkpoints(options_.run_dir, options_.keep_last,
                    best_step_ >= 0 ? std::set<int64_t>{best_step_} : std::set<int64_t>{});
  if (options_.console) console_.message("checkpoint " + folder);
  if (data_parallel()) options_.distributed->barrier();
  return folder;
}

bool Trainer::resume() {
  remove_stale_checkpoint_temps(options_.run_dir);
  const std::optional<std::string> latest = latest_checkpoint(options_.run_dir);
  if (!latest) return false;
  resume_from(*latest);
  return true;
}

void Trainer::resume_from(const std::string& folder) {
  build_optimizer();
  const std::string state_path = (fs::path(folder) / kTrainerStateFile).string();
  if (!file_exists(state_path)) fail(folder, "not a complete checkpoint (no " + std::string(kTrainerStateFile) + ")");
  json state;
  try {
    state = json::parse(read_text_file(state_path));
  } catch (const json::exception& e) {
    fail(state_path, std::string("invalid JSON: ") + e.what());
  }
  if (state.value("format", "") != kStateFormat || state.value("format_version", 0) != kStateVersion)
    fail(state_path, "not a gemkit trainer state of format version " + std::to_string(kStateVersion));
  try {
    // Weights: the model's own (strict, by Hugging Face name) and the added parameters.
    {
      torch::NoGradGuard no_grad;
      load_weights(*model_, folder, model_->ignorable_checkpoint_tensors());
      if (!added_.empty()) {
        const std::string extra_path = (fs::path(folder) / kExtraTensorsFile).string();
        if (!file_exists(extra_path)) fail(folder, std::string(kExtraTensorsFile) + " is missing (the run has added parameters)");
        SafetensorsSet extra = SafetensorsSet::open(extra_path);
        for (auto& [name, p] : added_) {
          const TensorView* v = extra.find(name);
          if (!v) fail(extra_path, "parameter " + name + " is missing");
          torch::Tensor t = to_tensor(*v);
          if (t.sizes() != p.sizes()) fail(extra_path, name + ": shape does not match");
          p.copy_(t);
        }
      }
    }
    optimizer_.load_state((fs::path(folder) / "optimizer.safetensors").string(),
                          state.at("optimizer_steps").get<std::map<std::string, int64_t>>());

    step_ = state.at("step").get<int64_t>();
    tokens_seen_ = state.at("tokens_seen").get<int64_t>();
    elapsed_before_ = state.at("elapsed_s").get<double>();
    consecutive_nonfinite_ = state.at("consecutive_nonfinite").get<int64_t>();
    recent_loss_ = state.at("recent_loss").get<std::deque<double>>();
    recent_grad_norm_ = state.at("recent_grad_norm").get<std::deque<double>>();
    best_value_.reset();
    if (!state.at("best_value").is_null() && state.value("best_metric", "") == options_.best_metric)
      best_value_ = state.at("best_value").get<double>();
    best_step_ = best_value_ ? state.at("best_step").get<int64_t>() : -1;
    last_eval_.clear();
    for (const auto& [key, value] : state.at("last_eval").items())
      last_eval_[key] = value.is_null() ? std::nan("") : value.get<double>();
    last_eval_step_ = state.at("last_eval_step").get<int64_t>();
    for (const auto& [name, weight] : state.at("loss_term_weights").items())
      for (LossTerm& t : terms_)
        if (t.name == name) t.weight = weight.get<double>();

    const json& rng = state.at("rng");
    restore_torch_rng_state_hex(rng.at("torch_cpu").get<std::string>(), state_path);
    if (options_.device.is_cuda()) restore_cuda_rng_state_hex(rng.at("torch_cuda").get<std::string>(), state_path);
    restore_mt19937_state_text(rng_, rng.at("trainer").get<std::string>(), state_path);
    stream_.restore(state.at("loader").get<std::string>());
    for (const CheckpointHook& hook : checkpoint_hooks_)
      if (hook.restore) hook.restore(folder);
  } catch (const json::exception& e) {
    fail(state_path, std::string("missing or invalid field: ") + e.what());
  }

  // The run's log continues from the checkpoint's copy: steps logged after it are dropped,
  // since they are about to be redone.
  if (is_main()) {
    const std::string checkpoint_log = (fs::path(folder) / "metrics.jsonl").string();
    const std::string run_log = (fs::path(options_.run_dir) / "metrics.jsonl").string();
    log_.reset();
    write_text_file_atomic(run_log, file_exists(checkpoint_log) ? read_text_file(checkpoint_log) : "");
    log_ = std::make_unique<MetricsLog>(run_log, true);
    // Pointers may lag the folders when a kill fell between the rename and their update.
    if (fs::path(folder).parent_path() == fs::path(options_.run_dir)) {
      set_checkpoint_pointer(options_.run_dir, "latest", step_);
      if (best_step_ >= 0 && !list_checkpoints(options_.run_dir).empty())
        for (int64_t s : list_checkpoints(options_.run_dir))
          if (s == best_step_) set_checkpoint_pointer(options_.run_dir, "best", s);
    }
  }
  if (options_.console && is_main())
    console_.message("resumed from " + folder + " at step " + std::to_string(step_));
}

}  // namespace gemkit
