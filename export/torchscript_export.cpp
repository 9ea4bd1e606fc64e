#include "export/torchscript_export.h"

#include <torch/script.h>

#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <sstream>

#include "core/error.h"
#include "core/file_io.h"

namespace gemkit {

namespace {

// TorchScript attribute names cannot hold dots: model.layers.3.mlp.up_proj.weight ->
// model_layers_3_mlp_up_proj_weight.
std::string attribute_name(const std::string& name) {
  std::string s = name;
  for (char& ch : s)
    if (ch == '.') ch = '_';
  return s;
}

std::string source_of(const ModelConfig& c) {
  const int64_t H = c.num_attention_heads, KV = c.num_key_value_heads, D = c.head_dim();
  std::ostringstream s;
  s.precision(17);
  s << "def rms(self, x: Tensor, w: Tensor) -> Tensor:\n"
    << "    return w * (x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + " << c.rms_norm_eps << "))\n"
    << "def rotate(self, x: Tensor) -> Tensor:\n"
    << "    half = x.size(-1) // 2\n"
    << "    return torch.cat([-x.narrow(-1, half, half), x.narrow(-1, 0, half)], -1)\n"
    << "def proj(self, x: Tensor, w: Tensor, b: Optional[Tensor]) -> Tensor:\n"
    << "    y = torch.matmul(x, w.t())\n"
    << "    if b is not None:\n"
    << "        y = y + b\n"
    << "    return y\n"
    << "def attention(self, x: Tensor, wq: Tensor, bq: Optional[Tensor], wk: Tensor, bk: Optional[Tensor], "
       "wv: Tensor, bv: Optional[Tensor], wo: Tensor, cos: Tensor, sin: Tensor, mask: Tensor) -> Tensor:\n"
    << "    B = x.size(0)\n"
    << "    T = x.size(1)\n"
    << "    q = self.proj(x, wq, bq).view(B, T, " << H << ", " << D << ").transpose(1, 2)\n"
    << "    k = self.proj(x, wk, bk).view(B, T, " << KV << ", " << D << ").transpose(1, 2)\n"
    << "    v = self.proj(x, wv, bv).view(B, T, " << KV << ", " << D << ").transpose(1, 2)\n"
    << "    q = q * cos + self.rotate(q) * sin\n"
    << "    k = k * cos + self.rotate(k) * sin\n";
  if (H != KV)
    s << "    k = k.repeat_interleave(" << H / KV << ", 1)\n"
      << "    v = v.repeat_interleave(" << H / KV << ", 1)\n";
  s << "    scores = torch.matmul(q, k.transpose(-1, -2)) * " << 1.0 / std::sqrt(double(D)) << "\n"
    << "    scores = scores.masked_fill(mask.logical_not(), float('-inf'))\n"
    << "    out = torch.matmul(torch.softmax(scores, -1), v).transpose(1, 2).reshape(B, T, " << H * D << ")\n"
    << "    return torch.matmul(out, wo.t())\n"
    << "def mlp(self, x: Tensor, wg: Tensor, wu: Tensor, wd: Tensor) -> Tensor:\n"
    << "    g = torch.matmul(x, wg.t())\n"
    << "    return torch.matmul(g * torch.sigmoid(g) * torch.matmul(x, wu.t()), wd.t())\n"
    << "def forward(self, input_ids: Tensor) -> Tensor:\n"
    << "    T = input_ids.size(1)\n"
    << "    positions = torch.arange(T, device=input_ids.device).float()\n"
    << "    freqs = positions.unsqueeze(-1) * self.rope_inv_freq\n"
    << "    angles = torch.cat([freqs, freqs], -1)\n"
    << "    cos = angles.cos().unsqueeze(0).unsqueeze(0)\n"
    << "    sin = angles.sin().unsqueeze(0).unsqueeze(0)\n"
    << "    mask = torch.ones([T, T], device=input_ids.device).tril() > 0.5\n"
    << "    h = torch.embedding(self.model_embed_tokens_weight, input_ids)\n";
  for (int64_t i = 0; i < c.num_hidden_layers; ++i) {
    const std::string p = "self.model_layers_" + std::to_string(i) + "_";
    const auto bias = [&](const char* n) {
      return c.attention_bias ? p + "self_attn_" + n + "_proj_bias" : std::string("None");
    };
    s << "    x = self.rms(h, " << p << "input_layernorm_weight)\n"
      << "    h = h + self.attention(x, " << p << "self_attn_q_proj_weight, " << bias("q") << ", " << p
      << "self_attn_k_proj_weight, " << bias("k") << ", " << p << "self_attn_v_proj_weight, " << bias("v") << ", "
      << p << "self_attn_o_proj_weight, cos, sin, mask)\n"
      << "    x = self.rms(h, " << p << "post_attention_layernorm_weight)\n"
      << "    h = h + self.mlp(x, " << p << "mlp_gate_proj_weight, " << p << "mlp_up_proj_weight, " << p
      << "mlp_down_proj_weight)\n";
  }
  s << "    h = self.rms(h, self.model_norm_weight)\n"
    << "    return torch.matmul(h, self." << (c.tie_word_embeddings ? "model_embed_tokens_weight" : "lm_head_weight")
    << ".t())\n";
  return s.str();
}

}  // namespace

void export_torchscript(const Transformer& model, const std::string& path, bool overwrite) {
  const ModelConfig& c = model->config();
  const std::string where = "model config (" + c.architecture + ")";
  if (c.family != Family::Decoder || c.head != Head::CausalLM)
    fail(where, "torchscript export writes decoder causal language models");
  if (c.hidden_act != "silu") fail(where, "hidden_act: expected silu, got " + c.hidden_act);
  if (!overwrite && std::filesystem::exists(path)) fail(path, "exists; pass --force to replace it");

  torch::jit::Module m("gemkit_llama");
  torch::NoGradGuard no_grad;
  for (const auto& item : model->named_parameters())
    m.register_parameter(attribute_name(item.key()), item.value().detach().to(torch::kCPU, torch::kFloat).clone(), false);
  Rope rope;
  rope.head_dim = c.head_dim();
  rope.theta = c.rope_theta;
  rope.scaling = c.rope_scaling;  // the frequencies are a buffer: any scaling gemkit computes
  m.register_buffer("rope_inv_freq", rope.inv_freq(torch::kCPU));
  m.define(source_of(c));
  // Serialized in memory, then written by write_file_atomic: readers see the old file or the
  // whole new one, and a failed write (disk full) is an error naming the file with no temporary
  // left behind. torch's own file writer throws from its destructor when a write fails, which
  // ends the process; the in-memory copy costs one more model size of memory for a moment.
  std::ostringstream bytes;
  m.save(bytes);
  const std::string data = bytes.str();
  bytes.str(std::string());  // one copy in memory, not two
  write_file_atomic(path, [&](std::FILE* f) { write_all(f, data.data(), data.size(), path); });
}

}  // namespace gemkit
