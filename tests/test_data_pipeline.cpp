// Token shards, `data prepare` and the loaders: shard round trip and malformed shards, packing
// boundaries, mixing ratios, resumable state, deterministic shuffling, classification padding,
// masked-LM statistics, sequential evaluation batches. Data: data/mini with a small BPE
// tokenizer trained here on data/mini/general/moby_dick.txt.
#include <gtest/gtest.h>
#include <hdf5.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iterator>
#include <memory>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/sha256.h"
#include "data/loader.h"
#include "data/prepare.h"
#include "data/token_shards.h"
#include "test_util.h"
#include "tokenizers/tokenizer.h"
#include "tokenizers/tokenizer_train.h"

using namespace gemkit;
using gemkit::test::error_of;
namespace fs = std::filesystem;

namespace {

const std::string kMini = std::string(GEMKIT_SOURCE_DIR) + "/data/mini";

// Shared by every test: one tokenizer and a few shards, made once.
struct Fixture {
  std::string dir, tokenizer;
  std::string general, law, stem, osi;  // train shards; osi: law/spdx_osi classification items
  int32_t mask_id = -1;
  std::unique_ptr<Tokenizer> tok;

  Fixture() {
    dir = ::testing::TempDir() + "gemkit_data_" + std::to_string(::getpid());
    fs::create_directories(dir);
    SentencePieceTrainOptions o;
    o.input_files = {kMini + "/general/moby_dick.txt"};
    o.model_prefix = dir + "/tok";
    o.vocab_size = 1000;
    o.model_type = "bpe";
    o.control_symbols = {"[MASK]"};
    tokenizer = train_sentencepiece(o).model_path;
    tok = load_tokenizer(tokenizer);
    for (int32_t i = 0; i < tok->vocab_size(); ++i)
      if (tok->token_text(i) == "[MASK]") mask_id = i;
    general = prepare("general.h5", {kMini + "/general/train.jsonl"});
    law = prepare("law.h5", {kMini + "/law/train.jsonl"});
    stem = prepare("stem.h5", {kMini + "/stem/train.jsonl"});
    PrepareOptions p;
    p.tokenizer = tokenizer;
    p.out = dir + "/osi.h5";
    p.inputs = {kMini + "/law/tasks/spdx_osi.train.jsonl"};
    p.split = "train";
    p.manifest = kMini + "/manifest.json";
    p.task = "law/spdx_osi";
    p.progress = false;
    prepare_token_shard(p);
    osi = p.out;
  }
  ~Fixture() { fs::remove_all(dir); }

