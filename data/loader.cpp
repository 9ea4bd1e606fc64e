#include "data/loader.h"

#include <algorithm>
#include <cstdio>
#include <memory>

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "data/token_shards.h"

namespace gemkit {

namespace {

using json = nlohmann::json;

// splitmix64: a tiny, well-mixed generator whose whole state is one integer, so every random
// choice is a pure function of (seed, purpose, counter) and needs no saving beyond counters.
struct SplitMix {
  uint64_t state;
  explicit SplitMix(uint64_t s) : state(s) {}
  uint64_t next() {
    uint64_t z = (state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
  }
  // Uniform in [0, n) without modulo bias (rejection of the short last block).
  uint64_t below(uint64_t n) {
    const uint64_t limit = ~uint64_t(0) - (~uint64_t(0) % n);
    uint64_t x;
    do x = next();
    while (x >= limit);
    return x % n;
  }
  double uniform() { return double(next() >> 11) * (1.0 / 9007199254740992.0); }  // [0, 1)
};

uint64_t mix_key(uint64_t seed, uint64_t purpose, uint64_t a, uint64_t b = 0) {
  SplitMix m(seed ^ (purpose * 0xd1b54a32d192ed03ull));
  m.state ^= m.next() + a * 0x9e3779b97f4a7c15ull;
  m.state ^= m.next() + b * 0xc2b2ae3d27d4eb4full;
  return m.next();
}

enum : uint64_t { kShufflePurpose = 1, kMaskPurpose = 2 };

const char* kind_name(BatchKind k) {
  switch (k) {
    case BatchKind::CausalLM: return "causal_lm";
    case BatchKind::MaskedLM: return "masked_lm";
    case BatchKind::Classification: return "classification";
  }
  return "?";
}

// One shard being read: its document order for the current epoch and the position in it.
struct Source {
  TokenShard shard;
  double weight = 1.0;
  int64_t index = 0;  // position among the loader's sources (part of the shuffle key)
  int64_t epoch = 0;
  int64_t cursor = 0;   // position in `order`
  int64_t offset = 0;   // tokens of the framed document at `cursor` already emitted
  int64_t consumed = 0; // tokens emitted this epoch (for fractional epochs)
  int64_t rows = 0;     // rows drawn from this source (the mixing counts)
  std::vector<int64_t> order;
  // The framed document at `cursor`, read once even when it spans several rows.
  int64_t framed_doc = -1;
  std::vector<int32_t> framed;
  std::vector<uint8_t> framed_mask;  // its loss mask; empty when the shard has none

  explicit Source(const std::string& path) : shard(path) {}
};

// The loader's machinery, outside the class so that sequential_batches can use it too.
struct LoaderCore {
  LoaderOptions options;
  std::vector<std::unique_ptr<Source>> sources;
  int64_t rows_emitted = 0;
  int64_t tokens_per_epoch0 = 0;
  int64_t overlong_chat = 0;  // chat examples longer than seq_len
  std::vector<int32_t> special_ids;  // never masked

  int32_t pad() const { return options.pad_id >= 0 ? options.pad_id : 0; }
  int64_t n_framing() const { return (options.bos_id >= 0 ? 1 : 0) + (options.eos_id >= 0 ? 1 : 0); }

  DocumentFraming framing() const { return {options.bos_id, options.eos_id}; }
  int64_t framed_length(const Source& s, int64_t doc) const { return framing().length(s.shard, doc); }
  // Tokens a document contributes to an epoch: all of them when packed, at most seq_len when
  // one document fills one row.
  int64_t epoch_tokens(const Source& s, int64_t doc) const {
    int64_t n = framed_length(s, doc);
    if (packs_as_chat(s, doc)) return chat_tokens(n);
    return options.kind == BatchKind::Classification ? std::min(n, options.seq_len) : n;
  }
  // Whether document `doc` is packed by the chat rules (whole, in one row): a chat example in
  // causal-LM rows. The one test both the packing and the epoch accounting use.
  bool packs_as_chat(const Source& s, int64_t doc) const {
    return options.kind == BatchKind::CausalLM && s.shard.doc_is_chat(doc);
  }
  // Tokens a chat example of framed length n puts into rows (0: dropped).
  int64_t chat_tokens(int64_t n) const {
    if (n <= options.seq_len) return n;
    return options.chat_overflow == LoaderOptions::ChatOverflow::Truncate ? options.seq_len : 0;
  }

