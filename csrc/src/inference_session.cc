#include "axllm/inference_session.h"

#include <set>

#include "axllm/errors.h"

namespace axllm {

InferenceSession::InferenceSession(std::shared_ptr<Backend> backend, const std::string& path,
                                   int placement)
    : backend_(std::move(backend)), path_(path), model_(backend_->load_model(path, placement)) {
  buffers_.resize(model_->groups().size());
  bound_.assign(model_->groups().size(), false);
}

void InferenceSession::close() {
  std::lock_guard<std::mutex> lock(mutex_);
  model_.reset();  // the engine lets go of the buffers bound to it first
  buffers_.clear();
  bound_.clear();
  backend_.reset();
  closed_.store(true);
}

Model& InferenceSession::model() const {
  if (!model_) throw ClosedError(path_ + " is closed");
  return *model_;
}

int InferenceSession::num_groups() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return static_cast<int>(model().groups().size());
}

GroupSpec InferenceSession::group(int shape_group) const {
  std::lock_guard<std::mutex> lock(mutex_);
  return group_locked(shape_group);
}

const GroupSpec& InferenceSession::group_locked(int shape_group) const {
  const auto& groups = model().groups();
  if (shape_group < 0 || static_cast<size_t>(shape_group) >= groups.size()) {
    throw std::invalid_argument("shape_group=" + std::to_string(shape_group) +
                                " is out of range: " + path_ + " has " +
                                std::to_string(groups.size()) + " shape group(s)");
  }
  return groups[static_cast<size_t>(shape_group)];
}

void InferenceSession::check_inputs(int shape_group, const std::vector<HostTensor>& inputs) const {
  std::lock_guard<std::mutex> lock(mutex_);
  check_inputs_locked(shape_group, inputs);
}

void InferenceSession::check_inputs_locked(int shape_group,
                                           const std::vector<HostTensor>& inputs) const {
  const GroupSpec& spec = group_locked(shape_group);
  std::set<int> seen;
  for (const HostTensor& t : inputs) {
    const int i = find_tensor(spec.inputs, t.name, shape_group);
    if (i < 0) {
      std::string names;
      for (const auto& s : spec.inputs) names += (names.empty() ? "" : ", ") + s.name;
      throw std::invalid_argument("input_feed has '" + t.name +
                                  "', which is not an input of "
                                  "shape_group " +
                                  std::to_string(shape_group) + " (inputs: " + names + ")");
    }
    if (!seen.insert(i).second) {
      throw std::invalid_argument("input '" + t.name + "' is fed twice");
    }
    const TensorSpec& ts = spec.inputs[i];
    if (t.dtype != ts.dtype) {
      throw TypeMismatch("input '" + ts.name + "' of shape_group " + std::to_string(shape_group) +
                         " must be " + dtype_name(ts.dtype) + ", got " + dtype_name(t.dtype));
    }
    if (t.shape != ts.shape) {
      throw std::invalid_argument("input '" + ts.name + "' of shape_group " +
                                  std::to_string(shape_group) + " must have shape " +
                                  shape_string(ts.shape) + ", got " + shape_string(t.shape));
    }
    if (t.bytes != ts.bytes) {
      throw std::invalid_argument("input '" + ts.name + "': " + std::to_string(t.bytes) +
                                  " bytes given, " + std::to_string(ts.bytes) + " expected");
    }
  }
  for (size_t i = 0; i < spec.inputs.size(); ++i) {
    if (!seen.count(static_cast<int>(i))) {
      throw std::invalid_argument("input_feed is missing input '" + spec.inputs[i].name +
                                  "' of shape_group " + std::to_string(shape_group));
    }
  }
}

int InferenceSession::output_index(int shape_group, const std::string& name) const {
  std::lock_guard<std::mutex> lock(mutex_);
  return output_index_locked(shape_group, name);
}

int InferenceSession::output_index_locked(int shape_group, const std::string& name) const {
  const GroupSpec& spec = group_locked(shape_group);
  const int i = find_tensor(spec.outputs, name, shape_group);
  if (i < 0) {
    std::string names;
    for (const auto& s : spec.outputs) names += (names.empty() ? "" : ", ") + s.name;
    throw std::invalid_argument("'" + name + "' is not an output of shape_group " +
                                std::to_string(shape_group) + " (outputs: " + names + ")");
  }
  return i;
}

void InferenceSession::ensure_bound(int shape_group) {
  if (bound_[shape_group]) return;
  Model& m = model();
  const GroupSpec& spec = m.groups()[shape_group];
  auto& bufs = buffers_[shape_group];
  for (const auto* list : {&spec.inputs, &spec.outputs}) {
    for (const TensorSpec& ts : *list) {
      auto buf = backend_->allocate(ts.bytes);
      m.bind(shape_group, ts.name, buf, 0);
      bufs[ts.name] = std::move(buf);
    }
  }
  bound_[shape_group] = true;
}

void InferenceSession::run(int shape_group, const std::vector<HostTensor>& inputs,
                           const std::vector<HostTensor>& outputs) {
  std::lock_guard<std::mutex> lock(mutex_);
  check_inputs_locked(shape_group, inputs);
  const GroupSpec& spec = group_locked(shape_group);
  for (const HostTensor& o : outputs) {
    const TensorSpec& ts = spec.outputs[output_index_locked(shape_group, o.name)];
    if (o.bytes != ts.bytes) {
      throw std::invalid_argument("output '" + ts.name + "' needs " + std::to_string(ts.bytes) +
                                  " bytes, destination has " + std::to_string(o.bytes));
    }
  }
  ensure_bound(shape_group);
  auto& bufs = buffers_[shape_group];
  for (const HostTensor& t : inputs) {
    const TensorSpec& ts = spec.inputs[find_tensor(spec.inputs, t.name, shape_group)];
    bufs.at(ts.name)->write(0, t.data, t.bytes);
  }
  model().run(shape_group);
  for (const HostTensor& o : outputs) {
    const TensorSpec& ts = spec.outputs[output_index_locked(shape_group, o.name)];
    bufs.at(ts.name)->read(0, o.data, o.bytes);
  }
}

}  // namespace axllm
