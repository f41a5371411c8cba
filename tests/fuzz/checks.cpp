// The checks run on every fuzz program: modes, forms and options agree,
// per-example jacobian agrees, central differences agree, float32 follows
// float64 (checks.hpp). Each mismatch is reported with its first entry.
#include "fuzz/checks.hpp"

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdlib>
#include <sstream>
#include <stdexcept>

namespace fuzz {

namespace {

// Tolerances, relative to the largest |entry| of the example's block (at
// least `floor`), so that an entry near 0 is held to its block's scale.
struct Tol {
  double rel, floor;
};
Tol ad_tol(bj::DType t) { return t == bj::float64 ? Tol{1e-10, 1e-2} : Tol{1e-4, 1e-2}; }
constexpr Tol kF32VsF64{5e-4, 1e-1};
constexpr Tol kFiniteDifferences{1e-6, 1.0};
constexpr double kFdStep = 1e-6;  // relative to max(1, |x|)
constexpr int kFdExamples = 3;    // first, last, middle

const char* mode_name(bj::JacobianMode m) {
  return m == bj::JacobianMode::forward ? "forward" : m == bj::JacobianMode::reverse ? "reverse" : "automatic";
}
const char* form_name(int sparse) { return sparse < 0 ? "by cost" : sparse ? "sparse" : "dense"; }

// BATCHJAC_SPARSE for one call: 1, 0, or unset (< 0). The plan cache's key includes it.
class SparseEnv {
 public:
  explicit SparseEnv(int sparse) {
    if (const char* o = std::getenv("BATCHJAC_SPARSE")) old_ = o, had_ = true;
    if (sparse < 0) ::unsetenv("BATCHJAC_SPARSE");
    else ::setenv("BATCHJAC_SPARSE", sparse ? "1" : "0", 1);
  }
  ~SparseEnv() {
    if (had_) ::setenv("BATCHJAC_SPARSE", old_.c_str(), 1);
    else ::unsetenv("BATCHJAC_SPARSE");
  }
  SparseEnv(const SparseEnv&) = delete;
  SparseEnv& operator=(const SparseEnv&) = delete;

