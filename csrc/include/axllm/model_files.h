#pragma once
// Finding the files of a pulsar2-shaped model: one model per decoder layer
// (<type>_p<P>_l<i>_together.<ext>), the post model (<type>_post.<ext>) and the bf16 embedding
// table, in a build directory or in a model package (an axmodel subdirectory next to tokenizer
// files). Overrides mirror ax-llm's flags.
#include <cstdint>
#include <string>
#include <vector>

namespace axllm {

// Explicit choices that take precedence over discovery; empty / 0 means "discover".
// Relative paths are resolved against the model directory given to discover_model_files.
struct ModelOverrides {
  std::string template_filename_axmodel;  // printf-style, one %d for the layer index
  int32_t axmodel_num = 0;                // number of layers
  std::string filename_post_axmodel;
  std::string filename_tokens_embed;
  int64_t tokens_embed_num = 0;           // embedding rows
  int64_t tokens_embed_size = 0;          // embedding width
};

struct ModelFiles {
  std::string root;                 // the directory given
  std::string layer_template;       // resolved printf template of the layer files
  std::vector<std::string> layers;  // layer i's file
  std::string post;
  std::string embeddings;
  int64_t embed_rows = 0;           // 0: derive from the file size and the layer width
  int64_t embed_width = 0;          // 0: the layers' hidden size
};

// Resolves every file, checking that each exists. Throws ModelLoadError naming the directory or
// the missing file (a gap in the layer numbering names the first missing layer file).
ModelFiles discover_model_files(const std::string& path, const ModelOverrides& overrides = {});

}  // namespace axllm
