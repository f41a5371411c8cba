# What both install tests share (included by run_install_test.cmake and
# run_pkg_config_test.cmake): the build tree's settings, a checked step, and
# installing into a scratch prefix.
#
# Before including: BINARY_DIR (a configured, built batchjac tree), `test`
# (the script's name, for messages), `forwarded` (the cache variables to read
# as cache_<NAME>), CONFIG (optional).

if(NOT BINARY_DIR OR NOT EXISTS "${BINARY_DIR}/CMakeCache.txt")
  message(FATAL_ERROR "${test}: BINARY_DIR must be a configured and built batchjac "
                      "build tree, got '${BINARY_DIR}'")
endif()

file(STRINGS "${BINARY_DIR}/CMakeCache.txt" cache_lines REGEX "^[A-Za-z_]+(:[A-Z]+)?=")
foreach(line IN LISTS cache_lines)
  if(line MATCHES "^([A-Za-z_]+)(:[A-Z]+)?=(.*)$" AND CMAKE_MATCH_1 IN_LIST forwarded)
    set(cache_${CMAKE_MATCH_1} "${CMAKE_MATCH_3}")
  endif()
endforeach()

function(run step)
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE rc COMMAND_ECHO STDOUT)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "${test}: ${step} failed (${rc})")
  endif()
endfunction()

# Installs the build tree into <work>/prefix (work emptied first).
macro(install_into work)
  set(config_args)
  if(CONFIG)
    set(config_args --config "${CONFIG}")
  endif()
  set(prefix "${work}/prefix")
  file(REMOVE_RECURSE "${work}")
  run(install "${CMAKE_COMMAND}" --install "${BINARY_DIR}" --prefix "${prefix}" ${config_args})
endmacro()
