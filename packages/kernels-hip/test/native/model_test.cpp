// model_test.cpp: gpu_model on the emulated device — the behaviour around the kernels, which test/native's kernel tests
// do not see: graph replay gives bit-identical results to direct launches (and the graph cache survives more shapes
// than it holds), device argmax / top-k agree with the host ranking of the same logits, every refused step leaves the
// device untouched (no launch, no KV change, no slot length change), an injected device fault fails the step without
// advancing the slot and the retried step matches a model that never failed, KV copy / export / import round trips,
// weight refusals, and the host f16 conversions bit for bit against the emulator's. Exit status 0 when all pass.
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "emu/emu.h"
#include "gpu_model.h"

namespace {

using halo_gpu::GpuModel;
using halo_gpu::ModelConfig;
using halo_gpu::ModelResult;
using halo_gpu::StepOutput;
using halo_gpu::StepRequest;
using halo_gpu::StepResult;

int failures = 0;
/** --short (the sanitizer run, ~90× slower): skips the graph-cache turnover and runs fewer fault and KV variants. */
bool short_run = false;

void check(bool ok, const std::string& what) {
  if (ok) return;
  std::fprintf(stderr, "FAIL %s\n", what.c_str());
  failures++;
}

void expect(const ModelResult& r, int status, const std::string& what) {
  check(r.status == status, what + ": want status " + std::to_string(status) + ", got " + std::to_string(r.status) + " \"" + r.message + "\"");
}

/** xorshift64*: the test's weights and prompts, the same on every run. */
struct Random {
  uint64_t s;
  explicit Random(uint64_t seed) : s(seed * 0x9e3779b97f4a7c15ull + 1) {}
  uint64_t next() {
    s ^= s >> 12;
    s ^= s << 25;
    s ^= s >> 27;
    return s * 0x2545f4914f6cdd1dull;
  }
  float uniform() { return static_cast<float>(next() >> 40) / 16777216.0f; }  // [0, 1)
  int below(int n) { return static_cast<int>(next() % static_cast<uint64_t>(n)); }
};

struct Options {
  int kv_dtype = HALO_GPU_F16;
  bool graphs = true;
  bool tied = false;
  bool relu2 = true;
};

// hidden 80 and intermediate 96 are not multiples of 64 (padded chunks), context 80 spans two attention splits,
// 4 query heads over 2 KV heads (GQA), vocab 300 needs one top-k span.
ModelConfig tiny_config(const Options& o) {
  ModelConfig c;
  c.hidden = 80;
  c.intermediate = 96;
  c.layers = 2;
  c.heads = 4;
  c.kv_heads = 2;
  c.head_dim = 16;
  c.vocab = 300;
  c.context = 80;
  c.max_sequences = 3;
  c.max_batch_tokens = 12;
  c.rope_theta = 10000;
  c.eps = 1e-5;
  c.relu2 = o.relu2;
  c.kv_dtype = o.kv_dtype;
  c.graphs = o.graphs;
  return c;
}

/** Opens a tiny model on the emulator and sets every weight from a fixed seed (the same weights for every Options). */
std::unique_ptr<GpuModel> tiny_model(const Options& o, bool finalize = true) {
  const ModelConfig c = tiny_config(o);
  std::unique_ptr<GpuModel> m;
  ModelResult r = GpuModel::open(c, "emulator", "", &m);
  expect(r, 0, "open the emulator");
  if (!r.ok()) return nullptr;
  Random rnd(7);
  const int q_dim = c.heads * c.head_dim, kv = c.kv_heads * c.head_dim;
  const int shapes[4][2] = {{q_dim + 2 * kv, c.hidden}, {c.hidden, q_dim}, {2 * c.intermediate, c.hidden}, {c.hidden, c.intermediate}};
  for (int l = 0; l < c.layers; l++) {
    for (int role = 0; role < 4; role++) {
      const int rows = shapes[role][0], cols = shapes[role][1];
      std::vector<float> scales(rows);
      for (float& s : scales) s = (0.7f + 0.6f * rnd.uniform()) / std::sqrt(0.6f * cols);
      std::vector<int8_t> trits(static_cast<std::size_t>(rows) * cols);
      for (int8_t& t : trits) t = static_cast<int8_t>(rnd.below(3) - 1);
      expect(m->set_matrix(l, role, rows, cols, 0, scales.data(), scales.size()), 0, "set_matrix");
      // Two uploads per matrix: rows set in parts must add up.
      const int half = rows / 2;
      expect(m->pack_rows(l, role, 0, trits.data(), static_cast<std::size_t>(half) * cols, half), 0, "pack_rows (first half)");
      expect(m->pack_rows(l, role, half, trits.data() + static_cast<std::size_t>(half) * cols, static_cast<std::size_t>(rows - half) * cols, rows - half), 0,
             "pack_rows (second half)");
    }
    const int lengths[4] = {c.hidden, q_dim, c.hidden, c.intermediate};
    for (int which = 0; which < 4; which++) {
      std::vector<float> norm(lengths[which]);
      for (float& v : norm) v = 0.6f + 0.8f * rnd.uniform();
      expect(m->set_norm(l, which, norm.data(), norm.size()), 0, "set_norm");
    }
  }
  std::vector<float> out_norm(c.hidden);
  for (float& v : out_norm) v = 0.6f + 0.8f * rnd.uniform();
  expect(m->set_norm(-1, 0, out_norm.data(), out_norm.size()), 0, "set_norm (output)");
  std::vector<uint16_t> table(static_cast<std::size_t>(c.vocab) * c.hidden);
  for (uint16_t& v : table) v = halo_gpu::host_f32_to_f16(rnd.uniform() * 2 - 1);
  expect(m->set_embedding(table.data(), table.size(), HALO_GPU_F16), 0, "set_embedding");
  if (o.tied) {
    expect(m->set_head(true, nullptr, 0, 0), 0, "set_head (tied)");
  } else {
    std::vector<uint16_t> head(table.size());
    for (uint16_t& v : head) {
      const float f = (rnd.uniform() * 2 - 1) * 0.5f;
      uint32_t bits;
      std::memcpy(&bits, &f, 4);
      v = static_cast<uint16_t>(bits >> 16);  // bf16 by truncation: any bf16 value will do
    }
    expect(m->set_head(false, head.data(), head.size(), HALO_GPU_BF16), 0, "set_head (bf16)");
  }
  if (finalize) expect(m->finalize(), 0, "finalize");
  return m;
}

struct Batch {
  std::vector<int32_t> tokens, positions, slots, logit_rows, hidden_rows;
  StepOutput output = StepOutput::Logits;
  int top_k = 0;
  StepRequest request() const {
    StepRequest q;
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
    return q;
  }
};

/** n rows of one slot from `position`, every row's logits. */
Batch run_of(int slot, int position, int n, int seed, bool all_logits = true) {
  Batch b;
  for (int i = 0; i < n; i++) {
    b.tokens.push_back((seed * 31 + i * 17 + 3) % 300);
    b.positions.push_back(position + i);
    b.slots.push_back(slot);
    if (all_logits || i == n - 1) b.logit_rows.push_back(i);
  }
  return b;
}

ModelResult step(GpuModel& m, const Batch& b, StepResult* out) { return m.step(b.request(), out); }

bool same_bits(const std::vector<float>& a, const std::vector<float>& b) { return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * 4) == 0; }

