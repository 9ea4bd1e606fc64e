#include "export/compact_export.h"

#include "core/error.h"
#include "export/dense_model.h"
#include "formats/gguf_keys.h"
#include "formats/gguf_writer.h"
#include "formats/llama_tensor_names.h"
#include "model/gguf_model.h"
#include "routing/gem_modules.h"

namespace gemkit {

GgufExportReport export_compact(const std::string& checkpoint, const CompactExportOptions& options, const std::string& path) {
  const std::string& domain = options.domain;
  const QuantType expert_type = options.expert_type;
  if (expert_type != QuantType::F32 && expert_type != QuantType::F16 && expert_type != QuantType::Q8_0)
    fail("--expert-quant", std::string("expected f32, f16 or q8_0, got ") + quant_type_name(expert_type));
  DenseModel out{load_pretrained(checkpoint, torch::kCPU), {}, {}};
  std::unique_ptr<GemModules> gem = load_gem_modules(out.pre.model, checkpoint);
  if (options.scar_general_bias) {
    if (!gem || !gem->scar()) fail(checkpoint, "--scar-general-bias: the checkpoint has no SCAR experts");
    if (!domain.empty()) fail("--scar-general-bias", "has no effect with --domain (one expert merged, no routing)");
    gem->set_scar_general_bias(*options.scar_general_bias);
  }
  GgufExportOptions o;
  o.architecture = kCompactArchitecture;
  o.policy = options.policy;
  o.tokenizer_folder = checkpoint;
  o.overwrite = options.overwrite;
  o.provenance["source"] = checkpoint;
  float threshold = 0.5f;
  bool attention_only = false;
  Scar* scar = gem ? gem->scar() : nullptr;
  std::function<void(GgufWriter&)> scar_keys;
  if (scar && !domain.empty()) {
    merge_scar_expert(checkpoint, out.pre.model, *scar, domain, out);  // one domain, dense
  } else if (scar) {
    // Routers and experts kept: gemkit-run routes every token (or is told a domain).
    const ScarOptions& so = scar->options();
    for (const auto& [name, t] : scar->named_parameters()) {
      // routers.<block>.query|keys  ->  blk.<block>.scar_router.query|keys
      // experts.<e>.model.layers.<b>.<...>.<proj>.lora_A.weight  ->  blk.<b>.<gguf linear>.expert.<e>.lora_a
      if (name.rfind("routers.", 0) == 0) {
        const size_t dot = name.find('.', 8);
        const int64_t block = std::stoll(name.substr(8, dot - 8));
        o.extra_tensors.push_back({gguf_block_tensor_name(block, kCompactScarRouter, name.substr(dot + 1)), t});
        continue;
      }
      const size_t e_end = name.find('.', 8);
      const std::string expert = name.substr(8, e_end - 8);
      const std::string rest = name.substr(e_end + 1);  // <module path>.lora_A.weight
      const size_t lora = rest.rfind(".lora_");
      const std::string gguf = gguf_name_of_hf(rest.substr(0, lora) + ".weight");
      if (gguf.empty()) fail(checkpoint, "SCAR expert tensor " + name + " has no GGUF counterpart");
      const bool is_a = rest.compare(lora, 7, ".lora_A") == 0;
      // B's rows are output rows: q and k outputs are in llama.cpp's RoPE order in the file,
      // so their experts' B rows are permuted like the base weight's.
      torch::Tensor value = t;
      const ModelConfig& mc = out.pre.model->config();
      if (!is_a && is_gguf_block_tensor(gguf, kGgufAttnQ)) value = permute_rope_rows(t.detach(), mc.num_attention_heads);
      if (!is_a && is_gguf_block_tensor(gguf, kGgufAttnK)) value = permute_rope_rows(t.detach(), mc.num_key_value_heads);
      // f16 by default (~1e-4 on the logits); Q8_0 halves that again where the rows fit 32-blocks
      // (A's rows are the input width, B's the rank; a width like 688 does not: f16 there).
      const QuantType type = expert_type == QuantType::Q8_0 && value.size(-1) % 32 != 0 ? QuantType::F16 : expert_type;
      o.extra_tensors.push_back({compact_expert_tensor_name(gguf, expert, is_a ? kCompactLoraA : kCompactLoraB), value, type});
    }
    const std::vector<std::string> names = scar->expert_names();
    scar_keys = [so, names](GgufWriter& w) {
      w.set_strings(gguf_key::kScarExperts, names);
      w.set_bool(gguf_key::kScarGeneralExpert, so.general_expert);
      w.set_f32(gguf_key::kScarScale, static_cast<float>(so.alpha / double(so.rank)));
      w.set_u32(gguf_key::kScarRouterDim, static_cast<uint32_t>(so.router.router_dim));
      w.set_f32(gguf_key::kScarTemperature, static_cast<float>(so.router.temperature));
      w.set_f32(gguf_key::kScarMass, static_cast<float>(so.router.mass));
      w.set_u32(gguf_key::kScarMaxExperts, static_cast<uint32_t>(so.router.max_experts));
      w.set_f32(gguf_key::kScarGeneralBias, static_cast<float>(so.router.general_bias));
    };
    o.provenance["scar"] = "routed (experts kept)";
  } else if (!domain.empty()) {
    fail(checkpoint, "--domain " + domain + ": the checkpoint has no SCAR experts");
  }
  if (gem && gem->dtr()) {
    for (const auto& r : (*gem->dtr())->routers()) {
      o.extra_tensors.push_back({gguf_block_tensor_name(r->layer_index(), kCompactDtrRouter, "weight"), r->weight});
      o.extra_tensors.push_back({gguf_block_tensor_name(r->layer_index(), kCompactDtrRouter, "bias"), r->bias.reshape({1})});
      threshold = static_cast<float>(r->options().threshold);
      attention_only = r->options().attention_only;
    }
  }
  o.provenance.insert(out.provenance.begin(), out.provenance.end());
  o.extra_metadata = [threshold, attention_only, scar_keys](GgufWriter& w) {
    w.set_u32(gguf_key::kFormatVersion, kCompactFormatVersion);
    w.set_f32(gguf_key::kDtrThreshold, threshold);
    w.set_bool(gguf_key::kDtrAttentionOnly, attention_only);
    if (scar_keys) scar_keys(w);
  };
  // The routers' parameters are read before gem's destructor puts the base blocks back; the
  // tensors are written from the references held in o.extra_tensors.
  return export_gguf(out.pre.model, o, path);
}

}  // namespace gemkit
