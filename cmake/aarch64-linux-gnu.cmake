# Cross-building the edge runtime for 64-bit ARM Linux (docs/runtime.md, "ARM64") with Debian's
# cross toolchain; libraries of the target (ICU) come from Debian's arm64 multiarch packages
# (/usr/lib/aarch64-linux-gnu), headers from /usr/include. Use with -DGEMKIT_RUNTIME_ONLY=ON:
#   cmake -S . -B build-aarch64 -DCMAKE_TOOLCHAIN_FILE=cmake/aarch64-linux-gnu.cmake -DGEMKIT_RUNTIME_ONLY=ON
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR aarch64)
set(CMAKE_C_COMPILER aarch64-linux-gnu-gcc)
set(CMAKE_CXX_COMPILER aarch64-linux-gnu-g++)
set(CMAKE_LIBRARY_ARCHITECTURE aarch64-linux-gnu)
# pkg-config answers for the target's .pc files, not the build machine's.
set(ENV{PKG_CONFIG_LIBDIR} "/usr/lib/aarch64-linux-gnu/pkgconfig:/usr/share/pkgconfig")
# ctest runs the test programs under user-mode emulation, with the C library and loader of
# Debian's arm64 packages (libc6:arm64, which libicu-dev:arm64 brings): with the cross
# toolchain's copy instead (-L /usr/aarch64-linux-gnu) threads never started under qemu 7.2.
# QEMU_CPU (environment) picks the emulated CPU: max (the default here) has the dot product,
# cortex-a72 (a Raspberry Pi 4) has not.
set(CMAKE_CROSSCOMPILING_EMULATOR qemu-aarch64)
