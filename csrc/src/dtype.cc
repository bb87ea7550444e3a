#include "axllm/dtype.h"

#include <cmath>
#include <stdexcept>

#include "axllm/tensor.h"

namespace axllm {

size_t dtype_size(DType dtype) {
  switch (dtype) {
    case DType::kBF16:
    case DType::kFP16: return 2;
    case DType::kFP32:
    case DType::kUInt32:
    case DType::kInt32: return 4;
    case DType::kUInt8:
    case DType::kInt8: return 1;
  }
  return 0;
}

const char* dtype_name(DType dtype) {
  switch (dtype) {
    case DType::kBF16: return "bf16";
    case DType::kFP16: return "fp16";
    case DType::kFP32: return "fp32";
    case DType::kUInt32: return "uint32";
    case DType::kInt32: return "int32";
    case DType::kUInt8: return "uint8";
    case DType::kInt8: return "int8";
  }
  return "unknown";
}

DType parse_dtype(std::string_view name, std::string_view what) {
  if (name == "bf16" || name == "bfloat16") return DType::kBF16;
  if (name == "fp16" || name == "float16") return DType::kFP16;
  if (name == "fp32" || name == "float32") return DType::kFP32;
  if (name == "uint32") return DType::kUInt32;
  if (name == "int32") return DType::kInt32;
  if (name == "uint8") return DType::kUInt8;
  if (name == "int8") return DType::kInt8;
  throw std::invalid_argument(std::string(what) + ": unknown dtype '" + std::string(name) + "'");
}

float fp16_to_float(uint16_t h) {
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
  const uint32_t exp = (h >> 10) & 0x1fu;
  const uint32_t man = h & 0x3ffu;
  uint32_t u;
  if (exp == 0) {
    if (man == 0) {
      u = sign;
    } else {
      const float f = std::ldexp(static_cast<float>(man), -24);
      std::memcpy(&u, &f, sizeof u);
      u |= sign;
    }
  } else if (exp == 0x1f) {
    u = sign | 0x7f800000u | (man << 13);
  } else {
    u = sign | ((exp + 112u) << 23) | (man << 13);
  }
  float f;
  std::memcpy(&f, &u, sizeof f);
  return f;
}

uint16_t float_to_fp16(float f) {
  uint32_t u;
  std::memcpy(&u, &f, sizeof u);
  const uint16_t sign = static_cast<uint16_t>((u >> 16) & 0x8000u);
  const uint32_t abs = u & 0x7fffffffu;
  if (abs > 0x7f800000u) return sign | 0x7e00u;            // NaN
  if (abs >= 0x477ff000u) return sign | 0x7c00u;           // rounds to >= 65520: infinity
  if (abs < 0x38800000u) {                                  // below the smallest normal
    const float a = std::fabs(f);
    const float scaled = a * 16777216.0f;                   // units of 2^-24
    const float r = std::nearbyint(scaled);                 // round half to even
    return sign | static_cast<uint16_t>(r);
  }
  const uint32_t rounded = abs + 0xfffu + ((abs >> 13) & 1u);
  return sign | static_cast<uint16_t>((rounded - 0x38000000u) >> 13);
}

void to_float(DType dtype, const void* src, float* dst, size_t n) {
  switch (dtype) {
    case DType::kBF16: {
      const auto* s = static_cast<const uint16_t*>(src);
      for (size_t i = 0; i < n; ++i) dst[i] = bf16_to_float(s[i]);
      return;
    }
    case DType::kFP16: {
      const auto* s = static_cast<const uint16_t*>(src);
      for (size_t i = 0; i < n; ++i) dst[i] = fp16_to_float(s[i]);
      return;
    }
    case DType::kFP32: std::memcpy(dst, src, n * sizeof(float)); return;
    default:
      throw std::invalid_argument(std::string("to_float: not a floating dtype: ") +
                                  dtype_name(dtype));
  }
}

void from_float(DType dtype, const float* src, void* dst, size_t n) {
  switch (dtype) {
    case DType::kBF16: {
      auto* d = static_cast<uint16_t*>(dst);
      for (size_t i = 0; i < n; ++i) d[i] = float_to_bf16(src[i]);
      return;
    }
    case DType::kFP16: {
      auto* d = static_cast<uint16_t*>(dst);
      for (size_t i = 0; i < n; ++i) d[i] = float_to_fp16(src[i]);
      return;
    }
    case DType::kFP32: std::memcpy(dst, src, n * sizeof(float)); return;
    default:
      throw std::invalid_argument(std::string("from_float: not a floating dtype: ") +
                                  dtype_name(dtype));
  }
}

TensorSpec make_tensor_spec(std::string name, std::vector<int64_t> shape, DType dtype) {
  size_t count = 1;
  for (int64_t d : shape) count *= static_cast<size_t>(d);
  return TensorSpec{std::move(name), std::move(shape), dtype, count * dtype_size(dtype)};
}

std::string shape_string(const std::vector<int64_t>& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) {
    if (i) s += ",";
    s += std::to_string(shape[i]);
  }
  return s + "]";
}

}  // namespace axllm
