#pragma once
// Element types of engine tensors and the scalar conversions the engines need.
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>

namespace axllm {

enum class DType : uint8_t { kBF16, kFP16, kFP32, kUInt32, kInt32, kUInt8, kInt8 };

// Bytes per element.
size_t dtype_size(DType dtype);
// Short name used in files and messages: "bf16", "fp16", "fp32", "uint32", "int32", "uint8",
// "int8".
const char* dtype_name(DType dtype);
// Inverse of dtype_name; also accepts numpy's names ("bfloat16", "float16", "float32").
// Throws std::invalid_argument naming `what` when the name is unknown.
DType parse_dtype(std::string_view name, std::string_view what);

// bf16 <-> fp32. Narrowing rounds to nearest even; NaN stays NaN.
inline float bf16_to_float(uint16_t h) {
  uint32_t u = static_cast<uint32_t>(h) << 16;
  float f;
  std::memcpy(&f, &u, sizeof f);
  return f;
}
inline uint16_t float_to_bf16(float f) {
  uint32_t u;
  std::memcpy(&u, &f, sizeof u);
  if ((u & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((u >> 16) | 0x40u);
  u += 0x7fffu + ((u >> 16) & 1u);
  return static_cast<uint16_t>(u >> 16);
}

// IEEE binary16 <-> fp32. Narrowing rounds to nearest even, overflows to infinity.
float fp16_to_float(uint16_t h);
uint16_t float_to_fp16(float f);

// Converts n elements of a floating dtype (bf16, fp16, fp32) to fp32 and back.
void to_float(DType dtype, const void* src, float* dst, size_t n);
void from_float(DType dtype, const float* src, void* dst, size_t n);

}  // namespace axllm
