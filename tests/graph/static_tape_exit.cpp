// A GradientTape at namespace scope is destroyed after its thread's
// thread_local objects, at exit: its destructor must not reach them. Run as
// a ctest of its own (the failure happens after main returns); under
// AddressSanitizer a use after free fails it.
#include <batchjac/batchjac.hpp>

#include <cstdio>
#include <vector>

namespace bj = batchjac;

namespace {
bj::GradientTape tape(bj::TapeOptions{.persistent = true});
}  // namespace

int main() {
  const bj::Tensor x = bj::constant({{1., 2.}, {3., 4.}});
  tape.watch(x);
  const auto j = tape.batch_jacobian(x * x, x);
  if (!j || j->to_vector<double>() != std::vector<double>{2, 0, 0, 4, 6, 0, 0, 8}) {
    std::fputs("static_tape_exit: wrong Jacobian\n", stderr);
    return 1;
  }
  return 0;
}
