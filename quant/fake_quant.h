// Fake quantization for quantization-aware training: a tensor's values replaced by what the
// deployed block format stores, dequantized (formats/block_quant.h), with a straight-through
// gradient. Bit-exact: for every float32 tensor w of shape [..., n],
//   fake_quantize(w, t)  ==  dequantize_row(t, quantize_row(t, w))   row by row,
// so what training sees is exactly what the exported file holds (tested over many seeds and
// checked against llama.cpp's own quantizer).
#pragma once
#include <torch/torch.h>

#include "formats/block_quant.h"

namespace gemkit {

// w: float32 (any device), last dimension a multiple of 32 for Q8_0 / Q4_0. Returns a float32
// tensor of w's shape whose value is the round trip through type t and whose gradient with
// respect to w is the identity (straight-through estimator). F32 returns w itself.
// Throws gemkit::Error naming `what` when the shape does not fit the type.
torch::Tensor fake_quantize(const torch::Tensor& w, QuantType t, const std::string& what = "tensor");

// The round trip alone, without autograd (the exporter's and the tests' reference path).
torch::Tensor quantize_dequantize(const torch::Tensor& w, QuantType t, const std::string& what = "tensor");

}  // namespace gemkit
