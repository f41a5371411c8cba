# Installs a built batchjac into a scratch prefix, then configures, builds and
# runs the consumer project beside this file against it, as a user would.
#
#   cmake -DBINARY_DIR=<batchjac build tree> [-DSOURCE_DIR=<consumer project>]
#         [-DCONFIG=<config>] -P run_install_test.cmake
#
# BINARY_DIR must already be built. SOURCE_DIR defaults to this directory.
# The consumer is built with the build tree's compiler, build type, flags and
# generator (read from its CMakeCache.txt), so sanitizer builds link.
cmake_minimum_required(VERSION 3.25)

set(test run_install_test)
# The main build's settings that the consumer must share.
set(forwarded CMAKE_GENERATOR CMAKE_CXX_COMPILER CMAKE_BUILD_TYPE CMAKE_CXX_FLAGS
              CMAKE_EXE_LINKER_FLAGS)
include("${CMAKE_CURRENT_LIST_DIR}/common.cmake")
if(NOT SOURCE_DIR)
  set(SOURCE_DIR "${CMAKE_CURRENT_LIST_DIR}")
endif()
if(NOT CONFIG)
  set(CONFIG "${cache_CMAKE_BUILD_TYPE}")
endif()

set(work "${BINARY_DIR}/install-test")
set(build "${work}/build")
install_into("${work}")

run(configure "${CMAKE_COMMAND}" -S "${SOURCE_DIR}" -B "${build}"
    -G "${cache_CMAKE_GENERATOR}"
    "-DCMAKE_PREFIX_PATH=${prefix}"
    "-DCMAKE_CXX_COMPILER=${cache_CMAKE_CXX_COMPILER}"
    "-DCMAKE_BUILD_TYPE=${cache_CMAKE_BUILD_TYPE}"
    "-DCMAKE_CXX_FLAGS=${cache_CMAKE_CXX_FLAGS}"
    "-DCMAKE_EXE_LINKER_FLAGS=${cache_CMAKE_EXE_LINKER_FLAGS}")

# The package must come from the scratch prefix, not from a system install.
file(STRINGS "${build}/CMakeCache.txt" found_dir REGEX "^batchjac_DIR:")
string(REGEX REPLACE "^batchjac_DIR:[A-Z]+=" "" found_dir "${found_dir}")
file(REAL_PATH "${prefix}" real_prefix)
file(REAL_PATH "${found_dir}" real_found_dir)
string(FIND "${real_found_dir}/" "${real_prefix}/" at)
if(NOT at EQUAL 0)
  message(FATAL_ERROR "run_install_test: batchjac was found in '${found_dir}', "
                      "expected under '${prefix}'")
endif()

run(build "${CMAKE_COMMAND}" --build "${build}" ${config_args})

set(exe "${build}/install_test")
if(NOT EXISTS "${exe}" AND EXISTS "${build}/${CONFIG}/install_test")
  set(exe "${build}/${CONFIG}/install_test")
endif()
run(run "${exe}")
