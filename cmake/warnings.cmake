# Compiler warnings for batchjac's own targets; errors in the dev preset.
function(batchjac_set_warnings target)
  target_compile_options(${target} PRIVATE -Wall -Wextra -Wpedantic -Wshadow -Wno-psabi
    $<$<BOOL:${BATCHJAC_WARNINGS_AS_ERRORS}>:-Werror>)
endfunction()
