#include "eval/scorer.h"

#include <algorithm>
#include <map>
#include <numeric>

#include "core/error.h"
#include "core/torch_compat.h"

namespace gemkit::eval {
namespace {

// Longest first: the largest batch runs first, so running out of memory happens at once.
std::vector<size_t> order_by_length(const std::vector<size_t>& lengths) {
  std::vector<size_t> order(lengths.size());
  std::iota(order.begin(), order.end(), size_t(0));
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return lengths[a] > lengths[b]; });
  return order;
}

}  // namespace

Scorer::Scorer(Transformer model, int64_t batch_size, int64_t max_length, int64_t pad_id)
    : model_(std::move(model)), batch_size_(batch_size), max_length_(max_length), pad_id_(pad_id) {
  if (batch_size_ < 1) fail("eval.batch_size", "must be at least 1");
  if (max_length_ < 2) fail("eval.seq_len", "must be at least 2");
  model_->eval();
}

std::vector<ContinuationScore> Scorer::score(const std::vector<ScoreRequest>& requests,
                                             const ProgressFn& progress, bool share_prefixes) const {
  if (model_->config().head != Head::CausalLM)
    fail("eval", "scoring continuations needs a causal language model, got " + model_->config().architecture);
  torch::NoGradGuard no_grad;
  const compat::AutocastScope autocast(model_->device(), bf16_);
  std::vector<ContinuationScore> out(requests.size());

  // The row of each request: context cut on the left so that the row fits.
  std::vector<std::vector<int32_t>> rows(requests.size());
  std::vector<size_t> scored_from(requests.size()), lengths(requests.size());
  for (size_t i = 0; i < requests.size(); ++i) {
    const ScoreRequest& r = requests[i];
    if (r.context.empty()) fail("eval::Scorer", "request " + std::to_string(i) + " has no context token");
    std::vector<int32_t> cont = r.continuation;
    if (int64_t(cont.size()) > max_length_ - 1) cont.resize(size_t(max_length_ - 1));
    const size_t keep_ctx = std::min(r.context.size(), size_t(max_length_) - cont.size());
    out[i].truncated = keep_ctx < r.context.size() || cont.size() < r.continuation.size();
    rows[i].assign(r.context.end() - std::ptrdiff_t(keep_ctx), r.context.end());
    rows[i].insert(rows[i].end(), cont.begin(), cont.end());
    scored_from[i] = keep_ctx;
    lengths[i] = rows[i].size();
  }

  int64_t done = 0;
  std::vector<size_t> whole;  // requests scored as whole rows
  if (share_prefixes && prefix_sharing_ && model_->config().family == Family::Decoder) {
    std::map<std::vector<int32_t>, std::vector<size_t>> by_context;  // ordered: deterministic
    for (size_t i = 0; i < requests.size(); ++i) {
      if (scored_from[i] == rows[i].size()) whole.push_back(i);  // nothing to score
      else by_context[std::vector<int32_t>(rows[i].begin(), rows[i].begin() + std::ptrdiff_t(scored_from[i]))].push_back(i);
    }
    for (auto& [context, group] : by_context) {
      if (group.size() < 2) {
        whole.push_back(group[0]);
        continue;
      }
      std::vector<std::vector<int32_t>> continuations;
      for (size_t i : group) continuations.emplace_back(rows[i].begin() + std::ptrdiff_t(scored_from[i]), rows[i].end());
      score_shared(context, continuations, group, out);
      done += int64_t(group.size());
      if (progress) progress(done);
    }
    std::sort(whole.begin(), whole.end());
  } else {
    whole.resize(requests.size());
    std::iota(whole.begin(), whole.end(), size_t(0));
  }

  std::vector<size_t> whole_lengths;
  for (size_t i : whole) whole_lengths.push_back(lengths[i]);
  std::vector<size_t> order = order_by_length(whole_lengths);
  for (size_t& k : order) k = whole[k];
  for (size_t b0 = 0; b0 < order.size(); b0 += size_t(batch_size_)) {
    const size_t b1 = std::min(order.size(), b0 + size_t(batch_size_));
    std::vector<const std::vector<int32_t>*> batch;
    std::vector<size_t> from;
    for (size_t k = b0; k < b1; ++k) batch.push_back(&rows[order[k]]), from.push_back(scored_from[order[k]]);
    const std::vector<double> sums = score_rows(batch, from, nullptr);
    for (size_t k = b0; k < b1; ++k) {
      out[order[k]].logprob = sums[k - b0];
      out[order[k]].tokens = int64_t(rows[order[k]].size() - scored_from[order[k]]);
    }
    done += int64_t(b1 - b0);
    if (progress) progress(done);
  }
  return out;
}

