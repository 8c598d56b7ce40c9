// Part of the Node-API binding (binding.cpp includes it, inside its anonymous namespace): the C API as a table of
// functions (the CPU engine linked into the addon, or a build loaded at run time with dlopen), the Error that
// carries a failed call's status, and the checks of the arguments that JavaScript passes.
#pragma once

// ---- the C API as a table of functions: the linked CPU engine, or a library loaded at run time --------------------

#define GPT2_API_FUNCTIONS(X)                                                                                          \
  X(last_error) X(build_info) X(has_blas) X(create) X(destroy) X(set_threads) X(set_gemm) X(set_precision)             \
  X(num_tensors) X(tensor_numel) X(num_parameters) X(read) X(write) X(forward_backward) X(zero_grad) X(grad_norm)      \
  X(scale_grads) X(adamw) X(logits) X(token_losses) X(cache_create) X(cache_destroy) X(cache_length) X(decode)         \
  X(comm_new_id) X(comm_create) X(comm_abort) X(comm_destroy) X(allreduce_grads) X(comm_allreduce_mean)             \
  X(comm_broadcast)

struct Api {
#define GPT2_API_FIELD(name) decltype(&gpt2_##name) name;
  GPT2_API_FUNCTIONS(GPT2_API_FIELD)
#undef GPT2_API_FIELD
  // Only the CUDA build has these (null otherwise): the CPU build, linked or loaded as a library, has no GPU to ask.
  decltype(&gpt2_device_count) device_count = nullptr;
  decltype(&gpt2_device_info) device_info = nullptr;
  std::string path;  // "" for the linked engine
};

const Api* linked_api() {
  static const Api api = [] {
    Api a;
#define GPT2_API_LINK(name) a.name = &gpt2_##name;
    GPT2_API_FUNCTIONS(GPT2_API_LINK)
#undef GPT2_API_LINK
    return a;
  }();
  return &api;
}

/** Loads a shared library with the C API once per process (it is never unloaded). Throws a message on failure. */
const Api* load_api(const std::string& path) {
  static std::mutex mu;
  static std::map<std::string, Api*> loaded;
  std::lock_guard<std::mutex> lock(mu);
  auto it = loaded.find(path);
  if (it != loaded.end()) return it->second;
  void* h = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (!h) {
    const char* e = dlerror();
    throw std::runtime_error(std::string("cannot load ") + path + ": " + (e ? e : "dlopen failed"));
  }
  Api* a = new Api();
  a->path = path;
#define GPT2_API_LOAD(name)                                                                                            \
  a->name = reinterpret_cast<decltype(a->name)>(dlsym(h, "gpt2_" #name));                                             \
  if (!a->name) {                                                                                                      \
    delete a;                                                                                                          \
    dlclose(h);                                                                                                        \
    throw std::runtime_error(path + " lacks gpt2_" #name ": it was built from another version of native/include/gpt2.h; rebuild it"); \
  }
  GPT2_API_FUNCTIONS(GPT2_API_LOAD)
#undef GPT2_API_LOAD
  a->device_count = reinterpret_cast<decltype(a->device_count)>(dlsym(h, "gpt2_device_count"));
  a->device_info = reinterpret_cast<decltype(a->device_info)>(dlsym(h, "gpt2_device_info"));
  loaded[path] = a;
  return a;
}



/** The name of a C API status code, as the thrown Error's gpt2Status says it. */
const char* status_name(int rc) {
  switch (rc) {
    case GPT2_ERR_ARGUMENT: return "ARGUMENT";
    case GPT2_ERR_MEMORY: return "MEMORY";
    case GPT2_ERR_STATE: return "STATE";
    case GPT2_ERR_DEVICE: return "DEVICE";
    case GPT2_ERR_PEER: return "PEER";
    case GPT2_ERR_NO_SPACE: return "NO_SPACE";
    default: return "UNKNOWN";
  }
}

/** The Error of a failed C API call: the message, with the status code as gpt2Code and its name as gpt2Status. */
Napi::Error api_error(Napi::Env env, const std::string& message, int rc) {
  Napi::Error e = Napi::Error::New(env, message);
  e.Value().Set("gpt2Code", Napi::Number::New(env, rc));
  e.Value().Set("gpt2Status", Napi::String::New(env, status_name(rc)));
  return e;
}

int int_arg(const Napi::CallbackInfo& info, size_t i, const char* name) {
  if (i >= info.Length() || !info[i].IsNumber()) throw Napi::TypeError::New(info.Env(), std::string(name) + " must be a number");
  return info[i].As<Napi::Number>().Int32Value();
}

double num_arg(const Napi::CallbackInfo& info, size_t i, const char* name) {
  if (i >= info.Length() || !info[i].IsNumber()) throw Napi::TypeError::New(info.Env(), std::string(name) + " must be a number");
  return info[i].As<Napi::Number>().DoubleValue();
}

/** A copy of an Int32Array argument of exactly n elements. */
std::vector<int> ints_arg(const Napi::CallbackInfo& info, size_t i, size_t n, const char* name) {
  if (i >= info.Length() || !info[i].IsTypedArray() || info[i].As<Napi::TypedArray>().TypedArrayType() != napi_int32_array)
    throw Napi::TypeError::New(info.Env(), std::string(name) + " must be an Int32Array");
  auto a = info[i].As<Napi::Int32Array>();
  if (a.ElementLength() != n)
    throw Napi::RangeError::New(info.Env(), std::string(name) + " holds " + std::to_string(a.ElementLength()) + " values, expected " + std::to_string(n));
  return std::vector<int>(a.Data(), a.Data() + n);
}

/** A Float32Array argument of exactly n elements (n = 0: any length). */
Napi::Float32Array floats_arg(const Napi::CallbackInfo& info, size_t i, size_t n, const char* name) {
  if (i >= info.Length() || !info[i].IsTypedArray() || info[i].As<Napi::TypedArray>().TypedArrayType() != napi_float32_array)
    throw Napi::TypeError::New(info.Env(), std::string(name) + " must be a Float32Array");
  auto a = info[i].As<Napi::Float32Array>();
  if (n && a.ElementLength() != n)
    throw Napi::RangeError::New(info.Env(), std::string(name) + " holds " + std::to_string(a.ElementLength()) + " values, expected " + std::to_string(n));
  return a;
}

/** A copy of an optional mask argument (a Float32Array of n elements, or null / undefined: empty). */
std::vector<float> mask_arg(const Napi::CallbackInfo& info, size_t i, size_t n) {
  if (i >= info.Length() || info[i].IsNull() || info[i].IsUndefined()) return {};
  auto a = floats_arg(info, i, n, "mask");
  return std::vector<float>(a.Data(), a.Data() + n);
}
