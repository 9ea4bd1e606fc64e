# The edge runtime cross-built for ARM64 (cmake/aarch64-linux-gnu.cmake, GEMKIT_RUNTIME_ONLY) into
# <build>/aarch64 as part of every build, so its tests run under qemu in ctest (tests/runtime/).
# Needs Debian's g++-aarch64-linux-gnu, qemu-user and libicu-dev:arm64 (setup.sh installs them);
# -DGEMKIT_AARCH64=OFF builds without it.
option(GEMKIT_AARCH64 "cross-build the edge runtime for ARM64 and test it under qemu" ON)
if(NOT GEMKIT_AARCH64)
  return()
endif()
find_program(GEMKIT_AARCH64_CXX aarch64-linux-gnu-g++)
find_program(GEMKIT_QEMU_AARCH64 qemu-aarch64)
if(NOT GEMKIT_AARCH64_CXX OR NOT GEMKIT_QEMU_AARCH64 OR NOT EXISTS /usr/lib/aarch64-linux-gnu/pkgconfig/icu-uc.pc)
  message(FATAL_ERROR "GEMKIT_AARCH64: the ARM64 cross build needs aarch64-linux-gnu-g++ (g++-aarch64-linux-gnu), "
    "qemu-aarch64 (qemu-user) and /usr/lib/aarch64-linux-gnu/pkgconfig/icu-uc.pc (libicu-dev:arm64, after "
    "dpkg --add-architecture arm64); ./setup.sh installs them. Configure with -DGEMKIT_AARCH64=OFF to build without it.")
endif()
include(ExternalProject)
ExternalProject_Add(gemkit_aarch64
  SOURCE_DIR ${PROJECT_SOURCE_DIR}
  BINARY_DIR ${PROJECT_BINARY_DIR}/aarch64
  CMAKE_ARGS -DCMAKE_TOOLCHAIN_FILE=${PROJECT_SOURCE_DIR}/cmake/aarch64-linux-gnu.cmake -DGEMKIT_RUNTIME_ONLY=ON
             -DCMAKE_BUILD_TYPE=Release
  INSTALL_COMMAND ""
  BUILD_ALWAYS ON  # the sub-build decides what changed (the runtime's sources are this project's)
)
set(GEMKIT_AARCH64_BUILD ${PROJECT_BINARY_DIR}/aarch64)
