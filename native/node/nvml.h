// Part of the Node-API binding (binding.cpp includes it, inside its anonymous namespace): the GPU readings of the
// run's system metrics, through NVML (libnvidia-ml.so.1, which the NVIDIA driver installs) loaded at run time with
// dlopen, so that the addon builds and loads on machines without a driver. Only the few types and functions the
// readings need are declared here, as the NVML API defines them; nothing is taken from the CUDA toolkit.
#pragma once

// ---- the NVML types and functions used -----------------------------------------------------------------------------

typedef int nvml_return;  // nvmlReturn_t: 0 is NVML_SUCCESS
typedef struct nvml_device_st* nvml_device;  // nvmlDevice_t: an opaque handle
struct NvmlUtilization {  // nvmlUtilization_t: percent of the last sample period
  unsigned int gpu;
  unsigned int memory;
};
struct NvmlMemory {  // nvmlMemory_t (version 1): bytes
  unsigned long long total;
  unsigned long long free;
  unsigned long long used;
};
const int NVML_TEMPERATURE_GPU = 0;  // nvmlTemperatureSensors_t: the GPU die
const unsigned int NVML_NAME_BYTES = 96;  // NVML_DEVICE_NAME_V2_BUFFER_SIZE

#define GPT2_NVML_FUNCTIONS(X)                                                                                        \
  X(nvmlInit_v2, nvml_return (*)())                                                                                  \
  X(nvmlDeviceGetCount_v2, nvml_return (*)(unsigned int*))                                                           \
  X(nvmlDeviceGetHandleByIndex_v2, nvml_return (*)(unsigned int, nvml_device*))                                      \
  X(nvmlDeviceGetUtilizationRates, nvml_return (*)(nvml_device, NvmlUtilization*))                                   \
  X(nvmlDeviceGetMemoryInfo, nvml_return (*)(nvml_device, NvmlMemory*))                                              \
  X(nvmlDeviceGetPowerUsage, nvml_return (*)(nvml_device, unsigned int*))                                            \
  X(nvmlDeviceGetTemperature, nvml_return (*)(nvml_device, int, unsigned int*))                                      \
  X(nvmlDeviceGetName, nvml_return (*)(nvml_device, char*, unsigned int))

template <typename T>
using nvml_fn = T;  // lets a function pointer type be written before the field's name

struct Nvml {
#define GPT2_NVML_FIELD(name, type) nvml_fn<type> name = nullptr;
  GPT2_NVML_FUNCTIONS(GPT2_NVML_FIELD)
#undef GPT2_NVML_FIELD
  std::string error;  // why the library cannot be used ("" when it can)
};

/**
 * The library at `path` loaded and initialized, once per path and process (never unloaded: NVML keeps its own state
 * for the process). A failure is kept too, in `error`, so that a machine without a driver asks only once.
 */
const Nvml* load_nvml(const std::string& path) {
  static std::mutex mu;
  static std::map<std::string, Nvml*> loaded;
  std::lock_guard<std::mutex> lock(mu);
  auto it = loaded.find(path);
  if (it != loaded.end()) return it->second;
  Nvml* n = new Nvml();
  loaded[path] = n;
  void* h = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (!h) {
    const char* e = dlerror();
    n->error = e ? e : "cannot load " + path;  // dlerror names the file: "libnvidia-ml.so.1: cannot open ..."
    return n;
  }
#define GPT2_NVML_LOAD(name, type)                                                                                    \
  n->name = reinterpret_cast<type>(dlsym(h, #name));                                                                 \
  if (!n->name) {                                                                                                    \
    n->error = path + " lacks " #name ": it is not an NVML library, or one older than the R450 driver";             \
    return n;                                                                                                        \
  }
  GPT2_NVML_FUNCTIONS(GPT2_NVML_LOAD)
#undef GPT2_NVML_LOAD
  const nvml_return rc = n->nvmlInit_v2();
  if (rc != 0) n->error = path + ": nvmlInit_v2 failed with NVML status " + std::to_string(rc) + " (is the NVIDIA driver loaded?)";
  return n;
}

/**
 * nvmlSample(path) -> {index, name, utilPct, memUsedBytes, memTotalBytes, powerW, tempC}[]: each GPU NVML sees (all
 * of the machine's, whatever CUDA_VISIBLE_DEVICES says); a reading the device does not support is null. Throws when
 * the library cannot be loaded or initialized (the same message on every call). Synchronous on the JS thread, not on
 * the executor: the readings take microseconds and must not wait behind a training step.
 */
Napi::Value NvmlSample(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsString()) throw Napi::TypeError::New(env, "nvmlSample(path): path must be a string");
  const Nvml* n = load_nvml(info[0].As<Napi::String>().Utf8Value());
  if (!n->error.empty()) throw Napi::Error::New(env, n->error);
  unsigned int count = 0;
  const nvml_return rc = n->nvmlDeviceGetCount_v2(&count);
  if (rc != 0) throw Napi::Error::New(env, "nvmlDeviceGetCount_v2 failed with NVML status " + std::to_string(rc));
  Napi::Array list = Napi::Array::New(env);
  uint32_t out = 0;
  for (unsigned int i = 0; i < count; i++) {
    nvml_device d = nullptr;
    if (n->nvmlDeviceGetHandleByIndex_v2(i, &d) != 0) continue;  // e.g. a GPU this user may not query
    Napi::Object o = Napi::Object::New(env);
    o.Set("index", Napi::Number::New(env, i));
    char name[NVML_NAME_BYTES] = {0};
    o.Set("name", n->nvmlDeviceGetName(d, name, NVML_NAME_BYTES) == 0 ? Napi::Value(Napi::String::New(env, name)) : env.Null());
    NvmlUtilization u{};
    o.Set("utilPct", n->nvmlDeviceGetUtilizationRates(d, &u) == 0 ? Napi::Value(Napi::Number::New(env, u.gpu)) : env.Null());
    NvmlMemory m{};
    const bool mem = n->nvmlDeviceGetMemoryInfo(d, &m) == 0;
    o.Set("memUsedBytes", mem ? Napi::Value(Napi::Number::New(env, (double)m.used)) : env.Null());
    o.Set("memTotalBytes", mem ? Napi::Value(Napi::Number::New(env, (double)m.total)) : env.Null());
    unsigned int mw = 0;
    o.Set("powerW", n->nvmlDeviceGetPowerUsage(d, &mw) == 0 ? Napi::Value(Napi::Number::New(env, mw / 1000.0)) : env.Null());
    unsigned int t = 0;
    o.Set("tempC", n->nvmlDeviceGetTemperature(d, NVML_TEMPERATURE_GPU, &t) == 0 ? Napi::Value(Napi::Number::New(env, t)) : env.Null());
    list.Set(out++, o);
  }
  return list;
}
