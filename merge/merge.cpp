#include "merge/merge.h"

#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <map>

#include "core/error.h"
#include "formats/safetensors.h"
#include "model/checkpoint.h"

namespace gemkit {
namespace {

namespace fs = std::filesystem;

// The architecture of a config: gemkit's own fields only (not the saved dtype, nor keys of the
// source config.json that gemkit does not read).
std::string architecture(ModelConfig c) {
  c.source_json.clear();
  c.torch_dtype = "float32";
  return c.to_json_text();
}

std::map<std::string, torch::Tensor> parameters(const Transformer& m) {
  std::map<std::string, torch::Tensor> out;
  for (const auto& p : m->named_parameters()) out[p.key()] = p.value();
  return out;
}

// Moves `built` to `out`, replacing an existing folder only after the new one is complete.
void put_in_place(const fs::path& built, const fs::path& out) {
  if (!fs::exists(out)) {
    fs::rename(built, out);
    return;
  }
  const fs::path old = out.string() + ".old-" + std::to_string(::getpid());
  fs::rename(out, old);
  fs::rename(built, out);
  fs::remove_all(old);
}

}  // namespace

torch::Tensor ties_delta(const std::vector<torch::Tensor>& deltas, double density) {
  if (deltas.empty()) fail("ties", "no task vectors");
  if (!(density > 0 && density <= 1)) fail("ties", "density must lie in (0, 1], got " + std::to_string(density));
  std::vector<torch::Tensor> trimmed;
  for (const torch::Tensor& d : deltas) {
    const torch::Tensor mag = d.abs().flatten();
    // floor(density x numel), at least 1: the count peft's magnitude pruning keeps.
    const int64_t keep = std::max<int64_t>(1, int64_t(density * double(mag.numel())));
    const torch::Tensor threshold = std::get<0>(mag.kthvalue(mag.numel() - keep + 1));
    trimmed.push_back(torch::where(d.abs() >= threshold, d, torch::zeros_like(d)));
  }
  const torch::Tensor stacked = torch::stack(trimmed);
  const torch::Tensor sign = stacked.sum(0).sign();
  const torch::Tensor agrees = (stacked.sign() == sign.unsqueeze(0)) & (stacked != 0);
  const torch::Tensor count = agrees.sum(0).to(torch::kFloat32);
  return torch::where(agrees, stacked, torch::zeros_like(stacked)).sum(0) / count.clamp_min(1);
}

void merge_checkpoints(const MergeOptions& o) {
  if (o.models.empty()) fail("gemkit merge", "no fine-tuned checkpoints to merge");
  if (o.out.empty()) fail("gemkit merge", "--out: not set");
  if (fs::exists(o.out) && !o.force) fail(o.out, "exists already (give --force to replace it)");
  for (const std::string& m : o.models)
    if (fs::exists(fs::path(m) / kExtraTensorsFile))
      fail(m, std::string(kExtraTensorsFile) +
                  ": the checkpoint has modules added to the model (adapters, routers); weight-space merging "
                  "needs dense checkpoints of the base (merge LoRA first: train.lora_merge_on_save)");

  Pretrained base = load_pretrained(o.base);
  const std::string arch = architecture(base.config);
  const std::map<std::string, torch::Tensor> theta0 = parameters(base.model);
  std::vector<Pretrained> tuned;
  for (const std::string& m : o.models) {
    tuned.push_back(load_pretrained(m));
    if (architecture(tuned.back().config) != arch)
      fail(m + "/config.json", "a different architecture from the base " + o.base +
                                   "'s config.json: merging needs checkpoints of one base model");
    const std::map<std::string, torch::Tensor> theta = parameters(tuned.back().model);
    for (const auto& [name, t0] : theta0) {
      const auto it = theta.find(name);
      if (it == theta.end()) fail(m, "tensor " + name + " of the base is missing");
      if (!it->second.sizes().equals(t0.sizes()))
        fail(m, "tensor " + name + " has shape " + shape_text(it->second.sizes().vec()) + ", the base's " +
                    shape_text(t0.sizes().vec()));
    }
  }

  // All merged values first, then written into the first model: tied tensors (one tensor under
  // two names) must not be updated twice.
  torch::NoGradGuard no_grad;
  std::map<std::string, torch::Tensor> merged;
  for (const auto& [name, t0] : theta0) {
    const torch::Tensor zero = t0.to(torch::kFloat32);
    std::vector<torch::Tensor> deltas;
    for (const Pretrained& t : tuned) deltas.push_back(parameters(t.model).at(name).to(torch::kFloat32) - zero);
    const torch::Tensor delta =
        o.method == MergeMethod::Ties ? ties_delta(deltas, o.density) : torch::stack(deltas).sum(0);
    merged[name] = zero + o.scale * delta;
  }
  std::map<std::string, torch::Tensor> target = parameters(tuned.front().model);
  for (const auto& [name, value] : merged) target.at(name).copy_(value);

  const fs::path out(o.out);
  if (!out.parent_path().empty()) fs::create_directories(out.parent_path());
  const fs::path built = out.string() + ".tmp-" + std::to_string(::getpid());
  fs::remove_all(built);
  SaveOptions save;
  save.tokenizer_source = o.models.front();
  save_pretrained(tuned.front().model, tuned.front().dtypes, built.string(), save);
  put_in_place(built, out);
}

}  // namespace gemkit
