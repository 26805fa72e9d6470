// Run-time check that this module's CUDA runtime can use a GPU. The module links the CUDA
// runtime statically, so a driver older than that runtime fails here (cudaGetDeviceCount
// returns cudaErrorInsufficientDriver) even when torch's own CUDA works; the Python backend
// then does not register instead of failing on the first kernel launch.
#include <cuda_runtime.h>

#include "cuda/ops.h"

namespace fastadv {

const char* cuda_probe() {
  int count = 0;
  const cudaError_t err = cudaGetDeviceCount(&count);
  if (err != cudaSuccess) return cudaGetErrorString(err);
  return count > 0 ? "" : "no CUDA device";
}

}  // namespace fastadv
