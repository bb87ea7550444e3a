#pragma once
// The AXCL backend (AX650 PCIe/M.2 cards driven from an x86_64/aarch64 host through
// libaxcl_rt): one worker thread per card owns the card's context and runs every AXCL call for
// it; buffers live in device memory (host <-> device copies only on write/read, device-to-device
// on the same card); a model's layers are split across cards as contiguous blocks with the post
// model on the last layer's card; device memory is freed exactly once: at close, at exit, or on
// SIGTERM.
#include <memory>
#include <string>
#include <vector>

#include "axllm/engine.h"
#include "axllm/model_files.h"

namespace axllm::detail {

// A backend on the cards `devices` (ordinals into axclrtGetDeviceList's list; empty: the list in
// $AXLLM_DEVICES, e.g. "0,1", else card 0). Layer i of `files` goes to card
// devices[block(i)], the post model to the last layer's card, any other file to devices[0].
// Throws EngineError when libaxcl_rt cannot be opened or a card cannot be set up, and
// std::invalid_argument for an unknown or repeated card.
std::shared_ptr<Backend> make_axcl_backend(const std::vector<int>& devices, const ModelFiles& files);

// The card ordinals a model of `n_layers` layers uses on `n_devices` cards: layer i -> result[i]
// (base = L/n, the first L%n cards one layer more).
std::vector<int> axcl_layer_placement(int n_layers, int n_devices);

}  // namespace axllm::detail
