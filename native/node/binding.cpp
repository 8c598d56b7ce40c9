// The Node-API binding of the native GPT-2 engine (node-addon-api). It exposes:
//   Model(config)  one GPT2 of native/include/gpt2.h; the long operations (forwardBackward, logits, tokenLosses,
//                  decode) run on the libuv thread pool and return Promises, the short ones are synchronous.
//   Cache          a KV cache made by model.createCache(batch, maxLen).
//   buildInfo(), hasBlas(), layerCheck(...)  (the last runs one layer's forward and backward, for the tests).
//   loadLibrary(path)  another build of the same C API as a shared library (the CUDA engine, libgpt2_cuda.so):
//                  a Library whose models (new Model(config, library)) run through its functions, and whose
//                  deviceMemory() reports each GPU's free and total memory (gpt2_device_info).
//   newCommId(kind, library?), joinComm(id, rank, world, timeoutMs, library?) -> Promise<Comm>: data parallel
//                  (Comm: allReduceMean, broadcast, abort, dispose).
//   mpiInfo()      {available, version}: whether the linked CPU engine was built with MPI, and MPI's version line.
//   nvmlSample(path)  each GPU's utilisation, memory, power and temperature through NVML (nvml.h), for the run's
//                  system metrics.
// A failed call of the C API throws (or rejects with) an Error that carries its status: gpt2Code, the number, and
// gpt2Status, its name (ARGUMENT, MEMORY, STATE, DEVICE, PEER, NO_SPACE; see native/include/gpt2.h).
// src/node/native/ wraps this in the Engine / Model interfaces; nothing else should call it directly.
#include <napi.h>

#include <cmath>
#include <condition_variable>
#include <deque>
#include <dlfcn.h>
#include <map>
#include <functional>
#include <future>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "../cpu/layers.h"
#include "../include/gpt2.h"

#ifdef _OPENMP
#include <omp.h>
#endif

namespace {

#include "api_table.h"
#include "nvml.h"

/**
 * The one thread that runs every OpenMP computation of every model. OpenMP keeps a pool of worker threads per
 * thread that starts parallel regions, and idle workers spin for a while before they sleep: were the work spread
 * over the libuv pool's threads (and the JS thread), a finished operation's pool would still be spinning while the
 * next one runs on another, and on a small machine the two would fight for the cores (half the speed, measured).
 */
class Executor {
 public:
  static Executor& get() {
    static Executor* e = new Executor();  // never destroyed: the thread is detached and lives as long as the process
    return *e;
  }
  void post(std::function<void()> fn) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      queue_.push_back(std::move(fn));
    }
    cv_.notify_one();
  }
  /** Runs fn on the executor and waits for it (for the short synchronous operations). */
  int run_sync(const Api* api, const std::function<int()>& fn, std::string* err) {
    std::promise<int> done;
    std::future<int> f = done.get_future();
    post([&]() {
      int rc = fn();
      if (rc != GPT2_OK) *err = api->last_error();
      done.set_value(rc);
    });
    return f.get();
  }

 private:
  Executor() { std::thread([this]() { loop(); }).detach(); }
  void loop() {
    for (;;) {
      std::function<void()> fn;
      {
        std::unique_lock<std::mutex> lock(mu_);
        cv_.wait(lock, [this]() { return !queue_.empty(); });
        fn = std::move(queue_.front());
        queue_.pop_front();
      }
      fn();
    }
  }
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::function<void()>> queue_;
};

/** Runs a short operation on the executor and throws its error on the JS thread. */
void run_sync(Napi::Env env, const Api* api, const std::function<int()>& fn, const char* what) {
  std::string err;
  const int rc = Executor::get().run_sync(api, fn, &err);
  if (rc != GPT2_OK) throw api_error(env, std::string(what) + ": " + (err.empty() ? "failed" : err), rc);
}

/**
 * One long operation: `work` runs on the executor, then, back on the JS thread, `done` runs and the promise
 * resolves with `result` (or rejects with the error). `keep` holds JS values (the model, arrays) alive meanwhile.
 */
struct Job {
  const Api* api;
  Napi::Promise::Deferred deferred;
  std::function<int()> work;
  std::function<Napi::Value(Napi::Env)> result;
  std::function<void()> done;
  std::vector<Napi::Reference<Napi::Value>> keep;
  Napi::ThreadSafeFunction tsfn;
  int rc = GPT2_OK;
  std::string err;

  Job(Napi::Env env, const Api* a) : api(a), deferred(Napi::Promise::Deferred::New(env)) {}

  static Napi::Promise Start(Napi::Env env, Job* job) {
    Napi::Promise p = job->deferred.Promise();
    job->tsfn = Napi::ThreadSafeFunction::New(env, Napi::Function::New(env, [](const Napi::CallbackInfo&) {}), "gpt2-native", 0, 1);
    Executor::get().post([job]() {
      job->rc = job->work();
      if (job->rc != GPT2_OK) job->err = job->api->last_error();
      Napi::ThreadSafeFunction tsfn = job->tsfn;  // job is deleted by the callback
      tsfn.BlockingCall([job](Napi::Env e, Napi::Function) {
        if (job->done) job->done();
        if (job->rc == GPT2_OK) job->deferred.Resolve(job->result(e));
        else job->deferred.Reject(api_error(e, job->err.empty() ? "native call failed" : job->err, job->rc).Value());
        delete job;
      });
      tsfn.Release();
    });
    return p;
  }
};

