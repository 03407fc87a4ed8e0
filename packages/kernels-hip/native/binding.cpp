// binding.cpp: the node-addon-api surface of the GPU backend (halo_hip.node). Nothing here throws into JavaScript:
// every call answers a status number (0 = ok; the numbers of gpu_model.h's ModelStatus), a step's promise resolves to
// { status: 0, … } or { status, message }, and lastError() says why the last sync call failed. A wrong argument type
// is status 6 (bad argument), never a crash; a native allocation failure is status 4 (out of memory).
#include <napi.h>

#include <cmath>
#include <cstring>
#include <exception>
#include <memory>
#include <string>
#include <vector>

#include "gpu_model.h"
#include "pack_g2.h"

namespace {

using halo_gpu::ModelResult;
using halo_gpu::ModelStatus;

// ---------------------------------------------------------------- argument helpers

/** A whole number in int32 range at info[i]. */
bool int_at(const Napi::CallbackInfo& info, std::size_t i, int* out) {
  if (i >= info.Length() || !info[i].IsNumber()) return false;
  const double v = info[i].As<Napi::Number>().DoubleValue();
  if (!(v >= -2147483648.0 && v <= 2147483647.0) || std::floor(v) != v) return false;
  *out = static_cast<int>(v);
  return true;
}

bool typed_at(const Napi::CallbackInfo& info, std::size_t i, napi_typedarray_type type) {
  return i < info.Length() && info[i].IsTypedArray() && info[i].As<Napi::TypedArray>().TypedArrayType() == type;
}

bool is_typed(const Napi::Value& v, napi_typedarray_type type) { return v.IsTypedArray() && v.As<Napi::TypedArray>().TypedArrayType() == type; }

/** The first byte of a typed array's elements (its buffer plus its offset). */
void* typed_data(const Napi::Value& v) {
  Napi::TypedArray a = v.As<Napi::TypedArray>();
  return static_cast<char*>(a.ArrayBuffer().Data()) + a.ByteOffset();
}
std::size_t typed_length(const Napi::Value& v) { return v.As<Napi::TypedArray>().ElementLength(); }

std::string string_at(const Napi::CallbackInfo& info, std::size_t i) {
  return i < info.Length() && info[i].IsString() ? info[i].As<Napi::String>().Utf8Value() : "";
}

/** A float table dtype name → halo_gpu_dtype, or −1. */
int dtype_of(const std::string& name) { return name == "f16" ? HALO_GPU_F16 : name == "bf16" ? HALO_GPU_BF16 : name == "f32" ? HALO_GPU_F32 : -1; }

napi_value typed_copy(napi_env env, napi_typedarray_type type, const void* src, std::size_t count, std::size_t size) {
  void* data = nullptr;
  napi_value buffer = nullptr, array = nullptr;
  if (napi_create_arraybuffer(env, count * size, &data, &buffer) != napi_ok || napi_create_typedarray(env, type, count, buffer, 0, &array) != napi_ok)
    return nullptr;
  if (count != 0) std::memcpy(data, src, count * size);
  return array;
}

/** Runs `body`; a C++ exception (std::bad_alloc from a vector: the only thing the native code throws) becomes status 4. */
template <typename Body>
Napi::Value guarded(Napi::Env env, Body body) {
  try {
    return body();
  } catch (const std::exception&) { return Napi::Number::New(env, halo_gpu::MODEL_OUT_OF_MEMORY); }
}

// ---------------------------------------------------------------- module functions

// probe(device, codeDir) → { available, status, reason, kind?, name?, arch?, totalBytes?, freeBytes?, targets } (never throws)
Napi::Value Probe(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return guarded(env, [&]() -> Napi::Value {
    Napi::Object out = Napi::Object::New(env);
    const std::string which = string_at(info, 0);
    if (!(which == "auto" || which == "hip" || which == "cuda" || which == "emulator") || info.Length() < 2 || !info[1].IsString()) {
      out.Set("available", false);
      out.Set("status", static_cast<int>(halo_gpu::MODEL_BAD_ARGUMENT));
      out.Set("reason", "probe(device: \"auto\" | \"hip\" | \"cuda\" | \"emulator\", codeDir: string): got device \"" + which + "\"");
      out.Set("targets", Napi::Array::New(env, 0));
      return out;
    }
    halo_gpu::DeviceInfo d;
    const halo_gpu::Result r = halo_gpu::probe_device(which, halo_gpu::CodeObjects{string_at(info, 1)}, &d);
    out.Set("available", r.ok());
    out.Set("status", static_cast<int>(r.status));
    out.Set("reason", r.ok() ? std::string("available") : r.message);
    if (r.ok()) out.Set("kind", halo_gpu::kind_name(d.kind));
    if (!d.name.empty()) out.Set("name", d.name);
    if (!d.arch.empty()) out.Set("arch", d.arch);
    if (r.ok() || d.total_bytes > 0) {
      out.Set("totalBytes", static_cast<double>(d.total_bytes));
      out.Set("freeBytes", static_cast<double>(d.free_bytes));
    }
    Napi::Array targets = Napi::Array::New(env, d.targets.size());
    for (std::size_t i = 0; i < d.targets.size(); i++) targets.Set(static_cast<uint32_t>(i), d.targets[i]);
    out.Set("targets", targets);
    return out;
  });
}

// injectFault(op, after) → status (the emulator's next `after`-th call of op fails; after < 0 clears every fault)
Napi::Value InjectFault(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return guarded(env, [&]() -> Napi::Value {
    int after = 0;
    if (info.Length() < 2 || !info[0].IsString() || !int_at(info, 1, &after)) return Napi::Number::New(env, halo_gpu::MODEL_BAD_ARGUMENT);
    return Napi::Number::New(env, static_cast<int>(halo_gpu::emulator_inject_fault(string_at(info, 0), after).status));
  });
}

// packG2(trits: Int8Array [rows][cols], rows, cols) → Uint8Array [rows][ceil(cols / 64) · 16] | status
Napi::Value PackG2(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return guarded(env, [&]() -> Napi::Value {
    int rows = 0, cols = 0;
    if (!typed_at(info, 0, napi_int8_array) || !int_at(info, 1, &rows) || !int_at(info, 2, &cols) || rows < 0 || cols < 1 ||
        typed_length(info[0]) != static_cast<std::size_t>(rows) * static_cast<std::size_t>(cols))
      return Napi::Number::New(env, halo_gpu::MODEL_BAD_ARGUMENT);
    const std::size_t bytes = halo_gpu::g2_row_bytes(cols) * static_cast<std::size_t>(rows);
    Napi::Uint8Array out = Napi::Uint8Array::New(env, bytes);
    std::string why;
    if (!halo_gpu::g2_pack(static_cast<const int8_t*>(typed_data(info[0])), rows, cols, out.Data(), &why))
      return Napi::Number::New(env, halo_gpu::MODEL_BAD_WEIGHTS);
    return out;
  });
}

// ---------------------------------------------------------------- the model handle

/** What a handle and its in-flight step share: the step may outlive the JS object (dispose, garbage collection). */
struct Shared {
  std::shared_ptr<halo_gpu::GpuModel> model;  // null: never opened, or disposed
  int open_status = halo_gpu::MODEL_OK;
  bool disposed = false;
  bool busy = false;                 // a step is in flight (set and cleared on the JS thread only)
  std::string last_error;
  halo_gpu::ModelInfo last_info;     // taken before the first step and by every step at its end: info() answers this while one runs
  bool has_info = false;
};

/** A step off the JS thread. Its promise always resolves, to { status: 0, … } or { status, message }; settled with raw
 *  napi calls whose failures are ignored, because OnOK also runs while an env is torn down (a terminated worker). */
class StepWorker : public Napi::AsyncWorker {
 public:
  StepWorker(Napi::Env env, std::shared_ptr<Shared> shared) : Napi::AsyncWorker(env), shared_(std::move(shared)), model_(shared_->model) {
    if (napi_create_promise(env, &deferred_, &promise_) != napi_ok) deferred_ = nullptr;
  }
  Napi::Value Promise() { return deferred_ == nullptr ? Napi::Value() : Napi::Value(Env(), promise_); }