std::vector<float> export_all(GpuModel& m, int slot) {
  const ModelConfig& c = m.config();
  const int length = m.slot_length(slot);
  const std::size_t count = static_cast<std::size_t>(c.layers) * length * c.kv_heads * c.head_dim;
  std::vector<float> keys(count), values(count);
  expect(m.export_slot(slot, length, keys.data(), values.data(), count), 0, "export_slot");
  keys.insert(keys.end(), values.begin(), values.end());
  return keys;
}

// ---------------------------------------------------------------- checks

void check_f16_conversions() {
  int bad = 0;
  for (uint32_t h = 0; h < 65536; h++) {
    const float a = halo_gpu::host_f16_to_f32(static_cast<uint16_t>(h)), b = halo_emu::f16_to_f32(static_cast<uint16_t>(h));
    if (std::memcmp(&a, &b, 4) != 0) bad++;
  }
  check(bad == 0, "host_f16_to_f32 differs from the emulator's on " + std::to_string(bad) + " of 65536 values");
  bad = 0;
  uint32_t first = 0;
  // Every 65537th float bit pattern (all exponents, many mantissas), plus the f16 rounding boundaries: each f16 value
  // and the midpoints to its neighbours, ± one float ulp.
  std::vector<uint32_t> patterns;
  for (uint64_t bits = 0; bits < (uint64_t{1} << 32); bits += 65537) patterns.push_back(static_cast<uint32_t>(bits));
  for (uint32_t h = 0; h < 0x7c00; h++) {
    const float lo = halo_emu::f16_to_f32(static_cast<uint16_t>(h)), hi = halo_emu::f16_to_f32(static_cast<uint16_t>(h + 1));
    for (float v : {lo, (lo + hi) / 2}) {
      uint32_t bits;
      std::memcpy(&bits, &v, 4);
      for (uint32_t p : {bits - 1, bits, bits + 1}) {
        patterns.push_back(p);
        patterns.push_back(p | 0x80000000u);
      }
    }
  }
  for (uint32_t bits : patterns) {
    float f;
    std::memcpy(&f, &bits, 4);
    if (halo_gpu::host_f32_to_f16(f) != halo_emu::f32_to_f16(f) && bad++ == 0) first = bits;
  }
  char text[160];
  std::snprintf(text, sizeof text, "host_f32_to_f16 differs from the emulator's on %d of %zu patterns (first 0x%08x)", bad, patterns.size(), first);
  check(bad == 0, text);
}

