#include "axllm/model_files.h"

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <map>
#include <regex>
#include <set>

#include "axllm/errors.h"

namespace fs = std::filesystem;

namespace axllm {
namespace {

const std::regex kLayerPattern(R"((.+)_p(\d+)_l(\d+)_together\.(axmodel|hostmodel))");

std::string format_layer(const std::string& tmpl, int i) {
  const size_t pos = tmpl.find("%d");
  if (pos == std::string::npos || tmpl.find("%d", pos + 2) != std::string::npos ||
      std::count(tmpl.begin(), tmpl.end(), '%') != 1) {
    throw ModelLoadError("template_filename_axmodel '" + tmpl +
                         "' must contain exactly one %d and no other %");
  }
  return tmpl.substr(0, pos) + std::to_string(i) + tmpl.substr(pos + 2);
}

fs::path resolve(const fs::path& root, const std::string& name) {
  const fs::path p(name);
  return p.is_absolute() ? p : root / p;
}

struct LayerSet {
  fs::path dir;
  std::string prefix;  // <type>_p<P>
  std::string ext;
  std::set<int> indices;
};

// Layer files found directly in `dir`, grouped by (prefix, extension).
std::vector<LayerSet> scan(const fs::path& dir) {
  std::map<std::pair<std::string, std::string>, LayerSet> sets;
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(dir, ec)) {
    if (!entry.is_regular_file(ec)) continue;
    const std::string name = entry.path().filename().string();
    std::smatch m;
    if (!std::regex_match(name, m, kLayerPattern)) continue;
    const std::string prefix = m[1].str() + "_p" + m[2].str();
    auto& set = sets[{prefix, m[4].str()}];
    set.dir = dir;
    set.prefix = prefix;
    set.ext = m[4].str();
    set.indices.insert(std::stoi(m[3].str()));
  }
  std::vector<LayerSet> out;
  for (auto& [key, set] : sets) out.push_back(std::move(set));
  return out;
}

std::string find_single(const fs::path& dir, const std::function<bool(const std::string&)>& match) {
  std::vector<std::string> found;
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(dir, ec)) {
    if (entry.is_regular_file(ec) && match(entry.path().filename().string())) {
      found.push_back(entry.path().string());
    }
  }
  std::sort(found.begin(), found.end());
  return found.size() == 1 ? found[0] : std::string();
}

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() &&
         s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

}  // namespace

ModelFiles discover_model_files(const std::string& path, const ModelOverrides& o) {
  const fs::path root(path);
  std::error_code ec;
  if (!fs::exists(root, ec)) throw ModelLoadError(path + ": model path does not exist");
  if (!fs::is_directory(root, ec)) {
    throw ModelLoadError(path +
                         ": a model is a directory (a pulsar2 build or a model package), "
                         "not a single file");
  }
  ModelFiles files;
  files.root = root.string();
  fs::path layer_dir;
  std::string ext;
  if (!o.template_filename_axmodel.empty()) {
    files.layer_template = resolve(root, o.template_filename_axmodel).string();
    int n = o.axmodel_num;
    if (n <= 0) {
      while (fs::exists(format_layer(files.layer_template, n), ec)) ++n;
      if (n == 0) {
        throw ModelLoadError(format_layer(files.layer_template, 0) +
                             ": layer file not found (from template_filename_axmodel)");
      }
    }
    for (int i = 0; i < n; ++i) files.layers.push_back(format_layer(files.layer_template, i));
    layer_dir = fs::path(files.layers[0]).parent_path();
    ext = fs::path(files.layers[0]).extension().string();
  } else {
    std::vector<LayerSet> sets = scan(root);
    if (sets.empty()) {
      for (const auto& entry : fs::directory_iterator(root, ec)) {
        if (entry.is_directory(ec)) {
          auto sub = scan(entry.path());
          sets.insert(sets.end(), sub.begin(), sub.end());
        }
      }
    }
    if (sets.empty()) {
      throw ModelLoadError(path +
                           ": no layer models (<type>_p<P>_l<i>_together.axmodel or "
                           ".hostmodel) in it or in its subdirectories");
    }
    if (sets.size() > 1) {
      std::string names;
      for (const auto& s : sets) {
        names += "\n  " + (s.dir / (s.prefix + "_l%d_together." + s.ext)).string();
      }
      throw ModelLoadError(path +
                           ": several layer model sets; choose one with "
                           "template_filename_axmodel:" +
                           names);
    }
    const LayerSet& set = sets[0];
    files.layer_template = (set.dir / (set.prefix + "_l%d_together." + set.ext)).string();
    const int n = o.axmodel_num > 0 ? o.axmodel_num : *set.indices.rbegin() + 1;
    for (int i = 0; i < n; ++i) files.layers.push_back(format_layer(files.layer_template, i));
    layer_dir = set.dir;
    ext = "." + set.ext;
  }
  for (const auto& f : files.layers) {
    if (!fs::is_regular_file(f, ec)) throw ModelLoadError(f + ": layer model file not found");
  }

  if (!o.filename_post_axmodel.empty()) {
    files.post = resolve(root, o.filename_post_axmodel).string();
  } else {
    files.post =
        find_single(layer_dir, [&](const std::string& n) { return ends_with(n, "_post" + ext); });
    if (files.post.empty()) {
      throw ModelLoadError(layer_dir.string() + ": no single post model (*_post" + ext + ")");
    }
  }
  if (!fs::is_regular_file(files.post, ec))
    throw ModelLoadError(files.post + ": post model file not found");

  if (!o.filename_tokens_embed.empty()) {
    files.embeddings = resolve(root, o.filename_tokens_embed).string();
  } else {
    const char* kDefault = "model.embed_tokens.weight.bfloat16.bin";
    for (const fs::path& dir : {layer_dir, root}) {
      if (fs::is_regular_file(dir / kDefault, ec)) {
        files.embeddings = (dir / kDefault).string();
        break;
      }
    }
    if (files.embeddings.empty()) {
      files.embeddings = find_single(
          layer_dir, [](const std::string& n) { return ends_with(n, ".bfloat16.bin"); });
    }
    if (files.embeddings.empty()) {
      throw ModelLoadError(layer_dir.string() + ": no embedding table (" + kDefault + ")");
    }
  }
  if (!fs::is_regular_file(files.embeddings, ec)) {
    throw ModelLoadError(files.embeddings + ": embedding file not found");
  }
  files.embed_rows = o.tokens_embed_num;
  files.embed_width = o.tokens_embed_size;
  return files;
}

}  // namespace axllm