  std::string prepare(const std::string& name, const std::vector<std::string>& inputs) {
    PrepareOptions p;
    p.tokenizer = tokenizer;
    p.out = dir + "/" + name;
    p.inputs = inputs;
    p.manifest = kMini + "/manifest.json";
    p.progress = false;
    prepare_token_shard(p);
    return p.out;
  }
};

Fixture& fx() {
  static Fixture f;
  return f;
}

LoaderOptions causal(const std::string& shard, int64_t batch, int64_t seq, uint64_t seed) {
  LoaderOptions o = loader_options_for_shard(shard, BatchKind::CausalLM);
  o.batch_size = batch;
  o.seq_len = seq;
  o.seed = seed;
  return o;
}

void expect_same(const TokenBatch& a, const TokenBatch& b, const std::string& what) {
  EXPECT_EQ(a.rows, b.rows) << what;
  EXPECT_EQ(a.input_ids, b.input_ids) << what;
  EXPECT_EQ(a.labels, b.labels) << what;
  EXPECT_EQ(a.attention_mask, b.attention_mask) << what;
  EXPECT_EQ(a.segment_ids, b.segment_ids) << what;
  EXPECT_EQ(a.domain_ids, b.domain_ids) << what;
  EXPECT_EQ(a.source_ids, b.source_ids) << what;
  EXPECT_EQ(a.class_labels, b.class_labels) << what;
}

// The framed documents of a shard: [bos] tokens [eos].
std::vector<std::vector<int32_t>> framed_docs(const std::string& path, const LoaderOptions& o) {
  TokenShard s(path);
  std::vector<std::vector<int32_t>> docs;
  for (int64_t d = 0; d < s.n_docs(); ++d) {
    std::vector<int32_t> f;
    if (o.bos_id >= 0) f.push_back(o.bos_id);
    auto t = s.read_document(d);
    f.insert(f.end(), t.begin(), t.end());
    if (o.eos_id >= 0) f.push_back(o.eos_id);
    docs.push_back(f);
  }
  return docs;
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// Shards

TEST(TokenShards, RoundTripKeepsTokensAndAttributes) {
  ShardData d;
  d.info.tokenizer_kind = "sentencepiece-bpe";
  d.info.tokenizer_path = "tok/tokenizer.model";
  d.info.tokenizer_hash = "sha256:" + sha256_hex("abc");
  d.info.vocab_size = 100000;
  d.info.bos_id = 1;
  d.info.eos_id = 2;
  d.info.add_bos = true;
  d.info.source = "unit test";
  d.info.licence = "CC0-1.0";
  d.info.split = "validation";
  d.info.domain_names = {"general", "law"};
  d.info.label_names = {"no", "yes", "ünïcode"};
  // More than one chunk, and an empty document.
  std::vector<int32_t> big(kTokenShardChunk + 1234);
  for (size_t i = 0; i < big.size(); ++i) big[i] = int32_t((i * 7919) % 100000);
  d.add_document({5, 6, 7}, 0, 1);
  d.add_document(big, 1, -1);
  d.add_document({}, 0, 2);
  d.add_document({99999}, 1, 0);
  const std::string path = fx().dir + "/roundtrip.h5";
  write_token_shard(path, d);

  TokenShard s(path);
  EXPECT_EQ(s.n_docs(), 4);
  EXPECT_EQ(s.n_tokens(), int64_t(3 + big.size() + 1));
  EXPECT_EQ(s.read_document(0), (std::vector<int32_t>{5, 6, 7}));
  EXPECT_EQ(s.read_document(1), big);
  EXPECT_TRUE(s.read_document(2).empty());
  EXPECT_EQ(s.read_document(3), (std::vector<int32_t>{99999}));
  EXPECT_EQ(s.doc_domain(1), 1);
  EXPECT_EQ(s.doc_label(1), -1);
  EXPECT_EQ(s.doc_label(2), 2);
  const ShardInfo& i = s.info();
  EXPECT_EQ(i.format_version, kTokenShardFormatVersion);
  EXPECT_EQ(i.tokenizer_kind, "sentencepiece-bpe");
  EXPECT_EQ(i.tokenizer_path, "tok/tokenizer.model");
  EXPECT_EQ(i.tokenizer_hash, "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  EXPECT_EQ(i.vocab_size, 100000);
  EXPECT_EQ(i.bos_id, 1);
  EXPECT_EQ(i.eos_id, 2);
  EXPECT_EQ(i.mask_id, -1);
  EXPECT_TRUE(i.add_bos);
  EXPECT_FALSE(i.add_eos);
  EXPECT_EQ(i.source, "unit test");
  EXPECT_EQ(i.licence, "CC0-1.0");
  EXPECT_EQ(i.split, "validation");
  EXPECT_EQ(i.domain_names, (std::vector<std::string>{"general", "law"}));
  EXPECT_EQ(i.label_names, (std::vector<std::string>{"no", "yes", "ünïcode"}));
  // A read across the chunk boundary.
  std::vector<int32_t> part;
  s.read_tokens(3 + kTokenShardChunk - 2, 4, part);
  EXPECT_EQ(part, std::vector<int32_t>(big.begin() + kTokenShardChunk - 2, big.begin() + kTokenShardChunk + 2));
  EXPECT_NE(error_of([&] { s.read_tokens(s.n_tokens() - 1, 2, part); }).find("/tokens"), std::string::npos);
  // Nothing of the temporary file is left.
  for (const auto& e : fs::directory_iterator(fx().dir))
    EXPECT_EQ(e.path().string().find(".tmp."), std::string::npos) << e.path();

  // The writer refuses ids outside the vocabulary and ids without names.
  ShardData bad = d;
  bad.info.vocab_size = 10;
  EXPECT_NE(error_of([&] { write_token_shard(path, bad); }).find("outside the vocabulary"), std::string::npos);
  bad = d;
  bad.doc_domain[0] = 7;
  EXPECT_NE(error_of([&] { write_token_shard(path, bad); }).find("domain id 7"), std::string::npos);
}

namespace {
// Edits a copy of a good shard with the HDF5 C API and returns the reader's error.
std::string error_after_edit(const std::string& name, const std::function<void(hid_t)>& edit) {
  const std::string path = fx().dir + "/" + name + ".h5";
  fs::copy_file(fx().law, path, fs::copy_options::overwrite_existing);
  hid_t f = H5Fopen(path.c_str(), H5F_ACC_RDWR, H5P_DEFAULT);
  EXPECT_GE(f, 0);
  edit(f);
  H5Fclose(f);
  return error_of([&] { TokenShard s(path); });
}
void overwrite_int64(hid_t f, const char* name, int64_t index, int64_t value) {
  hid_t ds = H5Dopen2(f, name, H5P_DEFAULT);
  hid_t space = H5Dget_space(ds);
  hsize_t start = hsize_t(index), one = 1;
  H5Sselect_hyperslab(space, H5S_SELECT_SET, &start, nullptr, &one, nullptr);
  hid_t mem = H5Screate_simple(1, &one, nullptr);
  H5Dwrite(ds, H5T_NATIVE_INT64, mem, space, H5P_DEFAULT, &value);
  H5Sclose(mem);
  H5Sclose(space);
  H5Dclose(ds);
}
}  // namespace

TEST(TokenShards, MalformedShardsNameFileAndDataset) {
  const std::string dir = fx().dir;
  std::string e = error_after_edit("version", [](hid_t f) {
    hid_t a = H5Aopen(f, "format_version", H5P_DEFAULT);
    int32_t v = 99;
    H5Awrite(a, H5T_NATIVE_INT32, &v);
    H5Aclose(a);
  });
  EXPECT_NE(e.find(dir + "/version.h5"), std::string::npos) << e;
  EXPECT_NE(e.find("format_version 99"), std::string::npos) << e;

  e = error_after_edit("missing", [](hid_t f) { H5Ldelete(f, "doc_label", H5P_DEFAULT); });
  EXPECT_NE(e.find(dir + "/missing.h5: /doc_label: missing dataset"), std::string::npos) << e;

  e = error_after_edit("monotone", [](hid_t f) { overwrite_int64(f, "doc_offsets", 3, 1); });
  EXPECT_NE(e.find(dir + "/monotone.h5: /doc_offsets: not monotone"), std::string::npos) << e;

  e = error_after_edit("range", [](hid_t f) {
    hid_t ds = H5Dopen2(f, "doc_offsets", H5P_DEFAULT);
    hid_t space = H5Dget_space(ds);
    hssize_t n = H5Sget_simple_extent_npoints(space);
    H5Sclose(space);
    H5Dclose(ds);
    overwrite_int64(f, "doc_offsets", n - 1, int64_t(1) << 40);
  });
  EXPECT_NE(e.find(dir + "/range.h5: /doc_offsets: ends at"), std::string::npos) << e;

  e = error_after_edit("start", [](hid_t f) { overwrite_int64(f, "doc_offsets", 0, 5); });
  EXPECT_NE(e.find("/doc_offsets: must start at 0"), std::string::npos) << e;

  // String attributes are fixed-length: a variable-length one (format 1, or a damaged file) is
  // refused before HDF5 reads its global heap, where libhdf5 1.10 can loop for good.
  e = error_after_edit("vlen", [](hid_t f) {
    H5Adelete(f, "source");
    hid_t type = H5Tcopy(H5T_C_S1);
    H5Tset_size(type, H5T_VARIABLE);
    hid_t space = H5Screate(H5S_SCALAR);
    hid_t a = H5Acreate2(f, "source", type, space, H5P_DEFAULT, H5P_DEFAULT);
    const char* value = "somewhere";
    H5Awrite(a, type, &value);
    H5Aclose(a);
    H5Sclose(space);
    H5Tclose(type);
  });
  EXPECT_NE(e.find(dir + "/vlen.h5: attribute source is a variable-length string"), std::string::npos) << e;

  // A dataset whose extent is larger than what it stores (valid HDF5: unwritten chunks read as
  // zeros) would size gemkit's buffers by the declared count; it is refused first.
  e = error_after_edit("extent", [](hid_t f) {
    H5Ldelete(f, "doc_offsets", H5P_DEFAULT);
    hsize_t n = hsize_t(1) << 40, chunk = 1024, max = H5S_UNLIMITED;
    hid_t space = H5Screate_simple(1, &n, &max);
    hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE);
    H5Pset_chunk(dcpl, 1, &chunk);
    hid_t ds = H5Dcreate2(f, "doc_offsets", H5T_STD_I64LE, space, H5P_DEFAULT, dcpl, H5P_DEFAULT);
    H5Dclose(ds);
    H5Pclose(dcpl);
    H5Sclose(space);
  });
  EXPECT_NE(e.find(dir + "/extent.h5: /doc_offsets: declares 1099511627776 entries but stores 0 bytes"), std::string::npos) << e;

  // An integer attribute holding several values would be read past the one it is read into.
  e = error_after_edit("int_array", [](hid_t f) {
    H5Adelete(f, "tokenizer_bos_id");
    hsize_t n = 64;
    hid_t space = H5Screate_simple(1, &n, nullptr);
    hid_t a = H5Acreate2(f, "tokenizer_bos_id", H5T_STD_I32LE, space, H5P_DEFAULT, H5P_DEFAULT);
    std::vector<int32_t> values(n, 7);
    H5Awrite(a, H5T_NATIVE_INT32, values.data());
    H5Aclose(a);
    H5Sclose(space);
  });
  EXPECT_NE(e.find(dir + "/int_array.h5: attribute tokenizer_bos_id is not a single integer"), std::string::npos) << e;

  // A token id outside the vocabulary opens (ids are checked as they are read, not all at once)
  // and is a named error when read, never handed to an embedding table.
  {
    const std::string path = dir + "/bad_id.h5";
    fs::copy_file(fx().law, path, fs::copy_options::overwrite_existing);
    hid_t f = H5Fopen(path.c_str(), H5F_ACC_RDWR, H5P_DEFAULT);
    hid_t ds = H5Dopen2(f, "tokens", H5P_DEFAULT);
    hid_t space = H5Dget_space(ds);
    hsize_t start = 2, one = 1;
    H5Sselect_hyperslab(space, H5S_SELECT_SET, &start, nullptr, &one, nullptr);
    hid_t mem = H5Screate_simple(1, &one, nullptr);
    const int32_t id = 1 << 30;
    H5Dwrite(ds, H5T_NATIVE_INT32, mem, space, H5P_DEFAULT, &id);
    H5Sclose(mem);
    H5Sclose(space);
    H5Dclose(ds);
    H5Fclose(f);
    TokenShard s(path);
    e = error_of([&] { s.read_document(0); });
    EXPECT_NE(e.find(path + ": /tokens[2]: token id 1073741824 outside the vocabulary [0, "), std::string::npos) << e;
  }

  const std::string text = dir + "/not_hdf5.h5";
  std::ofstream(text) << "hello";
  EXPECT_NE(error_of([&] { TokenShard s(text); }).find(text + ": not an HDF5 file"), std::string::npos);
  EXPECT_NE(error_of([&] { TokenShard s(dir + "/nope.h5"); }).find("nope.h5: no such token shard"), std::string::npos);
}

// ---------------------------------------------------------------------------------------------
// prepare

TEST(Prepare, TokenizesRecordsWithIdentityAndProvenance) {
  TokenShard s(fx().law);
  const ShardInfo& i = s.info();
  EXPECT_EQ(i.split, "train");  // from the file name
  EXPECT_EQ(i.tokenizer_kind, "sentencepiece-bpe");
  EXPECT_EQ(i.tokenizer_hash, "sha256:" + sha256_file(fx().tokenizer));
  EXPECT_EQ(i.vocab_size, 1000);
  EXPECT_EQ(i.bos_id, 1);
  EXPECT_EQ(i.eos_id, 2);
  EXPECT_TRUE(i.add_bos);
  EXPECT_EQ(i.source, "spdx");
  EXPECT_NE(i.licence.find("MIT"), std::string::npos) << i.licence;
  ASSERT_EQ(i.domain_names.size(), 8u);
  EXPECT_EQ(i.domain_names[2], "law");
  EXPECT_EQ(s.doc_domain(0), 2);

  // Documents are the records' texts, in order, encoded without special tokens.
  std::ifstream in(kMini + "/law/train.jsonl");
  std::string line;
  int64_t n = 0;
  while (std::getline(in, line)) {
    auto j = nlohmann::json::parse(line);
    if (n < 5) {
      EXPECT_EQ(s.read_document(n), fx().tok->encode(j["text"].get<std::string>(), false)) << n;
    }
    ++n;
  }
  EXPECT_EQ(s.n_docs(), n);

  // Classification items: label ids follow the task's label list in the manifest.
  TokenShard osi(fx().osi);
  EXPECT_EQ(osi.info().label_names, (std::vector<std::string>{"not-osi-approved", "osi-approved"}));
  int labelled = 0;
  for (int64_t d = 0; d < osi.n_docs(); ++d) labelled += osi.doc_label(d) >= 0;
  EXPECT_EQ(labelled, osi.n_docs());
  EXPECT_EQ(osi.n_docs(), 145);

  // Reproducible: the same input gives the same bytes, whatever the thread count.
  PrepareOptions p;
  p.tokenizer = fx().tokenizer;
  p.inputs = {kMini + "/law/train.jsonl"};
  p.manifest = kMini + "/manifest.json";
  p.progress = false;
  p.threads = 1;
  p.out = fx().dir + "/law_1thread.h5";
  prepare_token_shard(p);
  std::ifstream a(fx().law, std::ios::binary), b(p.out, std::ios::binary);
  EXPECT_TRUE(std::equal(std::istreambuf_iterator<char>(a), std::istreambuf_iterator<char>(),
                         std::istreambuf_iterator<char>(b), std::istreambuf_iterator<char>()));
}

TEST(Prepare, HeldOutSplitsStayHeldOut) {
  PrepareOptions p;
  p.tokenizer = fx().tokenizer;
  p.out = fx().dir + "/wrong_split.h5";
  p.inputs = {kMini + "/law/test.jsonl"};
  p.split = "train";
  p.progress = false;
  EXPECT_NE(error_of([&] { prepare_token_shard(p); }).find("law/test.jsonl: is the test split, but --split is train"),
            std::string::npos);
  EXPECT_FALSE(fs::exists(p.out));

  // Records carry their split: only those of the requested split are kept.
  const std::string mixed = fx().dir + "/mixed.jsonl";
  std::ofstream(mixed) << "{\"text\":\"one\",\"split\":\"train\",\"label\":\"a\"}\n"
                       << "{\"text\":\"two\",\"split\":\"test\",\"label\":\"b\"}\n"
                       << "{\"text\":\"three\",\"label\":\"b\",\"domain\":\"poetry\"}\n";
  p.inputs = {mixed};
  p.out = fx().dir + "/mixed.h5";
  const PrepareStats st = prepare_token_shard(p);
  EXPECT_EQ(st.docs, 2);
  EXPECT_EQ(st.skipped, 1);
  TokenShard s(p.out);
  EXPECT_EQ(s.info().split, "train");
  EXPECT_EQ(s.info().label_names, (std::vector<std::string>{"a", "b"}));
  EXPECT_EQ(s.info().domain_names.back(), "poetry");
  EXPECT_EQ(s.doc_label(0), 0);
  EXPECT_EQ(s.doc_label(1), 1);
  EXPECT_EQ(s.info().domain_names[size_t(s.doc_domain(1))], "poetry");
  EXPECT_EQ(s.info().domain_names[size_t(s.doc_domain(0))], "default");

  std::ofstream(fx().dir + "/bad.jsonl") << "{\"text\":\"ok\"}\n{\"txt\":\"no\"}\n";
  p.inputs = {fx().dir + "/bad.jsonl"};
  EXPECT_NE(error_of([&] { prepare_token_shard(p); }).find("bad.jsonl:2: expected an object"), std::string::npos);
}

// ---------------------------------------------------------------------------------------------
// Packing

TEST(Loader, PackingKeepsDocumentBoundariesAndCoversEveryTokenOncePerEpoch) {
  LoaderOptions o = causal(fx().law, 1, 64, 7);
  Loader loader({{fx().law}}, o);
  const auto docs = framed_docs(fx().law, o);
  int64_t total = 0;
  for (const auto& d : docs) total += int64_t(d.size());
  EXPECT_EQ(loader.tokens_per_epoch(), total);

  for (int epoch = 0; epoch < 2; ++epoch) {
    std::vector<int32_t> stream;
    int64_t rows = 0, padded_rows = 0, continued = 0;
    while (loader.epoch() < epoch + 1) {
      TokenBatch b = loader.next();
      ASSERT_EQ(b.rows, 1);
      ++rows;
      bool padded = false;
      for (int64_t t = 0; t < b.seq_len; ++t) {
        const int32_t seg = b.segment_ids[size_t(t)];
        if (!b.attention_mask[size_t(t)]) {
          padded = true;
          EXPECT_EQ(seg, -1);
          EXPECT_EQ(b.labels[size_t(t)], -100);
          EXPECT_EQ(b.input_ids[size_t(t)], 0);
          continue;
        }
        EXPECT_FALSE(padded) << "padding only at the end of a row";
        stream.push_back(b.input_ids[size_t(t)]);
        const bool starts = t == 0 || b.segment_ids[size_t(t - 1)] != seg;
        if (starts) {
          EXPECT_EQ(seg, t == 0 ? 0 : b.segment_ids[size_t(t - 1)] + 1);
          EXPECT_EQ(b.labels[size_t(t)], -100);
          if (b.input_ids[size_t(t)] != o.bos_id) ++continued;  // a later piece of a long document
        } else {
          EXPECT_EQ(b.labels[size_t(t)], b.input_ids[size_t(t)]);
        }
        // What position t predicts (labels[t + 1]) is always within t's document.
        if (t + 1 < b.seq_len && b.labels[size_t(t + 1)] != -100) {
          EXPECT_EQ(b.segment_ids[size_t(t + 1)], seg);
        }
      }
      padded_rows += padded;
    }
    EXPECT_DOUBLE_EQ(loader.epoch(), epoch + 1.0);
    EXPECT_LE(padded_rows, 1) << "only the epoch's last row is padded";
    EXPECT_GT(continued, 0) << "long documents continue on the next row";
    EXPECT_EQ(int64_t(stream.size()), total);
    // Cut the stream at BOS: exactly the shard's framed documents, each once.
    std::vector<std::vector<int32_t>> got;
    for (int32_t id : stream) {
      if (id == o.bos_id) got.emplace_back();
      ASSERT_FALSE(got.empty());
      got.back().push_back(id);
    }
    auto want = docs;
    std::sort(got.begin(), got.end());
    std::sort(want.begin(), want.end());
    EXPECT_EQ(got, want) << "epoch " << epoch;
    EXPECT_LE(rows, total / 64 + 1);
  }
}

TEST(Loader, ShufflingIsDeterministicBySeedAndNewEachEpoch) {
  auto first_tokens = [](uint64_t seed, bool shuffle, int skip_batches) {
    LoaderOptions o = causal(fx().general, 4, 32, seed);
    o.shuffle = shuffle;
    Loader l({{fx().general}}, o);
    for (int i = 0; i < skip_batches; ++i) l.next();
    return l.next().input_ids;
  };
  EXPECT_EQ(first_tokens(1, true, 0), first_tokens(1, true, 0));
  EXPECT_NE(first_tokens(1, true, 0), first_tokens(2, true, 0));
  // Unshuffled: the shard's first document first.
  LoaderOptions o = causal(fx().general, 1, 32, 0);
  auto doc0 = framed_docs(fx().general, o)[0];
  auto ids = first_tokens(5, false, 0);
  EXPECT_TRUE(std::equal(ids.begin(), ids.begin() + 16, doc0.begin()));

  // Epoch 1 is ordered differently from epoch 0.
  LoaderOptions small = causal(fx().law, 1, 4096, 3);
  Loader l({{fx().law}}, small);
  std::vector<int32_t> e0, e1;
  while (l.epoch() < 1) {
    auto b = l.next();
    e0.insert(e0.end(), b.input_ids.begin(), b.input_ids.end());
  }
  while (l.epoch() < 2) {
    auto b = l.next();
    e1.insert(e1.end(), b.input_ids.begin(), b.input_ids.end());
  }
  EXPECT_NE(e0, e1);
}

// ---------------------------------------------------------------------------------------------
// Mixing

TEST(Loader, MixingMatchesRatiosDeterministically) {
  std::vector<SourceSpec> specs = {{fx().law, 0.6}, {fx().general, 0.3}, {fx().stem, 0.1}};
  LoaderOptions o = causal(fx().law, 10, 16, 11);
  Loader a(specs, o), b(specs, o);
  std::vector<int64_t> counts(3, 0);
  int64_t rows = 0;
  for (int step = 0; step < 100; ++step) {
    TokenBatch x = a.next(), y = b.next();
    expect_same(x, y, "same seed");
    for (int32_t s : x.source_ids) {
      ++counts[size_t(s)];
      ++rows;
      for (size_t i = 0; i < 3; ++i)  // within one row of the target at every point
        EXPECT_LE(std::abs(double(counts[i]) - specs[i].weight * double(rows)), 1.0) << rows;
    }
    // domain ids follow the source (each shard holds one domain)
    for (int64_t r = 0; r < x.rows; ++r) {
      const int32_t want = x.source_ids[size_t(r)] == 0 ? 2 : x.source_ids[size_t(r)] == 1 ? 0 : 4;
      EXPECT_EQ(x.domain_ids[size_t(r)], want);
    }
  }
  EXPECT_EQ(counts, (std::vector<int64_t>{600, 300, 100}));

  // Mixing shards of another tokenizer is refused.
  ShardData d;
  d.info.tokenizer_hash = "sha256:other";
  d.info.domain_names = {"x"};
  d.add_document({1, 2, 3}, 0);
  write_token_shard(fx().dir + "/other_tok.h5", d);
  EXPECT_NE(error_of([&] { Loader l({{fx().law}, {fx().dir + "/other_tok.h5"}}, o); }).find("another tokenizer"),
            std::string::npos);
}

// ---------------------------------------------------------------------------------------------
// Resumable state

TEST(Loader, RestoredStateGivesIdenticalFollowingBatches) {
  struct Case {
    BatchKind kind;
    std::vector<SourceSpec> specs;
    int64_t seq;
  };
  const std::vector<Case> cases = {
      {BatchKind::CausalLM, {{fx().law, 0.7}, {fx().general, 0.3}}, 64},
      {BatchKind::MaskedLM, {{fx().general, 1.0}}, 48},
      {BatchKind::Classification, {{fx().osi, 1.0}}, 32},  // 145 documents: crosses epochs
  };
  for (const Case& c : cases) {
    LoaderOptions o = loader_options_for_shard(c.specs[0].path, c.kind);
    o.batch_size = 16;
    o.seq_len = c.seq;
    o.seed = 42;
    o.mask_id = fx().mask_id;
    Loader a(c.specs, o);
    for (int i = 0; i < 7; ++i) a.next();
    const std::string state = a.state_json();
    const double epoch = a.epoch();
    std::vector<TokenBatch> expected;
    for (int i = 0; i < 12; ++i) expected.push_back(a.next());

    Loader b(c.specs, o);
    b.next();  // a different position, overwritten by restore
    b.restore(state);
    EXPECT_DOUBLE_EQ(b.epoch(), epoch);
    for (int i = 0; i < 12; ++i) expect_same(b.next(), expected[size_t(i)], "batch " + std::to_string(i));
    EXPECT_EQ(a.state_json(), b.state_json());

    // A state from another configuration is refused and leaves the loader as it was.
    LoaderOptions other = o;
    other.seed = 43;
    Loader c2(c.specs, other);
    const std::string before = c2.state_json();
    EXPECT_NE(error_of([&] { c2.restore(state); }).find("seed"), std::string::npos);
    EXPECT_EQ(c2.state_json(), before);
  }
  {
    Loader l({{fx().law}}, causal(fx().law, 2, 16, 0));
    EXPECT_NE(error_of([&] { l.restore("{\"format\":\"x\"}"); }).find("loader state"), std::string::npos);
    EXPECT_NE(error_of([&] { l.restore("not json"); }).find("not valid JSON"), std::string::npos);
  }
}

// ---------------------------------------------------------------------------------------------
// Classification and masked LM

TEST(Loader, ClassificationRowsArePaddedAndMasked) {
  LoaderOptions o = loader_options_for_shard(fx().osi, BatchKind::Classification);
  o.batch_size = 8;
  o.seq_len = 96;
  o.seed = 1;
  Loader l({{fx().osi}}, o);
  TokenShard s(fx().osi);
  int truncated = 0, padded = 0;
  for (int step = 0; step < 20; ++step) {
    TokenBatch b = l.next();
    for (int64_t r = 0; r < b.rows; ++r) {
      const int32_t* ids = &b.input_ids[size_t(r * o.seq_len)];
      const int32_t* mask = &b.attention_mask[size_t(r * o.seq_len)];
      int64_t n = 0;
      while (n < o.seq_len && mask[n]) ++n;
      for (int64_t t = n; t < o.seq_len; ++t) {
        EXPECT_EQ(mask[t], 0);
        EXPECT_EQ(ids[t], 0);
        EXPECT_EQ(b.segment_ids[size_t(r * o.seq_len + t)], -1);
      }
      EXPECT_EQ(ids[0], o.bos_id);
      EXPECT_EQ(ids[n - 1], o.eos_id);
      EXPECT_TRUE(b.class_labels[size_t(r)] == 0 || b.class_labels[size_t(r)] == 1);
      truncated += n == o.seq_len;
      padded += n < o.seq_len;
    }
    for (int32_t lab : b.labels) EXPECT_EQ(lab, -100);
  }
  EXPECT_GT(truncated, 0);
  EXPECT_GT(padded, 0);
  // Every row's document: its label is the shard's label of the document whose text it holds.
  LoaderOptions seq = o;
  seq.shuffle = false;
  seq.batch_size = 1;
  Loader ordered({{fx().osi}}, seq);
  for (int64_t d = 0; d < 5; ++d) {
    TokenBatch b = ordered.next();
    EXPECT_EQ(b.class_labels[0], s.doc_label(d));
    auto doc = s.read_document(d);
    EXPECT_EQ(b.input_ids[1], doc[0]);
  }
  // Unlabelled shards cannot feed a classifier.
  EXPECT_NE(error_of([&] { Loader bad({{fx().law}}, o); }).find("has no label"), std::string::npos);
}

TEST(Loader, MaskedLmMasksFifteenPercentWith801010) {
  ASSERT_GE(fx().mask_id, 0);
  LoaderOptions o = loader_options_for_shard(fx().general, BatchKind::MaskedLM);
  o.mask_id = fx().mask_id;
  o.batch_size = 16;
  o.seq_len = 128;
  o.seed = 5;
  LoaderOptions unmasked = o;
  unmasked.kind = BatchKind::CausalLM;
  Loader l({{fx().general}}, o), plain({{fx().general}}, unmasked);
  int64_t eligible = 0, chosen = 0, as_mask = 0, kept = 0, random = 0;
  for (int step = 0; step < 40; ++step) {
    TokenBatch b = l.next(), p = plain.next();  // same packing: only the masking differs
    EXPECT_EQ(b.attention_mask, p.attention_mask);
    EXPECT_EQ(b.segment_ids, p.segment_ids);
    for (size_t i = 0; i < b.input_ids.size(); ++i) {
      const int32_t orig = p.input_ids[i];
      if (!p.attention_mask[i]) continue;
      if (orig == o.bos_id || orig == o.eos_id) {
        EXPECT_EQ(b.labels[i], -100);  // special tokens are never chosen
        EXPECT_EQ(b.input_ids[i], orig);
        continue;
      }
      ++eligible;
      if (b.labels[i] == -100) {
        EXPECT_EQ(b.input_ids[i], orig);
        continue;
      }
      EXPECT_EQ(b.labels[i], orig);
      ++chosen;
      if (b.input_ids[i] == o.mask_id) ++as_mask;
      else if (b.input_ids[i] == orig) ++kept;
      else ++random;
    }
  }
  ASSERT_GT(eligible, 50000);
  const double f = double(chosen) / double(eligible);
  EXPECT_NEAR(f, 0.15, 0.006) << chosen << "/" << eligible;
  EXPECT_NEAR(double(as_mask) / double(chosen), 0.8, 0.02);
  EXPECT_NEAR(double(kept) / double(chosen), 0.1, 0.015);  // plus random draws of the same id
  EXPECT_NEAR(double(random) / double(chosen), 0.1, 0.015);

  // The masks are a function of the seed: the same seed repeats them, another changes them.
  o.seed = 5;
  Loader a5({{fx().general}}, o), b5({{fx().general}}, o);
  o.seed = 6;
  Loader c6({{fx().general}}, o);
  const TokenBatch x = a5.next();
  expect_same(x, b5.next(), "masking by seed");
  EXPECT_NE(x.labels, c6.next().labels);
}

// ---------------------------------------------------------------------------------------------
// Evaluation batches

TEST(Loader, SequentialBatchesCoverTheShardOnceInOrder) {
  LoaderOptions o = causal(fx().law, 8, 128, 0);
  auto batches = sequential_batches(fx().law, o);
  ASSERT_FALSE(batches.empty());
  std::vector<int32_t> stream, want;
  for (size_t i = 0; i < batches.size(); ++i) {
    const TokenBatch& b = batches[i];
    if (i + 1 < batches.size()) {
      EXPECT_EQ(b.rows, 8);
    }
    EXPECT_EQ(int64_t(b.input_ids.size()), b.rows * 128);
    for (size_t t = 0; t < b.input_ids.size(); ++t)
      if (b.attention_mask[t]) stream.push_back(b.input_ids[t]);
  }
  for (const auto& d : framed_docs(fx().law, o)) want.insert(want.end(), d.begin(), d.end());
  EXPECT_EQ(stream, want);
  const TokenBatch& last = batches.back();
  EXPECT_EQ(last.attention_mask.back(), want.size() % 128 == 0 ? 1 : 0);
}

// ---------------------------------------------------------------------------------------------
// Speed (printed, not asserted: the machine is shared)

TEST(Speed, PrepareAndRandomDocumentReads) {
  PrepareOptions p;
  p.tokenizer = fx().tokenizer;
  p.out = fx().dir + "/speed.h5";
  for (const char* d : {"general", "healthcare", "law", "finance", "stem", "conversational", "commonsense",
                        "multilingual"})
    p.inputs.push_back(kMini + "/" + d + "/train.jsonl");
  p.progress = false;
  const PrepareStats st = prepare_token_shard(p);
  std::printf("[ speed ] prepare: %.2f MB of text, %lld tokens in %.2f s: %.2f MB/s (%d threads)\n",
              double(st.bytes) / 1e6, (long long)st.tokens, st.seconds, st.mb_per_s(), p.threads);

  // Random whole-document reads, with the reader's chunk cache and without one (every read
  // goes back to the file; the OS page cache still holds it).
  for (size_t cache : {size_t(64) << 20, size_t(0)}) {
    TokenShard s(p.out, cache);
    uint64_t x = 12345;
    std::vector<int32_t> buf;
    int64_t tokens = 0;
    const int reads = 20000;
    const auto start = std::chrono::steady_clock::now();
    for (int i = 0; i < reads; ++i) {
      x = x * 6364136223846793005ull + 1442695040888963407ull;
      const int64_t doc = int64_t((x >> 33) % uint64_t(s.n_docs()));
      buf.clear();
      s.read_tokens(s.doc_offsets()[size_t(doc)], s.doc_length(doc), buf);
      tokens += int64_t(buf.size());
    }
    const double sec = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    std::printf("[ speed ] random document reads, chunk cache %zu MB: %d in %.3f s = %.1f us/read, %.1f M tokens/s "
                "(%lld docs, %lld tokens)\n",
                cache >> 20, reads, sec, 1e6 * sec / reads, double(tokens) / sec / 1e6, (long long)s.n_docs(),
                (long long)s.n_tokens());
  }
}
