// bf16 and fp16 conversions against the compiler's own _Float16 and exact bf16 rounding cases.
#include <cstdint>
#include <cstring>
#include <limits>
#include <random>

#include "axllm/dtype.h"
#include "check.h"

using namespace axllm;

static float bits_to_float(uint32_t u) {
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

static void bf16_rounding() {
  CHECK(float_to_bf16(1.0f) == 0x3f80);
  CHECK(float_to_bf16(-65536.0f) == 0xc780);
  CHECK(float_to_bf16(bits_to_float(0x3f808000)) == 0x3f80);  // tie, even stays
  CHECK(float_to_bf16(bits_to_float(0x3f818000)) == 0x3f82);  // tie, odd rounds up
  CHECK(float_to_bf16(bits_to_float(0x3f808001)) == 0x3f81);  // above half
  CHECK(float_to_bf16(bits_to_float(0x7f7fffff)) == 0x7f80);  // overflows to inf
  CHECK((float_to_bf16(std::numeric_limits<float>::quiet_NaN()) & 0x7fff) > 0x7f80);
  for (uint32_t h = 0; h < 65536; ++h) {
    const float f = bf16_to_float(static_cast<uint16_t>(h));
    if (f == f) CHECK(float_to_bf16(f) == h);
  }
}

// The compiler's IEEE half type. GCC < 13 has no _Float16 in C++ on aarch64 (it still defines
// __FLT16_MAX__ there), but every aarch64 compiler has the ACLE storage type __fp16, which
// converts with the hardware's round-to-nearest-even.
#if defined(__aarch64__) && defined(__ARM_FP16_FORMAT_IEEE)
#define AXLLM_REF_HALF __fp16
#elif defined(__FLT16_MAX__)
#define AXLLM_REF_HALF _Float16
#endif

static void fp16_against_compiler() {
#if defined(AXLLM_REF_HALF)
  for (uint32_t h = 0; h < 65536; ++h) {
    AXLLM_REF_HALF x;
    const uint16_t hb = static_cast<uint16_t>(h);
    std::memcpy(&x, &hb, 2);
    const float want = static_cast<float>(x);
    const float got = fp16_to_float(hb);
    if (want != want) {
      CHECK(got != got);
    } else {
      CHECK(std::memcmp(&want, &got, 4) == 0);
    }
  }
  std::mt19937 rng(1);
  std::uniform_int_distribution<uint32_t> bits;
  for (int i = 0; i < 200000; ++i) {
    const float f = bits_to_float(bits(rng));
    if (f != f) continue;
    const AXLLM_REF_HALF want = static_cast<AXLLM_REF_HALF>(f);
    uint16_t wb;
    std::memcpy(&wb, &want, 2);
    CHECK(float_to_fp16(f) == wb);
  }
#else
  std::printf("no half-precision type on this compiler: fp16 reference checks skipped\n");
#endif
  CHECK(float_to_fp16(65504.0f) == 0x7bff);
  CHECK(float_to_fp16(-65536.0f) == 0xfc00);
  CHECK(fp16_to_float(0x0001) == std::ldexp(1.0f, -24));
}

int main() {
  bf16_rounding();
  fp16_against_compiler();
  return axllm_test::finish("test_dtype");
}
