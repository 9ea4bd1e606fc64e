// What the tokenizer targets do with a vocabulary that loaded: encode the probe text (with and
// without special tokens), check every id against the vocabulary, read each token's text and
// decode. Encoding must not throw: a loaded tokenizer handles any UTF-8 text.
#pragma once
#include "tests/fuzz/fuzz_target.h"
#include "tokenizers/tokenizer.h"

namespace gemkit::fuzz {

inline void probe_tokenizer(const Tokenizer& tok) {
  require(tok.vocab_size() > 0, "a loaded vocabulary is not empty");
  for (bool special : {true, false}) {
    const std::vector<int32_t> ids = tok.encode(kProbeText, special);
    for (int32_t id : ids) {
      require(id >= 0 && id < tok.vocab_size(), "encoded ids lie inside the vocabulary");
      (void)tok.token_text(id).size();
    }
    (void)tok.decode(ids, !special).size();
  }
}

}  // namespace gemkit::fuzz
