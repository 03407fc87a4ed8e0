// The binding's own guards, called directly: out-of-range config numbers, a half-loaded model, huge offsets — errors, never a crash.
import { describe, expect, it } from "vitest";
import { NativeStatus, nativeBinding, type NativeConfig } from "./native-binding.js";

const CONFIG: NativeConfig = {
  hidden: 256,
  intermediate: 512,
  layers: 1,
  heads: 4,
  kvHeads: 2,
  headDim: 64,
  vocab: 32,
  context: 16,
  maxSequences: 1,
  ropeTheta: 10000,
  eps: 1e-5,
  relu2: true,
  kvDtype: "f16",
  perToken: true,
};
const ARENA = 1 << 20;

function statusOf(thrown: unknown): unknown {
  return (thrown as { haloStatus?: number }).haloStatus;
}

describe("native binding bad input", () => {
  const native = nativeBinding();

  it.each([
    ["hidden", 1e12],
    ["vocab", Number.NaN],
    ["layers", Infinity],
    ["heads", -3],
    ["context", 2.5],
    ["ropeTheta", Infinity],
    ["eps", Number.NaN],
  ])("config.%s = %s is refused with BAD_ARGUMENT", (key, value) => {
    let thrown: unknown;
    try {
      new native.NativeModel({ ...CONFIG, [key]: value }, "scalar", 1, ARENA, false);
    } catch (e) {
      thrown = e;
    }
    expect(statusOf(thrown)).toBe(NativeStatus.BAD_ARGUMENT);
  });

  it.each([["q4"], [""], [undefined], [true]])("config.kvDtype = %s is refused, naming the accepted dtypes", (kvDtype) => {
    expect(() => new native.NativeModel({ ...CONFIG, kvDtype } as unknown as NativeConfig, "scalar", 1, ARENA, false)).toThrow(
      /kvDtype must be "f32", "f16" or "int8"/,
    );
  });

  it("allocates and frees an int8 KV slot (codes, then scales)", () => {
    const model = new native.NativeModel({ ...CONFIG, kvDtype: "int8" }, "scalar", 1, ARENA, false);
    expect(model.allocSlot(0)).toBe(NativeStatus.OK);
    expect(model.freeSlot(0)).toBe(NativeStatus.OK);
    model.dispose();
  });

  it("refuses arenaBytes of Infinity", () => {
    expect(() => new native.NativeModel(CONFIG, "scalar", 1, Infinity, false)).toThrow(/arenaBytes/);
  });

  it("a step on a model whose weights were never set rejects with BAD_ARGUMENT", async () => {
    const model = new native.NativeModel(CONFIG, "scalar", 1, ARENA, false);
    expect(model.allocSlot(0)).toBe(NativeStatus.OK);
    const one = Int32Array.of(0);
    await expect(model.step(one, one, one, one)).rejects.toMatchObject({ haloStatus: NativeStatus.BAD_ARGUMENT });
    model.dispose();
  });

  it("packRows with a row offset near 2^31 is refused, not an overflow", () => {
    const model = new native.NativeModel(CONFIG, "scalar", 1, ARENA, false);
    expect(model.setMatrix(0, 1, 256, 256, 256, new Float32Array(256).fill(1))).toBe(NativeStatus.OK);
    expect(model.packRows(0, 1, 2 ** 31 - 1, new Int8Array(256), 1)).toBe(NativeStatus.BAD_ARGUMENT);
    model.dispose();
  });

  it("a matrix whose shape does not fit the config makes a step refuse, not read past it", async () => {
    const model = new native.NativeModel({ ...CONFIG, layers: 1 }, "scalar", 1, ARENA, false);
    // o should be [hidden][heads·headDim] = [256][256]; give it 16 rows.
    expect(model.setMatrix(0, 1, 16, 256, 256, new Float32Array(16).fill(1))).toBe(NativeStatus.OK);
    expect(model.allocSlot(0)).toBe(NativeStatus.OK);
    const one = Int32Array.of(0);
    await expect(model.step(one, one, one, one)).rejects.toMatchObject({ haloStatus: NativeStatus.BAD_ARGUMENT });
    model.dispose();
  });
});
