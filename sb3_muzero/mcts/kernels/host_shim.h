// Host build of search.cu: compile the CUDA kernels as plain C++ to run them on the CPU.
//
//     g++ -std=c++17 -O2 -shared -fPIC -ffp-contract=off -include host_shim.h -x c++ search.cu -o search_host.so
//
// The CUDA qualifiers become nothing, so every kernel is an ordinary extern "C" function. A caller
// runs a launch by calling the kernel once per thread, after host_shim_set_thread() has set the
// block and thread indices that the kernel reads. Only what search.cu uses is defined here.
// No fast math and no FMA contraction (-ffp-contract=off), as on the device; x86-64 doubles are IEEE.
#pragma once

#include <cmath>
#include <cstring>

#define __global__
#define __device__
#define __forceinline__ inline

struct HostDim3 {
    unsigned int x, y, z;
};

static HostDim3 threadIdx = {0, 0, 0};
static HostDim3 blockIdx = {0, 0, 0};
static HostDim3 blockDim = {1, 1, 1};
static HostDim3 gridDim = {1, 1, 1};

// The thread the next kernel call runs as: thread `thread` of block `block`, with `block_dim`
// threads per block and `grid_dim` blocks (one-dimensional launches).
extern "C" void host_shim_set_thread(unsigned int block, unsigned int thread, unsigned int block_dim,
                                     unsigned int grid_dim) {
    blockIdx.x = block;
    threadIdx.x = thread;
    blockDim.x = block_dim;
    gridDim.x = grid_dim;
}

inline double __longlong_as_double(long long bits) {
    double value;
    std::memcpy(&value, &bits, sizeof value);
    return value;
}

using std::exp;
