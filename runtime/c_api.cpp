#include <algorithm>
#include <cmath>
#include <cstring>
#include <memory>
#include <numeric>
#include <string>

#include "core/error.h"
#include "runtime/gemkit_runtime.h"
#include "runtime/model.h"

using gemkit::runtime::Model;
using gemkit::runtime::Session;

struct gk_model {
  std::unique_ptr<Model> model;
};
struct gk_session {
  std::unique_ptr<Session> session;
};

namespace {

void set_error(char* err, size_t len, const std::string& message) {
  if (!err || len == 0) return;
  const size_t n = std::min(len - 1, message.size());
  std::memcpy(err, message.data(), n);
  err[n] = '\0';
}

template <typename F>
auto guarded(char* err, size_t len, F f) -> decltype(f()) {
  try {
    return f();
  } catch (const std::exception& e) {
    set_error(err, len, e.what());
  } catch (...) {
    set_error(err, len, "unknown error");
  }
  return {};
}

// For the functions without an err argument: any exception (an id outside the vocabulary, no
// memory) becomes `failed`, so none crosses into the C caller.
template <typename R, typename F>
R or_failed(R failed, F f) noexcept {
  try {
    return f();
  } catch (...) {
    return failed;
  }
}

uint64_t next_random(uint64_t* s) {  // xorshift64*
  uint64_t x = *s ? *s : 0x9e3779b97f4a7c15ull;
  x ^= x >> 12;
  x ^= x << 25;
  x ^= x >> 27;
  *s = x;
  return x * 0x2545f4914f6cdd1dull;
}

// gk_sample with a temperature: top-k, then top-p, then a draw.
int32_t sample_tokens(const float* logits, int32_t n, float temperature, int32_t top_k, float top_p, uint64_t* state);

}  // namespace

extern "C" {

gk_model* gk_model_load(const char* path, char* err, size_t err_len) {
  return guarded(err, err_len, [&]() -> gk_model* { return new gk_model{std::make_unique<Model>(path ? path : "")}; });
}

void gk_model_free(gk_model* model) { delete model; }

int32_t gk_vocab_size(const gk_model* m) { return int32_t(m->model->config().vocab); }
int32_t gk_bos_token(const gk_model* m) { return m->model->tokenizer().special().bos; }
int32_t gk_eos_token(const gk_model* m) { return m->model->tokenizer().special().eos; }

int32_t gk_tokenize(const gk_model* m, const char* text, int add_bos, int32_t* out, int32_t max) {
  return or_failed(GK_ERROR, [&] {
    std::vector<int32_t> ids = m->model->tokenizer().encode(text ? text : "", false);
    const int32_t bos = m->model->tokenizer().special().bos;
    if (add_bos && bos >= 0) ids.insert(ids.begin(), bos);
    if (int32_t(ids.size()) > max) return -int32_t(ids.size());
    std::copy(ids.begin(), ids.end(), out);
    return int32_t(ids.size());
  });
}

int32_t gk_detokenize(const gk_model* m, const int32_t* ids, int32_t n, char* out, int32_t max) {
  return or_failed(GK_ERROR, [&] {
    const std::string s = m->model->tokenizer().decode(std::vector<int32_t>(ids, ids + n), true);
    if (int32_t(s.size()) + 1 > max) return -(int32_t(s.size()) + 1);
    std::memcpy(out, s.data(), s.size());
    out[s.size()] = '\0';
    return int32_t(s.size());
  });
}

gk_session* gk_session_new(const gk_model* m, int32_t context, int32_t threads, char* err, size_t err_len) {
  return guarded(err, err_len, [&]() -> gk_session* {
    return new gk_session{std::make_unique<Session>(*m->model, context, std::max(1, threads))};
  });
}

void gk_session_free(gk_session* s) { delete s; }
void gk_session_reset(gk_session* s) { s->session->reset(); }
int gk_session_set_domain(gk_session* s, const char* domain, char* err, size_t err_len) {
  return guarded(err, err_len, [&]() -> int {
           s->session->set_domain(domain ? domain : "");
           return 1;
         }) == 1
             ? 0
             : -1;
}

size_t gk_session_kv_bytes(const gk_session* s) { return s->session->kv_bytes(); }

double gk_realised_capacity(const gk_session* s) { return s->session->stats().realised_capacity(); }

const float* gk_eval(gk_session* s, const int32_t* tokens, int32_t n, char* err, size_t err_len) {
  return guarded(err, err_len, [&]() -> const float* {
    return s->session->eval(std::vector<int32_t>(tokens, tokens + n)).data();
  });
}

const char* gk_kernels_name(void) { return gemkit::runtime::kernels().name; }

int32_t gk_sample(const float* logits, int32_t n, float temperature, int32_t top_k, float top_p, uint64_t* state) {
  if (temperature <= 0) return int32_t(std::max_element(logits, logits + n) - logits);
  return or_failed(GK_ERROR, [&] { return sample_tokens(logits, n, temperature, top_k, top_p, state); });
}

}  // extern "C"

namespace {

int32_t sample_tokens(const float* logits, int32_t n, float temperature, int32_t top_k, float top_p, uint64_t* state) {
  std::vector<int32_t> order(static_cast<size_t>(n));
  std::iota(order.begin(), order.end(), 0);
  const int32_t k = top_k > 0 ? std::min(top_k, n) : n;
  std::partial_sort(order.begin(), order.begin() + k, order.end(), [&](int32_t a, int32_t b) { return logits[a] > logits[b]; });
  std::vector<double> p(static_cast<size_t>(k));
  double sum = 0;
  for (int32_t i = 0; i < k; ++i) sum += p[size_t(i)] = std::exp(double(logits[order[size_t(i)]] - logits[order[0]]) / temperature);
  int32_t keep = k;
  if (top_p < 1) {
    double acc = 0;
    for (int32_t i = 0; i < k; ++i) {
      acc += p[size_t(i)] / sum;
      if (acc >= top_p) {
        keep = i + 1;
        break;
      }
    }
  }
  double total = 0;
  for (int32_t i = 0; i < keep; ++i) total += p[size_t(i)];
  double u = double(next_random(state) >> 11) / double(1ull << 53) * total;
  for (int32_t i = 0; i < keep; ++i) {
    u -= p[size_t(i)];
    if (u <= 0) return order[size_t(i)];
  }
  return order[size_t(keep - 1)];
}

}  // namespace
