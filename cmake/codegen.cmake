# Generated code (lib/codegen): the headers a generated kernel includes are
# embedded in the library, so that compiling one at run time needs no source
# tree; the compiler and xsimd's include directories are the build's.
set(BATCHJAC_CODEGEN_HEADERS
  lib/ops/elementwise_math.hpp
  include/batchjac/detail/simd_negate.hpp
  include/batchjac/detail/simd_pow.hpp)
list(JOIN BATCHJAC_CODEGEN_HEADERS "|" BATCHJAC_CODEGEN_HEADER_LIST)
set(BATCHJAC_CODEGEN_EMBEDDED ${PROJECT_BINARY_DIR}/codegen_headers.cpp)
add_custom_command(
  OUTPUT ${BATCHJAC_CODEGEN_EMBEDDED}
  COMMAND ${CMAKE_COMMAND} -DOUT=${BATCHJAC_CODEGEN_EMBEDDED} -DROOT=${PROJECT_SOURCE_DIR}
          -DHEADERS=${BATCHJAC_CODEGEN_HEADER_LIST} -P ${PROJECT_SOURCE_DIR}/cmake/embed_headers.cmake
  DEPENDS ${BATCHJAC_CODEGEN_HEADERS} ${PROJECT_SOURCE_DIR}/cmake/embed_headers.cmake
  WORKING_DIRECTORY ${PROJECT_SOURCE_DIR}
  COMMENT "Embedding the headers of generated kernels"
  VERBATIM)
target_sources(batchjac PRIVATE ${BATCHJAC_CODEGEN_EMBEDDED})
get_target_property(BATCHJAC_XSIMD_INCLUDES xsimd INTERFACE_INCLUDE_DIRECTORIES)
get_target_property(BATCHJAC_XTL_INCLUDES xtl INTERFACE_INCLUDE_DIRECTORIES)
list(JOIN BATCHJAC_XSIMD_INCLUDES "|" BATCHJAC_XSIMD_INCLUDES)
list(JOIN BATCHJAC_XTL_INCLUDES "|" BATCHJAC_XTL_INCLUDES)
set_property(SOURCE lib/codegen/compile.cpp APPEND PROPERTY COMPILE_DEFINITIONS
  "BATCHJAC_CODEGEN_CXX=\"${CMAKE_CXX_COMPILER}\""
  "BATCHJAC_CODEGEN_INCLUDES=\"${BATCHJAC_XSIMD_INCLUDES}|${BATCHJAC_XTL_INCLUDES}\"")
# dlopen (in glibc itself since 2.34; older systems need libdl).
target_link_libraries(batchjac PRIVATE ${CMAKE_DL_LIBS})
