// Chat-format training examples (data/chat_examples.h): parsing and its errors, the answers-only
// loss mask, and how `gemkit data prepare` stores it in token shards (format 3, /loss_mask) beside
// raw text. The tokenizer is Qwen2's byte-level BPE (llama.cpp's vocabulary file, written as
// tokenizer.json by the importer) with a ChatML template; parity with transformers'
// apply_chat_template on SmolLM2 is checked by tests/reference/check_tokenizers.py.
#include <gtest/gtest.h>
#include <hdf5.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/file_io.h"
#include "data/chat_examples.h"
#include "data/loader.h"
#include "data/prepare.h"
#include "data/token_shards.h"
#include "eval/shard_corpus.h"
#include "eval/task_prompts.h"
#include "formats/gguf.h"
#include "import/tokenizer_files.h"
#include "model/transformer.h"
#include "test_util.h"
#include "tokenizer_test_util.h"
#include "tokenizers/tokenizer.h"

using namespace gemkit;
using gemkit::test::error_of;
using gemkit::testing::require_testdata;
using json = nlohmann::json;

namespace {

const char* kChatML =
    "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + "
    "'\\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}";

// A checkpoint-like folder: Qwen2's vocabulary as tokenizer.json, a ChatML chat template.
const std::string& chat_folder() {
  static const std::string dir = [] {
    const std::string d = ::testing::TempDir() + "gemkit_chat_" + std::to_string(::getpid());
    std::filesystem::remove_all(d);
    std::filesystem::create_directories(d);
    write_hf_tokenizer_files(GgufFile(require_testdata("ggml-vocab-qwen2.gguf")), d);
    json cfg = json::parse(read_text_file(d + "/tokenizer_config.json"));
    cfg["chat_template"] = kChatML;
    write_text_file_atomic(d + "/tokenizer_config.json", cfg.dump(2));
    return d;
  }();
  return dir;
}

std::vector<ChatMessage> conversation() {
  return {{"system", "You answer in one line."},
          {"user", "What is the capital of France?"},
          {"assistant", "Paris."},
          {"user", "And of Japan? Answer with 東京 too."},
          {"assistant", " Tokyo (東京), since 1868.\n"}};
}

// Writes DIR/NAME.train.jsonl from `records`, prepares DIR/NAME.train.h5 with the chat folder's
// tokenizer, and returns the shard's path.
std::string prepare_shard(const std::string& dir, const std::string& name, const std::vector<json>& records) {
  std::filesystem::create_directories(dir);
  {
    std::ofstream f(dir + "/" + name + ".train.jsonl");
    for (const json& r : records) f << r.dump() << "\n";
  }
  PrepareOptions o;
  o.tokenizer = chat_folder();
  o.inputs = {dir + "/" + name + ".train.jsonl"};
  o.out = dir + "/" + name + ".train.h5";
  o.progress = false;
  prepare_token_shard(o);
  return o.out;
}

}  // namespace

TEST(ChatTemplate, AnswerSpansCoverAnswersAndEndOfTurn) {
  const ChatTemplate chatml(kChatML, "", "x");
  const auto r = chatml.render_answers(conversation());
  EXPECT_EQ(r.text, chatml.render(conversation(), false));
  ASSERT_EQ(r.answers.size(), 2u);
  EXPECT_EQ(r.text.substr(r.answers[0].first, r.answers[0].second - r.answers[0].first), "Paris.<|im_end|>");
  EXPECT_EQ(r.text.substr(r.answers[1].first, r.answers[1].second - r.answers[1].first),
            " Tokyo (東京), since 1868.\n<|im_end|>");
  // Llama 3 trims contents: the span holds the trimmed answer.
  const ChatTemplate llama3("<|start_header_id|>{{ message['content'] | trim }}<|eot_id|>{{ bos_token }}",
                            "<|begin_of_text|>", "x");
  const auto l = llama3.render_answers({{"user", "Hi"}, {"assistant", "  Hello!  "}});
  ASSERT_EQ(l.answers.size(), 1u);
  EXPECT_EQ(l.text.substr(l.answers[0].first, l.answers[0].second - l.answers[0].first), "Hello!<|eot_id|>");
  EXPECT_EQ(l.text, llama3.render({{"user", "Hi"}, {"assistant", "  Hello!  "}}, false));
}

