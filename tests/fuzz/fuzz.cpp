// batchjac_fuzz: random programs of the public ops, each checked for the
// properties batch_jacobian promises (checks.cpp):
//   forward == reverse, sparse form == dense form (BATCHJAC_SPARSE=1 / 0),
//   bitwise identical across max_threads {1, 2}, parallel_iterations
//   {1, 3, unset} and experimental_use_pfor {true, false} per mode and form,
//   and when the program is recorded again (its kept plan runs),
//   automatic == one of them, batch_jacobian_into == batch_jacobian,
//   == GradientTape::jacobian of each example alone (x[i:i+1]),
//   == central differences of the program in float64 (float32 programs: the
//   float32 Jacobian follows the float64 one), finite, right shapes, no throw.
// Programs (generate*.cpp) are 1-14 steps of elementwise ops with NumPy
// broadcasting against values, shared and per-example constants, where with
// comparisons, reductions, index ops, softmax, cumsum and matmul, on x
// [b, n...] with b in {1, 3, 7, 8, 9, 15, 16, 17, 33}, float32 or float64;
// mostly the target also joins the values no later step reads.
// Every op's input is kept in its domain and a margin away from kinks, ties
// and comparison thresholds, so a finite-difference mismatch is a real one.
//
// Usage:
//   batchjac_fuzz [--seed S] [--seconds T] [--programs N] [--first K]
//                 [--keep-going] [--no-minimize] [--verbose]
//   batchjac_fuzz --program-seed P [--steps K] [--prune] [--batch B] [--dtype float32|float64]
// Without --seconds or --programs it runs 100 programs; with both, it stops
// at whichever comes first. Without --seed it picks one and prints it.
//
// Replay: program k of a run is drawn from mix(S, k) alone (its "program
// seed" P), whatever ran before it, so a failure prints
//   batchjac_fuzz --seed S --first k --programs 1   (== --program-seed P)
// and, unless --no-minimize, the shortest prefix of its steps, without the
// steps its target does not read, and the smallest batch that fail the same
// check, as --program-seed P --steps K --prune --batch B. --steps keeps the
// first K steps (the target is step K); --prune drops unread steps (the
// description keeps the value numbers);
// --batch and --dtype override the drawn ones (a smaller batch keeps the
// first rows of x and of per-example constants; margins were checked on the
// drawn batch and dtype). A crash or a hang (--hang-seconds, default 300)
// prints the replay line of the program that was running.
//
// --keep-going checks every program and ends with a table of failure
// classes (the check that failed, e.g. "options change bits [forward,
// dense]"), each with a count and the replay of its smallest program; the
// exit status is 1 if anything failed. Longer runs: --seconds 3600, or
// several seeds in parallel (one per core), the asan build's binary, or
// BATCHJAC_ARCH=sse42|avx2 for the other kernels; --verbose prints each
// program and, at the end, how close each check came to its tolerance.
// Tolerances scale with each example's magnitude bound (the size of the
// terms an entry is summed from, checks.cpp), so cancelling programs hold
// rounding of their terms' size; BATCHJAC_FUZZ_PERTURB=r (e.g. 1e-3) makes
// reverse mode's largest entry per example wrong by r, and "forward vs
// reverse" must then fail: a self-test of the tolerances.
#include "fuzz/checks.hpp"
#include "fuzz/program.hpp"

#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <iostream>
#include <map>
#include <random>
#include <set>
#include <thread>
#include <unistd.h>