  std::vector<int32_t> tokens, positions, slots, logit_rows, hidden_rows;
  halo_gpu::StepOutput output = halo_gpu::StepOutput::Logits;
  int top_k = 0;

 protected:
  void Execute() override {
    try {
      halo_gpu::StepRequest q;
      q.tokens = tokens.data();
      q.positions = positions.data();
      q.slots = slots.data();
      q.n = static_cast<int>(tokens.size());
      q.logit_rows = logit_rows.data();
      q.n_logits = static_cast<int>(logit_rows.size());
      q.output = output;
      q.top_k = top_k;
      q.hidden_rows = hidden_rows.data();
      q.n_hidden = static_cast<int>(hidden_rows.size());
      result_ = model_->step(q, &out_);
      info_ = model_->info();
    } catch (const std::exception& e) {
      result_ = ModelResult::failure(halo_gpu::MODEL_OUT_OF_MEMORY, std::string("native allocation failed during the step: ") + e.what());
    }
  }
  void OnOK() override { Settle(); }
  void OnError(const Napi::Error&) override {
    if (result_.ok()) result_ = ModelResult::failure(halo_gpu::MODEL_DEVICE_ERROR, "the step's worker failed");
    Settle();
  }

 private:
  void Settle() {
    shared_->busy = false;
    shared_->last_info = info_;
    shared_->has_info = true;
    if (!result_.ok()) shared_->last_error = result_.message;
    napi_env env = Env();
    bool pending = false;
    if (napi_is_exception_pending(env, &pending) == napi_ok && pending) {
      napi_value ignored;
      napi_get_and_clear_last_exception(env, &ignored);
    }
    napi_value object = nullptr;
    if (napi_create_object(env, &object) != napi_ok) return;
    auto put = [&](const char* key, napi_value value) { return value != nullptr && napi_set_named_property(env, object, key, value) == napi_ok; };
    auto number = [&](int v) {
      napi_value value = nullptr;
      return napi_create_int32(env, v, &value) == napi_ok ? value : nullptr;
    };
    bool ok = result_.ok();
    if (ok) {
      const bool argmax = output == halo_gpu::StepOutput::Argmax, top = output == halo_gpu::StepOutput::TopK;
      ok = put("status", number(0)) && put("logits", typed_copy(env, napi_float32_array, out_.logits.data(), out_.logits.size(), 4));
      if (ok && argmax) ok = put("argmax", typed_copy(env, napi_int32_array, out_.ids.data(), out_.ids.size(), 4));
      if (ok && top)
        ok = put("topKIds", typed_copy(env, napi_int32_array, out_.ids.data(), out_.ids.size(), 4)) &&
             put("topKLogits", typed_copy(env, napi_float32_array, out_.values.data(), out_.values.size(), 4));
      if (ok && !hidden_rows.empty()) ok = put("hidden", typed_copy(env, napi_float32_array, out_.hidden.data(), out_.hidden.size(), 4));
      if (!ok) {
        result_ = ModelResult::failure(halo_gpu::MODEL_OUT_OF_MEMORY, "could not create the step's result arrays");
        shared_->last_error = result_.message;
        if (napi_create_object(env, &object) != napi_ok) return;
      }
    }
    if (!result_.ok()) {
      napi_value message = nullptr;
      put("status", number(result_.status));
      if (napi_create_string_utf8(env, result_.message.c_str(), result_.message.size(), &message) == napi_ok) put("message", message);
    }
    napi_resolve_deferred(env, deferred_, object);
  }

