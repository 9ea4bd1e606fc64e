// gemkit-run: text generation and speed measurement with gemkit's edge runtime (the C API; runtime/model.h
// only to count the weight bytes a decoded token reads, for --bench).
//   gemkit-run -m model.gguf -p "The court held" [-n 64] [--temp 0.8] [--top-k 40] [--top-p 0.95]
//              [--seed 1] [-t THREADS] [-c CONTEXT] [--domain law (SCAR: that expert for every token)]
//   gemkit-run -m model.gguf --bench [--prompt-tokens 128] [--gen-tokens 64] [--reps 3] [-t N]
//   gemkit-run -m model.gguf --perplexity test.jsonl [-c 512] [--max-tokens N] [--domain D] [-t N]
// --perplexity prints one JSON line: documents, scored tokens, mean NLL and perplexity of the file's
// documents (runtime/perplexity.h: framed and windowed as `gemkit eval` does, -c the window).
// --bench prints one JSON line: prompt tokens/s, decode tokens/s, time to first token, peak RSS,
// file and binary sizes, realised DTR capacity (best of --reps for speeds). With -p, the bench
// prompt is that text's tokens repeated to --prompt-tokens (else fixed ids); decoding is greedy.
// weight_bytes_per_token: the weight bytes one decoded token reads (every layer's matrices and
// norms, the token routers, the output norm and head, one row of the token embedding; SCAR
// experts not counted; a routed block that skips a token reads less, so for a routed model this
// is the dense upper bound); decode_gb_s = weight_bytes_per_token * decode_tok_s / 1e9, to set
// against the machine's read bandwidth (bench/read_bandwidth).
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "runtime/gemkit_runtime.h"
#include "runtime/model.h"
#include "runtime/perplexity.h"

namespace {

struct Args {
  std::string model, prompt = "The", domain, perplexity;
  long max_tokens = 0;
  int n = 64, top_k = 40, threads = 1, context = 0, prompt_tokens = 128, gen_tokens = 64, reps = 3;
  float temp = 0.8f, top_p = 0.95f;
  uint64_t seed = 1;
  bool bench = false, prompt_given = false;
};

[[noreturn]] void usage(const char* message) {
  std::fprintf(stderr, "gemkit-run: %s\nusage: gemkit-run -m MODEL.gguf [-p PROMPT] [-n N] [--temp T] [--top-k K] "
               "[--top-p P] [--seed S] [-t THREADS] [-c CONTEXT] [--domain D] [--bench [--prompt-tokens N] [--gen-tokens N] [--reps N]] "
               "[--perplexity FILE [--max-tokens N]]\n",
               message);
  std::exit(2);
}

Args parse(int argc, char** argv) {
  Args a;
  for (int i = 1; i < argc; ++i) {
    const std::string k = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) usage(("missing value after " + k).c_str());
      return argv[++i];
    };
    auto number = [&]() -> double {
      const std::string v = value();
      char* end = nullptr;
      const double d = std::strtod(v.c_str(), &end);
      if (v.empty() || *end) usage((k + ": expected a number, got \"" + v + "\"").c_str());
      return d;
    };
    if (k == "-m" || k == "--model") a.model = value();
    else if (k == "-p" || k == "--prompt") a.prompt = value(), a.prompt_given = true;
    else if (k == "-n") a.n = int(number());
    else if (k == "--temp") a.temp = float(number());
    else if (k == "--top-k") a.top_k = int(number());
    else if (k == "--top-p") a.top_p = float(number());
    else if (k == "--seed") a.seed = uint64_t(number());
    else if (k == "-t" || k == "--threads") a.threads = int(number());
    else if (k == "-c" || k == "--context") a.context = int(number());
    else if (k == "--domain") a.domain = value();
    else if (k == "--bench") a.bench = true;
    else if (k == "--perplexity") a.perplexity = value();
    else if (k == "--max-tokens") a.max_tokens = long(number());
    else if (k == "--prompt-tokens") a.prompt_tokens = int(number());
    else if (k == "--gen-tokens") a.gen_tokens = int(number());
    else if (k == "--reps") a.reps = int(number());
    else if (k == "-h" || k == "--help") usage("help");
    else usage(("unknown option " + k).c_str());
  }
  if (a.model.empty()) usage("-m MODEL is required");
  if (a.threads < 1 || a.n < 0 || a.reps < 1 || a.prompt_tokens < 1) usage("counts must be positive");
  return a;
}

double seconds_since(std::chrono::steady_clock::time_point t) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t).count();
}

long status_kb(const char* field) {  // /proc/self/status VmHWM / VmRSS in kB
  std::ifstream in("/proc/self/status");
  std::string line;
  const size_t n = std::strlen(field);
  while (std::getline(in, line))
    if (line.compare(0, n, field) == 0) return std::atol(line.c_str() + n + 1);
  return -1;
}

