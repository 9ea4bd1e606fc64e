#include "eval/metrics.h"

#include "core/error.h"

namespace gemkit::eval {
namespace {

std::vector<size_t> all_items(size_t n) {
  std::vector<size_t> idx(n);
  for (size_t i = 0; i < n; ++i) idx[i] = i;
  return idx;
}

void check_sizes(const std::vector<int32_t>& gold, const std::vector<int32_t>& pred) {
  if (gold.size() != pred.size())
    fail("eval::metrics", "gold has " + std::to_string(gold.size()) + " items, predictions " +
                              std::to_string(pred.size()));
}

}  // namespace

double accuracy(const std::vector<int32_t>& gold, const std::vector<int32_t>& pred,
                const std::vector<size_t>& idx) {
  check_sizes(gold, pred);
  if (idx.empty()) return 0;
  size_t correct = 0;
  for (size_t i : idx) correct += gold[i] == pred[i];
  return double(correct) / double(idx.size());
}

double accuracy(const std::vector<int32_t>& gold, const std::vector<int32_t>& pred) {
  return accuracy(gold, pred, all_items(gold.size()));
}

double macro_f1(const std::vector<int32_t>& gold, const std::vector<int32_t>& pred, int32_t num_classes,
                const std::vector<size_t>& idx) {
  check_sizes(gold, pred);
  if (num_classes < 1) fail("eval::macro_f1", "num_classes must be at least 1");
  std::vector<int64_t> tp(size_t(num_classes), 0), fp(size_t(num_classes), 0), fn(size_t(num_classes), 0);
  for (size_t i : idx) {
    const int32_t g = gold[i], p = pred[i];
    if (g < 0 || g >= num_classes)
      fail("eval::macro_f1", "gold label " + std::to_string(g) + " outside 0.." + std::to_string(num_classes - 1));
    if (g == p) {
      ++tp[size_t(g)];
    } else {
      ++fn[size_t(g)];
      if (p >= 0 && p < num_classes) ++fp[size_t(p)];
    }
  }
  double sum = 0;
  for (size_t c = 0; c < size_t(num_classes); ++c) {
    const int64_t denom = 2 * tp[c] + fp[c] + fn[c];
    sum += denom == 0 ? 0.0 : 2.0 * double(tp[c]) / double(denom);
  }
  return sum / double(num_classes);
}

double macro_f1(const std::vector<int32_t>& gold, const std::vector<int32_t>& pred, int32_t num_classes) {
  return macro_f1(gold, pred, num_classes, all_items(gold.size()));
}

}  // namespace gemkit::eval
