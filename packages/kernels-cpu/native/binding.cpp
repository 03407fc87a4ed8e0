// binding.cpp: the node-addon-api surface of the CPU backend. Every fallible call returns a status (or rejects with
// one); the TypeScript side turns statuses into HaloErrors. Argument types are checked here too, so a wrong call from
// JS is a JS exception, never a crash.
#include <napi.h>
#ifdef __linux__
#include <pthread.h>
#include <sched.h>
#endif

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <memory>
#include <optional>
#include <string>
#include <system_error>
#include <vector>

#include "model.h"

namespace {

using halo::Model;

// A JS exception carrying a status, so the TS wrapper can map it to a HaloError code.
Napi::Error status_error(Napi::Env env, halo_status status, const std::string& what) {
  Napi::Error error = Napi::Error::New(env, what);
  error.Set("haloStatus", Napi::Number::New(env, static_cast<int>(status)));
  return error;
}

bool need(Napi::Env env, bool ok, const std::string& what) {
  if (!ok) status_error(env, HALO_BAD_ARGUMENT, what).ThrowAsJavaScriptException();
  return ok;
}

template <typename T>
bool typed(const Napi::Value& v, napi_typedarray_type type) {
  return v.IsTypedArray() && v.As<Napi::TypedArray>().TypedArrayType() == type;
}

// The binding is built with -fexceptions but node-addon-api's C++ exceptions off: a std::bad_alloc (or length_error)
// leaving a callback would reach std::terminate. Every export runs inside this guard, which turns it into a JS error
// with HALO_OUT_OF_MEMORY (allocation is the only thing the native code can throw for).
template <typename Body>
Napi::Value guarded(Napi::Env env, Body body) {
  try {
    return body();
  } catch (const std::exception& e) {
    status_error(env, HALO_OUT_OF_MEMORY, std::string("native allocation failed: ") + e.what()).ThrowAsJavaScriptException();
    return env.Undefined();
  }
}

template <Napi::Value (*Fn)(const Napi::CallbackInfo&)>
Napi::Value Guarded(const Napi::CallbackInfo& info) {
  return guarded(info.Env(), [&] { return Fn(info); });
}

int int_arg(const Napi::CallbackInfo& info, size_t i) { return info[i].As<Napi::Number>().Int32Value(); }

const halo_kernels* kernels_arg(const Napi::CallbackInfo& info, size_t i) {
  if (!info[i].IsString()) return nullptr;
  return halo::kernels_for(info[i].As<Napi::String>().Utf8Value());
}

halo::ThreadPool* pool_arg(const Napi::CallbackInfo& info, size_t i) {
  if (!info[i].IsNumber()) return nullptr;
  const double t = info[i].As<Napi::Number>().DoubleValue();
  if (!(t >= 1 && t <= 1024) || std::floor(t) != t) return nullptr;
  return halo::pool_for(static_cast<int>(t));
}

// ---------------------------------------------------------------- promise workers

// An AsyncWorker settling a promise from a halo_status. OnOK/OnError also run while an env is being torn down (a
// worker_thread terminated mid-call): then no napi call that reaches JS can succeed, and a node-addon-api helper that
// "throws" on failure would be a fatal error. So the promise is settled with raw napi calls whose failures are
// ignored; the env is going away with the promise.
class PromiseWorker : public Napi::AsyncWorker {
 public:
  PromiseWorker(Napi::Env env, const char* failure) : Napi::AsyncWorker(env), failure_(failure) {
    if (napi_create_promise(env, &deferred_, &promise_) != napi_ok) deferred_ = nullptr;
  }
  /** The promise; empty when napi could not make one (then the worker must not be queued). */
  Napi::Value Promise() { return deferred_ == nullptr ? Napi::Value() : Napi::Value(Env(), promise_); }

 protected:
  /** The value to resolve with once status_ is HALO_OK; nullptr when it could not be made (rejected as out of memory). */
  virtual napi_value Result(napi_env env) = 0;
  /** Adds what the rejection needs besides its status to `error` (raw napi calls whose failures are ignored). */
  virtual void Annotate(napi_env, napi_value) {}
  void OnOK() override { Settle(); }
  void OnError(const Napi::Error&) override {
    if (status_ == HALO_OK) status_ = HALO_BAD_ARGUMENT;
    Settle();
  }
  halo_status status_ = HALO_OK;

 private:
  void Settle() {
    napi_env env = Env();
    if (status_ == HALO_OK) {
      if (napi_value value = Result(env)) {
        napi_resolve_deferred(env, deferred_, value);
        return;
      }
      status_ = HALO_OUT_OF_MEMORY;
    }
    bool pending = false;
    if (napi_is_exception_pending(env, &pending) == napi_ok && pending) {
      napi_value ignored;
      napi_get_and_clear_last_exception(env, &ignored);
    }
    napi_value message = nullptr, error = nullptr, code = nullptr;
    if (napi_create_string_utf8(env, failure_, NAPI_AUTO_LENGTH, &message) != napi_ok) return;
    if (napi_create_error(env, nullptr, message, &error) != napi_ok) return;
    if (napi_create_int32(env, static_cast<int32_t>(status_), &code) == napi_ok) napi_set_named_property(env, error, "haloStatus", code);
    Annotate(env, error);
    napi_reject_deferred(env, deferred_, error);
  }

  const char* failure_;
  napi_deferred deferred_ = nullptr;
  napi_value promise_ = nullptr;
};

// ---------------------------------------------------------------- NativeModel

class NativeModel : public Napi::ObjectWrap<NativeModel> {
 public:
  static Napi::Function Init(Napi::Env env) {
    return DefineClass(env, "NativeModel",
                       {
                           InstanceMethod("setMatrix", &NativeModel::Guard<&NativeModel::SetMatrix>),
                           InstanceMethod("packRows", &NativeModel::Guard<&NativeModel::PackRows>),
                           InstanceMethod("packCodes", &NativeModel::Guard<&NativeModel::PackCodes>),
                           InstanceMethod("setNorm", &NativeModel::Guard<&NativeModel::SetNorm>),
                           InstanceMethod("setEmbedding", &NativeModel::Guard<&NativeModel::SetEmbedding>),
                           InstanceMethod("setHead", &NativeModel::Guard<&NativeModel::SetHead>),
                           InstanceMethod("mapCodes", &NativeModel::Guard<&NativeModel::MapCodes>),
                           InstanceMethod("mapFloat", &NativeModel::Guard<&NativeModel::MapFloat>),
                           InstanceMethod("allocSlot", &NativeModel::Guard<&NativeModel::AllocSlot>),
                           InstanceMethod("freeSlot", &NativeModel::Guard<&NativeModel::FreeSlot>),
                           InstanceMethod("step", &NativeModel::Guard<&NativeModel::Step>),
                           InstanceMethod("copySlot", &NativeModel::Guard<&NativeModel::CopySlot>),
                           InstanceMethod("exportSlot", &NativeModel::Guard<&NativeModel::ExportSlot>),
                           InstanceMethod("importSlot", &NativeModel::Guard<&NativeModel::ImportSlot>),
                           InstanceMethod("info", &NativeModel::Guard<&NativeModel::Info>),
                           InstanceMethod("buildSparseDown", &NativeModel::Guard<&NativeModel::BuildSparseDown>),
                           InstanceMethod("dispose", &NativeModel::Guard<&NativeModel::Dispose>),
                       });
  }

  template <Napi::Value (NativeModel::*Method)(const Napi::CallbackInfo&)>
  Napi::Value Guard(const Napi::CallbackInfo& info) {
    return guarded(info.Env(), [&] { return (this->*Method)(info); });
  }

  // new NativeModel(config, isa, threads, arenaBytes, hugePages)
  explicit NativeModel(const Napi::CallbackInfo& info) : Napi::ObjectWrap<NativeModel>(info) {
    guarded(info.Env(), [&] {
      Construct(info);
      return info.Env().Undefined();
    });
  }

 private:
  void Construct(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (!need(env, info.Length() >= 5 && info[0].IsObject() && info[3].IsNumber() && info[4].IsBoolean(),
              "NativeModel(config, isa, threads, arenaBytes, hugePages)"))
      return;
    const halo_kernels* k = kernels_arg(info, 1);
    if (!need(env, k != nullptr, "unknown or unsupported ISA")) return;
    halo::ThreadPool* pool = pool_arg(info, 2);
    if (!need(env, pool != nullptr, "threads must be a whole number in [1, 1024]")) return;
    Napi::Object c = info[0].As<Napi::Object>();
    auto num = [&](const char* key) { return c.Get(key).As<Napi::Number>().DoubleValue(); };
    for (const char* key : {"ropeTheta", "eps"}) {
      if (!need(env, c.Get(key).IsNumber() && std::isfinite(num(key)), std::string("config.") + key + " must be a finite number")) return;
    }
    // Dimensions: whole numbers in [1, 2^24] (a double outside int range cast to int is undefined behaviour).
    for (const char* key : {"hidden", "intermediate", "layers", "heads", "kvHeads", "headDim", "vocab", "context", "maxSequences"}) {
      if (!need(env, c.Get(key).IsNumber() && num(key) >= 1 && num(key) <= (1 << 24) && std::floor(num(key)) == num(key),
                std::string("config.") + key + " must be a whole number in [1, 2^24]"))
        return;
    }
    const std::string kv_name = c.Get("kvDtype").IsString() ? c.Get("kvDtype").As<Napi::String>().Utf8Value() : std::string();
    const int kv_dtype = kv_name == "f32" ? HALO_KV_F32 : kv_name == "f16" ? HALO_KV_F16 : kv_name == "int8" ? HALO_KV_I8 : -1;
    if (!need(env, kv_dtype >= 0, "config.kvDtype must be \"f32\", \"f16\" or \"int8\"; got \"" + kv_name + "\" (pass one of them)")) return;
    auto model = std::make_shared<Model>();
    model->c = {static_cast<int>(num("hidden")),
                static_cast<int>(num("intermediate")),
                static_cast<int>(num("layers")),
                static_cast<int>(num("heads")),
                static_cast<int>(num("kvHeads")),
                static_cast<int>(num("headDim")),
                static_cast<int>(num("vocab")),
                static_cast<int>(num("context")),
                static_cast<int>(num("maxSequences")),
                num("ropeTheta"),
                num("eps"),
                c.Get("relu2").ToBoolean().Value(),
                kv_dtype,
                c.Get("perToken").ToBoolean().Value()};
    const auto& cc = model->c;
    if (!need(env,
              cc.hidden > 0 && cc.intermediate > 0 && cc.layers > 0 && cc.heads > 0 && cc.kv_heads > 0 && cc.heads % cc.kv_heads == 0 && cc.head_dim > 0 &&
                  cc.head_dim % 2 == 0 && cc.vocab > 0 && cc.context > 0 && cc.max_sequences > 0,
              "bad model dimensions"))
      return;
    // Products the step computes in int (rows of the fused q|k|v and gate|up matrices).
    if (!need(env,
              static_cast<int64_t>(cc.heads + 2 * cc.kv_heads) * cc.head_dim < (int64_t{1} << 30) &&
                  static_cast<int64_t>(cc.intermediate) * 2 < (int64_t{1} << 30),
              "model dimensions too large"))
      return;
    model->k = k;
    model->pool = pool;
    model->layers.resize(cc.layers);
    model->slots.resize(cc.max_sequences);
    const double arena = info[3].As<Napi::Number>().DoubleValue();
    if (!need(env, arena > 0 && arena <= 281474976710656.0, "arenaBytes must be in (0, 2^48]")) return;
    if (!model->arena.allocate(static_cast<size_t>(arena), info[4].As<Napi::Boolean>().Value())) {
      status_error(env, HALO_OUT_OF_MEMORY, "could not map the weight arena").ThrowAsJavaScriptException();
      return;
    }
    model_ = model;
    huge_pages_ = info[4].As<Napi::Boolean>().Value();
  }

