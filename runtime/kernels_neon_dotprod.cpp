// The NEON kernels again with the ARMv8.2 dot-product instructions (sdot): kernels_neon.cpp
// compiled with -march=armv8.2-a+dotprod (runtime/CMakeLists.txt), used only when the CPU
// reports them (kernels.cpp).
#define GEMKIT_NEON_DOTPROD 1
#include "runtime/kernels_neon.cpp"