  std::shared_ptr<Shared> shared_;
  std::shared_ptr<halo_gpu::GpuModel> model_;  // keeps the model alive past dispose() until the step ends
  ModelResult result_;
  halo_gpu::StepResult out_;
  halo_gpu::ModelInfo info_;
  napi_deferred deferred_ = nullptr;
  napi_value promise_ = nullptr;
};

class GpuModelWrap : public Napi::ObjectWrap<GpuModelWrap> {
 public:
  static Napi::Function Init(Napi::Env env) {
    return DefineClass(env, "GpuModel",
                       {
                           InstanceMethod("openStatus", &GpuModelWrap::Guard<&GpuModelWrap::OpenStatus>),
                           InstanceMethod("lastError", &GpuModelWrap::Guard<&GpuModelWrap::LastError>),
                           InstanceMethod("setMatrix", &GpuModelWrap::Guard<&GpuModelWrap::SetMatrix>),
                           InstanceMethod("uploadG2", &GpuModelWrap::Guard<&GpuModelWrap::UploadG2>),
                           InstanceMethod("packRows", &GpuModelWrap::Guard<&GpuModelWrap::PackRows>),
                           InstanceMethod("setNorm", &GpuModelWrap::Guard<&GpuModelWrap::SetNorm>),
                           InstanceMethod("setEmbedding", &GpuModelWrap::Guard<&GpuModelWrap::SetEmbedding>),
                           InstanceMethod("setHead", &GpuModelWrap::Guard<&GpuModelWrap::SetHead>),
                           InstanceMethod("finalize", &GpuModelWrap::Guard<&GpuModelWrap::Finalize>),
                           InstanceMethod("step", &GpuModelWrap::Guard<&GpuModelWrap::Step>),
                           InstanceMethod("copySlot", &GpuModelWrap::Guard<&GpuModelWrap::CopySlot>),
                           InstanceMethod("exportSlot", &GpuModelWrap::Guard<&GpuModelWrap::ExportSlot>),
                           InstanceMethod("importSlot", &GpuModelWrap::Guard<&GpuModelWrap::ImportSlot>),
                           InstanceMethod("info", &GpuModelWrap::Guard<&GpuModelWrap::Info>),
                           InstanceMethod("dispose", &GpuModelWrap::Guard<&GpuModelWrap::Dispose>),
                       });
  }

