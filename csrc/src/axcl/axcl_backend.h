#pragma once
// The AXCL backend (AX650 PCIe/M.2 cards driven from an x86_64/aarch64 host through
// libaxcl_rt): one worker thread per card owns the card's context and runs every AXCL call for
// it; buffers live in device memory (host <-> device copies only on write/read, device-to-device
// on the same card); placement p is the p-th card of the list the backend was made with; device
// memory is freed exactly once: at close, at exit, or on SIGTERM.
#include <memory>
#include <string>
#include <vector>

#include "axllm/backend.h"

namespace axllm::detail {

// A backend on the cards `devices` (ordinals into axclrtGetDeviceList's list; empty: the list in
// $AXLLM_DEVICES, e.g. "0,1", else card 0): placement p runs on card devices[p]. Throws
// EngineError when libaxcl_rt cannot be opened or a card cannot be set up, and
// std::invalid_argument for an unknown or repeated card.
std::shared_ptr<Backend> make_axcl_backend(const std::vector<int>& devices);

}  // namespace axllm::detail
