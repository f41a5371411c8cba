// Names and errors common to all primitives.
#include "ops/op_list.hpp"

#include <batchjac/errors.hpp>

namespace batchjac::ops {

std::string op_name(const Node& node) {
  return visit(node.prim, [&]<class P>() { return P::name(node.attrs); });
}

void fail(const Node& node, const std::string& message) {
  throw ValueError(op_name(node) + ": " + message);
}

}  // namespace batchjac::ops