/** Per-environment data (a worker thread has its own): the constructors of the wrapped classes. */
struct AddonData {
  Napi::FunctionReference cacheCtor;
  Napi::FunctionReference libraryCtor;
  Napi::FunctionReference commCtor;
};

/** Argument i as an instance of one of the wrapped classes (AddonData's `ctor`); a TypeError with `message` otherwise. */
Napi::Object instance_arg(const Napi::CallbackInfo& info, size_t i, Napi::FunctionReference AddonData::*ctor, const char* message) {
  Napi::Env env = info.Env();
  if (i >= info.Length() || !info[i].IsObject() || !info[i].As<Napi::Object>().InstanceOf((env.GetInstanceData<AddonData>()->*ctor).Value()))
    throw Napi::TypeError::New(env, message);
  return info[i].As<Napi::Object>();
}

/** A loaded library (loadLibrary(path)): passed to new Model(config, library) and joinComm(..., library). */
class Library : public Napi::ObjectWrap<Library> {
 public:
  static Napi::Function Init(Napi::Env env) {
    return DefineClass(env, "Library",
                       {InstanceAccessor<&Library::Path>("path"), InstanceMethod<&Library::BuildInfo>("buildInfo"),
                        InstanceMethod<&Library::DeviceMemory>("deviceMemory")});
  }
  explicit Library(const Napi::CallbackInfo& info) : Napi::ObjectWrap<Library>(info) {}
  const Api* api = nullptr;

 private:
  Napi::Value Path(const Napi::CallbackInfo& info) { return Napi::String::New(info.Env(), api ? api->path : ""); }
  Napi::Value BuildInfo(const Napi::CallbackInfo& info) { return Napi::String::New(info.Env(), api ? api->build_info() : ""); }
  /**
   * deviceMemory() -> Promise<{device, name, freeBytes, totalBytes}[] | null>: every visible GPU that answers (one
   * that cannot, e.g. held by another process in exclusive mode, is left out); [] without a GPU; null when the
   * library has no gpt2_device_info (a CPU build). On the executor: the question may reset a device's context, which
   * must not happen while a model of this library is being created there.
   */
  Napi::Value DeviceMemory(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    const Api* a = api;
    if (!a || !a->device_count || !a->device_info) {
      auto none = Napi::Promise::Deferred::New(env);
      none.Resolve(env.Null());
      return none.Promise();
    }
    auto devices = std::make_shared<std::vector<GPT2DeviceInfo>>();
    Job* job = new Job(env, a);
    job->work = [a, devices]() -> int {
      int n = 0;
      const int rc = a->device_count(&n);
      if (rc != GPT2_OK) return rc;
      for (int d = 0; d < n; d++) {
        GPT2DeviceInfo di;
        if (a->device_info(d, &di) == GPT2_OK) devices->push_back(di);
      }
      return GPT2_OK;
    };
    job->result = [devices](Napi::Env e) -> Napi::Value {
      Napi::Array list = Napi::Array::New(e, devices->size());
      for (size_t i = 0; i < devices->size(); i++) {
        const GPT2DeviceInfo& di = (*devices)[i];
        Napi::Object o = Napi::Object::New(e);
        o.Set("device", Napi::Number::New(e, di.device));
        o.Set("name", Napi::String::New(e, di.name));
        o.Set("freeBytes", Napi::Number::New(e, (double)di.free_bytes));  // exact below 2^53 bytes (8 PiB)
        o.Set("totalBytes", Napi::Number::New(e, (double)di.total_bytes));
        list.Set((uint32_t)i, o);
      }
      return list;
    };
    return Job::Start(env, job);
  }
};

/** Frees a model: at once for the linked engine; on the executor for a loaded library, whose device calls belong there. */
void destroy_model(const Api* api, GPT2* m) {
  if (!m) return;
  if (api == linked_api()) api->destroy(m);
  else Executor::get().post([api, m]() { api->destroy(m); });
}
void destroy_cache(const Api* api, GPT2Cache* c) {
  if (!c) return;
  if (api == linked_api()) api->cache_destroy(c);
  else Executor::get().post([api, c]() { api->cache_destroy(c); });
}

/** The API of an optional Library argument (the linked engine when it is absent or undefined). */
const Api* api_arg(const Napi::CallbackInfo& info, size_t i) {
  if (i >= info.Length() || info[i].IsUndefined() || info[i].IsNull()) return linked_api();
  return Library::Unwrap(instance_arg(info, i, &AddonData::libraryCtor, "expected a Library from loadLibrary()"))->api;
}

