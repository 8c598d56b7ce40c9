// The devices: gpt2_device_count and gpt2_device_info report each GPU's free memory before any model exists (the
// studio checks a run's memory plan against it), and give back the context that the question made. Part of
// native/cuda/gpt2_cuda.cu.
#ifndef GPT2_CUDA_DEVICES_CUH
#define GPT2_CUDA_DEVICES_CUH

#include <dlfcn.h>

#include <cstdio>
#include <cstring>
#include <exception>
#include <string>
#include <thread>

#include "common.cuh"

namespace {

// Two functions of the driver API, with its types spelled out (CUresult and CUdevice are ints): the engine links only
// the runtime, so they are looked up at run time.
typedef int (*PrimaryCtxGetStateFn)(int dev, unsigned* flags, int* active);
typedef int (*DeviceGetFn)(int* dev, int ordinal);

struct DriverContextApi {
  PrimaryCtxGetStateFn get_state = nullptr;
  DeviceGetFn device_get = nullptr;
};

const DriverContextApi& driver_context_api() {
  static const DriverContextApi api = [] {
    DriverContextApi a;
    // The driver that the runtime loaded (cudaGetDeviceCount has run): RTLD_NOLOAD never loads a second one. Looking
    // it up there, as PyTorch does, asks nothing of the runtime, so it cannot make a context of its own.
    if (void* h = dlopen("libcuda.so.1", RTLD_NOW | RTLD_LOCAL | RTLD_NOLOAD)) {
      a.get_state = reinterpret_cast<PrimaryCtxGetStateFn>(dlsym(h, "cuDevicePrimaryCtxGetState"));
      a.device_get = reinterpret_cast<DeviceGetFn>(dlsym(h, "cuDeviceGet"));
    }
#if CUDART_VERSION >= 12050
    // else through the runtime's entry points (the CPU emulation answers here; 12000: both exist since long before)
    if (!a.get_state || !a.device_get) {
      void* get_state = nullptr;
      void* device_get = nullptr;
      cudaDriverEntryPointQueryResult q1, q2;
      if (cudaGetDriverEntryPointByVersion("cuDevicePrimaryCtxGetState", &get_state, 12000, cudaEnableDefault, &q1) == cudaSuccess &&
          cudaGetDriverEntryPointByVersion("cuDeviceGet", &device_get, 12000, cudaEnableDefault, &q2) == cudaSuccess &&
          q1 == cudaDriverEntryPointSuccess && q2 == cudaDriverEntryPointSuccess && get_state && device_get) {
        a.get_state = reinterpret_cast<PrimaryCtxGetStateFn>(get_state);
        a.device_get = reinterpret_cast<DeviceGetFn>(device_get);
      }
      (void)cudaGetLastError();
    }
#endif
    return a;
  }();
  return api;
}

/** 1 when device's primary context is active, 0 when it is not, -1 when the driver cannot say. */
int primary_context_state(int device) {
  const DriverContextApi& d = driver_context_api();
  int dev = 0, active = 0;
  unsigned flags = 0;
  if (!d.get_state || !d.device_get || d.device_get(&dev, device) != 0 || d.get_state(dev, &flags, &active) != 0) return -1;
  return active ? 1 : 0;
}

/** gpt2_device_info's work, on a thread of its own (cudaSetDevice selects the device for the calling thread only). */
int query_device(int device, GPT2DeviceInfo* out) {
  cudaDeviceProp prop;
  std::memset(&prop, 0, sizeof prop);
  CU(cudaGetDeviceProperties(&prop, device));  // needs no context
  const int before = primary_context_state(device);
  size_t free_bytes = 0, total_bytes = 0;
  cudaError_t e = cudaSetDevice(device);  // makes the primary context (CUDA 12 and later), as cudaMemGetInfo would
  if (e == cudaSuccess) e = cudaMemGetInfo(&free_bytes, &total_bytes);
  // No one had the context before this question: give its memory back. Nothing of the process lives in it.
  if (before == 0) cudaDeviceReset();
  (void)cudaGetLastError();
  if (e != cudaSuccess) return fail(GPT2_ERR_DEVICE, "cudaMemGetInfo on CUDA device %d (%s): %s", device, prop.name, cudaGetErrorString(e));
  out->device = device;
  out->free_bytes = free_bytes;
  out->total_bytes = total_bytes;
  std::snprintf(out->name, sizeof out->name, "%s", prop.name);
  return GPT2_OK;
}

}  // namespace

extern "C" {

int gpt2_device_count(int* count) {
  if (!count) return fail(GPT2_ERR_ARGUMENT, "gpt2_device_count: null count");
  *count = 0;
  int n = 0;
  const cudaError_t e = cudaGetDeviceCount(&n);
  (void)cudaGetLastError();  // see use_device
  if (e == cudaErrorNoDevice || e == cudaErrorInsufficientDriver) return GPT2_OK;  // a machine without a GPU, or a driver
  if (e != cudaSuccess) return fail(GPT2_ERR_DEVICE, "cudaGetDeviceCount: %s", cudaGetErrorString(e));
  *count = n;
  return GPT2_OK;
}

int gpt2_device_info(int device, GPT2DeviceInfo* out) {
  if (!out) return fail(GPT2_ERR_ARGUMENT, "gpt2_device_info: null out");
  std::memset(out, 0, sizeof *out);
  int n = 0;
  TRY(gpt2_device_count(&n));
  if (device < 0 || device >= n) return fail(GPT2_ERR_ARGUMENT, "gpt2_device_info: no CUDA device %d (this machine has %d)", device, n);
  int rc = GPT2_OK;
  std::string err;
  try {
    std::thread t([&]() {
      rc = query_device(device, out);
      if (rc != GPT2_OK) err = gpt2common::last_error();  // the message is per thread
    });
    t.join();
  } catch (const std::exception& e) {
    return fail(GPT2_ERR_STATE, "gpt2_device_info: cannot start a thread: %s", e.what());
  }
  if (rc != GPT2_OK) return fail(rc, "%s", err.c_str());
  return GPT2_OK;
}

}  // extern "C"

#endif