TEST(ChatExamples, ParseErrorsNameTheLineAndMessage) {
  const auto error = [](const std::string& line) { return error_of([&] { parse_chat_record(json::parse(line), "f.jsonl:3"); }); };
  EXPECT_NE(error(R"({"messages": [{"role": "user", "content": "q"}, {"role": "bot", "content": "a"}]})")
                .find("f.jsonl:3: messages[1]: unknown role \"bot\" (expected system, user or assistant)"),
            std::string::npos);
  EXPECT_NE(error(R"({"messages": [{"role": "user", "content": "q"}]})").find("f.jsonl:3: no assistant message"),
            std::string::npos);
  EXPECT_NE(error(R"({"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": " \n"}]})")
                .find("f.jsonl:3: messages[1]: empty assistant answer"),
            std::string::npos);
  EXPECT_NE(error(R"({"messages": [{"role": "user", "content": 5}]})").find("messages[0]: expected a string \"content\""),
            std::string::npos);
  EXPECT_NE(error(R"({"messages": []})").find("non-empty list"), std::string::npos);
  EXPECT_NE(error(R"({"prompt": "q", "completion": null})").find("\"completion\" must be a string"), std::string::npos);
  const auto pc = parse_chat_record(json::parse(R"({"prompt": "2+2?", "completion": "4"})"), "x");
  ASSERT_EQ(pc.size(), 2u);
  EXPECT_EQ(pc[0].role, "user");
  EXPECT_EQ(pc[1].role, "assistant");
  EXPECT_EQ(pc[1].content, "4");
}

// The masked tokens decode to exactly the answers and their <|im_end|>; the rest decodes to the
// prompt; the ids are those of the whole rendered text.
TEST(ChatExamples, MaskCoversExactlyTheAnswers) {
  const auto tok = load_tokenizer(chat_folder());
  const ChatTemplate chat = ChatTemplate::from_folder(chat_folder());
  const ChatTokens c = encode_chat(*tok, chat, conversation(), "x");
  ASSERT_EQ(c.ids.size(), c.loss_mask.size());
  EXPECT_EQ(c.ids, tok->encode(chat.render(conversation(), false), false));
  std::vector<int32_t> answer_ids, prompt_ids;
  for (size_t i = 0; i < c.ids.size(); ++i) (c.loss_mask[i] ? answer_ids : prompt_ids).push_back(c.ids[i]);
  EXPECT_EQ(tok->decode(answer_ids, false), "Paris.<|im_end|> Tokyo (東京), since 1868.\n<|im_end|>");
  EXPECT_EQ(tok->decode(prompt_ids, false),
            "<|im_start|>system\nYou answer in one line.<|im_end|>\n<|im_start|>user\nWhat is the capital of France?"
            "<|im_end|>\n<|im_start|>assistant\n\n<|im_start|>user\nAnd of Japan? Answer with 東京 too.<|im_end|>\n"
            "<|im_start|>assistant\n\n");
}

// A token that starts in the role header's newline and runs into the answer (Qwen2's
// pre-tokenizer keeps a run of newlines together: the header's and the answer's first one make
// one "\n\n" token) overlaps the answer, so it is trained, as in transformers'
// return_assistant_tokens_mask. (SmolLM2's GPT-2 rule does the same with "\n " before "  Noted",
// checked against transformers by tests/reference/check_tokenizers.py.)
TEST(ChatExamples, TokenStraddlingTheAnswerStartIsTrained) {
  const auto tok = load_tokenizer(chat_folder());
  const ChatTemplate chat = ChatTemplate::from_folder(chat_folder());
  const ChatTokens c = encode_chat(*tok, chat, {{"user", "Hi"}, {"assistant", "\nNoted."}}, "x");
  std::vector<int32_t> answer_ids;
  for (size_t i = 0; i < c.ids.size(); ++i)
    if (c.loss_mask[i]) answer_ids.push_back(c.ids[i]);
  EXPECT_EQ(tok->decode(answer_ids, false), "\n\nNoted.<|im_end|>");
}