void Scorer::score_shared(const std::vector<int32_t>& context, const std::vector<std::vector<int32_t>>& continuations,
                          const std::vector<size_t>& group, std::vector<ContinuationScore>& out) const {
  const torch::Device device = model_->device();
  auto opts = torch::TensorOptions().dtype(torch::kInt64);
  // The context once: its cache, and the distribution of every continuation's first token.
  KVCache prefix = model_->make_cache();
  ForwardOptions fo;
  fo.cache = &prefix;
  fo.last_token_logits_only = true;
  std::vector<int64_t> ctx(context.begin(), context.end());
  torch::Tensor first = model_->forward(torch::from_blob(ctx.data(), {1, int64_t(ctx.size())}, opts).to(device), fo).logits;
  first = first.reshape({-1});
  if (first.scalar_type() != torch::kDouble) first = first.to(torch::kFloat);
  const torch::Tensor first_lp = first.log_softmax(-1).to(torch::kCPU).to(torch::kDouble).contiguous();
  const double* flp = first_lp.data_ptr<double>();
  // Then the continuations, batch_size at a time, each batch on its own copy of the cache; their
  // first token is scored above, so each is scored from its second token on.
  for (size_t b0 = 0; b0 < continuations.size(); b0 += size_t(batch_size_)) {
    const size_t b1 = std::min(continuations.size(), b0 + size_t(batch_size_));
    std::vector<const std::vector<int32_t>*> batch;
    for (size_t k = b0; k < b1; ++k) batch.push_back(&continuations[k]);
    KVCache cache = prefix;  // shares the prefix's tensors; repeat_batch makes new ones
    cache.repeat_batch(int64_t(b1 - b0));
    const std::vector<double> sums = score_rows(batch, std::vector<size_t>(b1 - b0, 1), &cache);
    for (size_t k = b0; k < b1; ++k) {
      ContinuationScore& o = out[group[k]];
      o.logprob = flp[continuations[k][0]] + sums[k - b0];
      o.tokens = int64_t(continuations[k].size());
    }
  }
}

std::vector<double> Scorer::score_rows(const std::vector<const std::vector<int32_t>*>& rows,
                                       const std::vector<size_t>& scored_from, KVCache* cache) const {
  const torch::Device device = model_->device();
  const int64_t B = int64_t(rows.size());
  int64_t T = 0;
  for (const auto* row : rows) T = std::max<int64_t>(T, int64_t(row->size()));
  std::vector<double> sums(rows.size(), 0.0);
  std::vector<int64_t> ids(size_t(B * T), pad_id_), mask(size_t(B * T), 0), target(size_t(B * T), 0);
  std::vector<uint8_t> scored(size_t(B * T), 0);
  bool any = false;
  for (int64_t r = 0; r < B; ++r) {
    const std::vector<int32_t>& row = *rows[size_t(r)];
    for (size_t t = 0; t < row.size(); ++t) {
      ids[size_t(r * T) + t] = row[t];
      mask[size_t(r * T) + t] = 1;
      // Position t predicts token t + 1; the scored tokens start at scored_from.
      if (t + 1 < row.size() && t + 1 >= scored_from[size_t(r)]) {
        scored[size_t(r * T) + t] = 1;
        target[size_t(r * T) + t] = row[t + 1];
        any = true;
      }
    }
  }
  if (!any) return sums;  // one-token continuations after a shared context: nothing to run
  auto opts = torch::TensorOptions().dtype(torch::kInt64);
  ForwardOptions fo;
  fo.cache = cache;
  fo.attention_mask = torch::from_blob(mask.data(), {B, T}, opts).to(device);
  // Hidden states only: the output layer runs on the scored positions, kLogitRows at a time, so
  // no [B, T, vocab] tensor exists (400 MB in fp32 for SmolLM2 at 8 x 256).
  fo.skip_logits = true;
  constexpr int64_t kLogitRows = 512;
  const torch::Tensor hidden = model_->forward(torch::from_blob(ids.data(), {B, T}, opts).to(device), fo).hidden;
  torch::Tensor sel = torch::from_blob(scored.data(), {B, T}, torch::kUInt8).to(device).to(torch::kBool);
  const torch::Tensor picked = hidden.index({sel});
  const torch::Tensor picked_targets = torch::from_blob(target.data(), {B, T}, opts).to(device).index({sel});
  std::vector<torch::Tensor> parts;
  for (int64_t begin = 0; begin < picked.size(0); begin += kLogitRows) {
    const int64_t n = std::min(kLogitRows, picked.size(0) - begin);
    torch::Tensor logits = model_->output_logits(picked.narrow(0, begin, n));
    if (logits.scalar_type() != torch::kDouble) logits = logits.to(torch::kFloat);  // log_softmax in at least fp32
    parts.push_back(logits.log_softmax(-1).gather(1, picked_targets.narrow(0, begin, n).unsqueeze(1)).squeeze(1));
  }
  torch::Tensor lp = torch::cat(parts);
  // Per-row sums: the scored positions of row r are contiguous in index order.
  torch::Tensor lp_cpu = lp.to(torch::kCPU).to(torch::kDouble).contiguous();
  const double* lpp = lp_cpu.data_ptr<double>();
  int64_t offset = 0;
  for (int64_t r = 0; r < B; ++r) {
    const int64_t n = std::max<int64_t>(int64_t(rows[size_t(r)]->size()) - int64_t(scored_from[size_t(r)]), 0);
    for (int64_t k = 0; k < n; ++k) sums[size_t(r)] += lpp[offset + k];
    offset += n;
  }
  return sums;
}