  void make_order(Source& s) const {
    const int64_t n = s.shard.n_docs();
    s.order.resize(size_t(n));
    for (int64_t i = 0; i < n; ++i) s.order[size_t(i)] = i;
    if (options.shuffle && n > 1) {
      SplitMix rng(mix_key(options.seed, kShufflePurpose, uint64_t(s.index), uint64_t(s.epoch)));
      for (int64_t i = n - 1; i > 0; --i)  // Fisher-Yates, our own so it is the same everywhere
        std::swap(s.order[size_t(i)], s.order[rng.below(uint64_t(i) + 1)]);
    }
    s.framed_doc = -1;
  }

  void start_epoch(Source& s, int64_t epoch) const {
    s.epoch = epoch;
    s.cursor = 0;
    s.offset = 0;
    s.consumed = 0;
    make_order(s);
  }

  const std::vector<int32_t>& framed(Source& s) const {
    const int64_t doc = s.order[size_t(s.cursor)];
    if (s.framed_doc != doc) {
      s.framed.clear();
      s.framed_mask.clear();
      framing().append(s.shard, doc, s.framed);
      if (s.shard.has_loss_mask()) framing().append_mask(s.shard, doc, s.framed_mask);
      s.framed_doc = doc;
    }
    return s.framed;
  }

  // Fills row r of `b` by packing documents of `s`. Stops at the end of the epoch (the rest of
  // the row is padding); an epoch that is already finished is begun anew first, unless
  // `one_epoch`, in which case false is returned and nothing is written.
  bool fill_packed_row(Source& s, TokenBatch& b, int64_t r, bool one_epoch) const {
    const int64_t T = options.seq_len;
    const size_t base = size_t(r * T);
    int64_t filled = 0;
    int32_t segment = 0;
    while (filled < T) {
      if (s.cursor == s.shard.n_docs()) {
        if (filled > 0) break;
        if (one_epoch) return false;
        start_epoch(s, s.epoch + 1);
      }
      const std::vector<int32_t>& doc = framed(s);
      const std::vector<uint8_t>& mask = s.framed_mask;
      const bool chat = packs_as_chat(s, s.order[size_t(s.cursor)]);
      const int64_t length = chat ? chat_tokens(int64_t(doc.size())) : int64_t(doc.size());
      if (chat && s.offset == 0 && length > T - filled) {
        if (length == 0) {  // longer than a row, dropped
          ++s.cursor;
          continue;
        }
        if (filled > 0) break;  // starts the next row; the rest of this one is padding
      }
      const int64_t take = std::min(length - s.offset, T - filled);
      if (take > 0) {
        if (segment == 0) b.domain_ids[size_t(r)] = s.shard.doc_domain(s.order[size_t(s.cursor)]);
        for (int64_t k = 0; k < take; ++k) {
          const size_t at = base + size_t(filled + k);
          const int32_t id = doc[size_t(s.offset + k)];
          b.input_ids[at] = id;
          // A segment's first token has no context inside the row to be predicted from; a chat
          // example's prompt is context, never a target.
          const bool target = k > 0 && options.kind == BatchKind::CausalLM &&
                              (mask.empty() || !options.chat_answers_only || mask[size_t(s.offset + k)] != 0);
          b.labels[at] = target ? id : -100;
          b.attention_mask[at] = 1;
          b.segment_ids[at] = segment;
        }
        ++segment;
        filled += take;
        s.offset += take;
        s.consumed += take;
      }
      if (s.offset == length) {
        ++s.cursor;
        s.offset = 0;
      }
    }
    return true;
  }