class Cache : public Napi::ObjectWrap<Cache> {
 public:
  static Napi::Function Init(Napi::Env env) {
    return DefineClass(env, "Cache", {InstanceAccessor<&Cache::Length>("length"), InstanceMethod<&Cache::Dispose>("dispose")});
  }
  explicit Cache(const Napi::CallbackInfo& info) : Napi::ObjectWrap<Cache>(info) {}
  ~Cache() override {
    if (!inflight) destroy_cache(api, ptr);  // see ~Model
  }
  const Api* api = linked_api();
  GPT2Cache* ptr = nullptr;
  GPT2* owner = nullptr;
  int batch = 0;
  bool inflight = false;        // a decode is running on it
  bool disposeLater = false;    // dispose() came meanwhile
  void DecodeDone() {
    inflight = false;
    if (disposeLater) {
      destroy_cache(api, ptr);
      ptr = nullptr;
    }
  }

 private:
  Napi::Value Length(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), ptr ? api->cache_length(ptr) : 0); }
  void Dispose(const Napi::CallbackInfo&) {
    if (inflight) {
      disposeLater = true;
      return;
    }
    destroy_cache(api, ptr);
    ptr = nullptr;
  }
};


/** A data-parallel communicator (joinComm): this process's rank among `world`. */
class Comm : public Napi::ObjectWrap<Comm> {
 public:
  static Napi::Function Init(Napi::Env env) {
    return DefineClass(env, "Comm",
                       {InstanceAccessor<&Comm::Rank>("rank"), InstanceAccessor<&Comm::World>("world"),
                        InstanceMethod<&Comm::AllReduceMean>("allReduceMean"), InstanceMethod<&Comm::Broadcast>("broadcast"),
                        InstanceMethod<&Comm::Abort>("abort"),
                        InstanceMethod<&Comm::Dispose>("dispose")});
  }
  explicit Comm(const Napi::CallbackInfo& info) : Napi::ObjectWrap<Comm>(info) {}
  ~Comm() override {
    if (!inflight && ptr) Release();
  }
  const Api* api = linked_api();
  GPT2Comm* ptr = nullptr;
  int rank = 0, world = 1;
  int inflight = 0;
  bool disposeLater = false;

  GPT2Comm* Live(Napi::Env env) {
    if (!ptr || disposeLater) throw Napi::Error::New(env, "this communicator was disposed");
    return ptr;
  }
  void OpDone() {
    if (--inflight == 0 && disposeLater) Release();
  }

 private:
  void Release() {
    GPT2Comm* c = ptr;
    const Api* a = api;
    ptr = nullptr;
    // on the executor, as every other call of the communicator: an MPI one is freed by the thread that uses MPI, and
    // a loaded library's device calls belong there
    Executor::get().post([a, c]() { a->comm_destroy(c); });
  }
  Napi::Value Rank(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), rank); }
  Napi::Value World(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), world); }
  /** allReduceMean(values: Float64Array) -> Promise<void>: values become their mean over the ranks. */
  Napi::Value AllReduceMean(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    GPT2Comm* c = Live(env);
    if (info.Length() < 1 || !info[0].IsTypedArray() || info[0].As<Napi::TypedArray>().TypedArrayType() != napi_float64_array)
      throw Napi::TypeError::New(env, "allReduceMean: values must be a Float64Array");
    auto values = info[0].As<Napi::Float64Array>();
    double* data = values.Data();
    const int n = (int)values.ElementLength();
    const Api* a = api;
    Job* job = new Job(env, a);
    job->work = [a, c, data, n]() { return a->comm_allreduce_mean(c, data, n); };
    job->result = [](Napi::Env e) { return e.Undefined(); };
    job->keep.push_back(Napi::Persistent(Value().As<Napi::Value>()));
    job->keep.push_back(Napi::Persistent(info[0]));
    job->done = [this]() { OpDone(); };
    inflight++;
    return Job::Start(env, job);
  }
  /** broadcast(data: Float32Array) -> Promise<void>: data becomes rank 0's data on every rank. */
  Napi::Value Broadcast(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    GPT2Comm* c = Live(env);
    auto arr = floats_arg(info, 0, 0, "broadcast: data");
    float* data = arr.Data();
    const size_t n = arr.ElementLength();
    const Api* a = api;
    Job* job = new Job(env, a);
    job->work = [a, c, data, n]() { return a->comm_broadcast(c, data, n); };
    job->result = [](Napi::Env e) { return e.Undefined(); };
    job->keep.push_back(Napi::Persistent(Value().As<Napi::Value>()));
    job->keep.push_back(Napi::Persistent(info[0]));
    job->done = [this]() { OpDone(); };
    inflight++;
    return Job::Start(env, job);
  }
  /** Makes the other ranks' waiting calls fail instead of hang (call it when this rank gives up). */
  void Abort(const Napi::CallbackInfo&) {
    if (ptr) api->comm_abort(ptr);
  }
  void Dispose(const Napi::CallbackInfo&) {
    if (!ptr) return;
    if (inflight) {
      disposeLater = true;
      return;
    }
    Release();
  }
};

