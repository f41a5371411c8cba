# Installs a built batchjac into a scratch prefix, then builds the consumer
# beside this file (main.cpp) with one plain compiler call and the flags of
# `pkg-config --cflags --libs batchjac`, as a Makefile would, and runs it.
#
#   cmake -DBINARY_DIR=<batchjac build tree> -DPKG_CONFIG=<pkg-config>
#         [-DCONFIG=<config>] -P run_pkg_config_test.cmake
#
# The compiler and its flags (sanitizers) come from the build tree's cache.
cmake_minimum_required(VERSION 3.25)

set(test run_pkg_config_test)
set(forwarded CMAKE_CXX_COMPILER CMAKE_CXX_FLAGS CMAKE_EXE_LINKER_FLAGS)
include("${CMAKE_CURRENT_LIST_DIR}/common.cmake")
if(NOT PKG_CONFIG)
  message(FATAL_ERROR "run_pkg_config_test: PKG_CONFIG must name the pkg-config program")
endif()

set(work "${BINARY_DIR}/pkg-config-test")
install_into("${work}")

# Only the scratch prefix's batchjac.pc (the system's .pc files stay visible
# for tbb). GNUInstallDirs may pick lib or lib64.
file(GLOB pc_files "${prefix}/*/pkgconfig/batchjac.pc" "${prefix}/*/*/pkgconfig/batchjac.pc")
list(LENGTH pc_files n_pc)
if(NOT n_pc EQUAL 1)
  message(FATAL_ERROR "run_pkg_config_test: expected one installed batchjac.pc, found '${pc_files}'")
endif()
get_filename_component(pc_dir "${pc_files}" DIRECTORY)
set(ENV{PKG_CONFIG_PATH} "${pc_dir}")
execute_process(COMMAND "${PKG_CONFIG}" --cflags --libs batchjac RESULT_VARIABLE rc
                OUTPUT_VARIABLE flags OUTPUT_STRIP_TRAILING_WHITESPACE)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "run_pkg_config_test: pkg-config --cflags --libs batchjac failed (${rc})")
endif()
message(STATUS "pkg-config --cflags --libs batchjac: ${flags}")
# The include and library paths lead into the scratch prefix (relative to
# the .pc file's own directory: the package is relocatable).
foreach(kind IN ITEMS -I -L)
  string(FIND "${flags}" "${kind}${prefix}/" at)
  if(at EQUAL -1)
    message(FATAL_ERROR "run_pkg_config_test: no ${kind} path into '${prefix}' in '${flags}'")
  endif()
endforeach()

separate_arguments(flag_list UNIX_COMMAND "${flags}")
separate_arguments(cxx_flags UNIX_COMMAND "${cache_CMAKE_CXX_FLAGS}")
separate_arguments(ld_flags UNIX_COMMAND "${cache_CMAKE_EXE_LINKER_FLAGS}")
set(exe "${work}/consumer")
# One compiler call, compile and link, as in a Makefile.
run(build "${cache_CMAKE_CXX_COMPILER}" -std=c++20 ${cxx_flags} "${CMAKE_CURRENT_LIST_DIR}/main.cpp"
    -o "${exe}" ${flag_list} ${ld_flags})
run(run "${exe}")
