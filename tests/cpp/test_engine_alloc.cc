// The host engine without Python: a layer file written here loads through the Backend interface,
// runs every group, and allocates no heap memory in Model::run once each group has run once.
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <new>
#include <string>
#include <vector>

#include "axllm/backend.h"
#include "axllm/errors.h"
#include "check.h"
#include "tiny_model_files.h"

static std::atomic<long> g_allocations{0};

void* operator new(size_t n) {
  g_allocations++;
  if (void* p = std::malloc(n ? n : 1)) return p;
  throw std::bad_alloc();
}
void operator delete(void* p) noexcept { std::free(p); }
void operator delete(void* p, size_t) noexcept { std::free(p); }

int main() {
  const std::string path = "test_engine_alloc_layer.hostmodel";
  axllm_test::write_layer(path);
  auto backend = axllm::host_backend();
  auto model = backend->load_model(path, 0);
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
    backend->load_model("does-not-exist.hostmodel", 0);
  } catch (const axllm::ModelLoadError& e) {
    threw = std::string(e.what()).find("does-not-exist.hostmodel") != std::string::npos;
  }
  CHECK(threw);
  std::remove(path.c_str());
  return axllm_test::finish("test_engine_alloc");
}
