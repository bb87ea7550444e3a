#pragma once
// The core's single log sink. The core never prints; messages go to the installed sink
// (stderr by default, Python's logging once axllm is imported).
#include <functional>
#include <string>

namespace axllm {

enum class LogLevel : int { kDebug = 10, kInfo = 20, kWarning = 30, kError = 40, kOff = 100 };

using LogSink = std::function<void(LogLevel, const std::string&)>;

// Replaces the sink; an empty sink restores the default (stderr). Thread-safe.
void set_log_sink(LogSink sink);
// Messages below `level` are dropped before formatting. Initial level: AXLLM_LOG_LEVEL or warning.
void set_log_level(LogLevel level);
LogLevel log_level();
bool log_enabled(LogLevel level);
void log(LogLevel level, const std::string& message);

}  // namespace axllm