// data prepare: chat examples and raw text in one shard; the raw document is trained on every
// token, the chat ones on their answers; a shard without chat examples holds no mask; version-2
// shards (before masks) still read, as unmasked.
TEST(Prepare, ChatExamplesKeepTheirMaskBesideRawText) {
  const std::string dir = chat_folder() + "_prepare";
  std::filesystem::create_directories(dir);
  {
    std::ofstream f(dir + "/law.train.jsonl");
    f << json({{"text", "Raw domain text about contracts."}}).dump() << "\n";
    f << json({{"messages", {{{"role", "user"}, {"content", "What is a tort?"}},
                             {{"role", "assistant"}, {"content", "A civil wrong."}}}}}).dump() << "\n";
    f << json({{"prompt", "Is a contract binding?"}, {"completion", "Usually, yes."}}).dump() << "\n";
  }
  PrepareOptions o;
  o.tokenizer = chat_folder();
  o.inputs = {dir + "/law.train.jsonl"};
  o.out = dir + "/law.train.h5";
  o.progress = false;
  const PrepareStats st = prepare_token_shard(o);
  EXPECT_EQ(st.docs, 3);
  const auto tok = load_tokenizer(chat_folder());
  const ChatTemplate chat = ChatTemplate::from_folder(chat_folder());
  TokenShard s(o.out);
  EXPECT_EQ(s.info().format_version, 3);
  ASSERT_TRUE(s.has_loss_mask());
  const auto mask_of = [&](int64_t d) {
    std::vector<uint8_t> m;
    s.read_loss_mask(s.doc_offsets()[size_t(d)], s.doc_length(d), m);
    return m;
  };
  EXPECT_EQ(s.read_document(0), tok->encode("Raw domain text about contracts.", false));
  EXPECT_EQ(mask_of(0), std::vector<uint8_t>(size_t(s.doc_length(0)), 1));
  const ChatTokens tort = encode_chat(*tok, chat, {{"user", "What is a tort?"}, {"assistant", "A civil wrong."}}, "x");
  EXPECT_EQ(s.read_document(1), tort.ids);
  EXPECT_EQ(mask_of(1), tort.loss_mask);
  const ChatTokens pc = encode_chat(*tok, chat, {{"user", "Is a contract binding?"}, {"assistant", "Usually, yes."}}, "x");
  EXPECT_EQ(s.read_document(2), pc.ids);
  EXPECT_EQ(mask_of(2), pc.loss_mask);

  // Raw text only: no mask stored, and reads as all ones.
  o.inputs = {dir + "/raw.train.jsonl"};
  std::ofstream(o.inputs[0]) << json({{"text", "Only raw text."}}).dump() << "\n";
  o.out = dir + "/raw.train.h5";
  prepare_token_shard(o);
  {
    TokenShard raw(o.out);
    EXPECT_FALSE(raw.has_loss_mask());
    std::vector<uint8_t> m;
    raw.read_loss_mask(0, raw.n_tokens(), m);
    EXPECT_EQ(m, std::vector<uint8_t>(size_t(raw.n_tokens()), 1));
  }
  // A version-2 shard (written before masks existed) is read.
  hid_t f = H5Fopen(o.out.c_str(), H5F_ACC_RDWR, H5P_DEFAULT);
  hid_t a = H5Aopen(f, "format_version", H5P_DEFAULT);
  const int32_t v2 = 2;
  H5Awrite(a, H5T_NATIVE_INT32, &v2);
  H5Aclose(a);
  H5Fclose(f);
  EXPECT_EQ(TokenShard(o.out).info().format_version, 2);

  // A chat example needs the folder's template: a tokenizer file alone is refused, naming the line.
  o.tokenizer = chat_folder() + "/tokenizer.json";
  o.inputs = {dir + "/law.train.jsonl"};
  o.out = dir + "/file.train.h5";
  EXPECT_NE(error_of([&] { prepare_token_shard(o); }).find("law.train.jsonl:2: a chat example needs the checkpoint folder"),
            std::string::npos);
  // A mask value other than 0/1 in a damaged shard is a named error when read.
  std::filesystem::copy_file(dir + "/law.train.h5", dir + "/damaged.h5", std::filesystem::copy_options::overwrite_existing);
  f = H5Fopen((dir + "/damaged.h5").c_str(), H5F_ACC_RDWR, H5P_DEFAULT);
  hid_t ds = H5Dopen2(f, "loss_mask", H5P_DEFAULT);
  std::vector<uint8_t> twos(size_t(s.n_tokens()), 2);
  H5Dwrite(ds, H5T_NATIVE_UINT8, H5S_ALL, H5S_ALL, H5P_DEFAULT, twos.data());
  H5Dclose(ds);
  H5Fclose(f);
  TokenShard damaged(dir + "/damaged.h5");
  std::vector<uint8_t> m;
  EXPECT_NE(error_of([&] { damaged.read_loss_mask(0, 4, m); }).find("damaged.h5: /loss_mask[0]: expected 0 or 1, got 2"),
            std::string::npos);
}

