#pragma once
// Python values to C++ option fields, strictly: a bool is not a number, an int field takes only
// integral values (operator.index: ints and numpy integers, not 1.5 or "7"), a float field takes
// ints and floats (numpy scalars included), a text field only str, a text-list field a str or a
// sequence of str. A wrong type throws pybind11::type_error and a value the C++ type cannot hold
// std::invalid_argument (Python ValueError), both naming the field.
#include <pybind11/pybind11.h>

#include <cstdint>
#include <limits>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <vector>

namespace axllm::python {

namespace detail {

inline pybind11::type_error wrong_type(const char* name, const char* kind, pybind11::handle v) {
  return pybind11::type_error(std::string(name) + " must be " + kind + ", got " +
                              std::string(pybind11::repr(v)));
}

// The value of an integral Python object as a Python int; type_error otherwise.
inline pybind11::object as_index(pybind11::handle v, const char* name) {
  if (PyBool_Check(v.ptr())) throw wrong_type(name, "an int", v);
  pybind11::object index = pybind11::reinterpret_steal<pybind11::object>(PyNumber_Index(v.ptr()));
  if (!index) {
    PyErr_Clear();
    throw wrong_type(name, "an int", v);
  }
  return index;
}

// The UTF-8 text of a str; std::invalid_argument when it holds a lone surrogate.
inline std::string utf8(pybind11::handle v, const char* name) {
  Py_ssize_t size = 0;
  const char* data = PyUnicode_AsUTF8AndSize(v.ptr(), &size);
  if (data == nullptr) {
    PyErr_Clear();
    throw std::invalid_argument(std::string(name) +
                                " is not valid Unicode (it holds a lone surrogate)");
  }
  return std::string(data, static_cast<size_t>(size));
}

}  // namespace detail

template <class T>
T strict_cast(pybind11::handle v, const char* name) {
  namespace py = pybind11;
  if constexpr (std::is_same_v<T, bool>) {
    if (!PyBool_Check(v.ptr())) throw detail::wrong_type(name, "a bool", v);
    return v.ptr() == Py_True;
  } else if constexpr (std::is_same_v<T, int32_t>) {
    const py::object index = detail::as_index(v, name);
    int overflow = 0;
    const long long n = PyLong_AsLongLongAndOverflow(index.ptr(), &overflow);
    if (overflow != 0 || n < std::numeric_limits<int32_t>::min() ||
        n > std::numeric_limits<int32_t>::max()) {
      throw std::invalid_argument(std::string(name) + " must fit in int32, got " +
                                  std::string(py::repr(v)));
    }
    return static_cast<int32_t>(n);
  } else if constexpr (std::is_same_v<T, int64_t>) {
    const py::object index = detail::as_index(v, name);
    int overflow = 0;
    const long long n = PyLong_AsLongLongAndOverflow(index.ptr(), &overflow);
    if (overflow != 0) {
      throw std::invalid_argument(std::string(name) + " must fit in int64, got " +
                                  std::string(py::repr(v)));
    }
    return static_cast<int64_t>(n);
  } else if constexpr (std::is_same_v<T, uint64_t>) {
    const py::object index = detail::as_index(v, name);
    const unsigned long long n = PyLong_AsUnsignedLongLong(index.ptr());
    if (PyErr_Occurred()) {
      PyErr_Clear();
      throw std::invalid_argument(std::string(name) + " must be in [0, 2**64), got " +
                                  std::string(py::repr(v)));
    }
    return static_cast<uint64_t>(n);
  } else if constexpr (std::is_same_v<T, float>) {
    py::detail::make_caster<float> number;
    if (PyBool_Check(v.ptr()) || !number.load(v, /*convert=*/true))
      throw detail::wrong_type(name, "a number", v);
    return py::detail::cast_op<float>(number);
  } else if constexpr (std::is_same_v<T, std::string>) {
    if (!PyUnicode_Check(v.ptr())) throw detail::wrong_type(name, "a str", v);
    return detail::utf8(v, name);
  } else {
    static_assert(std::is_same_v<T, std::vector<std::string>>,
                  "no strict conversion for this type");
    if (PyUnicode_Check(v.ptr())) return {detail::utf8(v, name)};
    if (!PySequence_Check(v.ptr()) || PyBytes_Check(v.ptr())) {
      throw detail::wrong_type(name, "a str or a sequence of str", v);
    }
    std::vector<std::string> out;
    for (py::handle item : py::reinterpret_borrow<py::sequence>(v)) {
      if (!PyUnicode_Check(item.ptr()))
        throw detail::wrong_type(name, "a str or a sequence of str", v);
      out.push_back(detail::utf8(item, name));
    }
    return out;
  }
}

}  // namespace axllm::python