  Model* live(Napi::Env env) {
    if (!model_) status_error(env, HALO_DISPOSED, "model disposed").ThrowAsJavaScriptException();
    return model_.get();
  }

  halo::Matrix* matrix(Model* m, int layer, int role) {
    if (layer < 0 || layer >= m->c.layers) return nullptr;
    halo::Layer& L = m->layers[layer];
    switch (role) {
      case 0: return &L.qkv;
      case 1: return &L.o;
      case 2: return &L.gate_up;
      case 3: return &L.down;
      default: return nullptr;
    }
  }

  // setMatrix(layer, role, rows, cols, scaleBlock, scales: Float32Array) → status
  Napi::Value SetMatrix(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    Model* m = live(env);
    if (m == nullptr) return env.Undefined();
    if (!need(env,
              info.Length() >= 6 && info[0].IsNumber() && info[1].IsNumber() && info[2].IsNumber() && info[3].IsNumber() && info[4].IsNumber() &&
                  typed<float>(info[5], napi_float32_array),
              "setMatrix(layer, role, rows, cols, scaleBlock, scales)"))
      return env.Undefined();
    halo::Matrix* mat = matrix(m, int_arg(info, 0), int_arg(info, 1));
    const int rows = int_arg(info, 2), cols = int_arg(info, 3), block = int_arg(info, 4);
    auto scales = info[5].As<Napi::Float32Array>();
    if (mat == nullptr || block <= 0 || cols <= 0 || rows <= 0 || cols % block != 0 || scales.ElementLength() != static_cast<size_t>(rows) * (cols / block))
      return Napi::Number::New(env, HALO_BAD_ARGUMENT);
    return Napi::Number::New(env, m->alloc_matrix(*mat, rows, cols, block, scales.Data()));
  }

  // packRows(layer, role, row0, trits: Int8Array, rowCount) → status
  Napi::Value PackRows(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    Model* m = live(env);
    if (m == nullptr) return env.Undefined();
    if (!need(env,
              info.Length() >= 5 && info[0].IsNumber() && info[1].IsNumber() && info[2].IsNumber() && typed<int8_t>(info[3], napi_int8_array) &&
                  info[4].IsNumber(),
              "packRows(layer, role, row0, trits, rowCount)"))
      return env.Undefined();
    halo::Matrix* mat = matrix(m, int_arg(info, 0), int_arg(info, 1));
    auto trits = info[3].As<Napi::Int8Array>();
    const int rows = int_arg(info, 4);
    if (mat == nullptr || mat->codes == nullptr || rows < 0 || trits.ElementLength() < static_cast<size_t>(rows) * mat->cols)
      return Napi::Number::New(env, HALO_BAD_ARGUMENT);
    return Napi::Number::New(env, halo::pack_rows(*mat, int_arg(info, 2), trits.Data(), rows));
  }

  // packCodes(layer, role, row0, bytes: Uint8Array, rowCount, packing: "halo-v2" | "tq2_0" | "int8" | "i2_s" | "hf-packed" |
  // "halo-i2x256") → status;
  // rows packed on the pool (halo-i2x256 is the kernels' own layout: checked and copied).
  Napi::Value PackCodes(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    Model* m = live(env);
    if (m == nullptr) return env.Undefined();
    if (!need(env,
              info.Length() >= 6 && info[0].IsNumber() && info[1].IsNumber() && info[2].IsNumber() && typed<uint8_t>(info[3], napi_uint8_array) &&
                  info[4].IsNumber() && info[5].IsString(),
              "packCodes(layer, role, row0, bytes, rowCount, packing)"))
      return env.Undefined();
    halo::Matrix* mat = matrix(m, int_arg(info, 0), int_arg(info, 1));
    auto bytes = info[3].As<Napi::Uint8Array>();
    const int rows = int_arg(info, 4);
    const std::string packing = info[5].As<Napi::String>().Utf8Value();
    halo::PackedSource source = halo::PackedSource::Int8;
    if (packing == "halo-v2") source = halo::PackedSource::HaloV2;
    else if (packing == "tq2_0") source = halo::PackedSource::Tq2_0;
    else if (packing == "int8") source = halo::PackedSource::Int8;
    else if (packing == "i2_s") source = halo::PackedSource::I2S;
    else if (packing == "hf-packed") source = halo::PackedSource::HfPacked;
    else if (packing != "halo-i2x256") return Napi::Number::New(env, HALO_BAD_ARGUMENT);
    if (mat == nullptr || mat->codes == nullptr || rows < 0) return Napi::Number::New(env, HALO_BAD_ARGUMENT);
    if (packing == "halo-i2x256")
      return Napi::Number::New(env, halo::place_codes(m->pool, *mat, int_arg(info, 2), bytes.Data(), bytes.ElementLength(), rows, false));
    return Napi::Number::New(env, halo::pack_codes(m->pool, *mat, source, int_arg(info, 2), bytes.Data(), bytes.ElementLength(), rows));
  }

  // setNorm(layer (-1: output norm), which 0..3, values) → status
  Napi::Value SetNorm(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    Model* m = live(env);
    if (m == nullptr) return env.Undefined();
    if (!need(env, info.Length() >= 3 && info[0].IsNumber() && info[1].IsNumber() && typed<float>(info[2], napi_float32_array),
              "setNorm(layer, which, values)"))
      return env.Undefined();
    const int layer = int_arg(info, 0), which = int_arg(info, 1);
    auto v = info[2].As<Napi::Float32Array>();
    std::vector<float> values(v.Data(), v.Data() + v.ElementLength());
    const int q_dim = m->c.heads * m->c.head_dim;
    if (layer == -1) {
      if (static_cast<int>(values.size()) != m->c.hidden) return Napi::Number::New(env, HALO_BAD_ARGUMENT);
      m->output_norm = std::move(values);
      return Napi::Number::New(env, HALO_OK);
    }
    if (layer < 0 || layer >= m->c.layers) return Napi::Number::New(env, HALO_BAD_ARGUMENT);
    halo::Layer& L = m->layers[layer];
    const int lengths[4] = {m->c.hidden, q_dim, m->c.hidden, m->c.intermediate};
    std::vector<float>* targets[4] = {&L.attn_norm, &L.attn_sub_norm, &L.ffn_norm, &L.ffn_sub_norm};
    if (which < 0 || which > 3 || static_cast<int>(values.size()) != lengths[which]) return Napi::Number::New(env, HALO_BAD_ARGUMENT);
    *targets[which] = std::move(values);
    return Napi::Number::New(env, HALO_OK);
  }

  // setEmbedding(values: Uint16Array (f16 bits, or bf16 bits when `bf16`) | Float32Array, bf16?: boolean) → status
  Napi::Value SetEmbedding(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    Model* m = live(env);
    if (m == nullptr) return env.Undefined();
    const size_t count = static_cast<size_t>(m->c.vocab) * m->c.hidden;
    const bool halves = typed<uint16_t>(info[0], napi_uint16_array);
    if (!need(env, info.Length() >= 1 && (halves || typed<float>(info[0], napi_float32_array)), "setEmbedding(Uint16Array | Float32Array, bf16?)"))
      return env.Undefined();
    const bool bf16 = info.Length() >= 2 && info[1].IsBoolean() && info[1].As<Napi::Boolean>().Value();
    if (bf16 && !halves) return Napi::Number::New(env, HALO_BAD_ARGUMENT);
    const halo::FloatType type = !halves ? halo::FloatType::F32 : bf16 ? halo::FloatType::BF16 : halo::FloatType::F16;
    auto arr = info[0].As<Napi::TypedArray>();
    if (arr.ElementLength() != count) return Napi::Number::New(env, HALO_BAD_ARGUMENT);
    const size_t bytes = count * halo::float_bytes(type);
    // Huge pages: a tied head streams the embedding every token.
    if (!m->embedding.allocate(bytes, huge_pages_)) return Napi::Number::New(env, HALO_OUT_OF_MEMORY);
    std::memcpy(m->embedding.data, static_cast<const char*>(arr.ArrayBuffer().Data()) + arr.ByteOffset(), bytes);
    m->embedding_data = m->embedding.data;
    m->embedding_type = type;
    return Napi::Number::New(env, HALO_OK);
  }

