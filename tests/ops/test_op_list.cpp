// Every primitive of the op list (ops/op_list.hpp) has a row in an op table:
// the tables register the names their rows exercise (support/check.hpp).
#include "kernels/kernels.hpp"
#include "ops/elementwise_math.hpp"
#include "ops/op_list.hpp"
#include "support/check.hpp"

#include <catch2/catch.hpp>

#include <algorithm>
#include <set>
#include <string>
#include <vector>

namespace ops = batchjac::ops;
namespace kernels = batchjac::kernels;

namespace {
template <class... Ps>
constexpr int count(ops::PrimList<Ps...>) {
  return sizeof...(Ps);
}
static_assert(count(ops::Primitives{}) == 20,
              "a primitive was added or removed: list its variants in primitive_names()");

// The attrs.op values that name a primitive's public variants; internal-only
// primitives and variants have none.
std::vector<int> variants(ops::Prim prim) {
  auto range = [](int n) {
    std::vector<int> v(static_cast<std::size_t>(n));
    for (int i = 0; i < n; ++i) v[static_cast<std::size_t>(i)] = i;
    return v;
  };
  switch (prim) {
    case ops::Prim::unary: return range(ops::math::Unary::size);
    case ops::Prim::binary: return range(ops::math::Binary::size);
    case ops::Prim::reduce: return {kernels::kProd, kernels::kMax, kernels::kMin};
    // cumprod (kProd) is internal: reduce_prod's derivative.
    case ops::Prim::scan: return {kernels::kSum};
    case ops::Prim::index_map:
      return {ops::kTranspose, ops::kSlice, ops::kGather, ops::kRoll, ops::kTile, ops::kPad, ops::kRepeat};
    // Made only by JVP and transpose rules: the local partials ("d<op>") and
    // the transposes of index maps ("<op>_transpose").
    case ops::Prim::unary_partial:
    case ops::Prim::binary_partial:
    // Fused linear steps of the linear-program optimiser.
    case ops::Prim::lincomb:
    case ops::Prim::index_scatter: return {};
    default: return {0};
  }
}

std::vector<std::string> primitive_names() {
  // Internal elementwise ops (see test_elementwise.cpp): the engine's copy;
  // cast's rounding and nonzero ops are named "cast", SelectFirst/Second "where".
  std::vector<std::string> names;
  for (int p = 0; p < count(ops::Primitives{}); ++p) {
    const auto prim = static_cast<ops::Prim>(p);
    for (int op : variants(prim)) {
      ops::Node node{prim, {}, {}, -1};
      node.attrs.op = op;
      const std::string name = ops::op_name(node);
      if (name != "identity" && std::find(names.begin(), names.end(), name) == names.end())
        names.push_back(name);
    }
  }
  return names;
}
}  // namespace

TEST_CASE("every primitive has a row in an op table", "[ops][coverage]") {
  const auto names = primitive_names();
  CHECK(names.size() >= 50);
  for (const auto& name : names) {
    INFO("primitive " << name << " has no row in tests/ops/");
    CHECK(check::covered_ops().count(name) == 1);
  }
  // And no table claims an op that does not exist.
  for (const auto& name : check::covered_ops()) {
    INFO("op table row " << name << " names no primitive");
    CHECK(std::find(names.begin(), names.end(), name) != names.end());
  }
}