  template <Napi::Value (GpuModelWrap::*Method)(const Napi::CallbackInfo&)>
  Napi::Value Guard(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    try {
      return (this->*Method)(info);
    } catch (const std::exception& e) {
      shared_->last_error = std::string("native allocation failed: ") + e.what();
      return Napi::Number::New(env, halo_gpu::MODEL_OUT_OF_MEMORY);
    }
  }

  // new GpuModel(config, device, codeDir): never throws; openStatus() says whether the device opened and the config holds.
  explicit GpuModelWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<GpuModelWrap>(info), shared_(std::make_shared<Shared>()) {
    try {
      Construct(info);
    } catch (const std::exception& e) {
      shared_->model.reset();
      shared_->open_status = halo_gpu::MODEL_OUT_OF_MEMORY;
      shared_->last_error = std::string("native allocation failed: ") + e.what();
    }
  }

 private:
  void Construct(const Napi::CallbackInfo& info) {
    auto refuse = [&](const std::string& why) {
      shared_->open_status = halo_gpu::MODEL_BAD_ARGUMENT;
      shared_->last_error = why;
    };
    if (info.Length() < 3 || !info[0].IsObject() || !info[1].IsString() || !info[2].IsString())
      return refuse("new GpuModel(config: object, device: string, codeDir: string)");
    Napi::Object c = info[0].As<Napi::Object>();
    halo_gpu::ModelConfig config;
    struct Field {
      const char* key;
      int* target;
    };
    const Field ints[] = {{"hidden", &config.hidden},
                          {"intermediate", &config.intermediate},
                          {"layers", &config.layers},
                          {"heads", &config.heads},
                          {"kvHeads", &config.kv_heads},
                          {"headDim", &config.head_dim},
                          {"vocab", &config.vocab},
                          {"context", &config.context},
                          {"maxSequences", &config.max_sequences},
                          {"maxBatchTokens", &config.max_batch_tokens}};
    for (const Field& f : ints) {
      const Napi::Value v = c.Get(f.key);
      const double d = v.IsNumber() ? v.As<Napi::Number>().DoubleValue() : -1;
      if (!(d >= 1 && d <= (1 << 24)) || std::floor(d) != d) return refuse(std::string("config.") + f.key + " must be a whole number in [1, 2^24]");
      *f.target = static_cast<int>(d);
    }
    for (const char* key : {"ropeTheta", "eps"}) {
      const Napi::Value v = c.Get(key);
      if (!v.IsNumber() || !std::isfinite(v.As<Napi::Number>().DoubleValue())) return refuse(std::string("config.") + key + " must be a finite number");
    }
    config.rope_theta = c.Get("ropeTheta").As<Napi::Number>().DoubleValue();
    config.eps = c.Get("eps").As<Napi::Number>().DoubleValue();
    if (!c.Get("relu2").IsBoolean()) return refuse("config.relu2 must be a boolean (true: relu², false: silu)");
    config.relu2 = c.Get("relu2").As<Napi::Boolean>().Value();
    const Napi::Value kv = c.Get("kvDtype");
    const std::string kv_name = kv.IsString() ? kv.As<Napi::String>().Utf8Value() : "";
    if (kv_name != "f16" && kv_name != "f32")
      return refuse("config.kvDtype must be \"f16\" or \"f32\"; got \"" + kv_name + "\" (int8 runs on the cpu backend)");
    config.kv_dtype = kv_name == "f32" ? HALO_GPU_F32 : HALO_GPU_F16;
    const Napi::Value graphs = c.Get("graphs");
    if (!graphs.IsUndefined() && !graphs.IsBoolean()) return refuse("config.graphs must be a boolean when given");
    config.graphs = graphs.IsUndefined() || graphs.As<Napi::Boolean>().Value();
    const std::string which = info[1].As<Napi::String>().Utf8Value();
    if (which != "auto" && which != "hip" && which != "cuda" && which != "emulator")
      return refuse("device must be \"auto\", \"hip\", \"cuda\" or \"emulator\"; got \"" + which + "\"");
    std::unique_ptr<halo_gpu::GpuModel> model;
    const ModelResult r = halo_gpu::GpuModel::open(config, which, info[2].As<Napi::String>().Utf8Value(), &model);
    shared_->open_status = r.status;
    if (!r.ok()) {
      shared_->last_error = r.message;
      return;
    }
    shared_->model = std::shared_ptr<halo_gpu::GpuModel>(std::move(model));
  }

