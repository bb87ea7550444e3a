#pragma once
// Descriptions of the tensors a compiled model exposes, per shape group.
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "axllm/dtype.h"

namespace axllm {

struct TensorSpec {
  std::string name;
  std::vector<int64_t> shape;
  DType dtype;
  size_t bytes;  // element count times dtype_size(dtype)
};

struct GroupSpec {
  std::vector<TensorSpec> inputs;
  std::vector<TensorSpec> outputs;
};

// Builds a spec, computing its byte size.
TensorSpec make_tensor_spec(std::string name, std::vector<int64_t> shape, DType dtype);
// "[1,128,896]"
std::string shape_string(const std::vector<int64_t>& shape);

}  // namespace axllm