  // setHead(kind: "tied" | "f16" | "bf16" | "f32", values?, quant: "none" | "int8" | "int4") → status. int8 quantises
  // rows (absmax/127, half even), int4 as halo_head_i4_row.
  Napi::Value SetHead(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    Model* m = live(env);
    if (m == nullptr) return env.Undefined();
    if (!need(env, info.Length() >= 3 && info[0].IsString() && info[2].IsString(), "setHead(kind, values, quant)")) return env.Undefined();
    const std::string kind = info[0].As<Napi::String>().Utf8Value();
    std::optional<halo::HeadType> quant;
    if (!head_quant(info[2], &quant)) return Napi::Number::New(env, HALO_BAD_ARGUMENT);
    const size_t count = static_cast<size_t>(m->c.vocab) * m->c.hidden;
    const void* src = nullptr;
    halo::FloatType type = halo::FloatType::F32;
    if (kind == "tied") {
      if (m->embedding_data == nullptr) return Napi::Number::New(env, HALO_BAD_ARGUMENT);
      src = m->embedding_data;
      type = m->embedding_type;
    } else {
      if (kind != "f16" && kind != "bf16" && kind != "f32") return Napi::Number::New(env, HALO_BAD_ARGUMENT);
      type = kind == "f32" ? halo::FloatType::F32 : kind == "f16" ? halo::FloatType::F16 : halo::FloatType::BF16;
      if (!need(env, type == halo::FloatType::F32 ? typed<float>(info[1], napi_float32_array) : typed<uint16_t>(info[1], napi_uint16_array), "setHead values"))
        return env.Undefined();
      auto arr = info[1].As<Napi::TypedArray>();
      if (arr.ElementLength() != count) return Napi::Number::New(env, HALO_BAD_ARGUMENT);
      src = static_cast<const char*>(arr.ArrayBuffer().Data()) + arr.ByteOffset();
    }
    return Napi::Number::New(env, install_head(m, src, type, kind == "tied", quant));
  }

  // The head storage a setHead / mapFloat argument names: "none" (the floats as given: no value), "int8" or "int4";
  // false for anything else.
  static bool head_quant(const Napi::Value& v, std::optional<halo::HeadType>* quant) {
    const std::string name = v.As<Napi::String>().Utf8Value();
    if (name == "none") quant->reset();
    else if (name == "int8") *quant = halo::HeadType::I8;
    else if (name == "int4") *quant = halo::HeadType::I4;
    else return false;
    return true;
  }

  // The LM head from `src` ([vocab][hidden] of `type`): quantised to `quant` rows, borrowed (tied or mapped: `borrow`),
  // or copied.
  halo_status install_head(Model* m, const void* src, halo::FloatType type, bool borrow, std::optional<halo::HeadType> quant) {
    if (quant.has_value()) {
      const halo_status status = halo::quantize_head(m->pool, m->k, type, src, m->c.vocab, m->c.hidden, *quant, huge_pages_, m->quantised_head);
      if (status != HALO_OK) return status;
      m->head_type = *quant;
      m->head_data = m->quantised_head.codes.data;
    } else if (borrow) {
      m->head_type = halo::head_type_of(type);
      m->head_data = copy_streamed_table(m, src, type);
    } else {
      const size_t bytes = static_cast<size_t>(m->c.vocab) * m->c.hidden * halo::float_bytes(type);
      if (!m->head.allocate(bytes, huge_pages_)) return HALO_OUT_OF_MEMORY;
      std::memcpy(m->head.data, src, bytes);
      m->head_type = halo::head_type_of(type);
      m->head_data = m->head.data;
    }
    return HALO_OK;
  }

  // A float head read whole every token that lies in a file mapping: copied into huge pages (m->embedding when it is
  // the embedding — the tied head —, else m->head) and its mapped pages dropped (MADV_DONTNEED: the page cache keeps
  // them, this process's RSS does not); returns where the head will be. Through the page cache's 4 KB pages the 2B f16
  // head streamed ~20 % slower (27–28.5 vs 22–23.5 ms a token on the AMX Xeon, interleaved A/B). The copy runs on a
  // thread of its own (halo::BackgroundCopy) so the load does not wait for it: 0.1 s for 657 MB, up to a second for a
  // process's first huge pages, which the kernel compacts first (README); steps read the mapped bytes until it is
  // done. It is skipped — the head stays borrowed — with HALO_CPU_COPY_HEAD=0, with huge pages off, or when the
  // allocation or the thread fails.
  const void* copy_streamed_table(Model* m, const void* src, halo::FloatType type) {
    const char* copy_env = std::getenv("HALO_CPU_COPY_HEAD");
    if (!huge_pages_ || (copy_env != nullptr && std::strcmp(copy_env, "0") == 0) || !m->in_file_map(src)) return src;
    const bool tied = src == m->embedding_data;
    halo::Region& region = tied ? m->embedding : m->head;
    const size_t bytes = static_cast<size_t>(m->c.vocab) * m->c.hidden * halo::float_bytes(type);
    if (!region.allocate(bytes, true)) return src;
    auto copy = std::make_unique<halo::BackgroundCopy>();
    copy->src = src;
    copy->bytes = bytes;
    copy->tied = tied;
    halo::BackgroundCopy* job = copy.get();
    char* dst = static_cast<char*>(region.data);
    try {
      copy->thread = std::thread([job, dst] {
#ifdef __linux__
        // Idle priority: the copy (and the huge-page faults it takes) runs on CPU time the steps leave, never on theirs.
        sched_param idle{};
        pthread_setschedparam(pthread_self(), SCHED_IDLE, &idle);
#endif
        constexpr size_t kChunk = 32u << 20;  // a dispose stops the copy within one chunk
        for (size_t at = 0; at < job->bytes && !job->abort.load(std::memory_order_relaxed); at += kChunk)
          std::memcpy(dst + at, static_cast<const char*>(job->src) + at, std::min(kChunk, job->bytes - at));
        job->done.store(true, std::memory_order_release);
      });
    } catch (const std::system_error&) {
      return src;  // no thread to copy with: the head stays borrowed
    }
    m->head_copy = std::move(copy);
    m->head_copy_pending.store(true, std::memory_order_release);
    if (tied) m->embedding_data = region.data;
    return region.data;
  }

  // Bytes [offset, offset + length) of the file at path (mapped once per model); nullptr when out of range or unmappable.
  const uint8_t* file_range(Model* m, const Napi::CallbackInfo& info, size_t i, size_t* length, halo_status* status) {
    const std::string path = info[i].As<Napi::String>().Utf8Value();
    const double offset = info[i + 1].As<Napi::Number>().DoubleValue(), len = info[i + 2].As<Napi::Number>().DoubleValue();
    *status = HALO_BAD_ARGUMENT;
    if (!(offset >= 0 && len >= 0 && offset <= 9007199254740991.0 && len <= 9007199254740991.0) || std::floor(offset) != offset || std::floor(len) != len)
      return nullptr;
    const uint8_t* base = nullptr;
    size_t bytes = 0;
    *status = m->map_file(path, &base, &bytes);
    if (*status != HALO_OK) return nullptr;
    if (static_cast<size_t>(offset) > bytes || static_cast<size_t>(len) > bytes - static_cast<size_t>(offset)) {
      *status = HALO_BAD_ARGUMENT;
      return nullptr;
    }
    *length = static_cast<size_t>(len);
    return base + static_cast<size_t>(offset);
  }

  // mapCodes(layer, role, row0, path, offset, length, rowCount) → status: rows stored as halo-i2x256 in a file, borrowed
  // from its mapping (zero-copy) when the fused parts are adjacent there.
  Napi::Value MapCodes(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    Model* m = live(env);
    if (m == nullptr) return env.Undefined();
    if (!need(env,
              info.Length() >= 7 && info[0].IsNumber() && info[1].IsNumber() && info[2].IsNumber() && info[3].IsString() && info[4].IsNumber() &&
                  info[5].IsNumber() && info[6].IsNumber(),
              "mapCodes(layer, role, row0, path, offset, length, rowCount)"))
      return env.Undefined();
    halo::Matrix* mat = matrix(m, int_arg(info, 0), int_arg(info, 1));
    if (mat == nullptr || mat->codes == nullptr) return Napi::Number::New(env, HALO_BAD_ARGUMENT);
    size_t length = 0;
    halo_status status = HALO_OK;
    const uint8_t* src = file_range(m, info, 3, &length, &status);
    if (src == nullptr) return Napi::Number::New(env, status);
    return Napi::Number::New(env, halo::place_codes(m->pool, *mat, int_arg(info, 2), src, length, int_arg(info, 6), true));
  }

  // mapFloat(which: "embedding" | "head", path, offset, length, dtype: "f16" | "bf16" | "f32", quant: "none" | "int8" |
  // "int4") → status: the token embedding or an untied LM head borrowed from a file mapping (or quantised from it).
  Napi::Value MapFloat(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    Model* m = live(env);
    if (m == nullptr) return env.Undefined();
    if (!need(env,
              info.Length() >= 6 && info[0].IsString() && info[1].IsString() && info[2].IsNumber() && info[3].IsNumber() && info[4].IsString() &&
                  info[5].IsString(),
              "mapFloat(which, path, offset, length, dtype, quant)"))
      return env.Undefined();
    const std::string which = info[0].As<Napi::String>().Utf8Value(), dtype = info[4].As<Napi::String>().Utf8Value();
    if ((which != "embedding" && which != "head") || (dtype != "f16" && dtype != "bf16" && dtype != "f32")) return Napi::Number::New(env, HALO_BAD_ARGUMENT);
    const halo::FloatType type = dtype == "f32" ? halo::FloatType::F32 : dtype == "f16" ? halo::FloatType::F16 : halo::FloatType::BF16;
    size_t length = 0;
    halo_status status = HALO_OK;
    const uint8_t* src = file_range(m, info, 1, &length, &status);
    if (src == nullptr) return Napi::Number::New(env, status);
    const size_t elem = halo::float_bytes(type);
    if (length != static_cast<size_t>(m->c.vocab) * m->c.hidden * elem || reinterpret_cast<uintptr_t>(src) % elem != 0)
      return Napi::Number::New(env, HALO_BAD_ARGUMENT);
    if (which == "embedding") {
      m->embedding_data = src;
      m->embedding_type = type;
      return Napi::Number::New(env, HALO_OK);
    }
    std::optional<halo::HeadType> quant;
    if (!head_quant(info[5], &quant)) return Napi::Number::New(env, HALO_BAD_ARGUMENT);
    return Napi::Number::New(env, install_head(m, src, type, true, quant));
  }