// The weight bytes a decoded token reads (see the header), from a second, metadata-only load
// of the file (made after the timing and the peak RSS reading, so it changes neither).
double weight_bytes_per_token(const std::string& path) {
  const gemkit::runtime::Model model(path);
  auto bytes = [](const gemkit::runtime::Weight& w) { return double(w.rows) * double(w.row_bytes); };
  double total = 0;
  for (const gemkit::runtime::Layer& l : model.layers()) {
    for (const auto* w : {&l.attn_norm, &l.q, &l.k, &l.v, &l.o, &l.ffn_norm, &l.gate, &l.up, &l.down}) total += bytes(*w);
    total += double(l.router_weight.size() + (l.routed ? 1 : 0) + l.scar_query.size() + l.scar_keys.size()) * sizeof(float);
  }
  return total + bytes(model.output_norm()) + bytes(model.output()) + double(model.token_embd().row_bytes);
}

int bench(gk_model* m, const Args& a, long rss_before_kb) {
  char err[512];
  const int ctx = a.context > 0 ? a.context : a.prompt_tokens + a.gen_tokens + 1;
  gk_session* s = gk_session_new(m, ctx, a.threads, err, sizeof err);
  if (!s) return std::fprintf(stderr, "gemkit-run: %s\n", err), 1;
  if (!a.domain.empty() && gk_session_set_domain(s, a.domain.c_str(), err, sizeof err) != 0)
    return std::fprintf(stderr, "gemkit-run: %s\n", err), 1;
  const int V = gk_vocab_size(m);
  // The prompt: -p's text tokenized and repeated to --prompt-tokens (routing sees real text),
  // else fixed ids.
  std::vector<int32_t> prompt(static_cast<size_t>(a.prompt_tokens));
  std::vector<int32_t> text_ids(a.prompt.size() + 8);
  const int32_t n_text = a.prompt_given ? gk_tokenize(m, a.prompt.c_str(), 0, text_ids.data(), int32_t(text_ids.size())) : 0;
  for (int i = 0; i < a.prompt_tokens; ++i)
    prompt[size_t(i)] = n_text > 0 ? text_ids[size_t(i % n_text)] : int32_t((i * 7919 + 13) % V);
  double best_prompt = 1e30, best_decode = 1e30, best_ttft = 1e30, capacity = 1;
  for (int r = 0; r < a.reps; ++r) {
    gk_session_reset(s);
    const auto t0 = std::chrono::steady_clock::now();
    const float* logits = gk_eval(s, prompt.data(), a.prompt_tokens, err, sizeof err);
    if (!logits) return std::fprintf(stderr, "gemkit-run: %s\n", err), 1;
    const double t_prompt = seconds_since(t0);
    uint64_t state = a.seed;
    int32_t next = gk_sample(logits, V, 0, 0, 1, &state);
    const double ttft = seconds_since(t0);
    const auto t1 = std::chrono::steady_clock::now();
    for (int i = 0; i < a.gen_tokens; ++i) {
      logits = gk_eval(s, &next, 1, err, sizeof err);
      if (!logits) return std::fprintf(stderr, "gemkit-run: %s\n", err), 1;
      next = gk_sample(logits, V, 0, 0, 1, &state);
    }
    const double t_decode = seconds_since(t1);
    best_prompt = std::min(best_prompt, t_prompt);
    best_decode = std::min(best_decode, t_decode);
    best_ttft = std::min(best_ttft, ttft);
    capacity = gk_realised_capacity(s);
  }
  const double peak_rss_mb = status_kb("VmHWM:") * 1024.0 / 1e6;
  double weight_bytes = 0;
  try {
    weight_bytes = weight_bytes_per_token(a.model);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "gemkit-run: cannot count the weight bytes: %s\n", e.what());
  }
  const double decode_tok_s = a.gen_tokens / best_decode;
  std::error_code ec;
  const auto exe_bytes = std::filesystem::file_size("/proc/self/exe", ec);
  std::printf("{\"runtime\": \"gemkit-run\", \"model\": \"%s\", \"kernels\": \"%s\", \"threads\": %d, \"prompt_tokens\": %d, "
              "\"gen_tokens\": %d, \"reps\": %d, \"prompt_tok_s\": %.1f, \"decode_tok_s\": %.1f, \"ttft_ms\": %.2f, "
              "\"peak_rss_mb\": %.1f, \"rss_before_load_mb\": %.1f, \"file_mb\": %.2f, \"kv_cache_mb\": %.2f, "
              "\"binary_mb\": %.2f, \"realised_capacity\": %.3f, \"weight_bytes_per_token\": %.0f, \"decode_gb_s\": %.3f}\n",
              a.model.c_str(), gk_kernels_name(), a.threads, a.prompt_tokens, a.gen_tokens, a.reps,
              a.prompt_tokens / best_prompt, decode_tok_s, best_ttft * 1e3, peak_rss_mb,
              rss_before_kb * 1024.0 / 1e6, std::filesystem::file_size(a.model, ec) / 1e6, double(gk_session_kv_bytes(s)) / 1e6,
              ec ? 0.0 : double(exe_bytes) / 1e6, capacity, weight_bytes, weight_bytes * decode_tok_s / 1e9);
  gk_session_free(s);
  return 0;
}

}  // namespace