// The loader packs chat examples beside raw text: a chat example enters a row as its template
// wrote it (no BOS/EOS added), is its own segment, and is a training target only where its mask
// is 1; raw text keeps its EOS and trains on every token after the segment's first.
TEST(Loader, ChatRowsTrainOnAnswersOnlyAndStayInTheirSegment) {
  const std::string path = prepare_shard(
      chat_folder() + "_loader", "mix",
      {{{"text", "Raw text first."}},
       {{"prompt", "Capital of Peru?"}, {"completion", "Lima."}},
       {{"messages", {{{"role", "user"}, {"content", "2+2?"}}, {{"role", "assistant"}, {"content", "4"}},
                      {{"role", "user"}, {"content", "3+3?"}}, {{"role", "assistant"}, {"content", "6"}}}}}});
  const TokenShard shard(path);
  LoaderOptions lo = loader_options_for_shard(path, BatchKind::CausalLM);
  ASSERT_GE(lo.eos_id, 0);  // Qwen2 frames raw text with <|endoftext|>
  lo.shuffle = false;
  lo.batch_size = 1;
  lo.seq_len = 512;  // the three documents fit one row
  Loader loader({{path, 1.0}}, lo);
  const TokenBatch b = loader.next();

  std::vector<int32_t> want_ids, want_labels, want_segments;
  for (int64_t d = 0; d < shard.n_docs(); ++d) {
    const std::vector<int32_t> ids = shard.read_document(d);
    std::vector<uint8_t> mask;
    shard.read_loss_mask(shard.doc_offsets()[size_t(d)], shard.doc_length(d), mask);
    const bool chat = d > 0;
    EXPECT_EQ(shard.doc_is_chat(d), chat);
    std::vector<int32_t> framed = ids;
    if (!chat) framed.push_back(lo.eos_id), mask.push_back(1);
    for (size_t k = 0; k < framed.size(); ++k) {
      want_ids.push_back(framed[k]);
      want_labels.push_back(k > 0 && mask[k] ? framed[k] : -100);
      want_segments.push_back(int32_t(d));
    }
  }
  const size_t n = want_ids.size();
  ASSERT_LE(n, size_t(lo.seq_len));
  EXPECT_EQ(std::vector<int32_t>(b.input_ids.begin(), b.input_ids.begin() + n), want_ids);
  EXPECT_EQ(std::vector<int32_t>(b.labels.begin(), b.labels.begin() + n), want_labels);
  EXPECT_EQ(std::vector<int32_t>(b.segment_ids.begin(), b.segment_ids.begin() + n), want_segments);
  // The targets of the chat examples decode to their answers and end-of-turn markers only.
  const auto tok = load_tokenizer(chat_folder());
  std::vector<int32_t> targets;
  for (size_t i = 0; i < n; ++i)
    if (b.labels[i] >= 0 && b.segment_ids[i] > 0) targets.push_back(b.labels[i]);
  EXPECT_EQ(tok->decode(targets, false), "Lima.<|im_end|>4<|im_end|>6<|im_end|>");
}

