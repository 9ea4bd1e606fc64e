// Gives a checkpoint folder token routers for speed measurements of routed inference: DTR on
// every block but the first and last, router weights random, and each router's bias calibrated
// (bisection, block by block in order) so that the threshold rule processes --capacity of the
// tokens of a calibration text (realised capacity as asked whatever the weights; quality is not
// the point). Writes gem.json and extra.safetensors into the folder; `gemkit export compact`
// then keeps the routers.
//   attach_router CHECKPOINT TEXT_FILE [--capacity 0.5] [--seed S]
#include <cstdio>
#include <cstdlib>
#include <string>

#include "core/error.h"
#include "formats/safetensors.h"
#include "model/checkpoint.h"
#include "routing/gem_modules.h"
#include "tokenizers/tokenizer.h"

#include <fstream>
#include <sstream>

int main(int argc, char** argv) {
  if (argc < 3) {
    std::fprintf(stderr, "usage: attach_router CHECKPOINT TEXT_FILE [--capacity C] [--seed S]\n");
    return 2;
  }
  const std::string folder = argv[1], text_file = argv[2];
  double capacity = 0.5;
  uint64_t seed = 0;
  for (int i = 3; i + 1 < argc; i += 2) {
    const std::string k = argv[i];
    if (k == "--capacity") capacity = std::strtod(argv[i + 1], nullptr);
    else if (k == "--seed") seed = std::strtoull(argv[i + 1], nullptr, 10);
  }
  try {
    gemkit::Pretrained pre = gemkit::load_pretrained(folder);
    gemkit::GemConfig g;
    g.dtr = true;
    for (int64_t i = 1; i + 1 < pre.config.num_hidden_layers; ++i) g.dtr_blocks.push_back(i);
    g.dtr_options.initial_bias = 0.0;
    g.dtr_options.seed = seed;
    gemkit::GemModules gem(pre.model, g);
    std::ifstream in(text_file);
    std::stringstream ss;
    ss << in.rdbuf();
    auto ids = gemkit::load_tokenizer(folder)->encode(ss.str(), true);
    if (ids.size() > 256) ids.resize(256);
    if (ids.size() < 32) gemkit::fail(text_file, "needs at least 32 tokens of calibration text");
    const torch::Tensor batch = torch::tensor(std::vector<int64_t>(ids.begin(), ids.end())).unsqueeze(0);
    pre.model->eval();
    torch::NoGradGuard no_grad;
    for (const auto& r : (*gem.dtr())->routers()) {
      double lo = -30, hi = 30;  // a higher bias processes more tokens
      for (int it = 0; it < 24; ++it) {
        const double mid = 0.5 * (lo + hi);
        r->bias.fill_(mid);
        r->reset_totals();
        pre.model->forward(batch);
        (r->totals().realised_capacity() > capacity ? hi : lo) = mid;
      }
      r->bias.fill_(0.5 * (lo + hi));
      r->reset_totals();
      pre.model->forward(batch);
      std::printf("block %lld: bias %.4f, realised capacity %.3f\n", (long long)r->layer_index(), 0.5 * (lo + hi),
                  r->totals().realised_capacity());
    }
    gem.save(folder);
    std::printf("%s: token routers on %zu of %lld blocks, calibrated to capacity %.2f\n", folder.c_str(),
                g.dtr_blocks.size(), (long long)pre.config.num_hidden_layers, capacity);
  } catch (const gemkit::Error& e) {
    std::fprintf(stderr, "attach_router: %s\n", e.what());
    return 1;
  }
  return 0;
}