int perplexity(const Args& a) {
  try {
    const gemkit::runtime::Model model(a.model);
    const auto docs = gemkit::runtime::read_documents(a.perplexity);
    const auto t0 = std::chrono::steady_clock::now();
    const auto r = gemkit::runtime::perplexity(model, docs, a.context > 0 ? a.context : 512, a.threads, a.max_tokens, a.domain);
    const double secs = seconds_since(t0);
    std::printf("{\"runtime\": \"gemkit-run\", \"model\": \"%s\", \"file\": \"%s\", \"domain\": \"%s\", \"documents\": %lld, "
                "\"tokens\": %lld, \"mean_nll\": %.6f, \"perplexity\": %.4f, \"tok_s\": %.1f}\n",
                a.model.c_str(), a.perplexity.c_str(), a.domain.c_str(), (long long)r.documents, (long long)r.tokens,
                r.mean_nll(), std::exp(r.mean_nll()), double(r.tokens) / secs);
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "gemkit-run: error: %s\n", e.what());
    return 1;
  }
}

int main(int argc, char** argv) {
  const Args a = parse(argc, argv);
  if (!a.perplexity.empty()) return perplexity(a);
  const long rss_before = status_kb("VmRSS:");
  char err[512];
  gk_model* m = gk_model_load(a.model.c_str(), err, sizeof err);
  if (!m) return std::fprintf(stderr, "gemkit-run: error: %s\n", err), 1;
  if (a.bench) {
    const int rc = bench(m, a, rss_before);
    gk_model_free(m);
    return rc;
  }
  std::vector<int32_t> ids(a.prompt.size() + 8);
  int32_t n = gk_tokenize(m, a.prompt.c_str(), 1, ids.data(), int32_t(ids.size()));
  if (n < 0) return std::fprintf(stderr, "gemkit-run: prompt too long\n"), 1;
  ids.resize(size_t(n));
  const int ctx = a.context > 0 ? a.context : n + a.n + 1;
  gk_session* s = gk_session_new(m, ctx, a.threads, err, sizeof err);
  if (!s) return std::fprintf(stderr, "gemkit-run: error: %s\n", err), 1;
  if (!a.domain.empty() && gk_session_set_domain(s, a.domain.c_str(), err, sizeof err) != 0)
    return std::fprintf(stderr, "gemkit-run: error: %s\n", err), 1;
  const auto t0 = std::chrono::steady_clock::now();
  const float* logits = gk_eval(s, ids.data(), n, err, sizeof err);
  if (!logits) return std::fprintf(stderr, "gemkit-run: error: %s\n", err), 1;
  std::printf("%s", a.prompt.c_str());
  std::fflush(stdout);
  // (the prompt as typed; generated text follows what the tokenizer makes of it)
  uint64_t state = a.seed;
  // Decoding the prompt and the new tokens together, printing what the new ones add: a
  // SentencePiece piece's leading space only shows after the text before it.
  std::vector<int32_t> out(ids.begin() + (n > 0 && ids[0] == gk_bos_token(m) ? 1 : 0), ids.end());
  std::string printed;
  {
    std::vector<char> buf(out.size() * 32 + 64);
    const int32_t len = gk_detokenize(m, out.data(), int32_t(out.size()), buf.data(), int32_t(buf.size()));
    if (len >= 0) printed.assign(buf.data(), size_t(len));
  }
  const size_t prompt_tokens = out.size();
  const int32_t eos = gk_eos_token(m);
  for (int i = 0; i < a.n; ++i) {
    const int32_t next = gk_sample(logits, gk_vocab_size(m), a.temp, a.top_k, a.top_p, &state);
    if (next == eos) break;
    out.push_back(next);
    // Print the text's new suffix (pieces can merge across tokens in SentencePiece decoding).
    std::vector<char> buf(out.size() * 32 + 64);
    const int32_t len = gk_detokenize(m, out.data(), int32_t(out.size()), buf.data(), int32_t(buf.size()));
    if (len >= 0) {
      const std::string text(buf.data(), size_t(len));
      if (text.size() > printed.size() && text.compare(0, printed.size(), printed) == 0)
        std::printf("%s", text.c_str() + printed.size());
      printed = text;
      std::fflush(stdout);
    }
    logits = gk_eval(s, &next, 1, err, sizeof err);
    if (!logits) return std::fprintf(stderr, "\ngemkit-run: error: %s\n", err), 1;
  }
  const double secs = seconds_since(t0);
  std::fprintf(stderr, "\n[%zu new tokens in %.2f s (prompt included), kernels %s, realised capacity %.3f]\n",
               out.size() - prompt_tokens, secs, gk_kernels_name(), gk_realised_capacity(s));
  gk_session_free(s);
  gk_model_free(m);
  return 0;
}
