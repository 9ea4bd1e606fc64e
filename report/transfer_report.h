// The output of `gemkit compare --transfer`: a transfer matrix with CDTR (eval/transfer.h) as a
// JSON document and as markdown tables. Torch-free.
#pragma once
#include <string>

#include <nlohmann/json.hpp>

#include "eval/transfer.h"

namespace gemkit::eval {

// {"domains", "rows": [{"label", "source", "score_delta": {t: {value, low, high}}, "ppl_change":
// {...}, "cdtr": {value, low, high} | null, "cdtr_undefined": reason, "cdtr_ppl", ...}],
// "item_intervals": bool, "item_intervals_note", "min_on_target_gain"}; non-finite numbers are null.
nlohmann::json to_json(const TransferMatrix& m);
// The dS and perplexity-change tables (bold: each row's source domain), then CDTR per row.
std::string to_markdown(const TransferMatrix& m);

}  // namespace gemkit::eval
