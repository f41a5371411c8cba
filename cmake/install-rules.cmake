# Install rules: headers, the static library, and a package config that finds
# the private dependencies (a static library's users link them too).
include(GNUInstallDirs)
include(CMakePackageConfigHelpers)

install(DIRECTORY include/batchjac DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
install(TARGETS batchjac EXPORT batchjacTargets
        ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR})
install(EXPORT batchjacTargets NAMESPACE batchjac::
        DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/batchjac)
configure_package_config_file(cmake/batchjacConfig.cmake.in
  ${PROJECT_BINARY_DIR}/batchjacConfig.cmake
  INSTALL_DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/batchjac)
write_basic_package_version_file(${PROJECT_BINARY_DIR}/batchjacConfigVersion.cmake
  COMPATIBILITY SameMajorVersion)
install(FILES ${PROJECT_BINARY_DIR}/batchjacConfig.cmake
              ${PROJECT_BINARY_DIR}/batchjacConfigVersion.cmake
        DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/batchjac)

# pkg-config: batchjac.pc in <libdir>/pkgconfig, beside the CMake package, for
# plain Makefiles: c++ -std=c++20 app.cpp $(pkg-config --cflags --libs batchjac).
set(BATCHJAC_PC_DIR ${CMAKE_INSTALL_LIBDIR}/pkgconfig)
file(RELATIVE_PATH BATCHJAC_PC_TO_PREFIX /prefix/${BATCHJAC_PC_DIR} /prefix)
string(REGEX REPLACE "/$" "" BATCHJAC_PC_TO_PREFIX "${BATCHJAC_PC_TO_PREFIX}")
configure_file(cmake/batchjac.pc.in ${PROJECT_BINARY_DIR}/batchjac.pc @ONLY)
install(FILES ${PROJECT_BINARY_DIR}/batchjac.pc DESTINATION ${BATCHJAC_PC_DIR})
