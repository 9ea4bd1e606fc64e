// Hugging Face tokenizer files from a GGUF file's tokenizer.ggml.* metadata, so that an imported
// folder tokenizes in gemkit, in Hugging Face `tokenizers` and in transformers exactly as
// llama.cpp tokenizes the original file.
#pragma once
#include <string>

namespace gemkit {

class GgufFile;

// Byte-level BPE ("gpt2": the gpt2, smollm/starcoder, llama3 and qwen2 pre-tokenizer families):
// writes DIR/tokenizer.json and DIR/tokenizer_config.json (special tokens, add_bos_token, chat
// template from tokenizer.chat_template, model_max_length). SentencePiece ("llama"): writes
// DIR/tokenizer.model and tokenizer_config.json. Throws gemkit::Error naming the file and the
// key for an unsupported tokenizer model or pre-tokenizer, or one a tokenizer.model cannot
// express. Files are written to a temporary name and renamed.
void write_hf_tokenizer_files(const GgufFile& gguf, const std::string& dir);

}  // namespace gemkit