/** Graphs on vs off: bit-identical logits, argmax and top-k; replays happen only with graphs; launches per step. */
void check_graphs_and_outputs() {
  Options with, without;
  without.graphs = false;
  auto a = tiny_model(with), b = tiny_model(without);
  if (!a || !b) return;
  check(a->info().graphs && !b->info().graphs, "graphs reported on for the first model only");
  StepResult ra, rb;
  Batch prompt = run_of(0, 0, 9, 1);
  expect(step(*a, prompt, &ra), 0, "prefill (graphs)");
  expect(step(*b, prompt, &rb), 0, "prefill (no graphs)");
  check(ra.logits.size() == 9u * 300 && same_bits(ra.logits, rb.logits), "prefill logits equal with and without graphs");
  for (float v : ra.logits) check(std::isfinite(v), "prefill logits are finite");
  const int per_layer = 11, layers = 2;
  check(a->info().launches_per_step == 1 + per_layer * layers + 2,
        "launches per logits step: 1 + 11·layers + 2, got " + std::to_string(a->info().launches_per_step));
  int position = 9;
  for (int s = 0; s < 5; s++) {
    Batch d = run_of(0, position++, 1, 100 + s);
    expect(step(*a, d, &ra), 0, "decode (graphs)");
    expect(step(*b, d, &rb), 0, "decode (no graphs)");
    check(same_bits(ra.logits, rb.logits), "decode " + std::to_string(s) + " logits equal with and without graphs");
  }
  // A decode shape seen five times: captured at the second, replayed from then on.
  check(a->info().graph_replays == 4, "graph replays after five decode steps: want 4, got " + std::to_string(a->info().graph_replays));
  check(b->info().graph_replays == 0, "no replays without graphs");
  check(a->info().launches == b->info().launches, "replayed kernels are counted as launches");

  // Device argmax and top-k (k ≤ 64) against the host ranking of the same step's logits, and k > 64 on the host.
  ModelResult copied = b->copy_slot(0, 1, position);
  expect(copied, 0, "copy_slot");
  Batch d = run_of(1, position, 3, 9);  // 3 rows, logits of each
  StepResult logits, argmax, topk, wide;
  expect(step(*b, d, &logits), 0, "logits step");
  for (auto* pair : {&argmax, &topk, &wide}) {
    expect(b->copy_slot(0, 1, position), 0, "copy_slot again");
    Batch e = d;
    e.output = pair == &argmax ? StepOutput::Argmax : StepOutput::TopK;
    e.top_k = pair == &topk ? 7 : pair == &wide ? 100 : 0;
    e.hidden_rows = {2, 0};
    expect(step(*b, e, pair), 0, "argmax / top-k step");
    check(pair->logits.empty() && pair->hidden.size() == 2u * 80, "argmax / top-k steps return ids and hidden rows, not logits");
  }
  check(b->info().launches_per_step == 1 + per_layer * layers + 2, "k > 64 runs no device top-k");
  std::vector<int32_t> ids(3 * 100);
  std::vector<float> values(3 * 100);
  halo_gpu::host_top_k_rows(logits.logits.data(), 3, 300, 100, ids.data(), values.data());
  for (int r = 0; r < 3; r++) {
    check(argmax.ids[r] == ids[r * 100], "device argmax of row " + std::to_string(r) + " is the best logit");
    for (int j = 0; j < 7; j++) {
      check(topk.ids[r * 7 + j] == ids[r * 100 + j], "device top-7 id " + std::to_string(j) + " of row " + std::to_string(r));
      check(topk.values[r * 7 + j] == values[r * 100 + j], "device top-7 value");
    }
  }
  check(wide.ids == ids && wide.values == values, "top-100 (host ranking) equals the ranking of the logits");
  check(std::memcmp(topk.hidden.data(), wide.hidden.data(), topk.hidden.size() * 4) == 0, "hidden rows are the same whatever the output");

  if (short_run) return;
  // More shapes than the graph cache holds: every result still equals the graph-less model's.
  bool equal = true;
  for (int n = 1; n <= 12; n++) {
    for (int last_only = 0; last_only < 2; last_only++) {
      Batch p = run_of(2, 0, n, n + 50 * last_only, last_only == 0);  // other tokens: a wrong graph would read stale rows
      StepResult x, y, z;
      expect(step(*a, p, &x), 0, "shape step (first)");
      expect(step(*a, p, &y), 0, "shape step (captured)");
      expect(step(*b, p, &z), 0, "shape step (no graphs)");
      equal = equal && same_bits(x.logits, z.logits) && same_bits(y.logits, z.logits);
    }
  }
  check(equal, "24 step shapes (more than the 16 graphs kept) give the graph-less logits");
  StepResult again, fresh;
  expect(step(*a, run_of(2, 0, 5, 5), &again), 0, "an early shape after the cache turned over");
  expect(step(*b, run_of(2, 0, 5, 5), &fresh), 0, "an early shape (no graphs)");
  check(same_bits(again.logits, fresh.logits), "an evicted shape is right when it comes back");
}