class Model : public Napi::ObjectWrap<Model> {
 public:
  static Napi::Function Init(Napi::Env env) {
    return DefineClass(env, "Model",
                       {
                           InstanceMethod<&Model::NumTensors>("numTensors"),
                           InstanceMethod<&Model::TensorNumel>("tensorNumel"),
                           InstanceMethod<&Model::SetThreads>("setThreads"),
                           InstanceMethod<&Model::SetGemm>("setGemm"),
                           InstanceMethod<&Model::SetPrecision>("setPrecision"),
                           InstanceMethod<&Model::Read>("read"),
                           InstanceMethod<&Model::Write>("write"),
                           InstanceMethod<&Model::ForwardBackward>("forwardBackward"),
                           InstanceMethod<&Model::ZeroGrad>("zeroGrad"),
                           InstanceMethod<&Model::GradNorm>("gradNorm"),
                           InstanceMethod<&Model::ScaleGrads>("scaleGrads"),
                           InstanceMethod<&Model::AdamW>("adamw"),
                           InstanceMethod<&Model::Logits>("logits"),
                           InstanceMethod<&Model::TokenLosses>("tokenLosses"),
                           InstanceMethod<&Model::CreateCache>("createCache"),
                           InstanceMethod<&Model::Decode>("decode"),
                           InstanceMethod<&Model::AllReduceGrads>("allReduceGrads"),
                           InstanceMethod<&Model::Dispose>("dispose"),
                       });
  }

  /** new Model({numLayers, numHeads, channels, maxSeqLen, vocabSize, paddedVocabSize, lnEps}) */
  explicit Model(const Napi::CallbackInfo& info) : Napi::ObjectWrap<Model>(info) {
    Napi::Env env = info.Env();
    if (info.Length() < 1 || !info[0].IsObject()) throw Napi::TypeError::New(env, "Model(config): config must be an object");
    Napi::Object o = info[0].As<Napi::Object>();
    auto get = [&](const char* k) {
      Napi::Value v = o.Get(k);
      if (!v.IsNumber()) throw Napi::TypeError::New(env, std::string("Model config.") + k + " must be a number");
      return v.As<Napi::Number>().DoubleValue();
    };
    GPT2Config c;
    c.num_layers = (int)get("numLayers");
    c.num_heads = (int)get("numHeads");
    c.channels = (int)get("channels");
    c.max_seq_len = (int)get("maxSeqLen");
    c.vocab_size = (int)get("vocabSize");
    c.padded_vocab_size = (int)get("paddedVocabSize");
    c.ln_eps = (float)get("lnEps");
    api_ = api_arg(info, 1);
    const Api* api = api_;
    GPT2* created = nullptr;
    // on the executor, as every call: a CUDA build binds the model to the device that thread selected
    run_sync(env, api, [&]() { return api->create(&c, &created); }, "creating the model");
    ptr_ = created;
    vocab_ = c.vocab_size;
  }
  // A job still running when the environment goes away (a worker thread terminated mid-call) owns the model:
  // leak it rather than free memory the executor is using.
  ~Model() override {
    if (!busy_) destroy_model(api_, ptr_);
  }

  /** Called when a job ends: frees the model if dispose() came while it ran. */
  void JobDone() {
    busy_ = false;
    if (disposed_ && ptr_) {
      destroy_model(api_, ptr_);
      ptr_ = nullptr;
    }
  }

 private:
  const Api* api_ = linked_api();
  GPT2* ptr_ = nullptr;
  int vocab_ = 0;
  bool busy_ = false;
  bool disposed_ = false;

  /** The model for a call; throws if disposed or (for anything but reads of state) while a job runs. */
  GPT2* Live(Napi::Env env) {
    if (disposed_ || !ptr_) throw Napi::Error::New(env, "this native model was disposed");
    if (busy_) throw Napi::Error::New(env, "the native model is busy with another operation; await it first");
    return ptr_;
  }

  /** Starts a long operation; the model is busy until it ends. */
  Napi::Promise Start(Napi::Env env, std::function<int()> work, std::function<Napi::Value(Napi::Env)> result, Napi::Value out,
                      std::function<void()> done = nullptr) {
    Job* job = new Job(env, api_);
    job->work = std::move(work);
    job->result = std::move(result);
    job->keep.push_back(Napi::Persistent(Value().As<Napi::Value>()));
    if (!out.IsUndefined()) job->keep.push_back(Napi::Persistent(out));
    job->done = [this, done]() {
      if (done) done();
      JobDone();
    };
    busy_ = true;
    return Job::Start(env, job);
  }

