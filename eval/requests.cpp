#include "eval/requests.h"

#include <algorithm>

namespace gemkit::eval {

ScoreRequest make_request(const Tokenizer& tok, const std::string& prompt, const std::string& continuation,
                          bool add_bos) {
  const std::vector<int32_t> ctx = tok.encode(prompt, /*add_special=*/false);
  const std::vector<int32_t> whole = tok.encode(prompt + continuation, /*add_special=*/false);
  size_t split = 0;
  while (split < ctx.size() && split < whole.size() && ctx[split] == whole[split]) ++split;
  if (split == whole.size() && split > 0) --split;  // the continuation encodes to nothing new
  ScoreRequest r;
  const SpecialTokens& sp = tok.special();
  if (add_bos && sp.add_bos && sp.bos >= 0) r.context.push_back(sp.bos);
  r.context.insert(r.context.end(), whole.begin(), whole.begin() + std::ptrdiff_t(split));
  r.continuation.assign(whole.begin() + std::ptrdiff_t(split), whole.end());
  // Without BOS and with an empty prompt encoding, the first continuation token has nothing to
  // be predicted from: it becomes the context.
  if (r.context.empty() && !r.continuation.empty()) {
    r.context.push_back(r.continuation.front());
    r.continuation.erase(r.continuation.begin());
  }
  return r;
}

std::string mc_prompt(const std::string& context) { return context + "\nAnswer:"; }
std::string label_prompt(const std::string& text) { return text + "\nLabel:"; }

}  // namespace gemkit::eval
