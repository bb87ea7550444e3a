#pragma once
// Writes tiny software-NPU model files for the C++ tests (the .hostmodel format of
// csrc/src/host/host_model_file.h): a decoder layer, a post model and a bf16 embedding table.
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include <unistd.h>

namespace axllm_test {

inline constexpr int H = 32, NH = 4, NKV = 2, HD = 8, F = 48, P = 8, C = 24, V = 40;

struct TensorData {
  std::string name;
  std::vector<int> shape;
  std::vector<float> values;
};

inline void write_hostmodel(const std::string& path, const std::string& header,
                            const std::vector<TensorData>& tensors) {
  std::string head = "axllm-hostmodel 1\n" + header;
  size_t offset = 0;
  for (const auto& t : tensors) {
    std::string shape;
    for (int d : t.shape) shape += (shape.empty() ? "" : ",") + std::to_string(d);
    head += "tensor " + t.name + " fp32 " + shape + " " + std::to_string(offset) + " " +
            std::to_string(t.values.size() * 4) + "\n";
    offset += (t.values.size() * 4 + 63) / 64 * 64;
  }
  head += "end\n";
  std::ofstream f(path, std::ios::binary);
  f << head;
  const size_t start = (head.size() + 63) / 64 * 64;
  f << std::string(start - head.size(), '\0');
  size_t pos = 0;
  for (const auto& t : tensors) {
    f.write(reinterpret_cast<const char*>(t.values.data()),
            static_cast<std::streamsize>(t.values.size() * 4));
    pos += t.values.size() * 4;
    const size_t padded = (pos + 63) / 64 * 64;
    f << std::string(padded - pos, '\0');
    pos = padded;
  }
}

inline TensorData random_tensor(std::mt19937& rng, const std::string& name,
                                std::vector<int> shape) {
  std::normal_distribution<float> nd(0.0f, 0.1f);
  size_t n = 1;
  for (int d : shape) n *= static_cast<size_t>(d);
  std::vector<float> v(n);
  for (auto& x : v) x = name.find("norm") != std::string::npos ? 1.0f : nd(rng);
  return {name, std::move(shape), std::move(v)};
}

// A llama-style layer with fp32 IO and weights, P=8, C=24, history groups `history_lens`.
inline void write_layer(const std::string& path, unsigned seed = 3,
                        const std::string& history_lens = "8 16") {
  std::mt19937 rng(seed);
  write_hostmodel(path,
                  "kind layer\narch llama\nlayer_index 0\nhidden_size 32\nrms_norm_eps 1e-06\n"
                  "io_dtype fp32\nweight_dtype fp32\nnum_heads 4\nnum_kv_heads 2\nhead_dim 8\n"
                  "intermediate_size 48\nattention_scaling 1.0\nprefill_len 8\nkv_cache_len 24\n"
                  "history_lens " +
                      history_lens + "\n",
                  {random_tensor(rng, "input_layernorm.weight", {H}),
                   random_tensor(rng, "self_attn.q_proj.weight", {NH * HD, H}),
                   random_tensor(rng, "self_attn.k_proj.weight", {NKV * HD, H}),
                   random_tensor(rng, "self_attn.v_proj.weight", {NKV * HD, H}),
                   random_tensor(rng, "self_attn.o_proj.weight", {H, NH * HD}),
                   random_tensor(rng, "post_attention_layernorm.weight", {H}),
                   random_tensor(rng, "mlp.gate_proj.weight", {F, H}),
                   random_tensor(rng, "mlp.up_proj.weight", {F, H}),
                   random_tensor(rng, "mlp.down_proj.weight", {H, F}),
                   random_tensor(rng, "rope.inv_freq", {HD / 2})});
}

inline void write_post(const std::string& path) {
  std::mt19937 rng(7);
  write_hostmodel(
      path,
      "kind post\narch llama\nhidden_size 32\nrms_norm_eps 1e-06\nio_dtype fp32\n"
      "weight_dtype fp32\nvocab_size 40\n",
      {random_tensor(rng, "norm.weight", {H}), random_tensor(rng, "lm_head.weight", {V, H})});
}

inline void write_embeddings(const std::string& path) {
  std::mt19937 rng(11);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  std::vector<uint16_t> rows(static_cast<size_t>(V) * H);
  for (auto& r : rows) {
    const float f = nd(rng);
    uint32_t u;
    std::memcpy(&u, &f, 4);
    r = static_cast<uint16_t>(u >> 16);
  }
  std::ofstream(path, std::ios::binary)
      .write(reinterpret_cast<const char*>(rows.data()),
             static_cast<std::streamsize>(rows.size() * 2));
}

// A model directory of `layers` layers shaped like pulsar2's output, in a fresh temporary
// directory named after `name` and the process id, with history groups `history_lens` (space
// separated). Returns its path; the caller removes it.
inline std::filesystem::path write_model_dir(const std::string& name, int layers = 2,
                                             const std::string& history_lens = "8 16") {
  namespace fs = std::filesystem;
  const fs::path dir = fs::temp_directory_path() / (name + "_" + std::to_string(::getpid()));
  fs::create_directories(dir);
  for (int l = 0; l < layers; ++l) {
    write_layer((dir / ("llama_p8_l" + std::to_string(l) + "_together.hostmodel")).string(),
                static_cast<unsigned>(3 + l), history_lens);
  }
  write_post((dir / "llama_post.hostmodel").string());
  write_embeddings((dir / "model.embed_tokens.weight.bfloat16.bin").string());
  return dir;
}

}  // namespace axllm_test
