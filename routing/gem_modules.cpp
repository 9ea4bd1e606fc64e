#include "routing/gem_modules.h"

#include <algorithm>

#include <filesystem>

#include "core/error.h"
#include "core/file_io.h"
#include "formats/safetensors.h"
#include "model/state_dict.h"

namespace gemkit {
namespace {

using json = nlohmann::json;

template <typename T>
T field(const json& j, const char* key, const T& fallback, const std::string& where) {
  if (!j.contains(key)) return fallback;
  try {
    return j.at(key).get<T>();
  } catch (const json::exception&) {
    fail(where, std::string(key) + ": wrong type");
  }
}

// Matmul parameters of one decoder block, split into attention and MLP.
struct BlockFlops {
  double attention = 0, mlp = 0;
};
BlockFlops block_flops(const ModelConfig& c) {
  const double H = double(c.hidden_size), D = double(c.head_dim());
  BlockFlops f;
  f.attention = H * D * double(c.num_attention_heads) * 2 + H * D * double(c.num_key_value_heads) * 2;
  f.mlp = 3 * H * double(c.intermediate_size);
  return f;
}

}  // namespace

json gem_config_to_json(const GemConfig& c) {
  json j = {{"format", "gemkit-gem"}, {"version", 1}};
  if (c.dtr) {
    const auto& o = c.dtr_options;
    j["dtr"] = {{"blocks", c.dtr_blocks},       {"capacity", o.capacity},         {"threshold", o.threshold},
                {"initial_bias", o.initial_bias}, {"attention_only", o.attention_only}, {"anneal_steps", o.anneal_steps},
                {"seed", o.seed}};
  }
  if (c.scar) {
    const auto& o = c.scar_options;
    j["scar"] = {{"experts", o.experts},
                 {"general_expert", o.general_expert},
                 {"blocks", o.blocks},
                 {"target_modules", o.target_modules},
                 {"rank", o.rank},
                 {"alpha", o.alpha},
                 {"router_dim", o.router.router_dim},
                 {"temperature", o.router.temperature},
                 {"mass", o.router.mass},
                 {"max_experts", o.router.max_experts},
                 {"general_bias", o.router.general_bias},
                 {"seed", o.seed}};
  }
  return j;
}

GemConfig gem_config_from_json(const json& j, const std::string& where) {
  if (!j.is_object() || j.value("format", "") != "gemkit-gem")
    fail(where, "format: expected \"gemkit-gem\"");
  if (j.value("version", 0) != 1)
    fail(where, "version: " + j.value("version", json(0)).dump() + " is not supported (this gemkit reads version 1)");
  GemConfig c;
  if (j.contains("dtr")) {
    const json& d = j["dtr"];
    const std::string w = where + ": dtr";
    c.dtr = true;
    c.dtr_blocks = field(d, "blocks", std::vector<int64_t>{}, w);
    auto& o = c.dtr_options;
    o.capacity = field(d, "capacity", o.capacity, w);
    o.threshold = field(d, "threshold", o.threshold, w);
    o.initial_bias = field(d, "initial_bias", o.initial_bias, w);
    o.attention_only = field(d, "attention_only", o.attention_only, w);
    o.anneal_steps = field(d, "anneal_steps", o.anneal_steps, w);
    o.seed = field(d, "seed", o.seed, w);
  }
  if (j.contains("scar")) {
    const json& s = j["scar"];
    const std::string w = where + ": scar";
    c.scar = true;
    auto& o = c.scar_options;
    o.experts = field(s, "experts", o.experts, w);
    o.general_expert = field(s, "general_expert", o.general_expert, w);
    o.blocks = field(s, "blocks", o.blocks, w);
    o.target_modules = field(s, "target_modules", o.target_modules, w);
    o.rank = field(s, "rank", o.rank, w);
    o.alpha = field(s, "alpha", o.alpha, w);
    o.router.router_dim = field(s, "router_dim", o.router.router_dim, w);
    o.router.temperature = field(s, "temperature", o.router.temperature, w);
    o.router.mass = field(s, "mass", o.router.mass, w);
    o.router.max_experts = field(s, "max_experts", o.router.max_experts, w);
    o.router.general_bias = field(s, "general_bias", o.router.general_bias, w);  // absent before it existed: 0
    o.seed = field(s, "seed", o.seed, w);
  }
  return c;
}

GemModules::GemModules(Transformer model, const GemConfig& config) : model_(std::move(model)), config_(config) {
  if (config_.dtr) {
    if (config_.dtr_blocks.empty()) config_.dtr_blocks = default_routed_blocks(model_->num_blocks());
    dtr_ = TokenRouters(model_, config_.dtr_blocks, config_.dtr_options);
  }
  if (config_.scar) {
    scar_ = std::make_unique<Scar>(model_, config_.scar_options);
    config_.scar_options = scar_->options();  // blocks filled in
  }
}

GemModules::~GemModules() {
  if (dtr_) dtr_->uninstall();
}

std::map<std::string, torch::Tensor> GemModules::named_parameters() const {
  std::map<std::string, torch::Tensor> out;
  if (dtr_)
    for (const auto& p : dtr_->named_parameters()) out["dtr." + p.key()] = p.value();
  if (scar_)
    for (const auto& [name, t] : scar_->named_parameters()) out["scar." + name] = t;
  return out;
}

void GemModules::load_named_parameters(const std::map<std::string, torch::Tensor>& tensors, const std::string& where) {
  std::map<std::string, torch::Tensor> scar_tensors;
  for (const auto& [name, t] : tensors)
    if (name.rfind("scar.", 0) == 0) scar_tensors[name.substr(5)] = t;
  if (dtr_) {
    // Check everything before copying anything.
    auto mine = dtr_->named_parameters();
    for (const auto& p : mine) {
      auto it = tensors.find("dtr." + p.key());
      if (it == tensors.end()) fail(where, "dtr." + p.key() + ": missing token-router tensor");
      if (it->second.sizes() != p.value().sizes()) fail(where, "dtr." + p.key() + ": wrong shape");
    }
  }
  if (scar_) scar_->load_named_parameters(scar_tensors, where);
  if (dtr_) {
    torch::NoGradGuard no_grad;
    for (auto& p : dtr_->named_parameters()) p.value().copy_(tensors.at("dtr." + p.key()));
  }
}

void GemModules::save_config(const std::string& folder) const {
  write_text_file_atomic((std::filesystem::path(folder) / kGemConfigFile).string(),
                         gem_config_to_json(config_).dump(2) + "\n");
}

void GemModules::save(const std::string& folder) const {
  SafetensorsWriter writer;
  for (const auto& [name, t] : named_parameters()) {
    auto keep = std::make_shared<torch::Tensor>(t.detach().to(torch::kCPU, torch::kFloat).contiguous());
    writer.add(name, DType::F32, keep->sizes().vec(), keep->data_ptr(), keep->nbytes(), keep);
  }
  writer.write((std::filesystem::path(folder) / kExtraTensorsFile).string());
  save_config(folder);  // last: a folder with gem.json has its tensors
}

void GemModules::set_step(int64_t step) {
  if (dtr_) dtr_->set_step(step);
}

std::map<std::string, double> GemModules::metrics() {
  std::map<std::string, double> m;
  if (dtr_ && !dtr_->routers().empty()) {
    const ModelConfig& c = model_->config();
    const BlockFlops per_block = block_flops(c);
    const double total = (per_block.attention + per_block.mlp) * double(model_->num_blocks()) +
                         double(c.hidden_size) * double(c.vocab_size);
    double capacity = 0, realised = 0, accuracy = 0, saved = 0;
    for (const auto& r : dtr_->routers()) {
      const TokenRouterTotals& t = r->totals();
      capacity += r->capacity();
      realised += t.realised_capacity();
      accuracy += t.predictor_accuracy();
      const double routed = r->options().attention_only ? per_block.attention : per_block.attention + per_block.mlp;
      saved += routed * (1.0 - t.realised_capacity());
      r->reset_totals();
    }
    const double n = double(dtr_->routers().size());
    m["dtr/capacity"] = capacity / n;
    m["dtr/realised_capacity"] = realised / n;
    m["dtr/predictor_accuracy"] = accuracy / n;
    m["dtr/flops_saved"] = saved / total;
  }
  if (scar_) {
    const ScarStats& s = scar_->stats();
    m["scar/experts_per_token"] = s.experts_per_token();
    m["scar/entropy"] = s.entropy();
    for (size_t e = 0; e < scar_->expert_names().size(); ++e) m["scar/load/" + scar_->expert_names()[e]] = s.load(e);
    if (scar_->options().general_expert && s.rows > 0) m["scar/general_sequences"] = s.row_share_first_expert();
    scar_->reset_stats();
  }
  return m;
}

namespace {

json read_gem_json(const std::string& checkpoint) {
  const std::string path = (std::filesystem::path(checkpoint) / kGemConfigFile).string();
  try {
    return json::parse(read_text_file(path));
  } catch (const json::exception& e) {
    fail(path, std::string("not valid JSON: ") + e.what());
  }
}

std::map<std::string, torch::Tensor> read_routing_tensors(const std::string& checkpoint) {
  const std::string extra_path = (std::filesystem::path(checkpoint) / kExtraTensorsFile).string();
  if (!file_exists(extra_path))
    fail(checkpoint, std::string("has ") + kGemConfigFile + " but no " + kExtraTensorsFile + " (the routing tensors)");
  SafetensorsSet extra = SafetensorsSet::open(extra_path);
  std::map<std::string, torch::Tensor> tensors;
  for (const auto& [name, view] : extra.tensors())
    if (name.rfind("dtr.", 0) == 0 || name.rfind("scar.", 0) == 0) tensors[name] = to_tensor(*view);
  return tensors;
}

}  // namespace

std::vector<std::string> GemModules::load_earlier_stage(const std::string& checkpoint) {
  const std::string config_path = (std::filesystem::path(checkpoint) / kGemConfigFile).string();
  if (!file_exists(config_path)) return {};
  const GemConfig earlier = gem_config_from_json(read_gem_json(checkpoint), config_path);
  const std::map<std::string, torch::Tensor> tensors = read_routing_tensors(checkpoint);
  const std::string extra_path = (std::filesystem::path(checkpoint) / kExtraTensorsFile).string();
  std::vector<std::string> names;
  if (earlier.scar && scar_) {
    const ScarOptions &a = earlier.scar_options, &b = scar_->options();
    const auto same = [&](bool equal, const char* field) {
      if (!equal)
        fail(config_path, std::string("scar.") + field + " of the earlier stage differs from this run's: "
                              "a sequential stage keeps the expert layout");
    };
    same(a.general_expert == b.general_expert, "general_expert");
    same(a.target_modules == b.target_modules, "target_modules");
    same(a.rank == b.rank, "rank");
    same(a.router.router_dim == b.router.router_dim, "router_dim");
    const auto routed = [&](std::vector<int64_t> blocks) {  // as Scar normalises them: empty is every block
      if (blocks.empty())
        for (int64_t i = 0; i < model_->num_blocks(); ++i) blocks.push_back(i);
      std::sort(blocks.begin(), blocks.end());
      blocks.erase(std::unique(blocks.begin(), blocks.end()), blocks.end());
      return blocks;
    };
    same(routed(a.blocks) == routed(b.blocks), "blocks");
    if (a.general_expert) names.push_back(kGeneralExpert);
    names.insert(names.end(), a.experts.begin(), a.experts.end());
    std::map<std::string, torch::Tensor> scar_tensors;
    for (const auto& [name, t] : tensors)
      if (name.rfind("scar.", 0) == 0) scar_tensors[name.substr(5)] = t;
    scar_->load_earlier_stage(scar_tensors, names, extra_path);
  }
  if (earlier.dtr && dtr_) {
    torch::NoGradGuard no_grad;
    for (auto& p : dtr_->named_parameters()) {
      auto it = tensors.find("dtr." + p.key());
      if (it == tensors.end() || it->second.sizes() != p.value().sizes())
        fail(extra_path, "dtr." + p.key() + ": missing or of another shape (the earlier stage routed other blocks?)");
    }
    for (auto& p : dtr_->named_parameters()) p.value().copy_(tensors.at("dtr." + p.key()));
  }
  return names;
}

void GemModules::set_scar_general_bias(double bias) {
  if (!scar_) fail("scar.general_bias", "the model has no SCAR experts");
  scar_->set_general_bias(bias);
  config_.scar_options.router.general_bias = bias;
}

std::unique_ptr<GemModules> load_gem_modules(Transformer model, const std::string& checkpoint) {
  const std::string config_path = (std::filesystem::path(checkpoint) / kGemConfigFile).string();
  if (!file_exists(config_path)) return nullptr;
  auto modules = std::make_unique<GemModules>(model, gem_config_from_json(read_gem_json(checkpoint), config_path));
  modules->load_named_parameters(read_routing_tensors(checkpoint),
                                 (std::filesystem::path(checkpoint) / kExtraTensorsFile).string());
  return modules;
}

}  // namespace gemkit