  Napi::Value AllocSlot(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    Model* m = live(env);
    if (m == nullptr) return env.Undefined();
    if (!need(env, info.Length() >= 1 && info[0].IsNumber(), "allocSlot(slot)")) return env.Undefined();
    const int slot = int_arg(info, 0);
    if (slot < 0 || slot >= m->c.max_sequences) return Napi::Number::New(env, HALO_BAD_ARGUMENT);
    if (m->slots[slot]) return Napi::Number::New(env, HALO_OK);
    auto region = std::make_unique<halo::Region>();
    if (!region->allocate(m->c.kv_slot_bytes(), true)) return Napi::Number::New(env, HALO_OUT_OF_MEMORY);
    std::lock_guard<std::mutex> lock(m->step_mutex);
    m->slots[slot] = std::move(region);
    return Napi::Number::New(env, HALO_OK);
  }

  Napi::Value FreeSlot(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    Model* m = live(env);
    if (m == nullptr) return env.Undefined();
    if (!need(env, info.Length() >= 1 && info[0].IsNumber(), "freeSlot(slot)")) return env.Undefined();
    const int slot = int_arg(info, 0);
    if (slot < 0 || slot >= m->c.max_sequences) return Napi::Number::New(env, HALO_BAD_ARGUMENT);
    std::lock_guard<std::mutex> lock(m->step_mutex);
    m->slots[slot].reset();
    return Napi::Number::New(env, HALO_OK);
  }

  // What a step call returns: the logits as a Float32Array (the 4-argument step), or an object with the outputs its
  // options asked for (contract 2's forward).
  enum class StepOutput { Legacy, Logits, Argmax, TopK };

  class StepWorker : public PromiseWorker {
   public:
    StepWorker(Napi::Env env, std::shared_ptr<Model> model, std::vector<int32_t> tokens, std::vector<int32_t> positions, std::vector<int32_t> slots,
               std::vector<int32_t> logit_rows, StepOutput output, int top_k, std::vector<int32_t> hidden_rows)
        : PromiseWorker(env, "step failed"),
          model_(std::move(model)),
          tokens_(std::move(tokens)),
          positions_(std::move(positions)),
          slots_(std::move(slots)),
          logit_rows_(std::move(logit_rows)),
          output_(output),
          top_k_(top_k),
          hidden_rows_(std::move(hidden_rows)) {}

   protected:
    void Execute() override {
      try {
        const size_t rows = logit_rows_.size();
        const int vocab = model_->c.vocab;
        logits_.resize(rows * static_cast<size_t>(vocab));
        hidden_.resize(hidden_rows_.size() * static_cast<size_t>(model_->c.hidden));
        status_ = model_->step(tokens_.data(), positions_.data(), slots_.data(), static_cast<int>(tokens_.size()), logit_rows_.data(), static_cast<int>(rows),
                               logits_.data(), hidden_rows_.data(), static_cast<int>(hidden_rows_.size()), hidden_.data());
        if (status_ == HALO_FILE_CHANGED) change_ = model_->file_change_copy();
        if (status_ != HALO_OK) return;
        // Argmax / top-k from the logits here, off the JS thread: only ids (and k logits) cross into JS.
        if (output_ == StepOutput::Argmax) {
          argmax_.resize(rows);
          halo::argmax_rows(logits_.data(), static_cast<int>(rows), vocab, argmax_.data());
        } else if (output_ == StepOutput::TopK) {
          if (top_k_ < 1 || top_k_ > vocab) {
            status_ = HALO_BAD_ARGUMENT;
            return;
          }
          top_ids_.resize(rows * static_cast<size_t>(top_k_));
          top_values_.resize(top_ids_.size());
          halo::top_k_rows(logits_.data(), static_cast<int>(rows), vocab, top_k_, top_ids_.data(), top_values_.data());
        }
        if (output_ == StepOutput::Argmax || output_ == StepOutput::TopK) std::vector<float>().swap(logits_);
      } catch (const std::exception&) {  // bad_alloc / length_error: the step's only throwing operations are allocations
        status_ = HALO_OUT_OF_MEMORY;
      }
    }
    // HALO_FILE_CHANGED: error.fileChange = { path, sizeBefore, sizeAfter, modifiedBefore, modifiedAfter (ms since the
    // epoch), inodeBefore, inodeAfter, faulted, statFailed }, for the message the TypeScript side writes.
    void Annotate(napi_env env, napi_value error) override {
      if (status_ != HALO_FILE_CHANGED || !change_.changed) return;
      napi_value object = nullptr;
      if (napi_create_object(env, &object) != napi_ok) return;
      auto number = [&](const char* key, double v) {
        napi_value value = nullptr;
        if (napi_create_double(env, v, &value) == napi_ok) napi_set_named_property(env, object, key, value);
      };
      auto boolean = [&](const char* key, bool v) {
        napi_value value = nullptr;
        if (napi_get_boolean(env, v, &value) == napi_ok) napi_set_named_property(env, object, key, value);
      };
      auto millis = [](const struct timespec& t) { return static_cast<double>(t.tv_sec) * 1e3 + static_cast<double>(t.tv_nsec) / 1e6; };
      napi_value path = nullptr;
      if (napi_create_string_utf8(env, change_.path.c_str(), change_.path.size(), &path) == napi_ok) napi_set_named_property(env, object, "path", path);
      number("sizeBefore", static_cast<double>(change_.before.size));
      number("modifiedBefore", millis(change_.before.modified));
      number("inodeBefore", static_cast<double>(change_.before.inode));
      if (!change_.stat_failed) {
        number("sizeAfter", static_cast<double>(change_.after.size));
        number("modifiedAfter", millis(change_.after.modified));
        number("inodeAfter", static_cast<double>(change_.after.inode));
      }
      boolean("faulted", change_.faulted);
      boolean("statFailed", change_.stat_failed);
      napi_set_named_property(env, error, "fileChange", object);
    }
    // The logits as a Float32Array (Legacy), else { logits, argmax?, topKIds?, topKLogits?, hidden? }.
    napi_value Result(napi_env env) override {
      napi_value logits = typed_copy(env, napi_float32_array, logits_.data(), logits_.size(), sizeof(float));
      if (output_ == StepOutput::Legacy || logits == nullptr) return logits;
      napi_value object = nullptr;
      if (napi_create_object(env, &object) != napi_ok || napi_set_named_property(env, object, "logits", logits) != napi_ok) return nullptr;
      auto put = [&](const char* key, napi_typedarray_type type, const void* data, size_t count, size_t size) {
        napi_value value = typed_copy(env, type, data, count, size);
        return value != nullptr && napi_set_named_property(env, object, key, value) == napi_ok;
      };
      if (output_ == StepOutput::Argmax && !put("argmax", napi_int32_array, argmax_.data(), argmax_.size(), sizeof(int32_t))) return nullptr;
      if (output_ == StepOutput::TopK && (!put("topKIds", napi_int32_array, top_ids_.data(), top_ids_.size(), sizeof(int32_t)) ||
                                          !put("topKLogits", napi_float32_array, top_values_.data(), top_values_.size(), sizeof(float))))
        return nullptr;
      if (!hidden_rows_.empty() && !put("hidden", napi_float32_array, hidden_.data(), hidden_.size(), sizeof(float))) return nullptr;
      return object;
    }

   private:
    // A new typed array holding a copy of `count` elements of `size` bytes; nullptr when napi fails.
    static napi_value typed_copy(napi_env env, napi_typedarray_type type, const void* src, size_t count, size_t size) {
      void* data = nullptr;
      napi_value buffer = nullptr, array = nullptr;
      if (napi_create_arraybuffer(env, count * size, &data, &buffer) != napi_ok || napi_create_typedarray(env, type, count, buffer, 0, &array) != napi_ok)
        return nullptr;
      if (count != 0) std::memcpy(data, src, count * size);
      return array;
    }

    std::shared_ptr<Model> model_;
    std::vector<int32_t> tokens_, positions_, slots_, logit_rows_;
    StepOutput output_;
    int top_k_;
    std::vector<int32_t> hidden_rows_;
    std::vector<float> logits_, hidden_, top_values_;
    std::vector<int32_t> argmax_, top_ids_;
    halo::FileChange change_;
  };