/** Refused steps: status 6, and nothing reached the device — no launch, no KV row, no slot length change. */
void check_refusals() {
  auto m = tiny_model(Options{});
  if (!m) return;
  StepResult r;
  expect(step(*m, run_of(0, 0, 4, 1), &r), 0, "prefill");
  const std::vector<float> kv = export_all(*m, 0);
  const double launches = m->info().launches;
  struct Bad {
    const char* what;
    Batch batch;
  };
  std::vector<Bad> cases;
  auto add = [&](const char* what, auto edit) {
    Batch b = run_of(0, 4, 2, 3);
    edit(b);
    cases.push_back({what, b});
  };
  add("token = vocab", [](Batch& b) { b.tokens[1] = 300; });
  add("negative token", [](Batch& b) { b.tokens[0] = -1; });
  add("slot = maxSequences", [](Batch& b) { b.slots[1] = 3; });
  add("position past the slot's length", [](Batch& b) { b.positions = {5, 6}; });
  add("positions not consecutive", [](Batch& b) { b.positions = {4, 6}; });
  add("position = context", [](Batch& b) { b.positions = {80, 81}; });
  add("a slot that holds nothing, at position 1", [](Batch& b) {
    b.slots = {1, 1};
    b.positions = {1, 2};
  });
  add("logit rows not increasing", [](Batch& b) { b.logit_rows = {1, 1}; });
  add("logit row = n", [](Batch& b) { b.logit_rows = {2}; });
  add("topK 0", [](Batch& b) {
    b.output = StepOutput::TopK;
    b.top_k = 0;
  });
  add("topK > vocab", [](Batch& b) {
    b.output = StepOutput::TopK;
    b.top_k = 301;
  });
  add("hidden row = n", [](Batch& b) { b.hidden_rows = {2}; });
  add("n > maxBatchTokens", [](Batch& b) { b = run_of(0, 4, 13, 1); });
  add("n = 0", [](Batch& b) { b = Batch{}; });
  for (const Bad& bad : cases) {
    StepResult out;
    expect(step(*m, bad.batch, &out), halo_gpu::MODEL_BAD_ARGUMENT, std::string("refused: ") + bad.what);
  }
  check(m->info().launches == launches, "refused steps launched nothing");
  check(m->slot_length(0) == 4 && m->slot_length(1) == 0, "refused steps left the slot lengths");
  check(same_bits(export_all(*m, 0), kv), "refused steps left the KV cache");
  // A first position below the slot's length rewrites (a truncation the TypeScript side made); above it is refused.
  expect(step(*m, run_of(0, 2, 1, 9), &r), 0, "rewrite from position 2");
  check(m->slot_length(0) == 3, "a rewrite sets the slot's length to its last row + 1");
}

