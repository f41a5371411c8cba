// The seed's batch_jacobian, compiled against the installed batchjac.
#include <batchjac/batchjac.hpp>

#include <exception>
#include <iostream>
#include <optional>
#include <vector>

int main() {
  namespace bj = batchjac;
  try {
    bj::GradientTape g;
    bj::Tensor x = bj::constant({{1., 2.}, {3., 4.}}, bj::float32);
    g.watch(x);
    bj::Tensor y = x * x;
    std::optional<bj::Tensor> jac = g.batch_jacobian(y, x);

    const std::vector<float> expected{2, 0, 0, 4, 6, 0, 0, 8};
    if (!jac || jac->shape() != bj::Shape{2, 2, 2} || jac->dtype() != bj::float32 ||
        jac->to_vector<float>() != expected) {
      std::cerr << "install_test: wrong batch_jacobian\n";
      if (jac) std::cerr << *jac << '\n';
      return 1;
    }
    std::cout << *jac << "\ninstall_test: ok\n";
    return 0;
  } catch (const std::exception& e) {
    std::cerr << "install_test: " << e.what() << '\n';
    return 2;
  }
}