// A conversation never continues into the next row (its answers would lose their prompt): one
// that does not fit in the rest of a row starts the next row, and one longer than seq_len is
// dropped (counted) or truncated to its beginning. chat_answers_only = false trains on all of it.
TEST(Loader, LongConversationsAreDroppedOrTruncatedNeverSplit) {
  std::string long_answer;
  for (int i = 0; i < 40; ++i) long_answer += "word" + std::to_string(i) + " ";
  const std::string path = prepare_shard(chat_folder() + "_overflow", "chat",
                        {{{"prompt", "Short?"}, {"completion", "Yes."}},
                         {{"prompt", "Long?"}, {"completion", long_answer}},
                         {{"prompt", "Again?"}, {"completion", "No."}}});
  const TokenShard shard(path);
  const int64_t n0 = shard.doc_length(0), n1 = shard.doc_length(1), n2 = shard.doc_length(2);
  ASSERT_GT(n1, 2 * n0);
  LoaderOptions lo = loader_options_for_shard(path, BatchKind::CausalLM);
  lo.shuffle = false;
  lo.batch_size = 2;
  lo.seq_len = n0 + n2 - 1;  // the two short ones do not fit one row together; the long one fits none
  ASSERT_LT(lo.seq_len, n1);
  const auto segment_starts = [](const TokenBatch& b, int64_t row) {
    std::vector<int32_t> first;
    for (int64_t t = 0; t < b.seq_len; ++t) {
      const int32_t seg = b.segment_ids[size_t(row * b.seq_len + t)];
      if (seg >= 0 && (t == 0 || b.segment_ids[size_t(row * b.seq_len + t - 1)] != seg))
        first.push_back(b.input_ids[size_t(row * b.seq_len + t)]);
    }
    return first;
  };
  {
    Loader drop({{path, 1.0}}, lo);
    EXPECT_EQ(drop.overlong_chat_examples(), 1);
    const TokenBatch b = drop.next();
    // Row 0: the first conversation, then padding; row 1: the third (the long one is dropped).
    EXPECT_EQ(b.tokens(), n0 + n2);
    EXPECT_EQ(std::vector<int32_t>(b.input_ids.begin(), b.input_ids.begin() + n0), shard.read_document(0));
    EXPECT_EQ(b.attention_mask[size_t(n0)], 0);
    EXPECT_EQ(std::vector<int32_t>(b.input_ids.begin() + lo.seq_len, b.input_ids.begin() + lo.seq_len + n2),
              shard.read_document(2));
    EXPECT_EQ(segment_starts(b, 0).size(), 1u);
    EXPECT_EQ(segment_starts(b, 1).size(), 1u);
  }
  {
    lo.chat_overflow = LoaderOptions::ChatOverflow::Truncate;
    lo.chat_answers_only = false;
    Loader truncate({{path, 1.0}}, lo);
    EXPECT_EQ(truncate.overlong_chat_examples(), 1);
    // Row 0: the first conversation; row 1: the long one, cut to one row.
    const TokenBatch first = truncate.next();
    const std::vector<int32_t> long_ids = shard.read_document(1);
    EXPECT_EQ(std::vector<int32_t>(first.input_ids.begin() + lo.seq_len, first.input_ids.end()),
              std::vector<int32_t>(long_ids.begin(), long_ids.begin() + lo.seq_len));
    // Every token after the row's first is a target when training on whole conversations.
    for (int64_t t = 1; t < lo.seq_len; ++t) EXPECT_EQ(first.labels[size_t(lo.seq_len + t)], long_ids[size_t(t)]);
  }
}

// Through a model: the loss over a packed chat batch (prompts masked out by the loader) equals
// the mean negative log-likelihood of the answer tokens alone, computed from the same logits.
// Ids are folded into the tiny test model's vocabulary of 50; what is checked is which
// positions count.
TEST(ChatLoss, MaskedLossEqualsTheLossOverAnswerTokensAlone) {
  const std::string path = prepare_shard(chat_folder() + "_loss", "qa",
                        {{{"prompt", "Capital of Peru?"}, {"completion", "Lima."}},
                         {{"prompt", "2+2?"}, {"completion", "Four, of course."}}});
  LoaderOptions lo = loader_options_for_shard(path, BatchKind::CausalLM);
  lo.shuffle = false;
  lo.batch_size = 1;
  lo.seq_len = 48;
  const TokenBatch b = Loader({{path, 1.0}}, lo).next();
  const auto tensor = [&](const std::vector<int32_t>& v) {
    return torch::tensor(std::vector<int64_t>(v.begin(), v.end())).view({b.rows, b.seq_len});
  };
  const torch::Tensor raw_labels = tensor(b.labels);
  const torch::Tensor ids = tensor(b.input_ids).remainder(50);
  const torch::Tensor labels = torch::where(raw_labels >= 0, raw_labels.remainder(50), raw_labels);
  torch::manual_seed(3);
  Transformer model(gemkit::test::tiny_decoder_config());
  torch::NoGradGuard no_grad;
  ForwardOptions fo;
  fo.attention_mask = tensor(b.attention_mask);
  fo.segment_ids = tensor(b.segment_ids);
  const ModelOutput out = model->forward(ids, fo);
  const double masked = model->loss(out, labels).item<double>();

  const torch::Tensor lp = torch::log_softmax(out.logits, -1);
  double sum = 0;
  int64_t answers = 0;
  for (int64_t t = 0; t + 1 < b.seq_len; ++t) {
    const int64_t target = labels[0][t + 1].item<int64_t>();
    if (target < 0) continue;
    sum -= lp[0][t][target].item<double>();
    ++answers;
  }
  const auto tok = load_tokenizer(chat_folder());
  std::vector<int32_t> answer_ids;
  for (int32_t l : b.labels)
    if (l >= 0) answer_ids.push_back(l);
  ASSERT_EQ(tok->decode(answer_ids, false), "Lima.<|im_end|>Four, of course.<|im_end|>");
  EXPECT_EQ(answers, int64_t(answer_ids.size()));
  EXPECT_NEAR(masked, sum / double(answers), 1e-6);
}