 private:
  std::string old_;
  bool had_ = false;
};

// A failure that ends the program's checks (an exception, a wrong shape).
struct Stop {
  Failure f;
};

std::string options_str(const bj::JacobianOptions& o) {
  std::ostringstream os;
  os << "max_threads " << (o.max_threads ? std::to_string(*o.max_threads) : "unset")
     << ", parallel_iterations "
     << (o.parallel_iterations ? std::to_string(*o.parallel_iterations) : "unset")
     << ", experimental_use_pfor " << (o.experimental_use_pfor ? "true" : "false");
  return os.str();
}

std::string index_str(std::int64_t flat, const Dims& d) {
  std::vector<std::int64_t> idx(d.size());
  for (std::size_t i = d.size(); i-- > 0;) idx[i] = flat % d[i], flat /= d[i];
  std::string s = "[";
  for (std::size_t i = 0; i < idx.size(); ++i) s += (i ? ", " : "") + std::to_string(idx[i]);
  return s + "]";
}

// How large the terms behind each entry can be, per example, in float64:
// the sum of the absolute values of the terms the chain rule adds up.
// The tolerances above scale with the largest |entry| of an example's block,
// which is honest while the entries are about as large as the terms they
// are summed from. When the terms cancel (cross(c*v, v) is identically 0,
// its Jacobian a sum of +-c*v terms of size ~1), every computation of the
// entry is off by rounding of the terms' size, however small the result:
// float32 forward gives 0, reverse 1.8e-6. So the scale is also at least
// the largest entry of `jac` (the Jacobian's terms) or `val` (the target's):
//   jac_k = sum_i |L_ki| jac_i,  jac_0 = I
//   val_k = |v_k| + sum_i |L_ki| val_i,  val_0 = |x|
// where L_ki is step k's own Jacobian w.r.t. its input i (batch_jacobian of
// the step alone, in float64). jac_k is the entrywise bound |J_k| would reach
// if no term cancelled (jac_k >= |J_k|, equal when none does, so a program
// without cancellation keeps its tolerance exactly): the first-order bound of
// the rounding error of J_k, in units of the rounding unit, up to a constant
// per op. val_k is the same running bound for the values (its |L| val term
// is how each input's rounding error grows through the step, e.g. exp's
// condition |u|). This is sharper than the largest Jacobian of any
// intermediate value: log(exp(5x)) has an intermediate of size e^5 but
// terms of size 5, and its tolerance stays that of 5.
// Empty when a step's Jacobian cannot be taken (the checks then keep the
// block scale alone); a library bug here could loosen the tolerance by the
// factor it gets the bound wrong, not hide a wrong entry that checks compare.
struct Bounds {
  std::vector<double> jac;  // [b, n_y, n_x]
  std::vector<double> val;  // [b, n_y]
};

Bounds magnitude_bounds(const Program& p) {
  const bj::DType t = bj::float64;
  const std::int64_t b = p.batch, n_x = count(p.source);
  const Env env = p.env(t);
  std::vector<bj::Tensor> values{p.source_tensor(t)};
  std::vector<std::int64_t> sizes{n_x};
  std::vector<std::vector<double>> jac(1), val(1);  // per value: [b, n, n_x], [b, n]
  jac[0].assign(static_cast<std::size_t>(b * n_x * n_x), 0.0);
  for (std::int64_t i = 0; i < b; ++i)
    for (std::int64_t c = 0; c < n_x; ++c) jac[0][(i * n_x + c) * n_x + c] = 1.0;
  val[0] = values[0].to_vector<double>();
  for (double& v : val[0]) v = std::abs(v);
  bj::JacobianOptions o;
  o.unconnected_gradients = bj::UnconnectedGradients::zero;
  for (const Step& s : p.steps) {
    bj::GradientTape tape(bj::TapeOptions{.persistent = true});
    std::vector<bj::Tensor> flat, in;
    for (int u : s.inputs) {
      const bj::Tensor& v = values[static_cast<std::size_t>(u)];
      const auto data = v.to_vector<double>();
      flat.push_back(bj::constant(data, bj::Shape({b, sizes[static_cast<std::size_t>(u)]}), t));
      tape.watch(flat.back());
    }
    for (std::size_t j = 0; j < flat.size(); ++j)
      in.push_back(bj::reshape(flat[j], values[static_cast<std::size_t>(s.inputs[j])].shape()));
    const bj::Tensor y = s.fn(in, env);
    const std::int64_t n = count(s.out);
    const bj::Tensor yf = bj::reshape(y, bj::Shape({b, n}));
    std::vector<double> jk(static_cast<std::size_t>(b * n * n_x), 0.0), vk = yf.to_vector<double>();
    for (double& v : vk) v = std::abs(v);
    for (std::size_t j = 0; j < flat.size(); ++j) {
      const auto u = static_cast<std::size_t>(s.inputs[j]);
      const std::int64_t m = sizes[u];
      const auto l = tape.batch_jacobian(yf, flat[j], o);  // [b, n, m]
      if (!l) return {};
      const auto lv = l->to_vector<double>();
      for (std::int64_t i = 0; i < b; ++i)
        for (std::int64_t r = 0; r < n; ++r)
          for (std::int64_t q = 0; q < m; ++q) {
            const double a = std::abs(lv[(i * n + r) * m + q]);
            if (a == 0) continue;
            vk[i * n + r] += a * val[u][i * m + q];
            for (std::int64_t c = 0; c < n_x; ++c) jk[(i * n + r) * n_x + c] += a * jac[u][(i * m + q) * n_x + c];
          }
    }
    values.push_back(y);
    sizes.push_back(n);
    jac.push_back(std::move(jk));
    val.push_back(std::move(vk));
  }
  // Some ops' rules cancel terms that |L| does not show: softmax's JVP is
  // s * (u' - <s, u'>), whose terms are of size |u'| where its largest s is
  // ~1, while its L = s(1 - s) is ~0 (float32 forward vs reverse differ by
  // ~1e-6 on entries of 3e-3 under terms of ~20: program seed
  // 0xd1259dacc0c10ba9). So every entry's bound is also at least
  // kIntermediateShare of the largest term bound of any value of the program
  // for that example: with ad_tol's float32 rel, ~8 rounding units of it.
  constexpr double kIntermediateShare = 1e-2;
  auto& out = jac.back();
  const std::int64_t n_y = sizes.back();
  for (std::int64_t i = 0; i < b; ++i) {
    double big = 0;
    for (std::size_t k = 0; k < jac.size(); ++k) {
      const std::int64_t blk = sizes[k] * n_x;
      for (std::int64_t e = i * blk; e < (i + 1) * blk; ++e) big = std::max(big, jac[k][e]);
    }
    for (std::int64_t e = i * n_y * n_x; e < (i + 1) * n_y * n_x; ++e)
      out[e] = std::max(out[e], kIntermediateShare * big);
  }
  return {std::move(jac.back()), std::move(val.back())};
}

class Checker {
 public:
  Checker(const Program& p, Headroom& head) : p_(p), head_(head) {}
  std::vector<Failure> fails;
  std::string phase = "recording";
  void run();