/** Injected device faults: the step fails with its status, the slot does not advance, the retry matches a model that
 *  never failed; with and without graphs (a fault inside a replay too). */
void check_faults() {
  for (bool graphs : {false, true}) {
    if (short_run && !graphs) continue;
    Options o;
    o.graphs = graphs;
    auto m = tiny_model(o), clean = tiny_model(o);
    if (!m || !clean) return;
    const std::string tag = graphs ? " (graphs)" : " (no graphs)";
    StepResult r, want;
    expect(step(*m, run_of(0, 0, 5, 2), &r), 0, "prefill" + tag);
    expect(step(*clean, run_of(0, 0, 5, 2), &want), 0, "prefill (clean)" + tag);
    int position = 5;
    const std::vector<const char*> ops =
        short_run ? std::vector<const char*>{"launch", "download"} : std::vector<const char*>{"launch", "upload", "download", "launch"};
    for (const char* op : ops) {
      // Two clean decode steps first so that, with graphs, the faulted step is a replay.
      for (int s = 0; s < 2; s++) {
        expect(step(*m, run_of(0, position, 1, position), &r), 0, "decode" + tag);
        expect(step(*clean, run_of(0, position, 1, position), &want), 0, "decode (clean)" + tag);
        check(same_bits(r.logits, want.logits), "decode equals the clean model" + tag);
        position++;
      }
      const int after = std::string(op) == "launch" ? 7 : 0;
      expect(ModelResult::from(halo_gpu::emulator_inject_fault(op, after)), 0, "inject a fault");
      ModelResult failed = step(*m, run_of(0, position, 1, position), &r);
      halo_gpu::emulator_inject_fault("launch", -1);
      check(failed.status == halo_gpu::MODEL_DEVICE_ERROR && !failed.message.empty(),
            std::string("a ") + op + " fault fails the step with status 5" + tag + "; got " + std::to_string(failed.status) + " " + failed.message);
      check(r.logits.empty() && r.ids.empty(), "a failed step returns no outputs" + tag);
      check(m->slot_length(0) == position, std::string("a failed step does not advance its slot (") + op + ")" + tag);
      expect(step(*m, run_of(0, position, 1, position), &r), 0, std::string("the retry after a ") + op + " fault" + tag);
      expect(step(*clean, run_of(0, position, 1, position), &want), 0, "the same step (clean)" + tag);
      check(same_bits(r.logits, want.logits), std::string("the retry after a ") + op + " fault equals the clean model" + tag);
      position++;
    }
  }
}

