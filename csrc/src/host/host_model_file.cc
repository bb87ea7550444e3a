#include "host/host_model_file.h"

#include <algorithm>
#include <cstdlib>
#include <sstream>

#include "axllm/errors.h"
#include "axllm/tensor.h"

namespace axllm::detail {
namespace {

constexpr size_t kMaxHeaderBytes = 1 << 20;
constexpr size_t kDataAlignment = 64;

[[noreturn]] void fail(const std::string& path, const std::string& what) {
  throw ModelLoadError(path + ": " + what);
}

int64_t parse_int(const std::string& path, const std::string& key, const std::string& token) {
  char* end = nullptr;
  const long long v = std::strtoll(token.c_str(), &end, 10);
  if (token.empty() || *end != '\0')
    fail(path, "header key '" + key + "': not an integer: " + token);
  return static_cast<int64_t>(v);
}

double parse_double(const std::string& path, const std::string& key, const std::string& token) {
  char* end = nullptr;
  const double v = std::strtod(token.c_str(), &end);
  if (token.empty() || *end != '\0') fail(path, "header key '" + key + "': not a number: " + token);
  return v;
}

std::vector<int64_t> parse_shape(const std::string& path, const std::string& name,
                                 const std::string& token) {
  std::vector<int64_t> shape;
  std::stringstream ss(token);
  std::string part;
  while (std::getline(ss, part, ',')) {
    const int64_t d = parse_int(path, "tensor " + name, part);
    if (d <= 0) fail(path, "tensor '" + name + "': non-positive dimension in " + token);
    shape.push_back(d);
  }
  if (shape.empty()) fail(path, "tensor '" + name + "': empty shape");
  return shape;
}

// The integer and real header keys, by name.
int64_t HostModelHeader::* int_field(const std::string& key) {
  static const std::pair<const char*, int64_t HostModelHeader::*> kFields[] = {
      {"layer_index", &HostModelHeader::layer_index},
      {"hidden_size", &HostModelHeader::hidden_size},
      {"num_heads", &HostModelHeader::num_heads},
      {"num_kv_heads", &HostModelHeader::num_kv_heads},
      {"head_dim", &HostModelHeader::head_dim},
      {"intermediate_size", &HostModelHeader::intermediate_size},
      {"vocab_size", &HostModelHeader::vocab_size},
      {"prefill_len", &HostModelHeader::prefill_len},
      {"kv_cache_len", &HostModelHeader::kv_cache_len},
  };
  for (const auto& [name, field] : kFields) {
    if (key == name) return field;
  }
  return nullptr;
}

double HostModelHeader::* double_field(const std::string& key) {
  if (key == "rms_norm_eps") return &HostModelHeader::rms_norm_eps;
  if (key == "attention_scaling") return &HostModelHeader::attention_scaling;
  return nullptr;
}

}  // namespace

HostModelFile::HostModelFile(const std::string& path) : file_(path) {
  const uint8_t* bytes = file_.data();
  const size_t size = file_.size();
  const size_t limit = std::min(size, kMaxHeaderBytes);
  std::string text(reinterpret_cast<const char*>(bytes), limit);
  const size_t end_pos = text.find("\nend\n");
  if (text.rfind("axllm-hostmodel ", 0) != 0) {
    fail(path, "not an axllm CPU model file (bad magic; expected 'axllm-hostmodel')");
  }
  if (end_pos == std::string::npos) fail(path, "truncated or malformed header (no 'end' line)");
  const size_t header_end = end_pos + 5;
  const size_t data_start = (header_end + kDataAlignment - 1) / kDataAlignment * kDataAlignment;
  std::istringstream lines(text.substr(0, end_pos));
  std::string line;
  int line_no = 0;
  while (std::getline(lines, line)) {
    ++line_no;
    std::istringstream ls(line);
    std::string key;
    ls >> key;
    std::vector<std::string> args;
    for (std::string a; ls >> a;) args.push_back(a);
    auto need = [&](size_t n) {
      if (args.size() != n) {
        fail(path, "header line " + std::to_string(line_no) + " ('" + key + "'): expected " +
                       std::to_string(n) + " values");
      }
    };
    if (key == "axllm-hostmodel") {
      need(1);
      header_.format_version = static_cast<int>(parse_int(path, key, args[0]));
      if (header_.format_version != kHostModelFormatVersion) {
        fail(path, "format version " + args[0] + " is not supported (this axllm reads version " +
                       std::to_string(kHostModelFormatVersion) + "); rebuild the model");
      }
    } else if (key == "kind") {
      need(1);
      header_.kind = args[0];
    } else if (key == "arch") {
      need(1);
      header_.arch = args[0];
    } else if (int64_t HostModelHeader::* field = int_field(key)) {
      need(1);
      header_.*field = parse_int(path, key, args[0]);
    } else if (double HostModelHeader::* field = double_field(key)) {
      need(1);
      header_.*field = parse_double(path, key, args[0]);
    } else if (key == "io_dtype") {
      need(1);
      header_.io_dtype = parse_dtype(args[0], path + ": io_dtype");
    } else if (key == "weight_dtype") {
      need(1);
      header_.weight_dtype = parse_dtype(args[0], path + ": weight_dtype");
    } else if (key == "history_lens") {
      for (const auto& a : args) header_.history_lens.push_back(parse_int(path, key, a));
    } else if (key == "tensor") {
      need(5);
      HostTensorEntry e;
      e.name = args[0];
      e.dtype = parse_dtype(args[1], path + ": tensor " + args[0]);
      e.shape = parse_shape(path, e.name, args[2]);
      const int64_t offset = parse_int(path, key, args[3]);
      const int64_t nbytes = parse_int(path, key, args[4]);
      size_t expected = dtype_size(e.dtype);
      bool overflow = false;
      for (int64_t d : e.shape)
        overflow |= __builtin_mul_overflow(expected, static_cast<size_t>(d), &expected);
      if (overflow || offset < 0 || nbytes < 0 || static_cast<size_t>(nbytes) != expected) {
        fail(path, "tensor '" + e.name + "': byte size " + args[4] + " does not match " +
                       dtype_name(e.dtype) + shape_string(e.shape));
      }
      const size_t stop = data_start + static_cast<size_t>(offset) + static_cast<size_t>(nbytes);
      if (static_cast<size_t>(offset) > size || static_cast<size_t>(nbytes) > size || stop > size) {
        fail(path, "truncated: tensor '" + e.name + "' ends at byte " + std::to_string(stop) +
                       " but the file has " + std::to_string(size) + " bytes");
      }
      e.data = bytes + data_start + offset;
      e.bytes = static_cast<size_t>(nbytes);
      if (!tensors_.emplace(e.name, e).second) fail(path, "duplicate tensor '" + e.name + "'");
    } else if (!key.empty()) {
      fail(path, "header line " + std::to_string(line_no) + ": unknown key '" + key + "'");
    }
  }
  if (header_.kind != "layer" && header_.kind != "post") {
    throw UnsupportedModelError(path + ": unknown model kind '" + header_.kind +
                                "' (expected 'layer' or 'post')");
  }
  if (header_.arch != "qwen2" && header_.arch != "llama") {
    throw UnsupportedModelError(path + ": architecture '" + header_.arch +
                                "' is not supported by the host engine (supported: qwen2, llama)");
  }
  auto positive = [&](const char* key, int64_t v) {
    if (v <= 0) fail(path, std::string("header key '") + key + "' missing or not positive");
  };
  positive("hidden_size", header_.hidden_size);
  if (header_.rms_norm_eps <= 0.0) fail(path, "header key 'rms_norm_eps' missing or not positive");
  auto check_io = [&](DType d, const char* what) {
    if (d != DType::kBF16 && d != DType::kFP16 && d != DType::kFP32) {
      fail(path, std::string(what) + " must be bf16, fp16 or fp32");
    }
  };
  check_io(header_.io_dtype, "io_dtype");
  if (header_.weight_dtype != DType::kBF16 && header_.weight_dtype != DType::kFP32) {
    fail(path, "weight_dtype must be bf16 or fp32");
  }
  if (header_.kind == "post") {
    positive("vocab_size", header_.vocab_size);
    return;
  }
  positive("num_heads", header_.num_heads);
  positive("num_kv_heads", header_.num_kv_heads);
  positive("head_dim", header_.head_dim);
  positive("intermediate_size", header_.intermediate_size);
  positive("prefill_len", header_.prefill_len);
  positive("kv_cache_len", header_.kv_cache_len);
  if (header_.head_dim % 2 != 0) fail(path, "head_dim must be even for RoPE");
  if (header_.num_heads % header_.num_kv_heads != 0) {
    fail(path, "num_heads " + std::to_string(header_.num_heads) +
                   " is not a multiple of num_kv_heads " + std::to_string(header_.num_kv_heads));
  }
  int64_t prev = 0;
  for (int64_t h : header_.history_lens) {
    if (h <= prev || h > header_.kv_cache_len) {
      fail(path, "history_lens must increase strictly and stay within kv_cache_len " +
                     std::to_string(header_.kv_cache_len));
    }
    prev = h;
  }
}

const HostTensorEntry& HostModelFile::get(const std::string& name, std::vector<DType> dtypes,
                                          const std::vector<int64_t>& shape) const {
  const auto it = tensors_.find(name);
  if (it == tensors_.end()) fail(path(), "missing tensor '" + name + "'");
  const HostTensorEntry& e = it->second;
  if (std::find(dtypes.begin(), dtypes.end(), e.dtype) == dtypes.end()) {
    fail(path(), "tensor '" + name + "' has dtype " + dtype_name(e.dtype) + ", expected " +
                     dtype_name(dtypes.front()));
  }
  if (e.shape != shape) {
    fail(path(), "tensor '" + name + "' has shape " + shape_string(e.shape) + ", expected " +
                     shape_string(shape));
  }
  return e;
}

}  // namespace axllm::detail
