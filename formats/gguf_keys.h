// The GGUF facts that gemkit's writers and readers share, in one table: the metadata key names
// (general.*, the per-architecture hyperparameters, tokenizer.ggml.*, gemkit's own gemkit.*),
// the architecture names, the compact format's version, the ggml tensor type ids and llama.cpp's
// file types. Torch-free. export/gguf_export.cpp and export/compact_export.cpp write these keys;
// formats/gguf.cpp, model/gguf_model.cpp, runtime/model.cpp, import/ and
// tokenizers/gguf_tokenizer.cpp read them. Tensor names (llama's and the compact format's) are in
// formats/llama_tensor_names.h.
#pragma once
#include <cstdint>
#include <string>

namespace gemkit {

// ggml tensor type ids (ggml.h's enum ggml_type; GGUF tensor infos number their types so): the
// types gemkit writes (formats/block_quant.h QuantType) and those it dequantizes on import
// (formats/ggml_dequant.h).
enum GgmlTypeId : uint32_t {
  kGgmlF32 = 0,
  kGgmlF16 = 1,
  kGgmlQ4_0 = 2,
  kGgmlQ4_1 = 3,
  kGgmlQ5_0 = 6,
  kGgmlQ5_1 = 7,
  kGgmlQ8_0 = 8,
  kGgmlQ4_K = 12,
  kGgmlQ5_K = 13,
  kGgmlQ6_K = 14,
  kGgmlBF16 = 30,
};

// ggml's quantization format version (GGML_QNT_VERSION), the value of general.quantization_version.
inline constexpr uint32_t kGgmlQuantizationVersion = 2;

// llama.cpp's llama_ftype, the value of general.file_type: the type most weights are stored in.
enum LlamaFileType : uint32_t {
  kLlamaFileTypeF32 = 0,
  kLlamaFileTypeF16 = 1,
  kLlamaFileTypeQ4_0 = 2,
  kLlamaFileTypeQ8_0 = 7,
};

// general.architecture of a llama.cpp llama file and of gemkit's compact format (runtime/model.h).
inline constexpr const char* kLlamaArchitecture = "llama";
// general.architecture of a llama.cpp qwen2 file (import/gguf_import.cpp reads it).
inline constexpr const char* kQwen2Architecture = "qwen2";
inline constexpr const char* kCompactArchitecture = "gemkit";

// The compact format's version (gemkit.format_version): 1: SCAR experts in f32; 2: in f16. The
// exporter writes this one; the runtime reads versions 1 to this one.
inline constexpr uint32_t kCompactFormatVersion = 2;

namespace gguf_key {

inline constexpr const char* kArchitecture = "general.architecture";
inline constexpr const char* kName = "general.name";
inline constexpr const char* kFileType = "general.file_type";
inline constexpr const char* kQuantizationVersion = "general.quantization_version";
inline constexpr const char* kAlignment = "general.alignment";

// Hyperparameters, named "<architecture>.<suffix>" (llama.cpp's LLM_KV_* names):
// arch_key("llama", kBlockCount) is "llama.block_count".
inline constexpr const char* kContextLength = "context_length";
inline constexpr const char* kEmbeddingLength = "embedding_length";
inline constexpr const char* kBlockCount = "block_count";
inline constexpr const char* kFeedForwardLength = "feed_forward_length";
inline constexpr const char* kHeadCount = "attention.head_count";
inline constexpr const char* kHeadCountKv = "attention.head_count_kv";
inline constexpr const char* kRopeDimensionCount = "rope.dimension_count";
inline constexpr const char* kRopeFreqBase = "rope.freq_base";
inline constexpr const char* kRmsEpsilon = "attention.layer_norm_rms_epsilon";
inline constexpr const char* kKeyLength = "attention.key_length";
inline constexpr const char* kValueLength = "attention.value_length";
inline constexpr const char* kRopeScalingType = "rope.scaling.type";
inline constexpr const char* kRopeScalingFactor = "rope.scaling.factor";
inline constexpr const char* kVocabSize = "vocab_size";
inline std::string arch_key(const std::string& architecture, const char* suffix) { return architecture + "." + suffix; }

// The tokenizer (llama.cpp's LLM_KV_TOKENIZER_* names).
inline constexpr const char* kTokenizerModel = "tokenizer.ggml.model";
inline constexpr const char* kTokenizerPre = "tokenizer.ggml.pre";
inline constexpr const char* kTokenizerTokens = "tokenizer.ggml.tokens";
inline constexpr const char* kTokenizerScores = "tokenizer.ggml.scores";
inline constexpr const char* kTokenizerTokenType = "tokenizer.ggml.token_type";
inline constexpr const char* kTokenizerMerges = "tokenizer.ggml.merges";
inline constexpr const char* kTokenizerBosId = "tokenizer.ggml.bos_token_id";
inline constexpr const char* kTokenizerEosId = "tokenizer.ggml.eos_token_id";
inline constexpr const char* kTokenizerUnknownId = "tokenizer.ggml.unknown_token_id";
inline constexpr const char* kTokenizerPaddingId = "tokenizer.ggml.padding_token_id";
inline constexpr const char* kTokenizerAddBos = "tokenizer.ggml.add_bos_token";
inline constexpr const char* kTokenizerAddEos = "tokenizer.ggml.add_eos_token";
inline constexpr const char* kTokenizerClsId = "tokenizer.ggml.cls_token_id";
inline constexpr const char* kTokenizerSeparatorId = "tokenizer.ggml.seperator_token_id";  // llama.cpp's spelling
inline constexpr const char* kTokenizerMaskId = "tokenizer.ggml.mask_token_id";
inline constexpr const char* kTokenizerAddSpacePrefix = "tokenizer.ggml.add_space_prefix";
inline constexpr const char* kTokenizerRemoveExtraWhitespaces = "tokenizer.ggml.remove_extra_whitespaces";
inline constexpr const char* kTokenizerLowercase = "tokenizer.ggml.normalizer.lowercase";
inline constexpr const char* kTokenizerStripAccents = "tokenizer.ggml.normalizer.strip_accents";
inline constexpr const char* kTokenizerChatTemplate = "tokenizer.chat_template";

// gemkit's own keys: the quantization policy and provenance ("gemkit.<key>") of every export,
inline constexpr const char* kGemkitPrefix = "gemkit.";
inline constexpr const char* kQuantPolicy = "gemkit.quant_policy";
// and the compact format's (runtime/model.h): its version, the token router (DTR) and SCAR.
inline constexpr const char* kFormatVersion = "gemkit.format_version";
inline constexpr const char* kDtrThreshold = "gemkit.dtr.threshold";
inline constexpr const char* kDtrAttentionOnly = "gemkit.dtr.attention_only";
inline constexpr const char* kScarExperts = "gemkit.scar.experts";
inline constexpr const char* kScarGeneralExpert = "gemkit.scar.general_expert";
inline constexpr const char* kScarScale = "gemkit.scar.scale";
inline constexpr const char* kScarRouterDim = "gemkit.scar.router_dim";
inline constexpr const char* kScarTemperature = "gemkit.scar.temperature";
inline constexpr const char* kScarMass = "gemkit.scar.mass";
inline constexpr const char* kScarMaxExperts = "gemkit.scar.max_experts";
// Optional (files written before it existed have none: 0): nats added to the general expert's logit.
inline constexpr const char* kScarGeneralBias = "gemkit.scar.general_bias";

}  // namespace gguf_key

}  // namespace gemkit