  Napi::Value NumTensors(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), api_->num_tensors(Live(info.Env()))); }
  Napi::Value TensorNumel(const Napi::CallbackInfo& info) {
    return Napi::Number::New(info.Env(), (double)api_->tensor_numel(Live(info.Env()), int_arg(info, 0, "index")));
  }
  void SetThreads(const Napi::CallbackInfo& info) {
    GPT2* m = Live(info.Env());
    const int n = int_arg(info, 0, "threads");
    const Api* api = api_;
    run_sync(info.Env(), api, [&]() { return api->set_threads(m, n); }, "setThreads");
  }
  void SetGemm(const Napi::CallbackInfo& info) {
    std::string s = info.Length() > 0 && info[0].IsString() ? info[0].As<Napi::String>().Utf8Value() : "";
    int g = s == "blas" ? GPT2_GEMM_BLAS : s == "builtin" ? GPT2_GEMM_BUILTIN : -1;
    if (g < 0) throw Napi::TypeError::New(info.Env(), "setGemm: use \"blas\" or \"builtin\"");
    GPT2* m = Live(info.Env());
    const Api* api = api_;
    run_sync(info.Env(), api, [&]() { return api->set_gemm(m, g); }, "setGemm");
  }
  /** setPrecision("fp32" | "tf32" | "bf16"): the matmul precision; an engine refuses the ones it does not have. */
  void SetPrecision(const Napi::CallbackInfo& info) {
    std::string s = info.Length() > 0 && info[0].IsString() ? info[0].As<Napi::String>().Utf8Value() : "";
    int p = s == "fp32" ? GPT2_PRECISION_FP32 : s == "tf32" ? GPT2_PRECISION_TF32 : s == "bf16" ? GPT2_PRECISION_BF16 : -1;
    if (p < 0) throw Napi::TypeError::New(info.Env(), "setPrecision: use \"fp32\", \"tf32\" or \"bf16\"");
    GPT2* m = Live(info.Env());
    const Api* api = api_;
    run_sync(info.Env(), api, [&]() { return api->set_precision(m, p); }, "setPrecision");
  }
  /** read(which, offset, out: Float32Array) copies out.length floats of buffer `which` from `offset`. */
  void Read(const Napi::CallbackInfo& info) {
    GPT2* m = Live(info.Env());
    auto out = floats_arg(info, 2, 0, "out");
    const int which = int_arg(info, 0, "which");
    const size_t offset = (size_t)num_arg(info, 1, "offset");
    float* dst = out.Data();
    const size_t n = out.ElementLength();
    const Api* api = api_;
    run_sync(info.Env(), api, [&]() { return api->read(m, which, offset, dst, n); }, "read");
  }
  void Write(const Napi::CallbackInfo& info) {
    GPT2* m = Live(info.Env());
    auto src = floats_arg(info, 2, 0, "src");
    const int which = int_arg(info, 0, "which");
    const size_t offset = (size_t)num_arg(info, 1, "offset");
    const float* from = src.Data();
    const size_t n = src.ElementLength();
    const Api* api = api_;
    run_sync(info.Env(), api, [&]() { return api->write(m, which, offset, from, n); }, "write");
  }

  /** forwardBackward(inputs, targets, mask | null, B, T, lossScale) -> Promise<number> */
  Napi::Value ForwardBackward(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    GPT2* m = Live(env);
    const int B = int_arg(info, 3, "B"), T = int_arg(info, 4, "T");
    const float scale = (float)num_arg(info, 5, "lossScale");
    const size_t n = (size_t)B * T;
    auto inputs = std::make_shared<std::vector<int>>(ints_arg(info, 0, n, "inputs"));
    auto targets = std::make_shared<std::vector<int>>(ints_arg(info, 1, n, "targets"));
    auto mask = std::make_shared<std::vector<float>>(mask_arg(info, 2, n));
    auto loss = std::make_shared<float>(0.f);
    return Start(
        env, [=]() { return api_->forward_backward(m, inputs->data(), targets->data(), mask->empty() ? nullptr : mask->data(), B, T, scale, loss.get()); },
        [loss](Napi::Env e) { return Napi::Number::New(e, *loss); }, env.Undefined());
  }
  void ZeroGrad(const Napi::CallbackInfo& info) {
    GPT2* m = Live(info.Env());
    const Api* api = api_;
    run_sync(info.Env(), api, [&]() { return api->zero_grad(m); }, "zeroGrad");
  }
  Napi::Value GradNorm(const Napi::CallbackInfo& info) {
    GPT2* m = Live(info.Env());
    double norm = 0;
    run_sync(info.Env(), api_, [&]() { return api_->grad_norm(m, &norm); }, "gradNorm");
    return Napi::Number::New(info.Env(), norm);
  }
  void ScaleGrads(const Napi::CallbackInfo& info) {
    GPT2* m = Live(info.Env());
    const float f = (float)num_arg(info, 0, "factor");
    run_sync(info.Env(), api_, [&]() { return api_->scale_grads(m, f); }, "scaleGrads");
  }
  /** adamw(lr, beta1, beta2, eps, weightDecay, t) */
  void AdamW(const Napi::CallbackInfo& info) {
    GPT2* m = Live(info.Env());
    const double lr = num_arg(info, 0, "lr"), b1 = num_arg(info, 1, "beta1"), b2 = num_arg(info, 2, "beta2"), eps = num_arg(info, 3, "eps"),
                 wd = num_arg(info, 4, "weightDecay");
    const int t = int_arg(info, 5, "t");
    run_sync(info.Env(), api_, [&]() { return api_->adamw(m, lr, b1, b2, eps, wd, t); }, "adamw");
  }
  /** logits(inputs, B, T, out (B*T*V)) -> Promise<void> */
  Napi::Value Logits(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    GPT2* m = Live(env);
    const int B = int_arg(info, 1, "B"), T = int_arg(info, 2, "T");
    auto inputs = std::make_shared<std::vector<int>>(ints_arg(info, 0, (size_t)B * T, "inputs"));
    auto out = floats_arg(info, 3, (size_t)B * T * vocab_, "out");
    float* dst = out.Data();
    return Start(env, [=]() { return api_->logits(m, inputs->data(), B, T, dst); }, [](Napi::Env e) { return e.Undefined(); }, out);
  }
  /** tokenLosses(inputs, targets, mask | null, B, T, out (B*T)) -> Promise<void> */
  Napi::Value TokenLosses(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    GPT2* m = Live(env);
    const int B = int_arg(info, 3, "B"), T = int_arg(info, 4, "T");
    const size_t n = (size_t)B * T;
    auto inputs = std::make_shared<std::vector<int>>(ints_arg(info, 0, n, "inputs"));
    auto targets = std::make_shared<std::vector<int>>(ints_arg(info, 1, n, "targets"));
    auto mask = std::make_shared<std::vector<float>>(mask_arg(info, 2, n));
    auto out = floats_arg(info, 5, n, "out");
    float* dst = out.Data();
    return Start(
        env, [=]() { return api_->token_losses(m, inputs->data(), targets->data(), mask->empty() ? nullptr : mask->data(), B, T, dst); },
        [](Napi::Env e) { return e.Undefined(); }, out);
  }
  /** createCache(batch, maxLen) -> Cache */
  Napi::Value CreateCache(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    GPT2* m = Live(env);
    GPT2Cache* c = nullptr;
    const int batch = int_arg(info, 0, "batch");
    const int maxLen = int_arg(info, 1, "maxLen");
    const Api* api = api_;
    run_sync(env, api, [&]() { return api->cache_create(m, batch, maxLen, &c); }, "createCache");
    Napi::Object obj = env.GetInstanceData<AddonData>()->cacheCtor.New({});
    Cache* w = Cache::Unwrap(obj);
    w->api = api_;
    w->ptr = c;
    w->owner = m;
    w->batch = batch;
    return obj;
  }
  /** decode(cache, tokens (batch*S), S, out (batch*V)) -> Promise<void> */
  Napi::Value Decode(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    GPT2* m = Live(env);
    Napi::Object cacheObj = instance_arg(info, 0, &AddonData::cacheCtor, "decode: the first argument must be a Cache of this model");
    Cache* cw = Cache::Unwrap(cacheObj);
    if (!cw->ptr) throw Napi::Error::New(env, "decode: the KV cache was disposed");
    if (cw->owner != m) throw Napi::Error::New(env, "decode: the KV cache belongs to another model");
    const int S = int_arg(info, 2, "S");
    if (S <= 0) throw Napi::RangeError::New(env, "decode: S must be >= 1");
    auto tokens = std::make_shared<std::vector<int>>(ints_arg(info, 1, (size_t)cw->batch * S, "tokens"));
    auto out = floats_arg(info, 3, (size_t)cw->batch * vocab_, "out");
    float* dst = out.Data();
    GPT2Cache* c = cw->ptr;
    cw->inflight = true;
    auto keepCache = std::make_shared<Napi::ObjectReference>(Napi::Persistent(cacheObj));  // alive until done
    return Start(
        env, [=]() { return api_->decode(m, c, tokens->data(), S, dst); }, [](Napi::Env e) { return e.Undefined(); }, out,
        [cw, keepCache]() { cw->DecodeDone(); });
  }
  /** allReduceGrads(comm) -> Promise<void>: the gradients become their mean over the communicator's ranks. */
  Napi::Value AllReduceGrads(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    GPT2* m = Live(env);
    Comm* cw = Comm::Unwrap(instance_arg(info, 0, &AddonData::commCtor, "allReduceGrads: the argument must be a Comm from joinComm()"));
    GPT2Comm* c = cw->Live(env);
    if (cw->api != api_) throw Napi::Error::New(env, "allReduceGrads: the communicator belongs to another engine library");
    const Api* api = api_;
    cw->inflight++;
    return Start(
        env, [api, m, c]() { return api->allreduce_grads(m, c); }, [](Napi::Env e) { return e.Undefined(); }, info[0],
        [cw]() { cw->OpDone(); });
  }
  void Dispose(const Napi::CallbackInfo&) {
    if (disposed_) return;
    disposed_ = true;
    if (!busy_ && ptr_) {  // else JobDone frees it
      destroy_model(api_, ptr_);
      ptr_ = nullptr;
    }
  }
};