  // step(tokens, positions, slots, logitRows: Int32Array) → Promise<Float32Array>;
  // step(tokens, positions, slots, logitRows, { output: "logits" | "argmax" | "top-k", topK?, hiddenRows?: Int32Array })
  //   → Promise<{ logits, argmax?, topKIds?, topKLogits?, hidden? }>
  Napi::Value Step(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (!model_) {
      auto deferred = Napi::Promise::Deferred::New(env);
      deferred.Reject(status_error(env, HALO_DISPOSED, "model disposed").Value());
      return deferred.Promise();
    }
    for (size_t i = 0; i < 4; i++)
      if (!need(env, info.Length() >= 4 && typed<int32_t>(info[i], napi_int32_array), "step(tokens, positions, slots, logitRows: Int32Array)"))
        return env.Undefined();
    auto vec = [](const Napi::Value& v) {
      auto a = v.As<Napi::Int32Array>();
      return std::vector<int32_t>(a.Data(), a.Data() + a.ElementLength());
    };
    auto tokens = vec(info[0]), positions = vec(info[1]), slots = vec(info[2]), rows = vec(info[3]);
    if (!need(env, !tokens.empty() && positions.size() == tokens.size() && slots.size() == tokens.size(), "step arrays differ in length"))
      return env.Undefined();
    StepOutput output = StepOutput::Legacy;
    int top_k = 0;
    std::vector<int32_t> hidden_rows;
    if (info.Length() >= 5 && !info[4].IsUndefined()) {
      if (!need(env, info[4].IsObject(), "step options must be an object")) return env.Undefined();
      Napi::Object options = info[4].As<Napi::Object>();
      const Napi::Value name = options.Get("output");
      const std::string kind = name.IsString() ? name.As<Napi::String>().Utf8Value() : name.IsUndefined() ? "logits" : "";
      output = kind == "logits" ? StepOutput::Logits : kind == "argmax" ? StepOutput::Argmax : kind == "top-k" ? StepOutput::TopK : StepOutput::Legacy;
      if (!need(env, output != StepOutput::Legacy, "step options.output must be \"logits\", \"argmax\" or \"top-k\"")) return env.Undefined();
      if (output == StepOutput::TopK) {
        const Napi::Value k = options.Get("topK");
        const double kd = k.IsNumber() ? k.As<Napi::Number>().DoubleValue() : 0;
        if (!need(env, kd >= 1 && kd <= model_->c.vocab && std::floor(kd) == kd, "step options.topK must be a whole number in [1, vocab]"))
          return env.Undefined();
        top_k = static_cast<int>(kd);
      }
      const Napi::Value hidden = options.Get("hiddenRows");
      if (!hidden.IsUndefined()) {
        if (!need(env, typed<int32_t>(hidden, napi_int32_array), "step options.hiddenRows must be an Int32Array")) return env.Undefined();
        hidden_rows = vec(hidden);
      }
    }
    auto* worker =
        new StepWorker(env, model_, std::move(tokens), std::move(positions), std::move(slots), std::move(rows), output, top_k, std::move(hidden_rows));
    Napi::Value promise = worker->Promise();
    if (promise.IsEmpty()) {
      delete worker;  // never queued: nothing else owns it
      return env.Undefined();
    }
    worker->Queue();
    return promise;
  }

  // copySlot(from, to, length) → status: slot `to` gets the first `length` positions of `from` (both allocated).
  Napi::Value CopySlot(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    Model* m = live(env);
    if (m == nullptr) return env.Undefined();
    if (!need(env, info.Length() >= 3 && info[0].IsNumber() && info[1].IsNumber() && info[2].IsNumber(), "copySlot(from, to, length)")) return env.Undefined();
    return Napi::Number::New(env, m->copy_slot(int_arg(info, 0), int_arg(info, 1), int_arg(info, 2)));
  }

  // exportSlot / importSlot: checks (slot, length, keys, values: Float32Array [layers][length][kv_heads·head_dim])
  // against the model and runs `op(m, slot, length, keys, values)`; HALO_BAD_ARGUMENT when they do not fit.
  template <typename Op>
  Napi::Value KvRows(const Napi::CallbackInfo& info, const char* usage, Op op) {
    Napi::Env env = info.Env();
    Model* m = live(env);
    if (m == nullptr) return env.Undefined();
    if (!need(env,
              info.Length() >= 4 && info[0].IsNumber() && info[1].IsNumber() && typed<float>(info[2], napi_float32_array) &&
                  typed<float>(info[3], napi_float32_array),
              usage))
      return env.Undefined();
    const double length_value = info[1].As<Napi::Number>().DoubleValue();
    if (!(length_value >= 0 && length_value <= m->c.context) || std::floor(length_value) != length_value) return Napi::Number::New(env, HALO_BAD_ARGUMENT);
    const int length = static_cast<int>(length_value);
    auto k = info[2].As<Napi::Float32Array>(), v = info[3].As<Napi::Float32Array>();
    const size_t count = static_cast<size_t>(m->c.layers) * static_cast<size_t>(length) * m->c.kv_heads * m->c.head_dim;
    if (k.ElementLength() != count || v.ElementLength() != count) return Napi::Number::New(env, HALO_BAD_ARGUMENT);
    return Napi::Number::New(env, op(m, int_arg(info, 0), length, k.Data(), v.Data()));
  }

  // exportSlot(slot, length, keys, values) → status: fills keys and values with the slot's first `length` positions as
  // attention reads them.
  Napi::Value ExportSlot(const Napi::CallbackInfo& info) {
    return KvRows(info, "exportSlot(slot, length, keys, values)",
                  [](Model* m, int slot, int length, float* keys, float* values) { return m->export_slot(slot, length, keys, values); });
  }

  // importSlot(slot, length, keys, values) → status: writes them into the slot's first `length` positions, rounded
  // through the KV dtype as a step's write is.
  Napi::Value ImportSlot(const Napi::CallbackInfo& info) {
    return KvRows(info, "importSlot(slot, length, keys, values)",
                  [](Model* m, int slot, int length, float* keys, float* values) { return m->import_slot(slot, length, keys, values); });
  }

  Napi::Value Info(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    Model* m = live(env);
    if (m == nullptr) return env.Undefined();
    Napi::Object out = Napi::Object::New(env);
    out.Set("isa", m->k->name);
    out.Set("threads", m->pool->size());
    out.Set("hugePages", m->arena.huge);
    out.Set("arenaBytes", static_cast<double>(m->arena_used));
    static const char* const kHeadNames[] = {"f16", "f32", "int8", "bf16", "int4"};  // HeadType order
    out.Set("headType", kHeadNames[static_cast<int>(m->head_type)]);
    // Weight bytes borrowed from file mappings (zero-copy) rather than held in the arena or copied.
    double mapped = 0;
    for (const halo::Layer& L : m->layers)
      for (const halo::Matrix* mat : {&L.qkv, &L.o, &L.gate_up, &L.down})
        if (mat->mapped) mapped += static_cast<double>(mat->rows) * mat->nb * sizeof(halo_block_i2);
    const size_t table = static_cast<size_t>(m->c.vocab) * m->c.hidden * halo::float_bytes(m->embedding_type);
    if (m->embedding_data != nullptr && m->embedding_data != m->embedding.data) mapped += static_cast<double>(table);
    if (m->head_data != nullptr && m->head_data != m->head.data && m->head_data != m->embedding_data && m->head_data != m->quantised_head.codes.data)
      mapped += static_cast<double>(static_cast<size_t>(m->c.vocab) * m->c.hidden * (m->head_type == halo::HeadType::F32 ? 4 : 2));
    out.Set("mappedBytes", mapped);
    // The float head's background copy into huge pages has not been switched to yet (steps read the mapping meanwhile).
    out.Set("headCopyPending", m->head_copy_pending.load(std::memory_order_acquire));
    // What the model holds besides the arena (estimateMemory is checked against these): the embedding table, the LM
    // head as stored (0 when it is the embedding itself), norms and matrix scales, and one KV slot.
    out.Set("embeddingBytes", static_cast<double>(table));
    double head = 0;
    if (m->head_type == halo::HeadType::I8 || m->head_type == halo::HeadType::I4) {
      const size_t codes = m->head_type == halo::HeadType::I8 ? static_cast<size_t>(m->c.vocab) * m->c.hidden
                                                              : static_cast<size_t>(m->c.vocab) * (HALO_HEAD_I8_STRIDE(m->c.hidden) / 2);
      head = static_cast<double>(codes + (m->quantised_head.scales.size() + m->quantised_head.sums.size()) * 4 + m->quantised_head.sub.size());
    } else if (m->head_data != nullptr && m->head_data != m->embedding_data) {
      head = static_cast<double>(static_cast<size_t>(m->c.vocab) * m->c.hidden * (m->head_type == halo::HeadType::F32 ? 4 : 2));
    }
    out.Set("headBytes", head);
    double small = static_cast<double>(m->output_norm.size() * sizeof(float));
    for (const halo::Layer& L : m->layers) {
      small += static_cast<double>((L.attn_norm.size() + L.attn_sub_norm.size() + L.ffn_norm.size() + L.ffn_sub_norm.size()) * sizeof(float));
      for (const halo::Matrix* mat : {&L.qkv, &L.o, &L.gate_up, &L.down}) small += static_cast<double>(mat->scales.size() * sizeof(float));
    }
    out.Set("normAndScaleBytes", small);
    out.Set("kvSlotBytes", static_cast<double>(m->c.kv_slot_bytes()));
    // The sparse down lane: its layout's bytes (0 when off), the density it runs under, and what steps did.
    double sparse_bytes = 0;
    for (const halo::Layer& L : m->layers)
      if (L.down.sparse) sparse_bytes += static_cast<double>(HALO_SPARSE_TILES(L.down.rows)) * L.down.cols * 64;
    Napi::Object sparse = Napi::Object::New(env);
    sparse.Set("bytes", sparse_bytes);
    sparse.Set("maxDensity", m->sparse_max_density);
    sparse.Set("sparseCalls", static_cast<double>(m->sparse_calls.load(std::memory_order_relaxed)));
    sparse.Set("denseCalls", static_cast<double>(m->sparse_dense_calls.load(std::memory_order_relaxed)));
    sparse.Set("columns", static_cast<double>(m->sparse_columns.load(std::memory_order_relaxed)));
    sparse.Set("nonzeroColumns", static_cast<double>(m->sparse_nonzero.load(std::memory_order_relaxed)));
    out.Set("sparseDown", sparse);
    return out;
  }

