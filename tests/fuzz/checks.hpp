// The properties every fuzz program must have (see fuzz.cpp's top comment).
#pragma once

#include "fuzz/program.hpp"

#include <map>
#include <string>
#include <vector>

namespace fuzz {

struct Failure {
  std::string check;   // the failure class, e.g. "forward vs reverse [dense]"
  std::string detail;  // the first mismatching entry, the options involved
};

// The largest error seen per check, as a fraction of its tolerance: how much
// headroom the tolerances have (printed with --verbose).
using Headroom = std::map<std::string, double>;

// Records p under a tape and runs every check; returns every failing check
// (empty: all hold). Library exceptions are failures too.
std::vector<Failure> check_program(const Program& p, Headroom& headroom);

}  // namespace fuzz
