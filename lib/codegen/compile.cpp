#include "codegen/compile.hpp"

#include "codegen/arch.hpp"

#include <batchjac/codegen.hpp>

#include <xsimd/config/xsimd_config.hpp>

#include <dlfcn.h>
#include <pthread.h>
#include <fcntl.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <random>
#include <cerrno>
#include <csignal>
#include <sys/stat.h>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <optional>
#include <sstream>
#include <thread>
#include <unordered_map>
#include <vector>

extern char** environ;

namespace batchjac::codegen {

// The headers generated sources include, embedded at build time
// (cmake/codegen.cmake): the object does not depend on a source tree.
struct EmbeddedHeader {
  const char* path;
  const char* text;
};
extern const EmbeddedHeader kEmbeddedHeaders[];
extern const std::size_t kEmbeddedHeaderCount;

namespace {

CodeGeneration mode_from_env() {
  const char* text = std::getenv("BATCHJAC_CODEGEN");
  if (!text || !*text) return CodeGeneration::background;
  const std::string_view v(text);
  if (v == "0" || v == "off") return CodeGeneration::off;
  if (v == "1" || v == "immediate") return CodeGeneration::immediate;
  if (v == "background") return CodeGeneration::background;
  std::fprintf(stderr, "batchjac: ignoring BATCHJAC_CODEGEN=%s (expected off, background or immediate)\n", text);
  return CodeGeneration::background;
}

std::atomic<int>& mode_setting() {
  static std::atomic<int> mode{static_cast<int>(mode_from_env())};
  return mode;
}

std::string default_cache_directory() {
  if (const char* d = std::getenv("BATCHJAC_CODE_CACHE"); d && *d) return d;
  if (const char* d = std::getenv("XDG_CACHE_HOME"); d && *d) return std::string(d) + "/batchjac";
  if (const char* d = std::getenv("HOME"); d && *d) return std::string(d) + "/.cache/batchjac";
  return "/tmp/batchjac-" + std::to_string(::getuid());
}

struct Settings {
  std::mutex mutex;
  std::string directory = default_cache_directory();
};
// The state below is never destroyed: the worker's thread may still use it
// while the process exits.
Settings& settings() {
  static Settings& s = *new Settings;
  return s;
}

std::string compiler() {
  if (const char* c = std::getenv("BATCHJAC_CXX"); c && *c) return c;
  return BATCHJAC_CODEGEN_CXX;
}

struct Stats {
  std::atomic<std::size_t> compiled{0}, loaded{0}, failed{0}, pending{0}, runs{0};
  std::atomic<std::int64_t> compile_ns{0};
};
Stats& stats() {
  static Stats& s = *new Stats;
  return s;
}

std::uint64_t fnv1a(std::uint64_t h, std::string_view text) {
  for (const unsigned char c : text) h = (h ^ c) * 0x100000001b3ULL;
  return (h ^ 0xff) * 0x100000001b3ULL;  // a separator, so that parts cannot run together
}

std::string hex(std::uint64_t h) {
  char s[17];
  std::snprintf(s, sizeof s, "%016llx", static_cast<unsigned long long>(h));
  return s;
}

// What a generated source includes first (codegen/emit.cpp).
constexpr const char* kPrelude = "bj_prelude.hpp";
constexpr const char* kPreludeText = "#pragma once\n#include \"ops/elementwise_math.hpp\"\n#include <bit>\n#include <cstdint>\n";

std::uint64_t headers_hash() {
  std::uint64_t h = fnv1a(0xcbf29ce484222325ULL, kPreludeText);
  for (std::size_t i = 0; i < kEmbeddedHeaderCount; ++i)
    h = fnv1a(fnv1a(h, kEmbeddedHeaders[i].path), kEmbeddedHeaders[i].text);
  return h;
}

// A unique temporary name beside `path`, for writing then renaming into place.
// Random, so that processes of equal pids (containers sharing the cache) differ.
std::filesystem::path temporary(const std::filesystem::path& path) {
  static std::atomic<unsigned> counter{0};
  thread_local std::mt19937_64 rng{std::random_device{}()};
  return path.string() + "." + std::to_string(::getpid()) + "." + std::to_string(++counter) + "." +
         hex(rng()) + ".tmp";
}

bool write_file(const std::filesystem::path& path, std::string_view text) {
  std::error_code ec;
  if (std::filesystem::exists(path, ec)) return true;
  const std::filesystem::path tmp = temporary(path);
  {
    std::ofstream f(tmp, std::ios::binary);
    f.write(text.data(), static_cast<std::streamsize>(text.size()));
    if (!f) return false;
  }
  std::filesystem::rename(tmp, path, ec);
  if (ec) std::filesystem::remove(tmp, ec);
  return !ec;
}

struct Job {
  std::string source;
  std::string arch;
  std::string hash;
  std::shared_ptr<Module> module;
  std::string compiler;                  // its absolute path
  std::vector<std::string> environment;  // the compiler's, taken by the requesting thread
  std::string toolchain;                 // hex hash of the compiler's identity and the flags
};

bool load(const std::filesystem::path& object, Module& m) {
  void* handle = ::dlopen(object.c_str(), RTLD_NOW | RTLD_LOCAL);  // never closed: kernels outlive plans
  if (!handle) return false;
  void* primal = ::dlsym(handle, "bj_primal");
  void* sparse = ::dlsym(handle, "bj_sparse");
  if (!primal || !sparse) return false;
  m.primal.store(primal, std::memory_order_release);
  m.sparse.store(sparse, std::memory_order_release);
  return true;
}

// The compiler process running now (0: none), killed at exit.
std::atomic<pid_t>& running_compiler() {
  static std::atomic<pid_t> pid{0};
  return pid;
}

// Set at exit, before the running compiler is killed: its failure is not reported.
std::atomic<bool>& exiting() {
  static std::atomic<bool> flag{false};
  return flag;
}

// Runs args[0] (an absolute path) with `environment`, its standard output
// to `out` (stderr too if `with_errors`, else /dev/null); whether it exited
// with 0. The worker calls this: it reads no environment of the process,
// which a caller's setenv on another thread could change meanwhile.
bool run(std::vector<std::string> args, const std::vector<std::string>& environment, int out, bool with_errors) {
  if (exiting().load()) return false;  // no new compiler once exit has begun
  std::vector<char*> argv, envp;
  for (std::string& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  for (const std::string& e : environment) envp.push_back(const_cast<char*>(e.c_str()));
  envp.push_back(nullptr);
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, out, 1);
  if (with_errors) posix_spawn_file_actions_adddup2(&actions, out, 2);
  else posix_spawn_file_actions_addopen(&actions, 2, "/dev/null", O_WRONLY, 0);
  pid_t pid = 0;
  const int err = posix_spawn(&pid, argv[0], &actions, nullptr, argv.data(), envp.data());
  posix_spawn_file_actions_destroy(&actions);
  if (err != 0) {
    const std::string why = "batchjac: cannot run " + args[0] + ": " + std::strerror(err) + "\n";
    if (with_errors) (void)!::write(out, why.data(), why.size());
    return false;
  }
  running_compiler().store(pid);
  int status = 0;
  pid_t done = -1;
  while ((done = ::waitpid(pid, &status, 0)) < 0 && errno == EINTR) {
  }
  running_compiler().store(0);
  return done == pid && WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

// Runs the job's compiler with `args`, its messages to `log`.
bool run_compiler(const Job& job, std::vector<std::string> args, const std::filesystem::path& log) {
  const int fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return false;
  args.insert(args.begin(), job.compiler);
  const bool ok = run(std::move(args), job.environment, fd, true);
  ::close(fd);
  return ok;
}

// The standard output of `args` (nullopt if it fails or prints nothing).
std::optional<std::string> output_of(std::vector<std::string> args, const std::vector<std::string>& environment) {
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) return std::nullopt;
  std::string text;
  std::thread reader([&] {  // a long output must not fill the pipe while run() waits
    char chunk[256];
    for (ssize_t n; (n = ::read(fds[0], chunk, sizeof chunk)) > 0;) text.append(chunk, std::size_t(n));
  });
  const bool ok = run(std::move(args), environment, fds[1], false);
  ::close(fds[1]);
  reader.join();
  ::close(fds[0]);
  if (!ok || text.empty()) return std::nullopt;
  return text;
}

// `name` as an absolute path: itself if it has a slash, else the first
// executable of that name on PATH; nullopt if there is none.
std::optional<std::string> resolve(const std::string& name) {
  if (name.find('/') != std::string::npos) return name;
  const char* path = std::getenv("PATH");
  std::istringstream dirs(path ? path : "/usr/local/bin:/usr/bin:/bin");
  for (std::string d; std::getline(dirs, d, ':');) {
    const std::string candidate = (d.empty() ? "." : d) + "/" + name;
    if (::access(candidate.c_str(), X_OK) == 0) return candidate;
  }
  return std::nullopt;
}

// The process's environment now (the compiler runs with it).
std::vector<std::string> environment_now() {
  std::vector<std::string> env;
  for (char** e = environ; e && *e; ++e) env.emplace_back(*e);
  return env;
}

void warn_once(const std::string& what) {
  static std::once_flag once;
  std::call_once(once, [&] {
    std::fprintf(stderr, "batchjac: code generation failed (%s); the interpreter runs instead\n", what.c_str());
  });
}

// The flags of every compilation of instruction set `arch`, precompiled
// prelude included (it is used only under the same flags).
std::vector<std::string> compile_flags(const std::string& arch, const std::filesystem::path& include) {
  std::vector<std::string> args{"-std=c++20", "-O2", "-fPIC", "-ffp-contract=off", "-w"};
  std::istringstream flags{std::string(find_arch(arch)->flags)};
  for (std::string f; flags >> f;) args.push_back(f);
  if (!include.empty()) args.push_back("-I" + include.string());
  std::istringstream dirs(BATCHJAC_CODEGEN_INCLUDES);
  for (std::string d; std::getline(dirs, d, '|');)
    if (!d.empty()) args.push_back("-I" + d);
  return args;
}

// What decides a generated object's bits besides its source, as a hex hash:
// the compiler (its `--version`, run once per process and name), the flags,
// the include directories and xsimd's version, the embedded headers.
// nullopt if the compiler does not run.
std::optional<std::string> toolchain(const std::string& cxx, const std::string& arch,
                                     const std::vector<std::string>& environment) {
  static std::mutex& mutex = *new std::mutex;
  static std::unordered_map<std::string, std::optional<std::string>>& known =
      *new std::unordered_map<std::string, std::optional<std::string>>;
  const std::lock_guard<std::mutex> lock(mutex);
  const std::string key = cxx + '\n' + arch;
  if (auto it = known.find(key); it != known.end()) return it->second;
  const std::optional<std::string> version = output_of({cxx, "--version"}, environment);
  std::optional<std::string> result;
  if (version) {
    std::uint64_t h = fnv1a(0xcbf29ce484222325ULL, cxx);
    h = fnv1a(h, *version);
    for (const std::string& f : compile_flags(arch, "")) h = fnv1a(h, f);
    h = fnv1a(h, std::to_string(XSIMD_VERSION_MAJOR * 10000 + XSIMD_VERSION_MINOR * 100 + XSIMD_VERSION_PATCH));
    h = fnv1a(h, hex(headers_hash()));
    result = hex(h);
  }
  known.emplace(key, result);
  return result;
}

// Whether `dir` is safe to load code from: a directory of this user's that
// no one else may write to (a shared /tmp fallback could be planted).
bool trusted(const std::filesystem::path& dir) {
  struct stat st{};
  if (::lstat(dir.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) return false;
  return st.st_uid == ::getuid() && (st.st_mode & (S_IWGRP | S_IWOTH)) == 0;
}

// The job's module will not load: counted, marked, and the user told why.
void fail(const Job& job, const std::string& why) {
  ++stats().failed;
  job.module->failed.store(true, std::memory_order_release);
  warn_once(why);
}

// Loads the job's object from the cache, or compiles it there first.
void build(const Job& job) {
  namespace fs = std::filesystem;
  std::string directory;
  {
    std::lock_guard<std::mutex> lock(settings().mutex);
    directory = settings().directory;
  }
  const fs::path dir(directory);
  const fs::path object = dir / (job.hash + ".so");
  std::error_code ec;
  if (!fs::exists(dir, ec)) {
    fs::create_directories(dir.parent_path(), ec);
    ::mkdir(dir.c_str(), 0700);
  }
  if (!trusted(dir)) {
    fail(job, dir.string() + " is not a directory of this user's that only it can write");
    return;
  }
  if (fs::exists(object, ec) && load(object, *job.module)) {
    ++stats().loaded;
    return;
  }
  const auto start = std::chrono::steady_clock::now();
  const fs::path include = dir / ("include-" + hex(headers_hash()));
  bool ok = true;
  for (std::size_t i = 0; ok && i < kEmbeddedHeaderCount; ++i) {
    const fs::path h = include / kEmbeddedHeaders[i].path;
    fs::create_directories(h.parent_path(), ec);
    ok = !ec && write_file(h, kEmbeddedHeaders[i].text);
  }
  // The prelude every generated source starts with, precompiled once per
  // instruction set (the compiler falls back to the text if the precompiled
  // header does not fit).
  const std::vector<std::string> flags = compile_flags(job.arch, include);
  const fs::path pch_dir = include / ("pch-" + job.arch + "-" + job.toolchain);
  ok = ok && write_file(include / kPrelude, kPreludeText);
  if (ok && !fs::exists(pch_dir / (std::string(kPrelude) + ".gch"), ec)) {
    fs::create_directories(pch_dir, ec);
    const fs::path gch = pch_dir / (std::string(kPrelude) + ".gch");
    const fs::path gch_tmp = temporary(gch);
    std::vector<std::string> args = flags;
    args.insert(args.end(), {"-x", "c++-header", (include / kPrelude).string(), "-o", gch_tmp.string()});
    if (run_compiler(job, std::move(args), dir / (job.hash + ".pch.log"))) fs::rename(gch_tmp, gch, ec);
    fs::remove(gch_tmp, ec);
    fs::remove(dir / (job.hash + ".pch.log"), ec);
  }
  const fs::path source = dir / (job.hash + ".cpp");
  const fs::path log = dir / (job.hash + ".log");
  ok = ok && write_file(source, job.source);
  const fs::path tmp = temporary(object);
  if (ok) {
    std::vector<std::string> args{"-I" + pch_dir.string()};
    args.insert(args.end(), flags.begin(), flags.end());
    args.insert(args.end(), {"-shared", source.string(), "-o", tmp.string()});
    ok = run_compiler(job, std::move(args), log);
  }
  if (ok) {
    fs::rename(tmp, object, ec);  // atomic: another process sees the whole object or none
    ok = !ec && load(object, *job.module);
  }
  fs::remove(tmp, ec);
  if (!ok && exiting().load()) {  // killed at exit: nothing failed
    fs::remove(log, ec);
    return;
  }
  stats().compile_ns += std::chrono::duration_cast<std::chrono::nanoseconds>(
                            std::chrono::steady_clock::now() - start).count();
  if (ok) {
    fs::remove(log, ec);
    ++stats().compiled;
  } else {
    fail(job, "see " + log.string());
  }
}

// One background thread compiles queued jobs in order. It is never joined:
// at exit the compiler it runs is killed (its temporary output stays behind)
// and what is queued is dropped; a forked child starts a worker of its own.
class Worker {
 public:
  void push(Job job) {
    std::lock_guard<std::mutex> lock(mutex_);
    ++stats().pending;
    queue_.push_back(std::move(job));
    if (!started_) {
      std::thread([this] { loop(); }).detach();
      started_ = true;
    }
    wake_.notify_all();
  }
  void wait() {
    std::unique_lock<std::mutex> lock(mutex_);
    idle_.wait(lock, [&] { return queue_.empty() && !busy_; });
  }

 private:
  void loop() {
    std::unique_lock<std::mutex> lock(mutex_);
    for (;;) {
      wake_.wait(lock, [&] { return !queue_.empty(); });
      Job job = std::move(queue_.front());
      queue_.pop_front();
      busy_ = true;
      lock.unlock();
      build(job);
      --stats().pending;
      lock.lock();
      busy_ = false;
      idle_.notify_all();
    }
  }

  std::mutex mutex_;
  std::condition_variable wake_, idle_;
  std::deque<Job> queue_;
  bool busy_ = false, started_ = false;
};

std::atomic<Worker*>& worker_pointer() {
  static std::atomic<Worker*> w{nullptr};
  return w;
}

Worker& worker() {
  static const bool once = [] {
    settings();
    stats();
    worker_pointer().store(new Worker);
    // A forked child has none of the parent's threads: a new worker, no jobs.
    ::pthread_atfork(nullptr, nullptr, [] {
      worker_pointer().store(new Worker);  // the parent's, with its locks, is abandoned
      stats().pending.store(0);
      running_compiler().store(0);  // the parent's, not the child's to kill
      exiting().store(false);
    });
    std::atexit([] {
      exiting().store(true);
      if (const pid_t pid = running_compiler().load()) ::kill(pid, SIGTERM);
    });
    return true;
  }();
  (void)once;
  return *worker_pointer().load();
}

// Every object requested in this process, by hash: equal sources share one.
struct Registry {
  std::mutex mutex;
  std::unordered_map<std::string, std::shared_ptr<Module>> modules;
};
Registry& registry() {
  static Registry& r = *new Registry;
  return r;
}

}  // namespace

bool enabled() { return code_generation() != CodeGeneration::off; }

void forget_modules() {
  std::lock_guard<std::mutex> lock(registry().mutex);
  registry().modules.clear();
}

void count_generated_run() { stats().runs.fetch_add(1, std::memory_order_relaxed); }

std::shared_ptr<const Module> request(std::string source, std::string_view arch) {
  const CodeGeneration mode = code_generation();
  if (mode == CodeGeneration::off || !find_arch(arch) || exiting().load()) return nullptr;
  // The compiler and its environment are taken here, on the requesting
  // thread, as any getenv of the library; the worker reads neither.
  const std::string cxx = compiler();
  std::vector<std::string> environment = environment_now();
  const std::optional<std::string> path = resolve(cxx);
  const std::optional<std::string> tools = path ? toolchain(*path, std::string(arch), environment) : std::nullopt;
  if (!tools) {  // no working compiler: the interpreter runs
    ++stats().failed;
    warn_once(cxx + " --version fails");
    return nullptr;
  }
  std::uint64_t h = fnv1a(0xcbf29ce484222325ULL, source);
  h = fnv1a(h, *tools);
  Job job{std::move(source), std::string(arch), hex(h), nullptr, *path, std::move(environment), *tools};
  {
    Registry& r = registry();
    std::lock_guard<std::mutex> lock(r.mutex);
    auto [it, fresh] = r.modules.try_emplace(job.hash);
    if (!fresh) return it->second;
    it->second = std::make_shared<Module>();
    job.module = it->second;
  }
  std::shared_ptr<const Module> module = job.module;
  if (mode == CodeGeneration::immediate) {
    // Requests of other sources compile meanwhile on their own threads; one
    // of the same source waits for nothing, and finds null entry points
    // until this one is loaded (the interpreter runs).
    build(job);
  } else {
    worker().push(std::move(job));
  }
  return module;
}

}  // namespace batchjac::codegen

namespace batchjac {

void set_code_generation(CodeGeneration mode) {
  codegen::mode_setting().store(static_cast<int>(mode));
}
CodeGeneration code_generation() {
  return static_cast<CodeGeneration>(codegen::mode_setting().load());
}

void set_code_cache_directory(const std::string& path) {
  std::lock_guard<std::mutex> lock(codegen::settings().mutex);
  codegen::settings().directory = path.empty() ? codegen::default_cache_directory() : path;
}
std::string code_cache_directory() {
  std::lock_guard<std::mutex> lock(codegen::settings().mutex);
  return codegen::settings().directory;
}

CodeGenerationStats code_generation_stats() {
  const codegen::Stats& s = codegen::stats();
  CodeGenerationStats out;
  out.compiled = s.compiled.load();
  out.loaded = s.loaded.load();
  out.failed = s.failed.load();
  out.pending = s.pending.load();
  out.compile_seconds = double(s.compile_ns.load()) * 1e-9;
  out.generated_runs = s.runs.load();
  return out;
}

void wait_for_code_generation() { codegen::worker().wait(); }

}  // namespace batchjac