  // buildSparseDown(maxDensity) → status: every down matrix also stored in the sparse layout; one-row steps take the
  // sparse path for a layer whose down input has at most maxDensity of its columns nonzero (0 < maxDensity ≤ 1).
  Napi::Value BuildSparseDown(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    Model* m = live(env);
    if (m == nullptr) return env.Undefined();
    if (!need(env, info.Length() >= 1 && info[0].IsNumber(), "buildSparseDown(maxDensity)")) return env.Undefined();
    const double density = info[0].As<Napi::Number>().DoubleValue();
    if (!(density > 0 && density <= 1)) return Napi::Number::New(env, HALO_BAD_ARGUMENT);
    std::lock_guard<std::mutex> lock(m->step_mutex);
    for (halo::Layer& L : m->layers) {
      if (L.down.codes == nullptr) return Napi::Number::New(env, HALO_BAD_ARGUMENT);
      if (L.down.sparse) continue;
      const halo_status status = halo::build_sparse(m->pool, L.down, huge_pages_);
      if (status != HALO_OK) return Napi::Number::New(env, status);
    }
    m->sparse_max_density = density;
    return Napi::Number::New(env, HALO_OK);
  }

  Napi::Value Dispose(const Napi::CallbackInfo& info) {
    model_.reset();  // an in-flight step keeps its own reference until it finishes
    return info.Env().Undefined();
  }

  std::shared_ptr<Model> model_;
  bool huge_pages_ = false;
};

// ---------------------------------------------------------------- ops (for conformance and kernel tests)

Napi::Float32Array f32_copy(Napi::Env env, const float* data, size_t n) {
  auto out = Napi::Float32Array::New(env, n);
  std::memcpy(out.Data(), data, n * sizeof(float));
  return out;
}

// quantize(x: Float32Array, width, perToken) → { values: Int8Array, scales: Float32Array }
Napi::Value OpQuantize(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!need(env, info.Length() >= 3 && typed<float>(info[0], napi_float32_array) && info[1].IsNumber() && info[2].IsBoolean(), "quantize(x, width, perToken)"))
    return env.Undefined();
  auto x = info[0].As<Napi::Float32Array>();
  const int width = int_arg(info, 1);
  const bool per_token = info[2].As<Napi::Boolean>().Value();
  if (!need(env, width > 0 && x.ElementLength() % width == 0 && (per_token || width % 256 == 0), "bad quantize shape")) return env.Undefined();
  const int n = static_cast<int>(x.ElementLength() / width);
  halo::Activations a;
  a.quantize(&halo_kernels_ref, x.Data(), n, width, per_token);
  auto values = Napi::Int8Array::New(env, x.ElementLength());
  for (int t = 0; t < n; t++) std::memcpy(values.Data() + static_cast<size_t>(t) * width, a.values.data() + static_cast<size_t>(t) * a.padded, width);
  Napi::Object out = Napi::Object::New(env);
  out.Set("values", values);
  out.Set("scales", f32_copy(env, a.scales.data(), a.scales.size()));
  return out;
}

// ternaryMatmul(isa, threads, trits: Int8Array, rows, cols, scaleBlock, scales, x: Float32Array, perToken) → Float32Array | status
Napi::Value OpTernaryMatmul(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const halo_kernels* k = kernels_arg(info, 0);
  halo::ThreadPool* pool = pool_arg(info, 1);
  if (!need(env,
            k != nullptr && pool != nullptr && info.Length() >= 9 && typed<int8_t>(info[2], napi_int8_array) && info[3].IsNumber() && info[4].IsNumber() &&
                info[5].IsNumber() && typed<float>(info[6], napi_float32_array) && typed<float>(info[7], napi_float32_array) && info[8].IsBoolean(),
            "ternaryMatmul(isa, threads, trits, rows, cols, scaleBlock, scales, x, perToken, sparse?)"))
    return env.Undefined();
  // sparse: every token row through the sparse layout (halo_sparse_masks + gemv_i2_sparse over its nonzero columns),
  // whatever its density: the conformance tests hold it to the dense path's floats.
  const bool sparse = info.Length() >= 10 && info[9].IsBoolean() && info[9].As<Napi::Boolean>().Value();
  auto trits = info[2].As<Napi::Int8Array>();
  const int rows = int_arg(info, 3), cols = int_arg(info, 4), block = int_arg(info, 5);
  auto scales = info[6].As<Napi::Float32Array>();
  auto x = info[7].As<Napi::Float32Array>();
  const bool per_token = info[8].As<Napi::Boolean>().Value();
  if (rows <= 0 || cols <= 0 || block <= 0 || cols % block != 0 || trits.ElementLength() != static_cast<size_t>(rows) * cols ||
      scales.ElementLength() != static_cast<size_t>(rows) * (cols / block) || x.ElementLength() % cols != 0 || (!per_token && cols % 256 != 0))
    return Napi::Number::New(env, HALO_BAD_ARGUMENT);
  Model scratch;
  const size_t bytes = static_cast<size_t>(rows) * ((cols + 255) / 256) * sizeof(halo_block_i2);
  if (!scratch.arena.allocate(bytes, false)) return Napi::Number::New(env, HALO_OUT_OF_MEMORY);
  halo::Matrix m;
  halo_status status = scratch.alloc_matrix(m, rows, cols, block, scales.Data());
  if (status == HALO_OK) status = halo::pack_rows(m, 0, trits.Data(), rows);
  if (status != HALO_OK) return Napi::Number::New(env, status);
  const int n = static_cast<int>(x.ElementLength() / cols);
  halo::Activations a;
  a.quantize(k, x.Data(), n, cols, per_token);
  std::vector<float> y(static_cast<size_t>(n) * rows);
  if (sparse) {
    if (!per_token || block != cols) return Napi::Number::New(env, HALO_BAD_ARGUMENT);
    status = halo::build_sparse(pool, m, false);
    if (status != HALO_OK) return Napi::Number::New(env, status);
    std::vector<int32_t> nz(cols);
    for (int t = 0; t < n; t++) {
      const int n_nz = halo::nonzero_columns(a, t, nz.data());
      halo::sparse_matmul(pool, k, m, a, t, nz.data(), n_nz, y.data() + static_cast<size_t>(t) * rows);
    }
  } else {
    halo::matmul(pool, k, m, a, y.data(), rows, nullptr);
  }
  return f32_copy(env, y.data(), y.size());
}

// rmsNorm(x, weight, eps) → Float32Array
Napi::Value OpRmsNorm(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!need(env, info.Length() >= 3 && typed<float>(info[0], napi_float32_array) && typed<float>(info[1], napi_float32_array) && info[2].IsNumber(),
            "rmsNorm(x, weight, eps)"))
    return env.Undefined();
  auto x = info[0].As<Napi::Float32Array>();
  auto w = info[1].As<Napi::Float32Array>();
  const size_t d = w.ElementLength();
  if (!need(env, d > 0 && x.ElementLength() % d == 0, "x is not whole rows of weight.length")) return env.Undefined();
  std::vector<float> out(x.ElementLength());
  halo::rms_norm_rows(x.Data(), w.Data(), static_cast<int>(d), static_cast<int>(x.ElementLength() / d), info[2].As<Napi::Number>().DoubleValue(), out.data());
  return f32_copy(env, out.data(), out.size());
}

// rope(x, positions: Int32Array, heads, headDim, theta) → Float32Array
Napi::Value OpRope(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!need(env,
            info.Length() >= 5 && typed<float>(info[0], napi_float32_array) && typed<int32_t>(info[1], napi_int32_array) && info[2].IsNumber() &&
                info[3].IsNumber() && info[4].IsNumber(),
            "rope(x, positions, heads, headDim, theta)"))
    return env.Undefined();
  auto x = info[0].As<Napi::Float32Array>();
  auto positions = info[1].As<Napi::Int32Array>();
  const int heads = int_arg(info, 2), hd = int_arg(info, 3);
  if (!need(env, heads > 0 && hd > 0 && hd % 2 == 0 && x.ElementLength() == positions.ElementLength() * heads * hd, "bad rope shape")) return env.Undefined();
  std::vector<float> out(x.Data(), x.Data() + x.ElementLength());
  halo::rope_rows(out.data(), heads * hd, positions.Data(), static_cast<int>(positions.ElementLength()), heads, hd, info[4].As<Napi::Number>().DoubleValue());
  return f32_copy(env, out.data(), out.size());
}

