# LibTorch from PyPI's torch wheel, used on the CPU. The wheel carries LibTorch's headers,
# libraries and CMake package, but that package is the CUDA build's: its Caffe2Config requires
# the CUDA toolkit (nvcc, headers) at configure time, which no machine here has and CPU work
# never needs. So this file makes the `torch` target from the wheel's folders directly:
# libtorch.so (which loads libtorch_cpu, libc10 and, through the wheel's own RPATH, the CUDA
# runtime libraries of the nvidia-* wheels beside it) with the wheel's headers and ABI flag.
# In: GEMKIT_TORCH_WHEEL, the wheel's torch/ package folder. Out: what find_package(Torch)
# would set (TORCH_LIBRARIES, TORCH_CXX_FLAGS, Torch_VERSION).
set(_wheel "${GEMKIT_TORCH_WHEEL}")
foreach(_need include/torch/csrc/api/include lib/libtorch.so lib/libtorch_cpu.so lib/libc10.so version.py)
  if(NOT EXISTS "${_wheel}/${_need}")
    message(FATAL_ERROR "GEMKIT_TORCH_WHEEL=${_wheel}: no ${_need} there; expected the torch/ folder of an "
      "installed torch 2.x wheel (e.g. .venv/lib/python3.11/site-packages/torch, made by ./setup.sh)")
  endif()
endforeach()
file(STRINGS "${_wheel}/version.py" _version_line REGEX "^__version__")
string(REGEX MATCH "[0-9]+\\.[0-9]+\\.[0-9]+" Torch_VERSION "${_version_line}")
# torch 2.x wheels use the C++11 string ABI only (the old-ABI builds are gone), as g++ does by
# default; the flag is set anyway so that it is the same on every target (CMakeLists.txt).
set(_abi "_GLIBCXX_USE_CXX11_ABI=1")
add_library(torch SHARED IMPORTED GLOBAL)
set_target_properties(torch PROPERTIES
  IMPORTED_LOCATION "${_wheel}/lib/libtorch.so"
  INTERFACE_INCLUDE_DIRECTORIES "${_wheel}/include;${_wheel}/include/torch/csrc/api/include"
  INTERFACE_COMPILE_DEFINITIONS "${_abi}"
  INTERFACE_LINK_LIBRARIES "${_wheel}/lib/libtorch_cpu.so;${_wheel}/lib/libc10.so"
  # The executables find libtorch through their own RPATH; the linker reads the wheel's libraries'
  # RPATH ($ORIGIN/../../nvidia/...) for the CUDA runtime libraries libtorch_cpu.so names.
  INTERFACE_LINK_OPTIONS "LINKER:-rpath,${_wheel}/lib")
set(TORCH_LIBRARIES torch)
set(TORCH_CXX_FLAGS "-D${_abi}")
set(Torch_FOUND TRUE)
message(STATUS "LibTorch ${Torch_VERSION} from the torch wheel at ${_wheel} (CPU use; ${_abi})")
