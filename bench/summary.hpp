// The closing table of batchjac_bench: each benchmark's median time, its
// ratio to the analytic baseline of the same workload (batch included) and
// thread count, its median minor page faults per iteration, and its label if
// it set one (after the columns).
#pragma once

#include <benchmark/benchmark.h>

#include <algorithm>
#include <cstdio>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace bjbench {

// The counter each benchmark sets to its minor page faults per iteration.
inline constexpr const char* kFaultsCounter = "faults/call";

// What a registered benchmark (named "<workload>/<mode>/t:<threads>") is;
// `baseline` names the workload whose "analytic" run at the same thread count
// is the yardstick ("" for none).
struct Entry {
  std::string workload, mode;
  int threads;
  std::string baseline;
};

// The console output, plus each benchmark's median real time (the "median"
// aggregate when repetitions > 1, else the median of the runs) for the table.
class SummaryReporter : public benchmark::ConsoleReporter {
 public:
  using ConsoleReporter::ConsoleReporter;

  void ReportRuns(const std::vector<Run>& runs) override {
    ConsoleReporter::ReportRuns(runs);
    for (const Run& run : runs) {
      Result& result = results_[run.run_name.function_name];
      if (run.error_occurred) {
        result.error = run.error_message;
        continue;
      }
      if (!run.report_label.empty()) result.label = run.report_label;
      const double ms =
          run.GetAdjustedRealTime() / benchmark::GetTimeUnitMultiplier(run.time_unit) * 1e3;
      const auto faults = run.counters.find(kFaultsCounter);
      if (run.run_type == Run::RT_Aggregate) {
        if (run.aggregate_name != "median") continue;
        result.time.median = ms;
        if (faults != run.counters.end()) result.faults.median = faults->second.value;
      } else {
        result.time.samples.push_back(ms);
        if (faults != run.counters.end()) result.faults.samples.push_back(faults->second.value);
      }
    }
  }

  // One row per entry that ran, in the order given.
  void print_table(const std::vector<std::pair<std::string, Entry>>& entries) const {
    std::printf("\n%-22s %-34s %7s %12s %18s %12s\n", "workload", "mode", "threads", "median_ms",
                "ratio_to_analytic", kFaultsCounter);
    for (const auto& [name, entry] : entries) {
      const auto it = results_.find(name);
      if (it == results_.end()) continue;  // filtered out
      std::printf("%-22s %-34s %7d ", entry.workload.c_str(), entry.mode.c_str(), entry.threads);
      const std::optional<double> ms = it->second.time.get();
      if (!ms) {
        std::printf("%12s %18s %12s  %s\n", "-", "-", "-", it->second.error.c_str());
        continue;
      }
      std::printf("%12.5g ", *ms);
      const std::optional<double> base = baseline_ms(entry);
      if (base) {
        std::printf("%18.2f ", *ms / *base);
      } else {
        std::printf("%18s ", "-");
      }
      const std::optional<double> faults = it->second.faults.get();
      if (faults) {
        std::printf("%12.1f", *faults);
      } else {
        std::printf("%12s", "-");
      }
      if (it->second.label.empty()) {
        std::printf("\n");
      } else {
        std::printf("  %s\n", it->second.label.c_str());
      }
    }
  }

 private:
  // The "median" aggregate when repetitions > 1, else the median of the runs.
  struct Median {
    std::optional<double> median;
    std::vector<double> samples;
    std::optional<double> get() const {
      if (median) return median;
      if (samples.empty()) return std::nullopt;
      std::vector<double> s = samples;
      std::sort(s.begin(), s.end());
      const std::size_t k = s.size() / 2;
      return s.size() % 2 ? s[k] : (s[k - 1] + s[k]) / 2;
    }
  };
  struct Result {
    Median time;    // ms
    Median faults;  // per iteration
    std::string error;
    std::string label;  // the row's label (scalar/automatic: the path it took)
  };

  std::optional<double> baseline_ms(const Entry& entry) const {
    if (entry.baseline.empty()) return std::nullopt;
    const auto it =
        results_.find(entry.baseline + "/analytic/t:" + std::to_string(entry.threads));
    return it == results_.end() ? std::nullopt : it->second.time.get();
  }

  std::map<std::string, Result> results_;
};

}  // namespace bjbench