// attention(isa, threads, q, keys, values, queryPositions, heads, kvHeads, headDim, tile, kvDtype "f32"|"f16"|"int8") → Float32Array
// (keys and values are given as f32 and stored as the dtype first, as a KV cache write would)
Napi::Value OpAttention(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const halo_kernels* k = kernels_arg(info, 0);
  halo::ThreadPool* pool = pool_arg(info, 1);
  if (!need(env,
            k != nullptr && pool != nullptr && info.Length() >= 11 && typed<float>(info[2], napi_float32_array) && typed<float>(info[3], napi_float32_array) &&
                typed<float>(info[4], napi_float32_array) && typed<int32_t>(info[5], napi_int32_array) && info[6].IsNumber() && info[7].IsNumber() &&
                info[8].IsNumber() && info[9].IsNumber() && info[10].IsString(),
            "attention(isa, threads, q, keys, values, positions, heads, kvHeads, headDim, tile, kvDtype)"))
    return env.Undefined();
  auto q = info[2].As<Napi::Float32Array>();
  auto keys = info[3].As<Napi::Float32Array>();
  auto values = info[4].As<Napi::Float32Array>();
  auto last = info[5].As<Napi::Int32Array>();
  const int heads = int_arg(info, 6), kvh = int_arg(info, 7), hd = int_arg(info, 8), tile = int_arg(info, 9);
  const std::string kv_name = info[10].As<Napi::String>().Utf8Value();
  const int kv = kv_name == "f32" ? HALO_KV_F32 : kv_name == "f16" ? HALO_KV_F16 : kv_name == "int8" ? HALO_KV_I8 : -1;
  if (kv < 0 || heads <= 0 || kvh <= 0 || heads % kvh != 0 || hd <= 0 || tile < 0) return Napi::Number::New(env, HALO_BAD_ARGUMENT);
  const size_t kv_width = static_cast<size_t>(kvh) * hd;
  const int n = static_cast<int>(last.ElementLength());
  if (q.ElementLength() != static_cast<size_t>(n) * heads * hd || keys.ElementLength() % kv_width != 0 || values.ElementLength() != keys.ElementLength())
    return Napi::Number::New(env, HALO_BAD_ARGUMENT);
  const int length = static_cast<int>(keys.ElementLength() / kv_width);
  for (int t = 0; t < n; t++)
    if (last.Data()[t] < 0 || last.Data()[t] >= length) return Napi::Number::New(env, HALO_BAD_ARGUMENT);
  std::vector<uint16_t> k16, v16;
  std::vector<int8_t> k8, v8;
  std::vector<float> ks, vs;
  const void* kp = keys.Data();
  const void* vp = values.Data();
  if (kv == HALO_KV_F16) {
    k16.resize(keys.ElementLength());
    v16.resize(values.ElementLength());
    k->f32_to_f16(k16.data(), keys.Data(), static_cast<int>(k16.size()));
    k->f32_to_f16(v16.data(), values.Data(), static_cast<int>(v16.size()));
    kp = k16.data();
    vp = v16.data();
  } else if (kv == HALO_KV_I8) {
    k8.resize(keys.ElementLength());
    v8.resize(values.ElementLength());
    ks.resize(static_cast<size_t>(length) * kvh);
    vs.resize(ks.size());
    for (size_t row = 0; row < ks.size(); row++) {
      halo_kv_i8_row(keys.Data() + row * hd, hd, k8.data() + row * hd, &ks[row]);
      halo_kv_i8_row(values.Data() + row * hd, hd, v8.data() + row * hd, &vs[row]);
    }
    kp = k8.data();
    vp = v8.data();
  }
  std::vector<const void*> kptr(n, kp), vptr(n, vp);
  std::vector<const float*> ksptr(n, ks.data()), vsptr(n, vs.data());
  std::vector<float> out(q.ElementLength());
  halo::AttentionArgs args{q.Data(), heads * hd, kptr.data(), vptr.data(), kv, ksptr.data(), vsptr.data(), n, heads, kvh, hd, last.Data(), tile, out.data()};
  halo::attention(pool, k, args);
  return f32_copy(env, out.data(), out.size());
}

// lmHead(isa, threads, x, kind "f16"|"bf16"|"f32"|"int8"|"int4", head: Uint16Array|Float32Array, vocab, hidden) → Float32Array
Napi::Value OpLmHead(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const halo_kernels* k = kernels_arg(info, 0);
  halo::ThreadPool* pool = pool_arg(info, 1);
  if (!need(env,
            k != nullptr && pool != nullptr && info.Length() >= 7 && typed<float>(info[2], napi_float32_array) && info[3].IsString() &&
                info[4].IsTypedArray() && info[5].IsNumber() && info[6].IsNumber(),
            "lmHead(isa, threads, x, kind, head, vocab, hidden)"))
    return env.Undefined();
  auto x = info[2].As<Napi::Float32Array>();
  const std::string kind = info[3].As<Napi::String>().Utf8Value();
  auto head = info[4].As<Napi::TypedArray>();
  const int vocab = int_arg(info, 5), hidden = int_arg(info, 6);
  if (vocab <= 0 || hidden <= 0 || x.ElementLength() % hidden != 0 || head.ElementLength() != static_cast<size_t>(vocab) * hidden)
    return Napi::Number::New(env, HALO_BAD_ARGUMENT);
  const int n = static_cast<int>(x.ElementLength() / hidden);
  const void* data = static_cast<const char*>(head.ArrayBuffer().Data()) + head.ByteOffset();
  std::vector<float> out(static_cast<size_t>(n) * vocab);
  halo::QuantisedHead quantised;
  std::vector<int8_t> xq;
  std::vector<double> xs;
  const int stride = HALO_HEAD_I8_STRIDE(hidden);
  if (kind == "int8" || kind == "int4") {
    if (head.TypedArrayType() != napi_float32_array) return Napi::Number::New(env, HALO_BAD_ARGUMENT);
    const halo_status status =
        halo::quantize_head(pool, k, halo::FloatType::F32, data, vocab, hidden, kind == "int8" ? halo::HeadType::I8 : halo::HeadType::I4, false, quantised);
    if (status != HALO_OK) return Napi::Number::New(env, status);
    xq.resize(static_cast<size_t>(n) * stride);
    xs.resize(n);
    halo_head_i8_activations(x.Data(), n, hidden, stride, xq.data(), xs.data());
  } else if (!(((kind == "f16" || kind == "bf16") && head.TypedArrayType() == napi_uint16_array) ||
               (kind == "f32" && head.TypedArrayType() == napi_float32_array))) {
    return Napi::Number::New(env, HALO_BAD_ARGUMENT);
  }
  const int workers = pool->size();
  pool->run([&](int i) {
    int r0, r1;
    halo::split_range(vocab, workers, i, 16, &r0, &r1);
    if (r0 >= r1) return;
    if (kind == "f16") k->head_f16(static_cast<const uint16_t*>(data), hidden, r0, r1, x.Data(), n, out.data() + r0, vocab);
    else if (kind == "bf16") k->head_bf16(static_cast<const uint16_t*>(data), hidden, r0, r1, x.Data(), n, out.data() + r0, vocab);
    else if (kind == "f32") k->head_f32(static_cast<const float*>(data), hidden, r0, r1, x.Data(), n, out.data() + r0, vocab);
    else if (kind == "int8")
      k->head_i8(static_cast<const int8_t*>(quantised.codes.data), quantised.scales.data(), hidden, r0, r1, xq.data(), xs.data(), stride, n, out.data() + r0,
                 vocab);
    else
      k->head_i4(static_cast<const uint8_t*>(quantised.codes.data), quantised.sub.data(), quantised.scales.data(), quantised.sums.data(), hidden, r0, r1,
                 xq.data(), xs.data(), stride, n, out.data() + r0, vocab);
  });
  return f32_copy(env, out.data(), out.size());
}

// Packs trits [rows][cols] into `m` in `scratch`'s arena, one scale of 1 per row (the kernel tests' raw-dot matrices).
halo_status scratch_matrix(Model& scratch, halo::Matrix& m, const int8_t* trits, int rows, int cols) {
  const std::vector<float> ones(rows, 1.0f);
  const int nb = (cols + 255) / 256;
  if (!scratch.arena.allocate(static_cast<size_t>(rows) * nb * 64, false)) return HALO_OUT_OF_MEMORY;
  halo_status status = scratch.alloc_matrix(m, rows, cols, cols, ones.data());
  if (status == HALO_OK) status = halo::pack_rows(m, 0, trits, rows);
  return status;
}

// gemmRaw(isa, trits, rows, cols, x: Int8Array [n][cols], blocks: boolean) → Int32Array of raw code·x dots (kernel tests)
Napi::Value GemmRaw(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const halo_kernels* k = kernels_arg(info, 0);
  if (!need(env,
            k != nullptr && info.Length() >= 6 && typed<int8_t>(info[1], napi_int8_array) && info[2].IsNumber() && info[3].IsNumber() &&
                typed<int8_t>(info[4], napi_int8_array) && info[5].IsBoolean(),
            "gemmRaw(isa, trits, rows, cols, x, blocks)"))
    return env.Undefined();
  auto trits = info[1].As<Napi::Int8Array>();
  const int rows = int_arg(info, 2), cols = int_arg(info, 3);
  auto x = info[4].As<Napi::Int8Array>();
  const bool blocks = info[5].As<Napi::Boolean>().Value();
  if (rows <= 0 || cols <= 0 || trits.ElementLength() != static_cast<size_t>(rows) * cols || x.ElementLength() % cols != 0)
    return Napi::Number::New(env, HALO_BAD_ARGUMENT);
  Model scratch;
  halo::Matrix m;
  const halo_status status = scratch_matrix(scratch, m, trits.Data(), rows, cols);
  if (status != HALO_OK) return Napi::Number::New(env, status);
  const int nb = m.nb;
  const int n = static_cast<int>(x.ElementLength() / cols);
  std::vector<int8_t> padded(static_cast<size_t>(n) * nb * 256, 0);
  for (int t = 0; t < n; t++) std::memcpy(padded.data() + static_cast<size_t>(t) * nb * 256, x.Data() + static_cast<size_t>(t) * cols, cols);
  const size_t per_token = blocks ? static_cast<size_t>(rows) * nb : rows;
  auto out = Napi::Int32Array::New(env, per_token * n);
  if (blocks) k->gemm_i2_blocks(m.codes, nb, 0, rows, padded.data(), nb * 256, n, out.Data(), static_cast<int>(per_token));
  else k->gemm_i2(m.codes, nb, 0, rows, padded.data(), nb * 256, n, out.Data(), rows, nullptr);
  return out;
}

// sparseRaw(isa, trits, rows, cols, x: Int8Array [cols], nz: Int32Array) → Int32Array [rows] of signed w·x dots over the
// listed columns through the sparse layout (halo_sparse_masks, then gemv_i2_sparse over the row tiles) (kernel tests)
Napi::Value SparseRaw(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const halo_kernels* k = kernels_arg(info, 0);
  if (!need(env,
            k != nullptr && info.Length() >= 6 && typed<int8_t>(info[1], napi_int8_array) && info[2].IsNumber() && info[3].IsNumber() &&
                typed<int8_t>(info[4], napi_int8_array) && typed<int32_t>(info[5], napi_int32_array),
            "sparseRaw(isa, trits, rows, cols, x, nz)"))
    return env.Undefined();
  auto trits = info[1].As<Napi::Int8Array>();
  const int rows = int_arg(info, 2), cols = int_arg(info, 3);
  auto x = info[4].As<Napi::Int8Array>();
  auto nz = info[5].As<Napi::Int32Array>();
  if (rows <= 0 || cols <= 0 || trits.ElementLength() != static_cast<size_t>(rows) * cols || x.ElementLength() != static_cast<size_t>(cols))
    return Napi::Number::New(env, HALO_BAD_ARGUMENT);
  for (size_t i = 0; i < nz.ElementLength(); i++)
    if (nz[i] < 0 || nz[i] >= cols) return Napi::Number::New(env, HALO_BAD_ARGUMENT);
  Model scratch;
  halo::Matrix m;
  const halo_status status = scratch_matrix(scratch, m, trits.Data(), rows, cols);
  if (status != HALO_OK) return Napi::Number::New(env, status);
  const int nb = m.nb;
  const int tiles = HALO_SPARSE_TILES(rows);
  std::vector<uint8_t> masks(static_cast<size_t>(tiles) * cols * 64);
  halo_sparse_masks(m.codes, nb, rows, cols, 0, tiles, masks.data());
  std::vector<int32_t> y(static_cast<size_t>(tiles) * HALO_SPARSE_TILE);
  k->gemv_i2_sparse(masks.data(), tiles, 0, tiles, x.Data(), nz.Data(), static_cast<int>(nz.ElementLength()), y.data());
  auto out = Napi::Int32Array::New(env, rows);
  std::memcpy(out.Data(), y.data(), sizeof(int32_t) * rows);
  return out;
}

