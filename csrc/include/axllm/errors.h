#pragma once
// The core's error model: every failure is a typed exception whose message names the file,
// tensor, group or vendor function involved. Bad arguments throw std::invalid_argument
// (Python ValueError) or axllm::TypeMismatch (Python TypeError); runtime failures throw a
// subclass of axllm::Error (Python axllm.AxllmError).
#include <cstdint>
#include <stdexcept>
#include <string>

namespace axllm {

// Base of every runtime failure raised by the core.
class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// A model file is missing, truncated, malformed or inconsistent; the message names the file.
class ModelLoadError : public Error {
 public:
  using Error::Error;
};

// A model file or checkpoint declares an architecture the engine does not implement.
class UnsupportedModelError : public ModelLoadError {
 public:
  using ModelLoadError::ModelLoadError;
};

// An engine call failed. `function` is the engine or vendor function, `code` its return code.
class EngineError : public Error {
 public:
  EngineError(std::string function, int64_t code, const std::string& message)
      : Error(message), function_(std::move(function)), code_(code) {}
  const std::string& function() const { return function_; }
  int64_t code() const { return code_; }

 private:
  std::string function_;
  int64_t code_;
};

// A prompt (plus what must follow it) does not fit the model's context.
class ContextOverflowError : public Error {
 public:
  ContextOverflowError(int64_t needed, int64_t available, const std::string& message)
      : Error(message), needed_(needed), available_(available) {}
  int64_t needed() const { return needed_; }
  int64_t available() const { return available_; }

 private:
  int64_t needed_;
  int64_t available_;
};

// A call on a model while another thread is running one on it (calls on one model must be
// serialized by the caller).
class BusyError : public Error {
 public:
  using Error::Error;
};

// A model, session or LLM was used after close(); the message names its path ("... is closed").
class ClosedError : public Error {
 public:
  using Error::Error;
};

// A tensor was given with a dtype other than the one the model declares.
class TypeMismatch : public std::invalid_argument {
 public:
  using std::invalid_argument::invalid_argument;
};

}  // namespace axllm
