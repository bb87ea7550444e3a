// The CPU engine without Python: a layer file written here loads through the Backend interface,
// runs every group, and allocates no heap memory in Model::run once each group has run once.
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <new>
#include <random>
#include <string>
#include <vector>

#include "axllm/engine.h"
#include "axllm/errors.h"
#include "check.h"

static std::atomic<long> g_allocations{0};

void* operator new(size_t n) {
  g_allocations++;
  if (void* p = std::malloc(n ? n : 1)) return p;
  throw std::bad_alloc();
}
void operator delete(void* p) noexcept { std::free(p); }
void operator delete(void* p, size_t) noexcept { std::free(p); }

namespace {

constexpr int H = 32, NH = 4, NKV = 2, HD = 8, F = 48, P = 8, C = 24;

void write_layer(const std::string& path) {
  std::mt19937 rng(3);
  std::normal_distribution<float> nd(0.0f, 0.1f);
  struct T {
    std::string name;
    std::vector<int> shape;
  };
  const std::vector<T> tensors = {
      {"input_layernorm.weight", {H}},        {"self_attn.q_proj.weight", {NH * HD, H}},
      {"self_attn.k_proj.weight", {NKV * HD, H}}, {"self_attn.v_proj.weight", {NKV * HD, H}},
      {"self_attn.o_proj.weight", {H, NH * HD}},  {"post_attention_layernorm.weight", {H}},
      {"mlp.gate_proj.weight", {F, H}},       {"mlp.up_proj.weight", {F, H}},
      {"mlp.down_proj.weight", {H, F}},       {"rope.inv_freq", {HD / 2}},
  };
  std::string head = "axllm-cpumodel 1\nkind layer\narch llama\nlayer_index 0\nhidden_size 32\n"
                     "rms_norm_eps 1e-06\nio_dtype fp32\nweight_dtype fp32\nnum_heads 4\n"
                     "num_kv_heads 2\nhead_dim 8\nintermediate_size 48\nattention_scaling 1.0\n"
                     "prefill_len 8\nkv_cache_len 24\nhistory_lens 8 16\n";
  std::vector<std::vector<float>> data;
  size_t offset = 0;
  for (const auto& t : tensors) {
    size_t n = 1;
    std::string shape;
    for (int d : t.shape) {
      n *= static_cast<size_t>(d);
      shape += (shape.empty() ? "" : ",") + std::to_string(d);
    }
    std::vector<float> v(n);
    for (auto& x : v) x = t.name.find("norm") != std::string::npos ? 1.0f : nd(rng);
    head += "tensor " + t.name + " fp32 " + shape + " " + std::to_string(offset) + " " +
            std::to_string(n * 4) + "\n";
    offset += (n * 4 + 63) / 64 * 64;
    data.push_back(std::move(v));
  }
  head += "end\n";
  std::ofstream f(path, std::ios::binary);
  f << head;
  const size_t start = (head.size() + 63) / 64 * 64;
  f << std::string(start - head.size(), '\0');
  size_t pos = 0;
  for (const auto& v : data) {
    f.write(reinterpret_cast<const char*>(v.data()), static_cast<std::streamsize>(v.size() * 4));
    pos += v.size() * 4;
    const size_t padded = (pos + 63) / 64 * 64;
    f << std::string(padded - pos, '\0');
    pos = padded;
  }
}

}  // namespace

int main() {
  const std::string path = "test_engine_alloc_layer.cpumodel";
  write_layer(path);
  auto backend = axllm::cpu_backend();
  auto model = backend->load_model(path);
  CHECK(model->groups().size() == 4);
  std::vector<std::shared_ptr<axllm::Buffer>> keep;
  for (int g = 0; g < 4; ++g) {
    for (const auto* list : {&model->groups()[g].inputs, &model->groups()[g].outputs}) {
      for (const auto& t : *list) {
        auto buf = backend->allocate(t.bytes);
        if (t.name == "mask") {
          std::vector<float> m(t.bytes / 4, -65536.0f);
          const size_t rows = static_cast<size_t>(t.shape[1]);
          const size_t width = static_cast<size_t>(t.shape[2]);
          for (size_t r = 0; r < rows; ++r) m[r * width + width - 1 - (rows - 1 - r)] = 0.0f;
          buf->write(0, m.data(), t.bytes);
        }
        model->bind(g, t.name, buf, 0);
        keep.push_back(buf);
      }
    }
  }
  for (int g = 0; g < 4; ++g) model->run(g);
  const long before = g_allocations.load();
  for (int rep = 0; rep < 3; ++rep) {
    for (int g = 0; g < 4; ++g) model->run(g);
  }
  CHECK(g_allocations.load() == before);
  std::printf("allocations during 12 warm runs: %ld\n", g_allocations.load() - before);
  bool threw = false;
  try {
    model->run(4);
  } catch (const std::invalid_argument&) {
    threw = true;
  }
  CHECK(threw);
  threw = false;
  try {
    backend->load_model("does-not-exist.cpumodel");
  } catch (const axllm::ModelLoadError& e) {
    threw = std::string(e.what()).find("does-not-exist.cpumodel") != std::string::npos;
  }
  CHECK(threw);
  std::remove(path.c_str());
  return axllm_test::finish("test_engine_alloc");
}