void check_kv() {
  for (int dtype : {HALO_GPU_F16, HALO_GPU_F32}) {
    if (short_run && dtype == HALO_GPU_F32) continue;
    Options o;
    o.kv_dtype = dtype;
    o.tied = dtype == HALO_GPU_F32;
    auto m = tiny_model(o);
    if (!m) return;
    const std::string tag = dtype == HALO_GPU_F16 ? " (f16 KV)" : " (f32 KV)";
    StepResult r;
    expect(step(*m, run_of(0, 0, 6, 4), &r), 0, "prefill" + tag);
    const ModelConfig& c = m->config();
    const std::size_t count = static_cast<std::size_t>(c.layers) * 6 * c.kv_heads * c.head_dim;
    std::vector<float> keys(count), values(count);
    expect(m->export_slot(0, 6, keys.data(), values.data(), count), 0, "export" + tag);
    expect(m->export_slot(0, 7, keys.data(), values.data(), count), halo_gpu::MODEL_BAD_ARGUMENT, "export past the slot's length" + tag);
    expect(m->import_slot(2, 6, keys.data(), values.data(), count), 0, "import" + tag);
    check(m->slot_length(2) == 6, "import sets the slot's length" + tag);
    check(same_bits(export_all(*m, 2), export_all(*m, 0)), "exported rows import back unchanged" + tag);
    expect(m->copy_slot(0, 1, 6), 0, "copy_slot" + tag);
    check(same_bits(export_all(*m, 1), export_all(*m, 0)), "copy_slot copies every layer's rows" + tag);
    StepResult a, b, d;
    expect(step(*m, run_of(0, 6, 2, 8), &a), 0, "continue slot 0" + tag);
    expect(step(*m, run_of(1, 6, 2, 8), &b), 0, "continue the copy" + tag);
    expect(step(*m, run_of(2, 6, 2, 8), &d), 0, "continue the import" + tag);
    check(same_bits(a.logits, b.logits) && same_bits(a.logits, d.logits), "a copied or imported slot continues exactly as the original" + tag);
    // Rounding through the KV dtype, exactly as a step stores a row.
    std::vector<float> k1(static_cast<std::size_t>(c.layers) * c.kv_heads * c.head_dim), v1(k1.size());
    for (std::size_t i = 0; i < k1.size(); i++) {
      k1[i] = 0.1f * static_cast<float>(i) + 1e-4f;
      v1[i] = -70000.0f + static_cast<float>(i);  // beyond f16's range: ±inf in an f16 cache, as a step would store it
    }
    expect(m->import_slot(2, 1, k1.data(), v1.data(), k1.size()), 0, "import one position" + tag);
    std::vector<float> k2(k1.size()), v2(k1.size());
    expect(m->export_slot(2, 1, k2.data(), v2.data(), k2.size()), 0, "export one position" + tag);
    bool rounded = true;
    for (std::size_t i = 0; i < k1.size(); i++) {
      const float wk = dtype == HALO_GPU_F16 ? halo_gpu::host_f16_to_f32(halo_emu::f32_to_f16(k1[i])) : k1[i];
      const float wv = dtype == HALO_GPU_F16 ? halo_gpu::host_f16_to_f32(halo_emu::f32_to_f16(v1[i])) : v1[i];
      rounded = rounded && std::memcmp(&wk, &k2[i], 4) == 0 && std::memcmp(&wv, &v2[i], 4) == 0;
    }
    check(rounded, "imported values come back rounded through the KV dtype" + tag);
    k1[3] = std::nanf("");
    expect(m->import_slot(2, 1, k1.data(), v1.data(), k1.size()), halo_gpu::MODEL_BAD_ARGUMENT, "a NaN import is refused" + tag);
    check(m->slot_length(2) == 1, "a refused import leaves the slot" + tag);
    expect(m->copy_slot(0, 1, 9), halo_gpu::MODEL_BAD_ARGUMENT, "copy past the source's length" + tag);
    expect(m->copy_slot(0, 3, 1), halo_gpu::MODEL_BAD_ARGUMENT, "copy to slot maxSequences" + tag);
  }
}