namespace {

namespace bj = batchjac;
using fuzz::Program;
using Clock = std::chrono::steady_clock;

struct Args {
  std::uint64_t seed = 0;
  bool seed_given = false;
  double seconds = 0;
  std::int64_t programs = 0;
  std::int64_t first = 0;
  std::optional<std::uint64_t> program_seed;
  std::optional<std::size_t> steps;
  std::optional<std::int64_t> batch;
  std::optional<bj::DType> dtype;
  bool prune = false;
  bool keep_going = false, minimize = true, verbose = false;
  double hang_seconds = 300;
};

[[noreturn]] void usage(const char* why) {
  std::fprintf(stderr,
               "batchjac_fuzz: %s\nusage: batchjac_fuzz [--seed S] [--seconds T] [--programs N] "
               "[--first K] [--keep-going] [--no-minimize] [--verbose] [--hang-seconds H]\n"
               "       batchjac_fuzz --program-seed P [--steps K] [--prune] [--batch B] [--dtype "
               "float32|float64]\n(see the top of tests/fuzz/fuzz.cpp)\n",
               why);
  std::exit(2);
}

Args parse(int argc, char** argv) {
  Args a;
  for (int i = 1; i < argc; ++i) {
    const std::string k = argv[i];
    auto next = [&]() -> std::string {
      if (i + 1 >= argc) usage(("missing value after " + k).c_str());
      return argv[++i];
    };
    auto u64 = [&] {
      const std::string v = next();
      char* end = nullptr;
      const auto r = std::strtoull(v.c_str(), &end, 0);
      if (end == v.c_str() || *end) usage(("not a number: " + v).c_str());
      return static_cast<std::uint64_t>(r);
    };
    if (k == "--seed") a.seed = u64(), a.seed_given = true;
    else if (k == "--seconds") a.seconds = std::stod(next());
    else if (k == "--programs") a.programs = static_cast<std::int64_t>(u64());
    else if (k == "--first") a.first = static_cast<std::int64_t>(u64());
    else if (k == "--program-seed") a.program_seed = u64();
    else if (k == "--steps") a.steps = static_cast<std::size_t>(u64());
    else if (k == "--prune") a.prune = true;
    else if (k == "--batch") a.batch = static_cast<std::int64_t>(u64());
    else if (k == "--dtype") {
      const std::string v = next();
      if (v != "float32" && v != "float64") usage("--dtype is float32 or float64");
      a.dtype = v == "float32" ? bj::float32 : bj::float64;
    } else if (k == "--keep-going") a.keep_going = true;
    else if (k == "--no-minimize") a.minimize = false;
    else if (k == "--verbose") a.verbose = true;
    else if (k == "--hang-seconds") a.hang_seconds = std::stod(next());
    else usage(("unknown option " + k).c_str());
  }
  if (a.program_seed) a.programs = 1;
  if (a.seconds <= 0 && a.programs <= 0) a.programs = 100;
  return a;
}

std::string hex(std::uint64_t v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "0x%016llx", static_cast<unsigned long long>(v));
  return buf;
}

// ---- crash and hang reports: the replay line of the running program -------------

char g_running[512] = "";
std::atomic<std::int64_t> g_started_ms{-1};

void on_fatal(int sig) {
  const char* head = "\nbatchjac_fuzz: fatal signal while running: ";
  (void)!::write(2, head, std::strlen(head));
  (void)!::write(2, g_running, std::strlen(g_running));
  std::signal(sig, SIG_DFL);  // then the default action (or a sanitizer's report via abort)
  std::raise(sig);
}

std::int64_t now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now().time_since_epoch()).count();
}

void watchdog(double limit_s) {
  for (;;) {
    std::this_thread::sleep_for(std::chrono::seconds(1));
    const std::int64_t s = g_started_ms.load();
    if (s >= 0 && static_cast<double>(now_ms() - s) > limit_s * 1000) {
      std::fprintf(stderr, "\nbatchjac_fuzz: a program has run for over %.0f s: %s", limit_s, g_running);
      std::abort();
    }
  }
}

// ---- one program ------------------------------------------------------------------

Program make(std::uint64_t program_seed, const Args& a) {
  Program p = fuzz::generate(program_seed);
  if (a.steps && *a.steps >= 1 && *a.steps < p.steps.size()) p.steps.resize(*a.steps);
  if (a.prune) p.prune();
  if (a.batch) p.batch = *a.batch;
  if (a.dtype) p.dtype = *a.dtype;
  return p;
}

bool fails_class(const Program& p, const std::string& cls, fuzz::Headroom& head) {
  for (const auto& f : fuzz::check_program(p, head))
    if (f.check == cls) return true;
  return false;
}

// The shortest prefix of steps, then the steps it reads, then the smallest
// batch, that still fail `cls`; as options of make().
Args minimize(const Program& p, const Args& a, std::uint64_t ps, const std::string& cls) {
  fuzz::Headroom scratch;
  Args m = a;
  m.steps = p.steps.size();
  m.batch = p.batch;
  for (std::size_t k = 1; k < p.steps.size(); ++k) {
    m.steps = k;
    if (fails_class(make(ps, m), cls, scratch)) break;
    m.steps = p.steps.size();
  }
  m.prune = true;  // without the steps the target does not read
  if (!fails_class(make(ps, m), cls, scratch)) m.prune = false;
  for (std::int64_t b : {1, 3, 7, 8, 9, 15, 16, 17}) {
    if (b >= p.batch) break;
    m.batch = b;
    if (fails_class(make(ps, m), cls, scratch)) break;
    m.batch = p.batch;
  }
  return m;
}

struct ClassSummary {
  std::int64_t count = 0;
  std::string replay;
  std::size_t steps = 0;
};

}  // namespace