  Napi::Value Status(Napi::Env env, const ModelResult& r) {
    if (!r.ok()) shared_->last_error = r.message;
    return Napi::Number::New(env, r.status);
  }
  Napi::Value Refuse(Napi::Env env, int status, const std::string& why) { return Status(env, ModelResult::failure(status, why)); }

  /** The model for a sync call, or null with the refusal already recorded in `*refusal`. */
  halo_gpu::GpuModel* live(Napi::Env env, Napi::Value* refusal) {
    if (shared_->disposed) {
      *refusal = Refuse(env, halo_gpu::MODEL_NOT_READY, "the model was disposed");
      return nullptr;
    }
    if (!shared_->model) {
      // Keep the open failure's own message (lastError already says why) and answer the not-ready status.
      *refusal = Napi::Number::New(env, halo_gpu::MODEL_NOT_READY);
      return nullptr;
    }
    if (shared_->busy) {
      *refusal = Refuse(env, halo_gpu::MODEL_BAD_ARGUMENT, "a step is in flight on this model: await it before calling another method");
      return nullptr;
    }
    return shared_->model.get();
  }

  Napi::Value OpenStatus(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), shared_->open_status); }
  Napi::Value LastError(const Napi::CallbackInfo& info) { return Napi::String::New(info.Env(), shared_->last_error); }

  // setMatrix(layer, role, rows, cols, scaleBlock, scales: Float32Array) → status
  Napi::Value SetMatrix(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    Napi::Value refusal;
    halo_gpu::GpuModel* m = live(env, &refusal);
    if (m == nullptr) return refusal;
    int layer, role, rows, cols, block;
    if (!int_at(info, 0, &layer) || !int_at(info, 1, &role) || !int_at(info, 2, &rows) || !int_at(info, 3, &cols) || !int_at(info, 4, &block) ||
        !typed_at(info, 5, napi_float32_array))
      return Refuse(env, halo_gpu::MODEL_BAD_ARGUMENT, "setMatrix(layer, role, rows, cols, scaleBlock: whole numbers, scales: Float32Array)");
    return Status(env, m->set_matrix(layer, role, rows, cols, block, static_cast<const float*>(typed_data(info[5])), typed_length(info[5])));
  }

  // uploadG2(layer, role, row0, bytes: Uint8Array, rowCount) → status
  Napi::Value UploadG2(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    Napi::Value refusal;
    halo_gpu::GpuModel* m = live(env, &refusal);
    if (m == nullptr) return refusal;
    int layer, role, row0, count;
    if (!int_at(info, 0, &layer) || !int_at(info, 1, &role) || !int_at(info, 2, &row0) || !typed_at(info, 3, napi_uint8_array) || !int_at(info, 4, &count))
      return Refuse(env, halo_gpu::MODEL_BAD_ARGUMENT, "uploadG2(layer, role, row0: whole numbers, bytes: Uint8Array, rowCount: whole number)");
    return Status(env, m->upload_g2(layer, role, row0, static_cast<const uint8_t*>(typed_data(info[3])), typed_length(info[3]), count));
  }

  // packRows(layer, role, row0, trits: Int8Array, rowCount) → status
  Napi::Value PackRows(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    Napi::Value refusal;
    halo_gpu::GpuModel* m = live(env, &refusal);
    if (m == nullptr) return refusal;
    int layer, role, row0, count;
    if (!int_at(info, 0, &layer) || !int_at(info, 1, &role) || !int_at(info, 2, &row0) || !typed_at(info, 3, napi_int8_array) || !int_at(info, 4, &count))
      return Refuse(env, halo_gpu::MODEL_BAD_ARGUMENT, "packRows(layer, role, row0: whole numbers, trits: Int8Array, rowCount: whole number)");
    return Status(env, m->pack_rows(layer, role, row0, static_cast<const int8_t*>(typed_data(info[3])), typed_length(info[3]), count));
  }

  // setNorm(layer (-1: output norm), which 0…3, values: Float32Array) → status
  Napi::Value SetNorm(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    Napi::Value refusal;
    halo_gpu::GpuModel* m = live(env, &refusal);
    if (m == nullptr) return refusal;
    int layer, which;
    if (!int_at(info, 0, &layer) || !int_at(info, 1, &which) || !typed_at(info, 2, napi_float32_array))
      return Refuse(env, halo_gpu::MODEL_BAD_ARGUMENT, "setNorm(layer, which: whole numbers, values: Float32Array)");
    return Status(env, m->set_norm(layer, which, static_cast<const float*>(typed_data(info[2])), typed_length(info[2])));
  }

  // setEmbedding(values: Uint16Array (f16 / bf16 bits) | Float32Array, dtype: "f16" | "bf16" | "f32") → status
  Napi::Value SetEmbedding(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    Napi::Value refusal;
    halo_gpu::GpuModel* m = live(env, &refusal);
    if (m == nullptr) return refusal;
    const int dtype = dtype_of(string_at(info, 1));
    if (dtype < 0 || !typed_at(info, 0, dtype == HALO_GPU_F32 ? napi_float32_array : napi_uint16_array))
      return Refuse(env, halo_gpu::MODEL_BAD_ARGUMENT, "setEmbedding(values: Uint16Array with \"f16\" / \"bf16\", Float32Array with \"f32\", dtype)");
    return Status(env, m->set_embedding(typed_data(info[0]), typed_length(info[0]), dtype));
  }

  // setHead(kind: "tied" | "f16" | "bf16" | "f32", values: Uint16Array | Float32Array | null) → status
  Napi::Value SetHead(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    Napi::Value refusal;
    halo_gpu::GpuModel* m = live(env, &refusal);
    if (m == nullptr) return refusal;
    const std::string kind = string_at(info, 0);
    if (kind == "tied") return Status(env, m->set_head(true, nullptr, 0, HALO_GPU_F16));
    const int dtype = dtype_of(kind);
    if (dtype < 0 || !typed_at(info, 1, dtype == HALO_GPU_F32 ? napi_float32_array : napi_uint16_array))
      return Refuse(env, halo_gpu::MODEL_BAD_ARGUMENT,
                    "setHead(kind: \"tied\" | \"f16\" | \"bf16\" | \"f32\", values: Uint16Array for f16 / bf16, Float32Array for f32)");
    return Status(env, m->set_head(false, typed_data(info[1]), typed_length(info[1]), dtype));
  }

  Napi::Value Finalize(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    Napi::Value refusal;
    halo_gpu::GpuModel* m = live(env, &refusal);
    if (m == nullptr) return refusal;
    return Status(env, m->finalize());
  }

  /** A promise already resolved to { status, message } (step refusals before any work is queued). */
  Napi::Value Resolved(Napi::Env env, int status, const std::string& message) {
    shared_->last_error = message;
    Napi::Promise::Deferred deferred = Napi::Promise::Deferred::New(env);
    Napi::Object out = Napi::Object::New(env);
    out.Set("status", status);
    out.Set("message", message);
    deferred.Resolve(out);
    return deferred.Promise();
  }

  // step(tokens, positions, slots, logitRows: Int32Array, options: { output, topK?, hiddenRows? }) → Promise<…>
  Napi::Value Step(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (shared_->disposed) return Resolved(env, halo_gpu::MODEL_NOT_READY, "the model was disposed");
    if (!shared_->model) return Resolved(env, halo_gpu::MODEL_NOT_READY, "the device did not open: " + shared_->last_error);
    if (shared_->busy) return Resolved(env, halo_gpu::MODEL_BAD_ARGUMENT, "a step is already in flight on this model: await it first");
    for (std::size_t i = 0; i < 4; i++)
      if (!typed_at(info, i, napi_int32_array))
        return Resolved(env, halo_gpu::MODEL_BAD_ARGUMENT, "step(tokens, positions, slots, logitRows: Int32Array, options)");
    const std::size_t n = typed_length(info[0]);
    if (typed_length(info[1]) != n || typed_length(info[2]) != n)
      return Resolved(env, halo_gpu::MODEL_BAD_ARGUMENT, "step: tokens, positions and slots must have the same length");
    if (n > static_cast<std::size_t>(shared_->model->config().max_batch_tokens) || typed_length(info[3]) > n)
      return Resolved(env, halo_gpu::MODEL_BAD_ARGUMENT,
                      "step: expected 1 … " + std::to_string(shared_->model->config().max_batch_tokens) + " rows and at most that many logit rows");
    halo_gpu::StepOutput output = halo_gpu::StepOutput::Logits;
    int top_k = 0;
    const Napi::Value hidden = info.Length() >= 5 && info[4].IsObject() ? info[4].As<Napi::Object>().Get("hiddenRows") : env.Undefined();
    if (info.Length() >= 5 && !info[4].IsUndefined()) {
      if (!info[4].IsObject()) return Resolved(env, halo_gpu::MODEL_BAD_ARGUMENT, "step options must be an object");
      Napi::Object options = info[4].As<Napi::Object>();
      const Napi::Value name = options.Get("output");
      const std::string kind = name.IsString() ? name.As<Napi::String>().Utf8Value() : name.IsUndefined() ? "logits" : "";
      if (kind == "argmax") output = halo_gpu::StepOutput::Argmax;
      else if (kind == "top-k") output = halo_gpu::StepOutput::TopK;
      else if (kind != "logits") return Resolved(env, halo_gpu::MODEL_BAD_ARGUMENT, "step options.output must be \"logits\", \"argmax\" or \"top-k\"");
      if (output == halo_gpu::StepOutput::TopK) {
        const Napi::Value k = options.Get("topK");
        const double kd = k.IsNumber() ? k.As<Napi::Number>().DoubleValue() : 0;
        if (!(kd >= 1 && kd <= shared_->model->config().vocab) || std::floor(kd) != kd)
          return Resolved(env, halo_gpu::MODEL_BAD_ARGUMENT, "step options.topK must be a whole number in [1, vocab]");
        top_k = static_cast<int>(kd);
      }
      if (!hidden.IsUndefined() && !is_typed(hidden, napi_int32_array))
        return Resolved(env, halo_gpu::MODEL_BAD_ARGUMENT, "step options.hiddenRows must be an Int32Array");
    }
    auto* worker = new StepWorker(env, shared_);
    auto copy = [](const Napi::Value& v, std::vector<int32_t>* out) {
      const int32_t* data = static_cast<const int32_t*>(typed_data(v));
      out->assign(data, data + typed_length(v));
    };
    copy(info[0], &worker->tokens);
    copy(info[1], &worker->positions);
    copy(info[2], &worker->slots);
    copy(info[3], &worker->logit_rows);
    if (is_typed(hidden, napi_int32_array)) copy(hidden, &worker->hidden_rows);
    worker->output = output;
    worker->top_k = top_k;
    Napi::Value promise = worker->Promise();
    if (promise.IsEmpty()) {
      delete worker;  // never queued: nothing else owns it
      return Resolved(env, halo_gpu::MODEL_OUT_OF_MEMORY, "could not create the step's promise");
    }
    // info() answers from last_info while a step runs (the worker holds the model); before the first step ends there is
    // no step's account yet, so take the model's own now, while no worker runs: loaded bytes, no launches.
    if (!shared_->has_info) {
      shared_->last_info = shared_->model->info();
      shared_->has_info = true;
    }
    shared_->busy = true;
    worker->Queue();
    return promise;
  }

  // copySlot(from, to, length) → status
  Napi::Value CopySlot(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    Napi::Value refusal;
    halo_gpu::GpuModel* m = live(env, &refusal);
    if (m == nullptr) return refusal;
    int from, to, length;
    if (!int_at(info, 0, &from) || !int_at(info, 1, &to) || !int_at(info, 2, &length))
      return Refuse(env, halo_gpu::MODEL_BAD_ARGUMENT, "copySlot(from, to, length: whole numbers)");
    return Status(env, m->copy_slot(from, to, length));
  }

  // exportSlot / importSlot(slot, length, keys, values: Float32Array [layers][length][kvHeads·headDim]) → status
  template <typename Op>
  Napi::Value KvRows(const Napi::CallbackInfo& info, const char* usage, Op op) {
    Napi::Env env = info.Env();
    Napi::Value refusal;
    halo_gpu::GpuModel* m = live(env, &refusal);
    if (m == nullptr) return refusal;
    int slot, length;
    if (!int_at(info, 0, &slot) || !int_at(info, 1, &length) || !typed_at(info, 2, napi_float32_array) || !typed_at(info, 3, napi_float32_array) ||
        typed_length(info[2]) != typed_length(info[3]))
      return Refuse(env, halo_gpu::MODEL_BAD_ARGUMENT, usage);
    return Status(env, op(m, slot, length, static_cast<float*>(typed_data(info[2])), static_cast<float*>(typed_data(info[3])), typed_length(info[2])));
  }
  Napi::Value ExportSlot(const Napi::CallbackInfo& info) {
    return KvRows(info, "exportSlot(slot, length: whole numbers, keys, values: Float32Array of equal length)",
                  [](halo_gpu::GpuModel* m, int slot, int length, float* k, float* v, std::size_t count) { return m->export_slot(slot, length, k, v, count); });
  }
  Napi::Value ImportSlot(const Napi::CallbackInfo& info) {
    return KvRows(info, "importSlot(slot, length: whole numbers, keys, values: Float32Array of equal length)",
                  [](halo_gpu::GpuModel* m, int slot, int length, float* k, float* v, std::size_t count) { return m->import_slot(slot, length, k, v, count); });
  }

  // info() → { kind, name, arch, weightsBytes, headBytes, embeddingBytes, kvBytes, scratchBytes, launchesPerStep, launches,
  // graphs, graphReplays } | status 8 (disposed / never opened). While a step runs: the numbers as of the last step's end,
  // or, during the first step, as of its start (Step takes them before queueing it).
  Napi::Value Info(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (shared_->disposed || !shared_->model) return Napi::Number::New(env, halo_gpu::MODEL_NOT_READY);
    const halo_gpu::ModelInfo i = shared_->busy ? shared_->last_info : shared_->model->info();
    Napi::Object out = Napi::Object::New(env);
    out.Set("kind", i.kind);
    out.Set("name", i.name);
    out.Set("arch", i.arch);
    out.Set("weightsBytes", i.weights_bytes);
    out.Set("headBytes", i.head_bytes);
    out.Set("embeddingBytes", i.embedding_bytes);
    out.Set("kvBytes", i.kv_bytes);
    out.Set("scratchBytes", i.scratch_bytes);
    out.Set("launchesPerStep", i.launches_per_step);
    out.Set("launches", i.launches);
    out.Set("graphs", i.graphs);
    out.Set("graphReplays", i.graph_replays);
    return out;
  }

  // dispose(): releases the device memory now, or when an in-flight step ends (it holds the model until then).
  Napi::Value Dispose(const Napi::CallbackInfo& info) {
    shared_->disposed = true;
    shared_->model.reset();
    return info.Env().Undefined();
  }

  std::shared_ptr<Shared> shared_;
};

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  exports.Set("probe", Napi::Function::New(env, Probe));
  exports.Set("injectFault", Napi::Function::New(env, InjectFault));
  exports.Set("packG2", Napi::Function::New(env, PackG2));
  exports.Set("GpuModel", GpuModelWrap::Init(env));
  return exports;
}

}  // namespace

NODE_API_MODULE(halo_hip, Init)