void check_weight_refusals() {
  auto m = tiny_model(Options{}, false);
  if (!m) return;
  std::vector<float> scales(80);
  expect(m->set_matrix(0, 1, 81, 64, 0, scales.data(), 81), halo_gpu::MODEL_BAD_ARGUMENT, "a matrix of the wrong shape");
  expect(m->set_matrix(0, 1, 80, 64, 32, scales.data(), 160), halo_gpu::MODEL_BAD_ARGUMENT, "scale blocks of 32");
  expect(m->set_matrix(0, 1, 80, 64, 0, scales.data(), 79), halo_gpu::MODEL_BAD_ARGUMENT, "too few scales");
  expect(m->set_matrix(4, 1, 80, 64, 0, scales.data(), 80), halo_gpu::MODEL_BAD_ARGUMENT, "layer out of range");
  expect(m->set_matrix(0, 1, 80, 64, 0, scales.data(), 80), 0, "set layer 0's o again (its rows are now missing)");
  std::vector<uint8_t> g2(16, 0x55);  // every code 1 (= 0)
  expect(m->upload_g2(0, 1, 0, g2.data(), g2.size(), 1), 0, "one valid halo-g2 row (64 columns: one chunk)");
  g2[5] = 0x57;  // one code 3
  expect(m->upload_g2(0, 1, 1, g2.data(), g2.size(), 1), halo_gpu::MODEL_BAD_WEIGHTS, "a halo-g2 code 3");
  expect(m->upload_g2(0, 1, 80, g2.data(), g2.size(), 1), halo_gpu::MODEL_BAD_ARGUMENT, "a row past the matrix");
  std::vector<int8_t> trits(64, 0);
  trits[10] = 2;
  expect(m->pack_rows(0, 1, 0, trits.data(), trits.size(), 1), halo_gpu::MODEL_BAD_WEIGHTS, "a trit of 2");
  const ModelResult r = m->finalize();
  check(r.status == halo_gpu::MODEL_NOT_READY && r.message.find("layer 0 o") != std::string::npos, "finalize names the matrix with rows missing: " + r.message);
  StepResult out;
  expect(step(*m, run_of(0, 0, 1, 1), &out), halo_gpu::MODEL_NOT_READY, "a step before finalize");
  auto done = tiny_model(Options{});
  if (!done) return;
  std::vector<float> norm(80, 1.0f);
  expect(done->set_norm(0, 0, norm.data(), norm.size()), halo_gpu::MODEL_BAD_ARGUMENT, "setNorm after finalize");
}

}  // namespace

int main(int argc, char** argv) {
  for (int i = 1; i < argc; i++) {
    if (std::strcmp(argv[i], "--short") == 0) {
      short_run = true;
    } else {
      std::fprintf(stderr, "model_test: unknown argument %s (--short: the reduced run for sanitizer builds)\n", argv[i]);
      return 2;
    }
  }
  halo_emu::set_threads(0);
  check_f16_conversions();
  check_graphs_and_outputs();
  check_refusals();
  check_faults();
  check_kv();
  check_weight_refusals();
  if (failures > 0) {
    std::fprintf(stderr, "model_test: %d failure(s)\n", failures);
    return 1;
  }
  std::printf("model_test: all checks passed%s\n", short_run ? " (--short)" : "");
  return 0;
}
