// Classification figures: accuracy and macro-F1 over a fixed label list. Torch-free.
#pragma once
#include <cstddef>
#include <cstdint>
#include <vector>

namespace gemkit::eval {

// gold[i], pred[i] in 0..num_classes-1; a prediction outside that range (a head label the task
// does not know) counts as wrong for every class. Both over the items listed in `idx` (a
// bootstrap sample); the overloads without idx use every item.
double accuracy(const std::vector<int32_t>& gold, const std::vector<int32_t>& pred,
                const std::vector<size_t>& idx);
double accuracy(const std::vector<int32_t>& gold, const std::vector<int32_t>& pred);

// Unweighted mean over all num_classes classes of F1 = 2TP / (2TP + FP + FN). A class with no
// gold and no predicted item in the sample has F1 0 (sklearn's zero_division=0 over the full
// label list, which is how the suite's baselines are computed).
double macro_f1(const std::vector<int32_t>& gold, const std::vector<int32_t>& pred, int32_t num_classes,
                const std::vector<size_t>& idx);
double macro_f1(const std::vector<int32_t>& gold, const std::vector<int32_t>& pred, int32_t num_classes);

}  // namespace gemkit::eval