// f16Round(isa, x: Float32Array) → Float32Array (through the ISA's f32→f16→f32 conversions)
Napi::Value F16Round(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const halo_kernels* k = kernels_arg(info, 0);
  if (!need(env, k != nullptr && info.Length() >= 2 && typed<float>(info[1], napi_float32_array), "f16Round(isa, x)")) return env.Undefined();
  auto x = info[1].As<Napi::Float32Array>();
  const int n = static_cast<int>(x.ElementLength());
  std::vector<uint16_t> half(n);
  std::vector<float> back(n);
  k->f32_to_f16(half.data(), x.Data(), n);
  k->f16_to_f32(back.data(), half.data(), n);
  return f32_copy(env, back.data(), back.size());
}

// argmaxRows(logits: Float32Array [rows][vocab], rows, vocab) → Int32Array: the worker's argmax, for its tests.
Napi::Value ArgmaxRows(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!need(env, info.Length() >= 3 && typed<float>(info[0], napi_float32_array) && info[1].IsNumber() && info[2].IsNumber(),
            "argmaxRows(logits, rows, vocab)"))
    return env.Undefined();
  auto logits = info[0].As<Napi::Float32Array>();
  const int rows = int_arg(info, 1), vocab = int_arg(info, 2);
  if (rows < 0 || vocab <= 0 || logits.ElementLength() != static_cast<size_t>(rows) * vocab) return Napi::Number::New(env, HALO_BAD_ARGUMENT);
  auto out = Napi::Int32Array::New(env, rows);
  halo::argmax_rows(logits.Data(), rows, vocab, out.Data());
  return out;
}

// topKRows(logits: Float32Array [rows][vocab], rows, vocab, k) → { ids: Int32Array, logits: Float32Array } [rows][k]: the
// worker's top-k, for its tests.
Napi::Value TopKRows(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!need(env, info.Length() >= 4 && typed<float>(info[0], napi_float32_array) && info[1].IsNumber() && info[2].IsNumber() && info[3].IsNumber(),
            "topKRows(logits, rows, vocab, k)"))
    return env.Undefined();
  auto logits = info[0].As<Napi::Float32Array>();
  const int rows = int_arg(info, 1), vocab = int_arg(info, 2), k = int_arg(info, 3);
  if (rows < 0 || vocab <= 0 || k < 1 || k > vocab || logits.ElementLength() != static_cast<size_t>(rows) * vocab)
    return Napi::Number::New(env, HALO_BAD_ARGUMENT);
  auto ids = Napi::Int32Array::New(env, static_cast<size_t>(rows) * k);
  auto values = Napi::Float32Array::New(env, static_cast<size_t>(rows) * k);
  halo::top_k_rows(logits.Data(), rows, vocab, k, ids.Data(), values.Data());
  Napi::Object out = Napi::Object::New(env);
  out.Set("ids", ids);
  out.Set("logits", values);
  return out;
}

Napi::Value Isas(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  auto list = halo::available_isas();
  auto out = Napi::Array::New(env, list.size());
  for (size_t i = 0; i < list.size(); i++) out.Set(static_cast<uint32_t>(i), list[i]);
  return out;
}

Napi::Value HardwareThreads(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), static_cast<double>(std::thread::hardware_concurrency())); }

// measureReadBandwidth(threads, mib) → Promise<number>: DRAM read bandwidth in GB/s, the median of 7 read-reduce passes
// over `mib` MiB (first touched by the same pool workers, huge pages advised, software prefetch 2 KB ahead), split
// across `threads` pool workers.
// Off the JS thread; rejects with haloStatus on a bad argument or a failed allocation.
class BandwidthWorker : public PromiseWorker {
 public:
  BandwidthWorker(Napi::Env env, halo::ThreadPool* pool, size_t bytes) : PromiseWorker(env, "bandwidth probe failed"), pool_(pool), bytes_(bytes) {}

 protected:
  void Execute() override {
    halo::Region region;
    if (!region.allocate(bytes_, true)) {
      status_ = HALO_OUT_OF_MEMORY;
      return;
    }
    uint64_t* const data = static_cast<uint64_t*>(region.data);
    const size_t blocks = bytes_ / (32 * sizeof(uint64_t));
    const int workers = pool_->size();
    pool_->run([&](int i) {
      for (size_t j = blocks * i / workers * 32; j < blocks * (i + 1) / workers * 32; j++) data[j] = j * 0x9e3779b97f4a7c15ull;
    });
    std::atomic<uint64_t> sink{0};
    std::vector<double> rates;
    for (int pass = 0; pass < 7; pass++) {
      const auto t0 = std::chrono::steady_clock::now();
      pool_->run([&](int i) {
        // 16-byte vectors (GCC/Clang vector extension: SSE2 / NEON registers on the baseline ISA this file is built
        // for), 8 independent chains per 256-byte block; a scalar loop here measured a third less than bench/bandwidth.c.
        typedef uint64_t v2u64 __attribute__((vector_size(16)));
        const v2u64* v = reinterpret_cast<const v2u64*>(data);  // the region is page-aligned
        v2u64 acc[8] = {};
        // Plus a software prefetch 2 KB ahead, as halo's kernels stream their weights: without it this probe read
        // 24 GB/s where the kernels streamed 28-32 on the AMX Xeon (with it: 32-33), and the roofline share exceeded 1.
        for (size_t b = blocks * i / workers; b < blocks * (i + 1) / workers; b++) {
          const char* ahead = reinterpret_cast<const char*>(v + b * 16) + 2048;  // past the region only near its end
          for (int l = 0; l < 4; l++) __builtin_prefetch(ahead + 64 * l, 0, 3);
          for (int j = 0; j < 16; j++) acc[j & 7] ^= v[b * 16 + j];
        }
        v2u64 all = acc[0] ^ acc[1] ^ acc[2] ^ acc[3] ^ acc[4] ^ acc[5] ^ acc[6] ^ acc[7];
        sink.fetch_xor(all[0] ^ all[1], std::memory_order_relaxed);
      });
      const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      rates.push_back(static_cast<double>(blocks * 32 * sizeof(uint64_t)) / seconds / 1e9);
    }
    std::sort(rates.begin(), rates.end());
    gbps_ = rates[rates.size() / 2];  // the loads feed `sink`, an atomic, so none is optimised away
  }
  napi_value Result(napi_env env) override {
    napi_value value = nullptr;
    return napi_create_double(env, gbps_, &value) == napi_ok ? value : nullptr;
  }

 private:
  halo::ThreadPool* pool_;
  size_t bytes_;
  double gbps_ = 0;
};

Napi::Value MeasureReadBandwidth(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  halo::ThreadPool* pool = pool_arg(info, 0);
  if (!need(env, pool != nullptr && info.Length() >= 2 && info[1].IsNumber(), "measureReadBandwidth(threads, mib)")) return env.Undefined();
  const double mib = info[1].As<Napi::Number>().DoubleValue();
  if (!(mib >= 1 && mib <= 65536) || std::floor(mib) != mib) return Napi::Number::New(env, HALO_BAD_ARGUMENT);
  auto* worker = new BandwidthWorker(env, pool, static_cast<size_t>(mib) << 20);
  Napi::Value promise = worker->Promise();
  if (promise.IsEmpty()) {
    delete worker;
    return Napi::Number::New(env, HALO_OUT_OF_MEMORY);
  }
  worker->Queue();
  return promise;
}

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  exports.Set("NativeModel", NativeModel::Init(env));
  exports.Set("quantize", Napi::Function::New(env, Guarded<OpQuantize>));
  exports.Set("ternaryMatmul", Napi::Function::New(env, Guarded<OpTernaryMatmul>));
  exports.Set("rmsNorm", Napi::Function::New(env, Guarded<OpRmsNorm>));
  exports.Set("rope", Napi::Function::New(env, Guarded<OpRope>));
  exports.Set("attention", Napi::Function::New(env, Guarded<OpAttention>));
  exports.Set("lmHead", Napi::Function::New(env, Guarded<OpLmHead>));
  exports.Set("gemmRaw", Napi::Function::New(env, Guarded<GemmRaw>));
  exports.Set("sparseRaw", Napi::Function::New(env, Guarded<SparseRaw>));
  exports.Set("f16Round", Napi::Function::New(env, Guarded<F16Round>));
  exports.Set("argmaxRows", Napi::Function::New(env, Guarded<ArgmaxRows>));
  exports.Set("topKRows", Napi::Function::New(env, Guarded<TopKRows>));
  exports.Set("isas", Napi::Function::New(env, Guarded<Isas>));
  exports.Set("hardwareThreads", Napi::Function::New(env, Guarded<HardwareThreads>));
  exports.Set("measureReadBandwidth", Napi::Function::New(env, Guarded<MeasureReadBandwidth>));
  return exports;
}

}  // namespace

NODE_API_MODULE(halo_cpu, Init)