  void fill_classification_row(Source& s, TokenBatch& b, int64_t r) const {
    if (s.cursor == s.shard.n_docs()) start_epoch(s, s.epoch + 1);
    const int64_t doc = s.order[size_t(s.cursor)];
    const int64_t T = options.seq_len;
    const size_t base = size_t(r * T);
    std::vector<int32_t> row;
    if (options.bos_id >= 0) row.push_back(options.bos_id);
    const int64_t keep = std::min(s.shard.doc_length(doc), T - n_framing());
    s.shard.read_tokens(s.shard.doc_offsets()[size_t(doc)], keep, row);
    if (options.eos_id >= 0) row.push_back(options.eos_id);  // kept: decoders pool the last token
    for (size_t k = 0; k < row.size(); ++k) {
      b.input_ids[base + k] = row[k];
      b.attention_mask[base + k] = 1;
      b.segment_ids[base + k] = 0;
    }
    b.domain_ids[size_t(r)] = s.shard.doc_domain(doc);
    b.class_labels[size_t(r)] = s.shard.doc_label(doc);
    s.consumed += int64_t(row.size());
    ++s.cursor;
  }

  bool is_special(int32_t id) const {
    return std::find(special_ids.begin(), special_ids.end(), id) != special_ids.end();
  }

  // BERT masking of row r: a pure function of (seed, global row number, position).
  void mask_row(TokenBatch& b, int64_t r, int64_t row_number) const {
    SplitMix rng(mix_key(options.seed, kMaskPurpose, uint64_t(row_number)));
    const size_t base = size_t(r * options.seq_len);
    for (int64_t t = 0; t < options.seq_len; ++t) {
      const size_t at = base + size_t(t);
      const double chosen = rng.uniform(), how = rng.uniform();
      const uint64_t random_id = rng.below(uint64_t(options.vocab_size));
      if (!b.attention_mask[at] || is_special(b.input_ids[at])) continue;
      if (chosen >= options.mlm_probability) continue;
      b.labels[at] = b.input_ids[at];
      if (how < 0.8)
        b.input_ids[at] = options.mask_id;
      else if (how < 0.9)
        b.input_ids[at] = int32_t(random_id);
    }
  }

  // Largest deficit first: the source furthest below its share of rows after this one.
  Source& pick_source() {
    double total = 0;
    for (const auto& s : sources) total += s->weight;
    size_t best = 0;
    double best_deficit = -1e300;
    for (size_t i = 0; i < sources.size(); ++i) {
      double deficit = sources[i]->weight / total * double(rows_emitted + 1) - double(sources[i]->rows);
      if (deficit > best_deficit + 1e-12) {
        best_deficit = deficit;
        best = i;
      }
    }
    return *sources[best];
  }

  TokenBatch empty_batch(int64_t rows) const {
    TokenBatch b;
    b.rows = rows;
    b.seq_len = options.seq_len;
    const size_t n = size_t(rows * options.seq_len);
    b.input_ids.assign(n, pad());
    b.labels.assign(n, -100);
    b.attention_mask.assign(n, 0);
    b.segment_ids.assign(n, -1);
    b.domain_ids.assign(size_t(rows), -1);
    b.source_ids.assign(size_t(rows), 0);
    b.class_labels.assign(size_t(rows), -1);
    return b;
  }