int main(int argc, char** argv) {
  Args a = parse(argc, argv);
  const std::string self = argv[0];  // replay lines name this binary as it was run
  if (!a.seed_given) a.seed = std::random_device{}() * 0x100000001ull ^ static_cast<std::uint64_t>(now_ms());
  if (a.program_seed) std::printf("batchjac_fuzz: program seed %s\n", hex(*a.program_seed).c_str());
  else std::printf("batchjac_fuzz: seed %llu\n", static_cast<unsigned long long>(a.seed));
  std::fflush(stdout);
  for (int sig : {SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGABRT}) std::signal(sig, on_fatal);
  std::thread(watchdog, a.hang_seconds).detach();

  const auto start = Clock::now();
  auto elapsed = [&] { return std::chrono::duration<double>(Clock::now() - start).count(); };
  fuzz::Headroom head;
  std::map<std::string, ClassSummary> classes;
  std::int64_t run = 0, failed = 0;
  for (std::int64_t k = a.first;; ++k) {
    if (a.programs > 0 && run >= a.programs) break;
    if (a.seconds > 0 && elapsed() >= a.seconds) break;
    const std::uint64_t ps = a.program_seed ? *a.program_seed : fuzz::mix(a.seed, static_cast<std::uint64_t>(k));
    const std::string replay =
        a.program_seed ? self + " --program-seed " + hex(ps)
                       : self + " --seed " + std::to_string(a.seed) + " --first " + std::to_string(k) +
                             " --programs 1   (program seed " + hex(ps) + ")";
    std::snprintf(g_running, sizeof g_running, "program %lld: %s\n", static_cast<long long>(k), replay.c_str());
    g_started_ms = now_ms();
    const double t0 = elapsed();
    Program p;
    std::vector<fuzz::Failure> fails;
    try {
      p = make(ps, a);
      fails = fuzz::check_program(p, head);
    } catch (const std::exception& e) {  // the generator evaluates ops eagerly too
      fails.push_back({"exception while generating", e.what()});
    }
    g_started_ms = -1;
    ++run;
    if (a.verbose)
      std::printf("program %lld (%s): %s b=%lld, %zu steps, %.2f s\n%s", static_cast<long long>(k),
                  hex(ps).c_str(), std::string(bj::dtype_name(p.dtype)).c_str(),
                  static_cast<long long>(p.batch), p.steps.size(), elapsed() - t0, p.describe().c_str());
    if (fails.empty()) continue;
    ++failed;
    std::printf("\nFAIL program %lld of seed %llu (program seed %s):\n", static_cast<long long>(k),
                static_cast<unsigned long long>(a.seed), hex(ps).c_str());
    for (const auto& f : fails) std::printf("  %s: %s\n", f.check.c_str(), f.detail.c_str());
    std::printf(" program:\n%s replay: %s\n", p.describe().c_str(), replay.c_str());
    std::string small = replay;
    std::size_t small_steps = p.steps.size();
    if (a.minimize && !p.steps.empty()) {
      const Args m = minimize(p, a, ps, fails[0].check);
      const Program q = make(ps, m);
      small = self + " --program-seed " + hex(ps) + " --steps " + std::to_string(*m.steps) +
              (m.prune ? " --prune" : "") + " --batch " + std::to_string(*m.batch) +
              (m.dtype ? " --dtype " + std::string(bj::dtype_name(*m.dtype)) : "");
      small_steps = q.steps.size();
      std::printf(" smallest failing \"%s\": %s\n%s", fails[0].check.c_str(), small.c_str(),
                  q.describe().c_str());
    }
    std::fflush(stdout);
    std::set<std::string> seen;  // a class counts once per program
    for (const auto& f : fails) {
      if (!seen.insert(f.check).second) continue;
      auto& c = classes[f.check];
      if (c.count++ == 0 || small_steps < c.steps) c.replay = small, c.steps = small_steps;
    }
    if (!a.keep_going) break;
  }
  std::printf("\nbatchjac_fuzz: %lld programs in %.1f s, %lld failed (%s)\n", static_cast<long long>(run),
              elapsed(), static_cast<long long>(failed),
              a.program_seed ? ("program seed " + hex(*a.program_seed)).c_str()
                             : ("seed " + std::to_string(a.seed)).c_str());
  if (a.verbose) {
    std::printf("largest error / tolerance per check:\n");
    for (const auto& [check, r] : head) std::printf("  %-40s %.3g\n", check.c_str(), r);
  }
  if (!classes.empty()) {
    std::printf("failure classes:\n");
    for (const auto& [check, c] : classes)
      std::printf("  %-45s %5lld programs; smallest: %s\n", check.c_str(), static_cast<long long>(c.count),
                  c.replay.c_str());
  }
  return failed ? 1 : 0;
}