std::vector<std::vector<float>> Scorer::class_logits(const std::vector<std::vector<int32_t>>& inputs,
                                                     const ProgressFn& progress) const {
  if (model_->config().head != Head::SequenceClassification)
    fail("eval", "classification-head scoring needs a *ForSequenceClassification model, got " +
                     model_->config().architecture);
  torch::NoGradGuard no_grad;
  const compat::AutocastScope autocast(model_->device(), bf16_);
  const torch::Device device = model_->device();
  std::vector<std::vector<int32_t>> rows(inputs.size());
  std::vector<size_t> lengths(inputs.size());
  for (size_t i = 0; i < inputs.size(); ++i) {
    if (inputs[i].empty()) fail("eval::Scorer", "input " + std::to_string(i) + " has no tokens");
    rows[i] = inputs[i];
    if (int64_t(rows[i].size()) > max_length_) {
      const int32_t last = rows[i].back();
      rows[i].resize(size_t(max_length_));
      rows[i].back() = last;
    }
    lengths[i] = rows[i].size();
  }
  std::vector<std::vector<float>> out(inputs.size());
  const std::vector<size_t> order = order_by_length(lengths);
  int64_t done = 0;
  for (size_t b0 = 0; b0 < order.size(); b0 += size_t(batch_size_)) {
    const size_t b1 = std::min(order.size(), b0 + size_t(batch_size_));
    const int64_t B = int64_t(b1 - b0), T = int64_t(lengths[order[b0]]);
    std::vector<int64_t> ids(size_t(B * T), pad_id_), mask(size_t(B * T), 0);
    for (int64_t r = 0; r < B; ++r) {
      const auto& row = rows[order[b0 + size_t(r)]];
      for (size_t t = 0; t < row.size(); ++t) {
        ids[size_t(r * T) + t] = row[t];
        mask[size_t(r * T) + t] = 1;
      }
    }
    auto opts = torch::TensorOptions().dtype(torch::kInt64);
    ForwardOptions fo;
    fo.attention_mask = torch::from_blob(mask.data(), {B, T}, opts).to(device);
    torch::Tensor logits =
        model_->forward(torch::from_blob(ids.data(), {B, T}, opts).to(device), fo).logits.to(torch::kCPU).to(torch::kFloat).contiguous();
    const int64_t C = logits.size(1);
    const float* p = logits.data_ptr<float>();
    for (int64_t r = 0; r < B; ++r) out[order[b0 + size_t(r)]].assign(p + r * C, p + (r + 1) * C);
    done += B;
    if (progress) progress(done);
  }
  return out;
}

}  // namespace gemkit::eval