  TokenBatch next() {
    TokenBatch b = empty_batch(options.batch_size);
    for (int64_t r = 0; r < options.batch_size; ++r) {
      Source& s = pick_source();
      if (options.kind == BatchKind::Classification)
        fill_classification_row(s, b, r);
      else
        fill_packed_row(s, b, r, /*one_epoch=*/false);
      if (options.kind == BatchKind::MaskedLM) mask_row(b, r, rows_emitted);
      b.source_ids[size_t(r)] = int32_t(s.index);
      ++s.rows;
      ++rows_emitted;
    }
    return b;
  }
};

}  // namespace

struct Loader::Impl : LoaderCore {};

static void validate_options(const LoaderOptions& o, const std::string& where) {
  if (o.batch_size <= 0) fail(where, "batch_size must be positive");
  if (o.seq_len <= 0) fail(where, "seq_len must be positive");
  const int64_t framing = (o.bos_id >= 0 ? 1 : 0) + (o.eos_id >= 0 ? 1 : 0);
  if (o.kind == BatchKind::Classification && o.seq_len <= framing)
    fail(where, "seq_len " + std::to_string(o.seq_len) + " leaves no room for text between bos and eos");
  if (o.kind == BatchKind::MaskedLM) {
    if (o.mask_id < 0) fail(where, "masked LM needs mask_id (the tokenizer's [MASK])");
    if (!(o.mlm_probability > 0 && o.mlm_probability < 1)) fail(where, "mlm_probability must be in (0, 1)");
    if (o.vocab_size <= 0) fail(where, "masked LM needs vocab_size for random replacements");
  }
}

void DocumentFraming::append(const std::vector<int32_t>& ids, std::vector<int32_t>& out) const {
  if (bos_id >= 0) out.push_back(bos_id);
  out.insert(out.end(), ids.begin(), ids.end());
  if (eos_id >= 0) out.push_back(eos_id);
}

void DocumentFraming::append(const TokenShard& shard, int64_t doc, std::vector<int32_t>& out) const {
  const bool framed = !shard.doc_is_chat(doc);
  if (framed && bos_id >= 0) out.push_back(bos_id);
  shard.read_tokens(shard.doc_offsets()[size_t(doc)], shard.doc_length(doc), out);
  if (framed && eos_id >= 0) out.push_back(eos_id);
}

void DocumentFraming::append_mask(const TokenShard& shard, int64_t doc, std::vector<uint8_t>& out) const {
  const bool framed = !shard.doc_is_chat(doc);
  if (framed && bos_id >= 0) out.push_back(1);
  shard.read_loss_mask(shard.doc_offsets()[size_t(doc)], shard.doc_length(doc), out);
  if (framed && eos_id >= 0) out.push_back(1);
}

int64_t DocumentFraming::length(const TokenShard& shard, int64_t doc) const {
  const int64_t around = shard.doc_is_chat(doc) ? 0 : (bos_id >= 0 ? 1 : 0) + (eos_id >= 0 ? 1 : 0);
  return shard.doc_length(doc) + around;
}

DocumentFraming document_framing(const SpecialTokens& sp) {
  if (sp.cls >= 0 && sp.sep >= 0) return {sp.cls, sp.sep};  // BERT: [CLS] text [SEP]
  return {sp.add_bos ? sp.bos : -1, sp.eos};
}

LoaderOptions loader_options_for_shard(const std::string& shard, BatchKind kind) {
  TokenShard s(shard);
  const ShardInfo& info = s.info();
  LoaderOptions o;
  o.kind = kind;
  o.vocab_size = info.vocab_size;
  o.pad_id = info.pad_id;
  o.mask_id = info.mask_id;
  SpecialTokens sp;  // the shard stores its tokenizer's special tokens
  sp.bos = info.bos_id;
  sp.eos = info.eos_id;
  sp.cls = info.cls_id;
  sp.sep = info.sep_id;
  sp.add_bos = info.add_bos;
  const DocumentFraming framing = document_framing(sp);
  o.bos_id = framing.bos_id;
  o.eos_id = framing.eos_id;
  return o;
}

Loader::Loader(std::vector<SourceSpec> specs, LoaderOptions options) : impl_(new Impl) {
  std::unique_ptr<Impl> guard(impl_);
  impl_->options = options;
  if (specs.empty()) fail("Loader", "no sources");
  for (size_t i = 0; i < specs.size(); ++i) {
    if (!(specs[i].weight > 0)) fail(specs[i].path, "source weight must be positive");
    auto s = std::make_unique<Source>(specs[i].path);
    s->weight = specs[i].weight;
    s->index = int64_t(i);
    if (s->shard.n_docs() == 0) fail(specs[i].path, "shard has no documents");
    if (i > 0 && s->shard.info().tokenizer_hash != impl_->sources[0]->shard.info().tokenizer_hash)
      fail(specs[i].path, "made with another tokenizer (" + s->shard.info().tokenizer_hash + ") than " +
                              specs[0].path + " (" + impl_->sources[0]->shard.info().tokenizer_hash + ")");
    impl_->sources.push_back(std::move(s));
  }
  LoaderOptions& o = impl_->options;
  if (o.vocab_size <= 0) o.vocab_size = impl_->sources[0]->shard.info().vocab_size;
  validate_options(o, specs[0].path);
  for (auto& s : impl_->sources) {
    if (o.kind == BatchKind::Classification)
      for (int64_t d = 0; d < s->shard.n_docs(); ++d)
        if (s->shard.doc_label(d) < 0)
          fail(s->shard.path() + ": /doc_label", "document " + std::to_string(d) +
                                                    " has no label; a classification loader needs labels");
    int64_t total = 0;
    for (int64_t d = 0; d < s->shard.n_docs(); ++d) total += impl_->epoch_tokens(*s, d);
    if (total == 0) fail(s->shard.path(), "no tokens");
    if (s->index == 0) impl_->tokens_per_epoch0 = total;
    impl_->start_epoch(*s, 0);
  }
  if (o.kind == BatchKind::CausalLM) {
    for (auto& s : impl_->sources) {
      int64_t chats = 0, over = 0;
      for (int64_t d = 0; d < s->shard.n_docs(); ++d)
        if (s->shard.doc_is_chat(d)) {
          ++chats;
          if (impl_->framed_length(*s, d) > o.seq_len) ++over;
        }
      impl_->overlong_chat += over;
      if (over > 0)
        std::fprintf(stderr, "%s: %lld of %lld chat examples are longer than seq_len %lld and are %s\n",
                     s->shard.path().c_str(), (long long)over, (long long)chats, (long long)o.seq_len,
                     o.chat_overflow == LoaderOptions::ChatOverflow::Drop
                         ? "dropped (train.chat_overflow = \"truncate\" keeps their beginning)"
                         : "truncated to their first seq_len tokens");
    }
  }
  const ShardInfo& info = impl_->sources[0]->shard.info();
  for (int32_t id : {o.bos_id, o.eos_id, o.pad_id, o.mask_id, info.bos_id, info.eos_id, info.pad_id,
                     info.cls_id, info.sep_id, info.mask_id})
    if (id >= 0) impl_->special_ids.push_back(id);
  guard.release();
}

Loader::~Loader() { delete impl_; }
Loader::Loader(Loader&& o) noexcept : impl_(o.impl_) { o.impl_ = nullptr; }
Loader& Loader::operator=(Loader&& o) noexcept {
  std::swap(impl_, o.impl_);
  return *this;
}

TokenBatch Loader::next() { return impl_->next(); }

int64_t Loader::overlong_chat_examples() const { return impl_->overlong_chat; }

double Loader::epoch() const {
  const Source& s = *impl_->sources[0];
  return double(s.epoch) + double(s.consumed) / double(impl_->tokens_per_epoch0);
}

int64_t Loader::tokens_per_epoch() const { return impl_->tokens_per_epoch0; }
int64_t Loader::rows_emitted() const { return impl_->rows_emitted; }
const LoaderOptions& Loader::options() const { return impl_->options; }

std::string Loader::state_json() const {
  const LoaderOptions& o = impl_->options;
  json j;
  j["format"] = "gemkit-loader-state";
  j["version"] = 1;
  j["kind"] = kind_name(o.kind);
  j["seq_len"] = o.seq_len;
  j["seed"] = o.seed;
  j["shuffle"] = o.shuffle;
  j["rows_emitted"] = impl_->rows_emitted;
  j["sources"] = json::array();
  for (const auto& s : impl_->sources)
    j["sources"].push_back({{"path", s->shard.path()},
                            {"n_docs", s->shard.n_docs()},
                            {"n_tokens", s->shard.n_tokens()},
                            {"weight", s->weight},
                            {"epoch", s->epoch},
                            {"cursor", s->cursor},
                            {"offset", s->offset},
                            {"rows", s->rows}});
  return j.dump();
}

void Loader::restore(const std::string& text) {
  const std::string where = "loader state";
  json j;
  try {
    j = json::parse(text);
  } catch (const json::exception& e) {
    fail(where, std::string("not valid JSON: ") + e.what());
  }
  const LoaderOptions& o = impl_->options;
  try {
    if (j.value("format", "") != "gemkit-loader-state" || j.value("version", 0) != 1)
      fail(where, "not a gemkit loader state (format/version)");
    if (j.at("kind").get<std::string>() != kind_name(o.kind)) fail(where, "saved for kind " + j.at("kind").get<std::string>() + ", this loader is " + kind_name(o.kind));
    if (j.at("seq_len").get<int64_t>() != o.seq_len) fail(where, "saved with seq_len " + std::to_string(j.at("seq_len").get<int64_t>()) + ", this loader has " + std::to_string(o.seq_len));
    if (j.at("seed").get<uint64_t>() != o.seed) fail(where, "saved with another seed");
    if (j.at("shuffle").get<bool>() != o.shuffle) fail(where, "saved with another shuffle setting");
    const json& src = j.at("sources");
    if (src.size() != impl_->sources.size())
      fail(where, "saved with " + std::to_string(src.size()) + " sources, this loader has " +
                      std::to_string(impl_->sources.size()));
    for (size_t i = 0; i < src.size(); ++i) {
      const Source& s = *impl_->sources[i];
      if (src[i].at("n_docs").get<int64_t>() != s.shard.n_docs() ||
          src[i].at("n_tokens").get<int64_t>() != s.shard.n_tokens())
        fail(where, "source " + std::to_string(i) + " (" + s.shard.path() + ") is not the shard the state was saved with (" +
                        src[i].at("path").get<std::string>() + ")");
      if (src[i].at("weight").get<double>() != s.weight)
        fail(where, "source " + std::to_string(i) + " saved with weight " + std::to_string(src[i].at("weight").get<double>()));
      const int64_t cursor = src[i].at("cursor").get<int64_t>();
      if (cursor < 0 || cursor > s.shard.n_docs() || src[i].at("epoch").get<int64_t>() < 0)
        fail(where, "source " + std::to_string(i) + ": cursor out of range");
    }
    // Only now change anything, so a rejected state leaves the loader as it was.
    for (size_t i = 0; i < src.size(); ++i) {
      Source& s = *impl_->sources[i];
      impl_->start_epoch(s, src[i].at("epoch").get<int64_t>());
      s.cursor = src[i].at("cursor").get<int64_t>();
      s.offset = src[i].at("offset").get<int64_t>();
      s.rows = src[i].at("rows").get<int64_t>();
      if (s.cursor < s.shard.n_docs() && (s.offset < 0 || s.offset >= impl_->framed_length(s, s.order[size_t(s.cursor)])))
        fail(where, "source " + std::to_string(i) + ": offset out of range");
      s.consumed = s.offset;
      for (int64_t c = 0; c < s.cursor; ++c) s.consumed += impl_->epoch_tokens(s, s.order[size_t(c)]);
    }
    impl_->rows_emitted = j.at("rows_emitted").get<int64_t>();
  } catch (const json::exception& e) {
    fail(where, std::string("malformed: ") + e.what());
  }
}

std::vector<TokenBatch> sequential_batches(const std::string& shard, const LoaderOptions& options) {
  LoaderCore impl;
  impl.options = options;
  impl.options.kind = BatchKind::CausalLM;
  impl.options.shuffle = false;
  validate_options(impl.options, shard);
  auto s = std::make_unique<Source>(shard);
  impl.start_epoch(*s, 0);
  std::vector<TokenBatch> batches;
  bool more = true;
  while (more) {
    TokenBatch b = impl.empty_batch(options.batch_size);
    int64_t r = 0;
    while (r < options.batch_size && (more = impl.fill_packed_row(*s, b, r, /*one_epoch=*/true))) ++r;
    if (r == 0) break;
    if (r < options.batch_size) {  // the last batch: only the rows that hold data
      b.rows = r;
      const size_t n = size_t(r * options.seq_len);
      b.input_ids.resize(n);
      b.labels.resize(n);
      b.attention_mask.resize(n);
      b.segment_ids.resize(n);
      b.domain_ids.resize(size_t(r));
      b.source_ids.resize(size_t(r));
      b.class_labels.resize(size_t(r));
    }
    batches.push_back(std::move(b));
  }
  return batches;
}

}  // namespace gemkit
