#pragma once
// The stand-ins' call ledger: one line per event, appended unbuffered to $AXLLM_STANDIN_LEDGER
// (so it survives a process killed by a signal), with the calling thread's id.
#include <string>

namespace standin {

void record(const std::string& event);
// A vendor-style error code when $AXLLM_STANDIN_FAIL names `function`, else 0.
int injected_failure(const char* function);

}  // namespace standin