// ---- layerCheck: one layer's forward and backward on given arrays, for the tests --------------------------------

/**
 * layerCheck(name, arrays, dims, gemm) -> {name: Float32Array}
 *   encoder:      inp (B*T int), wte (V*C), wpe (T*C), dout (B*T*C)      -> out, dwte, dwpe
 *   layernorm:    x (N*C), w (C), b (C), dout (N*C)                      -> out, dx, dw, db
 *   matmul:       x (N*IC), W (OC*IC), bias (OC), dout (N*OC)            -> out, dx, dW, dbias
 *   attention:    qkv (B*T*3C), dout (B*T*C)                             -> out, dqkv
 *   gelu:         x (n), dout (n)                                        -> out, dx
 *   crossentropy: logits (N*V), targets (N int), weights (N), scale     -> losses, dlogits
 * dims: {B, T, C, N, IC, OC, NH, V}; gemm: "blas" | "builtin"; threads from the optional 5th argument.
 */
Napi::Value LayerCheck(const Napi::CallbackInfo& info) {
  using namespace gpt2cpu;
  Napi::Env env = info.Env();
  const std::string name = info[0].As<Napi::String>().Utf8Value();
  Napi::Object arr = info[1].As<Napi::Object>();
  Napi::Object dims = info[2].As<Napi::Object>();
  const std::string gemm = info[3].As<Napi::String>().Utf8Value();
  const int threads = info.Length() > 4 && info[4].IsNumber() ? info[4].As<Napi::Number>().Int32Value() : 2;
  if (gemm == "blas" && !gpt2_has_blas()) throw Napi::Error::New(env, "layerCheck: this build has no BLAS");
  Ctx cx{gemm == "blas" ? GemmBackend::Blas : GemmBackend::Builtin, threads};
  auto dim = [&](const char* k) {
    Napi::Value v = dims.Get(k);
    return v.IsNumber() ? v.As<Napi::Number>().Int32Value() : 0;
  };
  auto f32 = [&](const char* k) {
    Napi::Value v = arr.Get(k);
    if (!v.IsTypedArray()) throw Napi::TypeError::New(env, std::string("layerCheck: missing array ") + k);
    return v.As<Napi::Float32Array>().Data();
  };
  auto i32 = [&](const char* k) {
    Napi::Value v = arr.Get(k);
    if (!v.IsTypedArray()) throw Napi::TypeError::New(env, std::string("layerCheck: missing array ") + k);
    return v.As<Napi::Int32Array>().Data();
  };
  Napi::Object res = Napi::Object::New(env);
  auto out = [&](const char* k, size_t n) {
    Napi::Float32Array a = Napi::Float32Array::New(env, n);
    std::fill(a.Data(), a.Data() + n, 0.f);
    res.Set(k, a);
    return a.Data();
  };
  const int B = dim("B"), T = dim("T"), C = dim("C"), N = dim("N"), NH = dim("NH"), V = dim("V");
  std::vector<float> scratch(layer_scratch_floats(threads, std::max(C, 1), std::max(T, 1)) + 64);
  if (name == "encoder") {
    const int* inp = i32("inp");
    encoder_forward(cx, out("out", (size_t)B * T * C), inp, f32("wte"), f32("wpe"), B, T, C, 0);
    encoder_backward(cx, out("dwte", (size_t)V * C), out("dwpe", (size_t)T * C), f32("dout"), inp, B, T, C);
  } else if (name == "layernorm") {
    std::vector<float> mean(N), rstd(N);
    const float* x = f32("x");
    const float* w = f32("w");
    layernorm_forward(cx, out("out", (size_t)N * C), mean.data(), rstd.data(), x, w, f32("b"), N, C, 1e-5f);
    layernorm_backward(cx, out("dx", (size_t)N * C), out("dw", C), out("db", C), f32("dout"), x, w, mean.data(),
                       rstd.data(), N, C);
  } else if (name == "matmul") {
    const int IC = dim("IC"), OC = dim("OC");
    const float* x = f32("x");
    const float* W = f32("W");
    matmul_forward(cx, out("out", (size_t)N * OC), x, W, f32("bias"), nullptr, N, IC, OC);
    matmul_backward(cx, out("dx", (size_t)N * IC), out("dW", (size_t)OC * IC), out("dbias", OC), f32("dout"), x, W, N, IC, OC);
  } else if (name == "attention") {
    std::vector<float> att((size_t)B * NH * T * T);
    const float* qkv = f32("qkv");
    attention_forward(cx, out("out", (size_t)B * T * C), att.data(), qkv, B, T, C, NH);
    attention_backward(cx, out("dqkv", (size_t)B * T * 3 * C), scratch.data(), f32("dout"), qkv, att.data(), B, T, C, NH);
  } else if (name == "gelu") {
    const float* x = f32("x");
    float* dx = out("dx", N);
    gelu_forward(cx, out("out", N), x, N);
    std::copy(f32("dout"), f32("dout") + N, dx);
    gelu_backward(cx, dx, x, N);
  } else if (name == "crossentropy") {
    float* d = out("dlogits", (size_t)N * V);
    std::copy(f32("logits"), f32("logits") + (size_t)N * V, d);
    const float scale = (float)dims.Get("scale").As<Napi::Number>().DoubleValue();
    crossentropy(cx, d, out("losses", N), i32("targets"), f32("weights"), N, V, true, scale);
  } else {
    throw Napi::Error::New(env, "layerCheck: unknown layer " + name);
  }
  return res;
}

