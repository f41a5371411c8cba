// Generator family of index ops: slice gather transpose roll tile repeat pad
// concat reshape expand_dims squeeze broadcast_to stack unstack, never along the
// batch axis (which stays axis 0: a reshape keeps it first, as b or -1).
#include "fuzz/generate.hpp"

#include <algorithm>

namespace fuzz::gen {

namespace {

using Axes = std::vector<std::int64_t>;

std::vector<std::int64_t> divisors(std::int64_t n) {
  std::vector<std::int64_t> out;
  for (std::int64_t k = 1; k <= n; ++k)
    if (n % k == 0) out.push_back(k);
  return out;
}

template <class T>
std::string list(const std::vector<T>& v) {
  std::string s = "[";
  for (std::size_t i = 0; i < v.size(); ++i) s += (i ? ", " : "") + std::to_string(v[i]);
  return s + "]";
}

}  // namespace

bool Generator::index_op(int v) {
  const Dims d = dims[static_cast<std::size_t>(v)];
  const std::size_t r = d.size();
  const std::string x = name(v);
  const auto ra = static_cast<std::int64_t>(r);
  auto step = [&](std::string text, Dims out, auto fn, std::vector<int> inputs = {}) {
    if (count(out) > kMaxElements) return false;
    if (inputs.empty()) inputs = {v};
    return add(Step{std::move(text), std::move(inputs), fn, std::move(out)});
  };
  switch (rng.integer(0, 12)) {
    case 0: {  // slice; the batch axis whole, as -1 or as its size
      Axes begin{0}, size{-1};
      Dims out;
      const bool rows = rng.chance(0.3);
      for (std::size_t i = 0; i < r; ++i) {
        const std::int64_t b = rng.chance(0.3) ? 0 : rng.integer(0, d[i] - 1);
        const std::int64_t s = rng.chance(0.2) ? -1 : rng.integer(1, d[i] - b);
        begin.push_back(b);
        size.push_back(s);
        out.push_back(s == -1 ? d[i] - b : s);
      }
      Axes shown = size;
      if (rows) shown[0] = 0;  // printed as "b"
      std::string sz = list(shown);
      if (rows) sz.replace(1, 1, "b");
      return step("slice(" + x + ", " + list(begin) + ", " + sz + ")", out,
                  [begin, size, rows](const auto& in, const Env& env) {
                    Axes s = size;
                    if (rows) s[0] = env.rows();
                    return bj::slice(in[0], begin, s);
                  });
    }
    case 1: {  // gather along a non-batch axis, repeats allowed
      const std::int64_t a = rng.integer(0, ra - 1);
      std::vector<std::int64_t> idx(static_cast<std::size_t>(rng.integer(1, 4)));
      for (auto& i : idx) i = rng.integer(0, d[static_cast<std::size_t>(a)] - 1);
      Dims out = d;
      out[static_cast<std::size_t>(a)] = static_cast<std::int64_t>(idx.size());
      const std::int64_t arg = axis_arg(rng, a, r);
      return step("gather(" + x + ", " + list(idx) + ", " + std::to_string(arg) + ")", out,
                  [idx, arg](const auto& in, const Env&) { return bj::gather(in[0], idx, arg); });
    }
    case 2: {  // transpose of the non-batch axes
      if (r < 2) return false;
      Axes perm(r);
      for (std::size_t i = 0; i < r; ++i) perm[i] = static_cast<std::int64_t>(i) + 1;
      for (std::size_t i = r; i > 1; --i)
        std::swap(perm[i - 1], perm[static_cast<std::size_t>(rng.integer(0, static_cast<std::int64_t>(i) - 1))]);
      Dims out;
      for (auto p : perm) out.push_back(d[static_cast<std::size_t>(p - 1)]);
      perm.insert(perm.begin(), 0);
      return step("transpose(" + x + ", " + list(perm) + ")", out,
                  [perm](const auto& in, const Env&) { return bj::transpose(in[0], perm); });
    }
    case 3: {  // roll along one or two non-batch axes
      const std::int64_t a = rng.integer(0, ra - 1);
      const std::int64_t s = rng.integer(-2 * d[static_cast<std::size_t>(a)], 2 * d[static_cast<std::size_t>(a)]);
      const std::int64_t arg = axis_arg(rng, a, r);
      if (r == 1 || rng.chance(0.5))
        return step("roll(" + x + ", " + std::to_string(s) + ", " + std::to_string(arg) + ")", d,
                    [s, arg](const auto& in, const Env&) { return bj::roll(in[0], s, arg); });
      const std::int64_t a2 = (a + rng.integer(1, ra - 1)) % ra;
      const std::vector<std::int64_t> shifts{s, rng.integer(-3, 3)};
      const Axes axes{arg, axis_arg(rng, a2, r)};
      return step("roll(" + x + ", " + list(shifts) + ", " + list(axes) + ")", d,
                  [shifts, axes](const auto& in, const Env&) { return bj::roll(in[0], shifts, axes); });
    }
    case 4: {  // tile, or repeat along a non-batch axis
      if (rng.chance(0.4)) {
        const std::int64_t a = rng.integer(0, ra - 1);
        const auto au = static_cast<std::size_t>(a);
        std::vector<std::int64_t> k(rng.chance(0.5) ? 1 : static_cast<std::size_t>(d[au]));
        for (auto& e : k) e = rng.integer(k.size() == 1 ? 1 : 0, 2);  // some zeros, never all
        Dims out = d;
        out[au] = k.size() == 1 ? d[au] * k[0] : 0;
        if (k.size() > 1) {
          if (std::all_of(k.begin(), k.end(), [](std::int64_t e) { return e == 0; })) k[0] = 1;
          for (auto e : k) out[au] += e;
        }
        const std::int64_t arg = axis_arg(rng, a, r);
        return step("repeat(" + x + ", " + list(k) + ", " + std::to_string(arg) + ")", out,
                    [k, arg](const auto& in, const Env&) { return bj::repeat(in[0], k, arg); });
      }
      std::vector<std::int64_t> m{1};
      Dims out;
      for (auto e : d) {
        m.push_back(rng.chance(0.5) ? 1 : rng.integer(2, 3));
        out.push_back(e * m.back());
      }
      return step("tile(" + x + ", " + list(m) + ")", out,
                  [m](const auto& in, const Env&) { return bj::tile(in[0], m); });
    }
    case 5: {  // pad with zeros
      std::vector<std::array<std::int64_t, 2>> pads{{0, 0}};
      std::string text = "pad(" + x + ", [[0, 0]";
      Dims out;
      for (auto e : d) {
        pads.push_back({rng.integer(0, 2), rng.integer(0, 2)});
        out.push_back(e + pads.back()[0] + pads.back()[1]);
        text += ", [" + std::to_string(pads.back()[0]) + ", " + std::to_string(pads.back()[1]) + "]";
      }
      return step(text + "])", out, [pads](const auto& in, const Env&) { return bj::pad(in[0], pads); });
    }
    case 6: {  // concat with itself, values, per-example or broadcast shared constants
      const std::int64_t a = rng.integer(0, ra - 1);
      const auto au = static_cast<std::size_t>(a);
      struct Piece {
        int input = -1;  // else a constant
        Constant c;
      };
      std::vector<Piece> pieces{{0, {}}};
      std::vector<int> inputs{v};
      Dims out = d;
      const std::int64_t n = rng.integer(1, 2);
      for (std::int64_t k = 0; k < n; ++k) {
        Piece pc;
        const double u = rng.real(0.0, 1.0);
        std::vector<int> fits;  // values equal to v but along a
        for (std::size_t w = 0; w < dims.size(); ++w) {
          if (dims[w].size() != r) continue;
          Dims t = dims[w];
          t[au] = d[au];
          if (t == d) fits.push_back(static_cast<int>(w));
        }
        if (u < 0.5) {
          inputs.push_back(rng.pick(fits));
          pc.input = static_cast<int>(inputs.size()) - 1;
          out[au] += dims[static_cast<std::size_t>(inputs.back())][au];
        } else {
          Dims cd = d;
          cd[au] = rng.integer(1, 3);
          pc.c = constant(cd, u < 0.8);
          pc.c.leading_one = u >= 0.8;  // shared [1, ...], broadcast to the batch
          out[au] += cd[au];
        }
        pieces.insert(pieces.begin() + rng.integer(0, static_cast<std::int64_t>(pieces.size())), pc);
      }
      const std::int64_t arg = axis_arg(rng, a, r);
      std::string text = "concat([";
      for (std::size_t i = 0; i < pieces.size(); ++i) {
        const Piece& pc = pieces[i];
        text += i ? ", " : "";
        if (pc.input >= 0) text += name(inputs[static_cast<std::size_t>(pc.input)]);
        else if (pc.c.per_example) text += pc.c.str();
        else text += "broadcast_to(" + pc.c.str() + ", " + dims_str(pc.c.dims) + ")";
      }
      return step(text + "], " + std::to_string(arg) + ")", out,
                  [pieces, arg](const auto& in, const Env& env) {
                    std::vector<bj::Tensor> ts;
                    for (const Piece& pc : pieces) {
                      if (pc.input >= 0) ts.push_back(in[static_cast<std::size_t>(pc.input)]);
                      else if (pc.c.per_example) ts.push_back(pc.c.make(env));
                      else ts.push_back(bj::broadcast_to(pc.c.make(env), with_batch(env.rows(), pc.c.dims)));
                    }
                    return bj::concat(ts, arg);
                  },
                  inputs);
    }
    case 7: {  // reshape; the batch as b or -1, or one other axis as -1
      std::int64_t rem = count(d);
      Dims out;
      const std::int64_t nf = rng.integer(1, 3);
      for (std::int64_t k = 0; k + 1 < nf; ++k) out.push_back(rng.pick(divisors(rem))), rem /= out.back();
      out.push_back(rem);
      const bool batch_inferred = rng.chance(0.4);
      const std::int64_t inferred = !batch_inferred && rng.chance(0.4)
                                        ? rng.integer(0, static_cast<std::int64_t>(out.size()) - 1)
                                        : -1;
      std::string text = std::string("reshape(") + x + ", [" + (batch_inferred ? "-1" : "b");
      for (std::size_t i = 0; i < out.size(); ++i)
        text += ", " + (static_cast<std::int64_t>(i) == inferred ? std::string("-1") : std::to_string(out[i]));
      return step(text + "])", out, [out, batch_inferred, inferred](const auto& in, const Env& env) {
        std::vector<std::int64_t> s{batch_inferred ? -1 : env.rows()};
        for (std::size_t i = 0; i < out.size(); ++i)
          s.push_back(static_cast<std::int64_t>(i) == inferred ? -1 : out[i]);
        return bj::reshape(in[0], bj::Shape(s));
      });
    }
    case 8: {  // expand_dims at a non-batch position
      const std::int64_t pos = rng.integer(1, ra + 1);
      const std::int64_t arg = rng.chance(0.4) ? pos - (ra + 2) : pos;
      Dims out = d;
      out.insert(out.begin() + (pos - 1), 1);
      return step("expand_dims(" + x + ", " + std::to_string(arg) + ")", out,
                  [arg](const auto& in, const Env&) { return bj::expand_dims(in[0], arg); });
    }
    case 9: {  // squeeze listed size-1 axes, keeping at least one example axis
      std::vector<bool> sq(r, false);
      std::vector<std::size_t> ones;
      for (std::size_t i = 0; i < r; ++i)
        if (d[i] == 1) ones.push_back(i), sq[i] = rng.chance(0.7);
      if (ones.size() == r) sq[rng.pick(ones)] = false;
      Axes axes;
      Dims out;
      for (std::size_t i = 0; i < r; ++i) {
        if (sq[i]) axes.push_back(axis_arg(rng, static_cast<std::int64_t>(i), r));
        else out.push_back(d[i]);
      }
      if (axes.empty()) return false;
      return step("squeeze(" + x + ", " + list(axes) + ")", out,
                  [axes](const auto& in, const Env&) { return bj::squeeze(in[0], axes); });
    }
    case 10: {  // broadcast_to: size-1 example axes grow
      Dims out = d;
      bool any = false;
      for (auto& e : out)
        if (e == 1 && rng.chance(0.7)) e = rng.integer(2, 3), any = true;
      if (!any) return false;
      return step("broadcast_to(" + x + ", " + dims_str(out) + ")", out,
                  [out](const auto& in, const Env& env) {
                    return bj::broadcast_to(in[0], with_batch(env.rows(), out));
                  });
    }
    case 11: {  // stack with values of the same shape or per-example constants
      const std::int64_t pos = rng.integer(1, ra + 1);
      const std::int64_t arg = rng.chance(0.3) ? pos - (ra + 2) : pos;
      std::vector<int> inputs{v};
      std::vector<Constant> consts;
      std::vector<int> same;
      for (std::size_t w = 0; w < dims.size(); ++w)
        if (dims[w] == d) same.push_back(static_cast<int>(w));
      std::string text = "stack([" + x;
      for (std::int64_t k = rng.integer(1, 2); k > 0; --k) {
        if (rng.chance(0.5)) {
          inputs.push_back(rng.pick(same));
          text += ", " + name(inputs.back());
        } else {
          consts.push_back(constant(d, true));
          text += ", " + consts.back().str();
        }
      }
      Dims out = d;
      out.insert(out.begin() + (pos - 1), static_cast<std::int64_t>(inputs.size() + consts.size()));
      return step(text + "], " + std::to_string(arg) + ")", out,
                  [consts, arg](const auto& in, const Env& env) {
                    std::vector<bj::Tensor> ts(in.begin(), in.end());
                    for (const Constant& c : consts) ts.push_back(c.make(env));
                    return bj::stack(ts, arg);
                  },
                  inputs);
    }
    default: {  // unstack: restack reversed, or keep one piece
      const std::int64_t a = rng.integer(0, ra - 1);
      const std::int64_t arg = axis_arg(rng, a, r);
      const std::int64_t n = d[static_cast<std::size_t>(a)];
      if (r >= 2 && rng.chance(0.5)) {
        const std::int64_t j = rng.integer(0, n - 1);
        Dims out = d;
        out.erase(out.begin() + a);
        return step("unstack(" + x + ", " + std::to_string(arg) + ")[" + std::to_string(j) + "]", out,
                    [arg, j](const auto& in, const Env&) {
                      return bj::unstack(in[0], arg)[static_cast<std::size_t>(j)];
                    });
      }
      return step("stack(reversed(unstack(" + x + ", " + std::to_string(arg) + ")), " +
                      std::to_string(arg) + ")",
                  d, [arg](const auto& in, const Env&) {
                    auto pieces = bj::unstack(in[0], arg);
                    std::reverse(pieces.begin(), pieces.end());
                    return bj::stack(pieces, arg);
                  });
    }
  }
}

}  // namespace fuzz::gen
