#include "export/compact_export.h"

#include "core/error.h"
#include "export/dense_model.h"
#include "export/gguf_writer.h"
#include "routing/gem_modules.h"

namespace gemkit {

GgufExportReport export_compact(const std::string& checkpoint, const std::string& domain, const QuantPolicy& policy,
                                const std::string& path, bool overwrite) {
  DenseModel out{load_pretrained(checkpoint, torch::kCPU), {}, {}};
  std::unique_ptr<GemModules> gem = load_gem_modules(out.pre.model, checkpoint);
  GgufExportOptions o;
  o.architecture = "gemkit";
  o.policy = policy;
  o.tokenizer_folder = checkpoint;
  o.overwrite = overwrite;
  o.provenance["source"] = checkpoint;
  float threshold = 0.5f;
  bool attention_only = false;
  if (gem && gem->scar()) merge_scar_expert(checkpoint, out.pre.model, *gem->scar(), domain, out);
  else if (!domain.empty()) fail(checkpoint, "--domain " + domain + ": the checkpoint has no SCAR experts");
  if (gem && gem->dtr()) {
    for (const auto& r : (*gem->dtr())->routers()) {
      const std::string b = "blk." + std::to_string(r->layer_index()) + ".dtr_router.";
      o.extra_tensors.push_back({b + "weight", r->weight});
      o.extra_tensors.push_back({b + "bias", r->bias.reshape({1})});
      threshold = static_cast<float>(r->options().threshold);
      attention_only = r->options().attention_only;
    }
  }
  o.provenance.insert(out.provenance.begin(), out.provenance.end());
  o.extra_metadata = [threshold, attention_only](GgufWriter& w) {
    w.set_u32("gemkit.format_version", 1);
    w.set_f32("gemkit.dtr.threshold", threshold);
    w.set_bool("gemkit.dtr.attention_only", attention_only);
  };
  // The routers' parameters are read before gem's destructor puts the base blocks back; the
  // tensors are written from the references held in o.extra_tensors.
  return export_gguf(out.pre.model, o, path);
}

}  // namespace gemkit