/** loadLibrary(path) -> Library: a shared library with the C API (e.g. build/libgpt2_cuda.so). */
Napi::Value LoadLibrary(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsString()) throw Napi::TypeError::New(env, "loadLibrary(path): path must be a string");
  const Api* api = nullptr;
  try {
    api = load_api(info[0].As<Napi::String>().Utf8Value());
  } catch (const std::exception& e) {
    throw Napi::Error::New(env, e.what());
  }
  Napi::Object obj = env.GetInstanceData<AddonData>()->libraryCtor.New({});
  Library::Unwrap(obj)->api = api;
  return obj;
}

/** newCommId(kind: "shm" | "nccl" | "mpi" | null, library?) -> string */
Napi::Value NewCommId(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const std::string kind = info.Length() > 0 && info[0].IsString() ? info[0].As<Napi::String>().Utf8Value() : "";
  const Api* api = api_arg(info, 1);
  std::vector<char> id(GPT2_COMM_ID_BYTES, 0);
  run_sync(env, api, [&]() { return api->comm_new_id(kind.empty() ? nullptr : kind.c_str(), id.data()); }, "newCommId");
  return Napi::String::New(env, id.data());
}

/** joinComm(id, rank, world, timeoutMs, library?) -> Promise<Comm>; resolves once every rank has joined. */
Napi::Value JoinComm(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsString()) throw Napi::TypeError::New(env, "joinComm: id must be a string");
  auto id = std::make_shared<std::string>(info[0].As<Napi::String>().Utf8Value());
  const int rank = int_arg(info, 1, "rank"), world = int_arg(info, 2, "world"), timeout = int_arg(info, 3, "timeoutMs");
  const Api* api = api_arg(info, 4);
  auto out = std::make_shared<GPT2Comm*>(nullptr);
  Job* job = new Job(env, api);
  job->work = [api, id, rank, world, timeout, out]() { return api->comm_create(id->c_str(), rank, world, timeout, out.get()); };
  job->result = [api, out, rank, world](Napi::Env e) -> Napi::Value {
    Napi::Object obj = e.GetInstanceData<AddonData>()->commCtor.New({});
    Comm* c = Comm::Unwrap(obj);
    c->api = api;
    c->ptr = *out;
    c->rank = rank;
    c->world = world;
    return obj;
  };
  return Job::Start(env, job);
}

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  Napi::Function model = Model::Init(env);
  Napi::Function cache = Cache::Init(env);
  Napi::Function library = Library::Init(env);
  Napi::Function comm = Comm::Init(env);
  AddonData* data = new AddonData();
  data->cacheCtor = Napi::Persistent(cache);
  data->libraryCtor = Napi::Persistent(library);
  data->commCtor = Napi::Persistent(comm);
  env.SetInstanceData(data);
  exports.Set("Model", model);
  exports.Set("Cache", cache);
  exports.Set("apiVersion", Napi::Number::New(env, GPT2_API_VERSION));
  exports.Set("buildInfo", Napi::Function::New(env, [](const Napi::CallbackInfo& info) { return Napi::String::New(info.Env(), gpt2_build_info()); }));
  exports.Set("defaultThreads", Napi::Function::New(env, [](const Napi::CallbackInfo& info) {
#ifdef _OPENMP
                return Napi::Number::New(info.Env(), omp_get_max_threads());  // OMP_NUM_THREADS, else the cores
#else
                return Napi::Number::New(info.Env(), 1);
#endif
              }));
  exports.Set("hasBlas", Napi::Function::New(env, [](const Napi::CallbackInfo& info) { return Napi::Boolean::New(info.Env(), gpt2_has_blas() != 0); }));
  exports.Set("mpiInfo", Napi::Function::New(env, [](const Napi::CallbackInfo& info) {
                // the linked CPU engine's MPI (gpt2_mpi_version: NULL without one); asking does not initialize MPI
                Napi::Env e = info.Env();
                const char* v = gpt2_mpi_version();
                Napi::Object o = Napi::Object::New(e);
                o.Set("available", Napi::Boolean::New(e, v != nullptr));
                o.Set("version", v ? Napi::Value(Napi::String::New(e, v)) : e.Null());
                return o;
              }));
  exports.Set("layerCheck", Napi::Function::New(env, LayerCheck));
  exports.Set("loadLibrary", Napi::Function::New(env, LoadLibrary));
  exports.Set("newCommId", Napi::Function::New(env, NewCommId));
  exports.Set("joinComm", Napi::Function::New(env, JoinComm));
  exports.Set("nvmlSample", Napi::Function::New(env, NvmlSample));
  return exports;
}

}  // namespace

NODE_API_MODULE(gpt2_native, Init)
