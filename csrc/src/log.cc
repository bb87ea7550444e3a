#include "axllm/log.h"

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <string_view>

namespace axllm {
namespace {

LogLevel initial_level() {
  const char* env = std::getenv("AXLLM_LOG_LEVEL");
  if (!env) return LogLevel::kWarning;
  std::string_view v(env);
  if (v == "debug" || v == "DEBUG") return LogLevel::kDebug;
  if (v == "info" || v == "INFO") return LogLevel::kInfo;
  if (v == "warning" || v == "WARNING") return LogLevel::kWarning;
  if (v == "error" || v == "ERROR") return LogLevel::kError;
  if (v == "off" || v == "OFF") return LogLevel::kOff;
  return LogLevel::kWarning;
}

std::atomic<int>& level_ref() {
  static std::atomic<int> level{static_cast<int>(initial_level())};
  return level;
}

std::mutex& sink_mutex() {
  static std::mutex m;
  return m;
}

LogSink& sink_ref() {
  static LogSink sink;
  return sink;
}

}  // namespace

void set_log_sink(LogSink sink) {
  std::lock_guard<std::mutex> lock(sink_mutex());
  sink_ref() = std::move(sink);
}

void set_log_level(LogLevel level) { level_ref().store(static_cast<int>(level)); }

LogLevel log_level() { return static_cast<LogLevel>(level_ref().load()); }

bool log_enabled(LogLevel level) { return static_cast<int>(level) >= level_ref().load(); }

void log(LogLevel level, const std::string& message) {
  if (!log_enabled(level)) return;
  LogSink sink;
  {
    std::lock_guard<std::mutex> lock(sink_mutex());
    sink = sink_ref();
  }
  if (sink) {
    sink(level, message);
  } else {
    std::fprintf(stderr, "axllm: %s\n", message.c_str());
  }
}

}  // namespace axllm