 private:
  const Program& p_;
  Headroom& head_;
  Dims y_;  // the target's example shape
  std::int64_t n_x_ = 1, n_y_ = 1;

  void fail(std::string check, std::string detail) { fails.push_back({std::move(check), std::move(detail)}); }
  // "example i, J[y][x]" of entry e of block k (example ex[k]) of `per` entries.
  std::string entry(std::int64_t example, std::int64_t e, std::int64_t per) const {
    if (per == n_y_) return "example " + std::to_string(example) + ", y" + index_str(e, y_);
    return "example " + std::to_string(example) + ", J[y" + index_str(e / n_x_, y_) + "][x" +
           index_str(e % n_x_, p_.source) + "]";
  }
  // bound: magnitude_bounds' entries for got's blocks (empty: none).
  void close(const std::string& check, const std::vector<double>& got, const std::vector<double>& want,
             std::int64_t per, Tol tol, const std::string& what, const std::vector<double>& bound,
             const std::vector<std::int64_t>& examples = {});
  void same_bits(const std::string& check, const std::vector<double>& got,
                 const std::vector<double>& want, const std::string& what);
  std::vector<double> jac(bj::GradientTape& tape, const bj::Tensor& y, const bj::Tensor& x,
                          bj::JacobianOptions o, int sparse);
};

void Checker::close(const std::string& check, const std::vector<double>& got,
                    const std::vector<double>& want, std::int64_t per, Tol tol, const std::string& what,
                    const std::vector<double>& bound, const std::vector<std::int64_t>& examples) {
  std::int64_t bad = 0;
  std::ostringstream first;
  first.precision(17);
  double& worst = head_[check + " (" + std::string(bj::dtype_name(p_.dtype)) + ")"];
  const std::int64_t blocks = static_cast<std::int64_t>(got.size()) / std::max<std::int64_t>(per, 1);
  for (std::int64_t k = 0; k < blocks; ++k) {
    double scale = tol.floor;
    for (std::int64_t e = k * per; e < (k + 1) * per; ++e) {
      if (std::isfinite(got[e])) scale = std::max(scale, std::abs(got[e]));
      if (std::isfinite(want[e])) scale = std::max(scale, std::abs(want[e]));
      if (!bound.empty() && std::isfinite(bound[e])) scale = std::max(scale, bound[e]);
    }
    const double allowed = tol.rel * scale;
    for (std::int64_t e = k * per; e < (k + 1) * per; ++e) {
      const double g = got[e], w = want[e];
      bool ok;
      if (std::isnan(g) || std::isnan(w)) ok = std::isnan(g) && std::isnan(w);
      else if (std::isinf(g) || std::isinf(w)) ok = g == w;
      else {
        ok = std::abs(g - w) <= allowed;
        worst = std::max(worst, std::abs(g - w) / allowed);
      }
      if (ok) continue;
      if (bad++ == 0)
        first << entry(examples.empty() ? k : examples[k], e - k * per, per) << ": got " << g
              << ", want " << w << " (allowed error " << allowed << ")";
    }
  }
  if (bad)
    fail(check, first.str() + "; " + std::to_string(bad) + " of " + std::to_string(got.size()) +
                    " entries differ (" + what + ")");
}

void Checker::same_bits(const std::string& check, const std::vector<double>& got,
                        const std::vector<double>& want, const std::string& what) {
  std::int64_t bad = 0;
  std::ostringstream first;
  first.precision(17);
  const std::int64_t per = n_y_ * n_x_;
  for (std::size_t e = 0; e < got.size(); ++e) {
    if (std::bit_cast<std::uint64_t>(got[e]) == std::bit_cast<std::uint64_t>(want[e])) continue;
    if (bad++ == 0)
      first << entry(static_cast<std::int64_t>(e) / per, static_cast<std::int64_t>(e) % per, per)
            << ": got " << got[e] << ", want " << want[e] << " (difference " << got[e] - want[e] << ")";
  }
  if (bad)
    fail(check, first.str() + "; " + std::to_string(bad) + " of " + std::to_string(got.size()) +
                    " entries differ (" + what + ")");
}

std::vector<double> Checker::jac(bj::GradientTape& tape, const bj::Tensor& y, const bj::Tensor& x,
                                 bj::JacobianOptions o, int sparse) {
  o.unconnected_gradients = bj::UnconnectedGradients::zero;
  SparseEnv env(sparse);
  const auto j = tape.batch_jacobian(y, x, o);
  const std::string what = std::string(mode_name(o.mode)) + ", " + form_name(sparse) + ", " + options_str(o);
  if (!j) throw Stop{{"result", "nullopt with unconnected_gradients = zero (" + what + ")"}};
  std::vector<std::int64_t> want(y.shape().begin(), y.shape().end());
  want.insert(want.end(), x.shape().begin() + 1, x.shape().end());
  if (j->shape() != bj::Shape(want) || j->dtype() != x.dtype())
    throw Stop{{"result", "shape " + j->shape().to_string() + " " + std::string(bj::dtype_name(j->dtype())) +
                              ", want " + bj::Shape(want).to_string() + " (" + what + ")"}};
  return j->to_vector<double>();
}

void Checker::run() {
  using bj::JacobianMode;
  const bj::DType t = p_.dtype;
  const std::int64_t b = p_.batch;
  const Tol tol = ad_tol(t);
  const bj::Tensor x = p_.source_tensor(t);
  bj::GradientTape tape(bj::TapeOptions{.persistent = true});
  tape.watch(x);
  const bj::Tensor y = p_.run(x, p_.env(t));
  if (y.rank() < 2 || y.shape()[0] != b || y.dtype() != t)
    throw Stop{{"result", "target " + y.shape().to_string() + " " + std::string(bj::dtype_name(y.dtype()))}};
  y_.assign(y.shape().begin() + 1, y.shape().end());
  n_y_ = count(y_);
  n_x_ = count(p_.source);
  const std::int64_t per = n_y_ * n_x_;
  const std::vector<double> yv = y.to_vector<double>();

  // How large each entry's terms are (magnitude_bounds): the tolerances' scale.
  phase = "magnitude bounds";
  Bounds bounds;
  try {
    bounds = magnitude_bounds(p_);
  } catch (const std::exception&) {
    bounds = {};  // the checks below still run, at the block scale alone
  }
  const auto& jac_bound = bounds.jac;
  const auto& val_bound = bounds.val;

  // Both modes in both forms, default options otherwise.
  phase = "batch_jacobian";
  const JacobianMode modes[2] = {JacobianMode::forward, JacobianMode::reverse};
  std::vector<double> base[2][2];  // [mode][sparse]
  for (int m = 0; m < 2; ++m)
    for (int s = 0; s < 2; ++s) {
      bj::JacobianOptions o;
      o.mode = modes[m];
      base[m][s] = jac(tape, y, x, o, s);
      const auto& j = base[m][s];
      const auto it = std::find_if(j.begin(), j.end(), [](double v) { return !std::isfinite(v); });
      if (it != j.end())
        fail(std::string("non-finite Jacobian [") + mode_name(modes[m]) + ", " + form_name(s) + "]",
             entry((it - j.begin()) / per, (it - j.begin()) % per, per) + " is " + std::to_string(*it));
    }
  // Self-test of the tolerances: BATCHJAC_FUZZ_PERTURB=r scales the largest
  // |entry| of every example's block of reverse mode by (1 + r) in the copy
  // "forward vs reverse" compares, a stand-in for a wrong reverse rule: it
  // must fail wherever r exceeds what the tolerance grants (ad_tol's rel,
  // times the block's magnitude bound over its largest |entry|).
  for (int s = 0; s < 2; ++s) {
    std::vector<double> rev = base[1][s];
    if (const char* r = std::getenv("BATCHJAC_FUZZ_PERTURB"))
      for (std::int64_t k = 0; k * per < static_cast<std::int64_t>(rev.size()); ++k) {
        const auto blk = rev.begin() + k * per;
        *std::max_element(blk, blk + per, [](double a, double c) { return std::abs(a) < std::abs(c); }) *=
            1 + std::atof(r);
      }
    close(std::string("forward vs reverse [") + form_name(s) + "]", base[0][s], rev, per, tol,
          "got forward, want reverse", jac_bound);
  }
  for (int m = 0; m < 2; ++m)
    close(std::string("sparse vs dense [") + mode_name(modes[m]) + "]", base[m][1], base[m][0], per,
          tol, "got sparse, want dense", jac_bound);

  // Threads, chunking and pfor never change a bit within one mode and form.
  phase = "options";
  for (int m = 0; m < 2; ++m)
    for (int s = 0; s < 2; ++s) {
      const std::string check =
          std::string("options change bits [") + mode_name(modes[m]) + ", " + form_name(s) + "]";
      std::vector<Failure> differ;
      for (int threads : {1, 2})
        for (std::int64_t pi : {0, 1, 3})
          for (bool pfor : {true, false}) {
            bj::JacobianOptions o;
            o.mode = modes[m];
            o.max_threads = threads;
            if (pi) o.parallel_iterations = pi;
            o.experimental_use_pfor = pfor;
            std::swap(fails, differ);
            same_bits(check, jac(tape, y, x, o, s), base[m][s], options_str(o) + " vs all unset");
            std::swap(fails, differ);
          }
      if (!differ.empty())
        fail(check, std::to_string(differ.size()) + " of 12 option sets differ; first: " + differ[0].detail);
    }

  // The program recorded again runs its kept plan: the same bits as the first call.
  phase = "plan kept across calls";
  {
    bj::GradientTape again(bj::TapeOptions{.persistent = true});
    again.watch(x);
    const bj::Tensor y2 = p_.run(x, p_.env(t));
    for (int m = 0; m < 2; ++m)
      for (int s = 0; s < 2; ++s) {
        bj::JacobianOptions o;
        o.mode = modes[m];
        same_bits(std::string("kept plan changes bits [") + mode_name(modes[m]) + ", " + form_name(s) + "]",
                  jac(again, y2, x, o, s), base[m][s], "recorded again vs first call");
      }
  }

  // automatic runs one of the two modes, in one of the two forms; _into writes the same bits.
  phase = "automatic";
  const auto autom = jac(tape, y, x, {}, -1);
  bool any = false;
  for (auto& bm : base)
    for (auto& j : bm) any |= std::equal(j.begin(), j.end(), autom.begin(), autom.end(), [](double a, double c) {
      return std::bit_cast<std::uint64_t>(a) == std::bit_cast<std::uint64_t>(c);
    });
  if (!any)  // the first entry that differs from forward dense (it differs from the others too)
    same_bits("automatic is neither mode nor form", autom, base[0][0], "vs forward dense");
  phase = "batch_jacobian_into";
  {
    bj::JacobianOptions o;
    o.unconnected_gradients = bj::UnconnectedGradients::zero;
    std::vector<double> into(autom.size());
    if (t == bj::float32) {
      std::vector<float> out(autom.size(), -1.0f);
      tape.batch_jacobian_into(y, x, std::span<float>(out), o);
      std::copy(out.begin(), out.end(), into.begin());
    } else {
      tape.batch_jacobian_into(y, x, std::span<double>(into), o);
    }
    same_bits("batch_jacobian_into vs batch_jacobian", into, autom, "automatic, default options");
  }

  // Each example alone, through GradientTape::jacobian.
  phase = "per-example jacobian";
  std::vector<double> loop_j, loop_y;
  const std::vector<double> xv = p_.source_values();
  for (std::int64_t i = 0; i < b; ++i) {
    const std::vector<double> xi(xv.begin() + i * n_x_, xv.begin() + (i + 1) * n_x_);
    const bj::Tensor x1 = bj::constant(xi, with_batch(1, p_.source), t);
    bj::GradientTape one;
    one.watch(x1);
    const bj::Tensor y1 = p_.run(x1, p_.env(t, i));
    bj::JacobianOptions o;
    o.unconnected_gradients = bj::UnconnectedGradients::zero;
    const auto j1 = one.jacobian(y1, x1, o);
    if (!j1 || j1->num_elements() != per || y1.num_elements() != n_y_)
      throw Stop{{"result", "per-example jacobian of example " + std::to_string(i) + ": wrong shape"}};
    const auto jv = j1->to_vector<double>(), y1v = y1.to_vector<double>();
    loop_j.insert(loop_j.end(), jv.begin(), jv.end());
    loop_y.insert(loop_y.end(), y1v.begin(), y1v.end());
  }
  close("per-example jacobian", base[0][0], loop_j, per, tol, "got forward dense, want jacobian of x[i:i+1]", jac_bound);
  close("per-example values", yv, loop_y, n_y_, tol, "got the batch's target, want x[i:i+1]'s", val_bound);

  // The float64 twin (the same numbers in float64) and central differences of it.
  phase = "float64 twin";
  std::vector<double> j64 = base[0][0];
  if (t == bj::float32) {
    const bj::Tensor x64 = p_.source_tensor(bj::float64);
    bj::GradientTape t64;
    t64.watch(x64);
    const bj::Tensor y64 = p_.run(x64, p_.env(bj::float64));
    bj::JacobianOptions o;
    o.mode = JacobianMode::forward;
    j64 = jac(t64, y64, x64, o, -1);
    close("float32 vs float64 Jacobian", base[0][0], j64, per, kF32VsF64, "got float32 forward dense, want float64 forward", jac_bound);
    close("float32 vs float64 values", yv, y64.to_vector<double>(), n_y_, kF32VsF64, "got float32, want float64", val_bound);
  }
  phase = "finite differences";
  std::vector<std::int64_t> rows{0, b - 1, b / 2};
  std::sort(rows.begin(), rows.end());
  rows.erase(std::unique(rows.begin(), rows.end()), rows.end());
  if (static_cast<int>(rows.size()) > kFdExamples) rows.resize(kFdExamples);
  std::vector<double> fd, ad, fd_bound;
  for (const std::int64_t i : rows) {
    Frozen frozen;
    Env env = p_.env(bj::float64, i);
    env.frozen = &frozen;
    std::vector<double> xi(xv.begin() + i * n_x_, xv.begin() + (i + 1) * n_x_);
    p_.run(bj::constant(xi, with_batch(1, p_.source)), env);  // records stop_gradient's values
    frozen.replay = true;
    std::vector<double> block(static_cast<std::size_t>(per));
    for (std::int64_t c = 0; c < n_x_; ++c) {
      const double h = kFdStep * std::max(1.0, std::abs(xi[c]));
      auto at = [&](double v) {
        std::vector<double> xs = xi;
        xs[c] = v;
        frozen.next = 0;
        return p_.run(bj::constant(xs, with_batch(1, p_.source)), env).to_vector<double>();
      };
      const double hi = xi[c] + h, lo = xi[c] - h;
      const auto yp = at(hi), ym = at(lo);
      for (std::int64_t rr = 0; rr < n_y_; ++rr) block[rr * n_x_ + c] = (yp[rr] - ym[rr]) / (hi - lo);
    }
    fd.insert(fd.end(), block.begin(), block.end());
    ad.insert(ad.end(), j64.begin() + i * per, j64.begin() + (i + 1) * per);
    if (!jac_bound.empty())
      fd_bound.insert(fd_bound.end(), jac_bound.begin() + i * per, jac_bound.begin() + (i + 1) * per);
  }
  close("finite differences", ad, fd, per, kFiniteDifferences,
        "got float64 forward, want central differences", fd_bound, rows);
}

}  // namespace

std::vector<Failure> check_program(const Program& p, Headroom& headroom) {
  Checker c(p, headroom);
  try {
    c.run();
  } catch (const Stop& s) {
    c.fails.push_back(s.f);
  } catch (const std::exception& e) {
    c.fails.push_back({"exception in " + c.phase, e.what()});
  }
  return c.fails;
}

}  // namespace fuzz
