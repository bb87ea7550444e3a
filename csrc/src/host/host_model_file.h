#pragma once
// The host engine's model file (".hostmodel"): one decoder layer or the post model of a
// pulsar2-shaped build, written by `python -m axllm.build`.
//
// Layout: a text header, then tensor data. The header is UTF-8 lines "key value...":
//   axllm-hostmodel <format_version>
//   kind layer|post          arch qwen2|llama        layer_index <i>
//   hidden_size H  num_heads nh  num_kv_heads nkv  head_dim hd  intermediate_size F
//   vocab_size V  rms_norm_eps e  io_dtype bf16|fp16|fp32  weight_dtype bf16|fp32
//   prefill_len P  kv_cache_len C  history_lens H_2 H_3 ...  attention_scaling s
//   tensor <name> <dtype> <d0,d1,...> <offset> <bytes>      (one line per tensor)
//   end
// Tensor data starts at the first 64-byte boundary after "end\n"; offsets are relative to it.
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "axllm/dtype.h"
#include "util/mapped_file.h"

namespace axllm::detail {

inline constexpr int kHostModelFormatVersion = 1;

struct HostTensorEntry {
  std::string name;
  DType dtype;
  std::vector<int64_t> shape;
  const uint8_t* data;
  size_t bytes;
};

struct HostModelHeader {
  int format_version = 0;
  std::string kind;  // "layer" or "post"
  std::string arch;
  int64_t layer_index = -1;
  int64_t hidden_size = 0;
  int64_t num_heads = 0;
  int64_t num_kv_heads = 0;
  int64_t head_dim = 0;
  int64_t intermediate_size = 0;
  int64_t vocab_size = 0;
  double rms_norm_eps = 0.0;
  double attention_scaling = 1.0;
  DType io_dtype = DType::kBF16;
  DType weight_dtype = DType::kBF16;
  int64_t prefill_len = 0;
  int64_t kv_cache_len = 0;
  std::vector<int64_t> history_lens;
};

class HostModelFile {
 public:
  // Maps and parses `path`. Throws ModelLoadError naming the file (and the line or tensor) when
  // it is missing, truncated or malformed; UnsupportedModelError for an unknown kind or arch.
  explicit HostModelFile(const std::string& path);

  const std::string& path() const { return file_.path(); }
  const HostModelHeader& header() const { return header_; }
  bool has(const std::string& name) const { return tensors_.count(name) != 0; }
  // The tensor `name`, checked against the expected dtype set and shape. Throws ModelLoadError
  // naming the file and tensor when it is absent or differs.
  const HostTensorEntry& get(const std::string& name, std::vector<DType> dtypes,
                             const std::vector<int64_t>& shape) const;

 private:
  detail::MappedFile file_;
  HostModelHeader header_;
  std::map<std::string, HostTensorEntry> tensors_;
};

}  // namespace axllm::detail
