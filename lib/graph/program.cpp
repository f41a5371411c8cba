// Program construction.
#include "graph/program.hpp"

#include "ops/op_list.hpp"

#include <bit>
#include <iterator>

namespace batchjac::graph {

int Program::add_value(ops::ValueInfo info, ValueKind kind, bool varying) {
  values.push_back(Value{std::move(info), kind, varying, -1});
  return static_cast<int>(values.size()) - 1;
}

int Program::emit(std::vector<ops::Node>& into, ValueKind kind, ops::Prim prim, ops::Attrs attrs,
                  std::vector<int> inputs) {
  std::vector<ops::ValueInfo> in;
  for (int v : inputs) in.push_back(values[v].info);
  ops::Node node{prim, std::move(attrs), std::move(inputs), -1};
  ops::ValueInfo out = ops::infer(node, in);
  // Computed values live in lanes, even a product of two shared constants
  // (the optimiser's folded coefficients): kernels write lane layout.
  node.output = add_value(std::move(out), kind, true);
  into.push_back(std::move(node));
  return into.back().output;
}

std::string computation_key(const ops::Node& node) {
  static_assert(sizeof(void*) != 8 || sizeof(ops::Attrs) == 120, "a new attribute belongs in the key");
  const ops::Attrs& a = node.attrs;
  std::string key;
  auto put = [&](std::int64_t v) {
    key.append(reinterpret_cast<const char*>(&v), sizeof v);
  };
  auto put_all = [&](auto&& list) {
    put(static_cast<std::int64_t>(std::size(list)));
    for (const auto v : list) put(static_cast<std::int64_t>(v));
  };
  put(static_cast<std::int64_t>(node.prim));
  put(a.op);
  put(a.arg);
  put(std::bit_cast<std::int64_t>(a.scalar));
  put_all(a.axes);
  put_all(a.shape.dims());
  put_all(a.source_shape.dims());
  put(a.keepdims | a.exclusive << 1 | a.reverse << 2 | a.transpose_a << 3 | a.transpose_b << 4);
  put(static_cast<std::int64_t>(a.dtype));
  put_all(node.inputs);
  return key;
}

}  // namespace batchjac::graph