// A task item asked through the chat template (eval.task_format = chat): the request for the
// correct answer holds exactly the tokens of the item's training conversation, and its scored
// tokens are that conversation's answer tokens; no BOS is added on top of the template's.
TEST(TaskPrompts, ChatRequestScoresTheAnswerTokensTrainingUses) {
  const auto tok = load_tokenizer(chat_folder());
  const ChatTemplate chat = ChatTemplate::from_folder(chat_folder());
  eval::Task mc;
  mc.type = eval::TaskType::MultipleChoice;
  eval::TaskItem item;
  item.context = "Which licence is permissive?";
  item.choices = {"GPL-3.0", "MIT License"};
  item.answer = 1;
  EXPECT_EQ(eval::chat_question(mc, item),
            "Which licence is permissive?\n\nChoices:\n- GPL-3.0\n- MIT License\n\nAnswer with the correct choice.");
  const ChatTokens train = encode_chat(*tok, chat, eval::task_conversation(mc, item), "x");
  const eval::ScoreRequest r = eval::TaskPrompts(chat).request(*tok, mc, item, "MIT License");
  std::vector<int32_t> joined = r.context;
  joined.insert(joined.end(), r.continuation.begin(), r.continuation.end());
  std::vector<int32_t> answer;
  for (size_t i = 0; i < train.ids.size(); ++i)
    if (train.loss_mask[i]) answer.push_back(train.ids[i]);
  // Training's text ends with the newline after <|im_end|>, which nothing is scored on.
  EXPECT_EQ(joined, std::vector<int32_t>(train.ids.begin(), train.ids.begin() + std::ptrdiff_t(joined.size())));
  EXPECT_EQ(r.continuation, answer);
  EXPECT_EQ(tok->decode(r.continuation, false), "MIT License<|im_end|>");

  eval::Task cls;
  cls.type = eval::TaskType::Classification;
  cls.labels = {"no", "yes"};
  eval::TaskItem text_item;
  text_item.text = "Free to use.";
  text_item.label = 1;
  EXPECT_EQ(eval::chat_question(cls, text_item), "Free to use.\n\nLabels: no, yes\n\nAnswer with the label that fits the text.");
  EXPECT_EQ(eval::chat_answer(cls, text_item), "yes");
  // Running text, as before: "{text}\nLabel:" + " {label}".
  const eval::ScoreRequest t = eval::TaskPrompts().request(*tok, cls, text_item, "yes");
  EXPECT_EQ(tok->decode(t.continuation, false), " yes");
}

// A held-out chat shard as an eval corpus (`gemkit eval --corpus x.h5`): its chat examples carry
// their answer masks into the corpus (scored on their answers, as training used them:
// Perplexity.AnswersOnlyWhereMasked), raw text beside them none (every token, as before).
TEST(ShardCorpus, ChatExamplesAreScoredOnTheirAnswers) {
  const std::string path = prepare_shard(chat_folder() + "_corpus", "law",
                                         {{{"text", "Raw domain text about contracts."}},
                                          {{"prompt", "Is a contract binding?"}, {"completion", "Usually, yes."}}});
  const std::vector<eval::Corpus> corpora = eval::read_shard_corpora(path, chat_folder());
  ASSERT_EQ(corpora.size(), 1u);
  const std::vector<eval::Document>& docs = corpora[0].documents;
  ASSERT_EQ(docs.size(), 2u);
  EXPECT_TRUE(docs[0].scored.empty());
  const auto tok = load_tokenizer(chat_folder());
  const ChatTokens pc = encode_chat(*tok, ChatTemplate::from_folder(chat_folder()),
                                    {{"user", "Is a contract binding?"}, {"assistant", "Usually, yes."}}, "x");
  EXPECT_EQ(docs[1].ids, pc.ids);
  EXPECT_EQ(docs[1].scored, pc.loss_mask);
  EXPECT_GT(std::count(pc.loss_mask.begin(), pc.loss_mask.end(), 1), 2);
  EXPECT_LT(std::count(pc.loss_mask.begin(), pc.loss_mask.end(), 1), int64_t(pc.ids.size()) / 2);
}
