// Test fixtures: hand-built seed `.h1b` files laid out slot by slot from the spec, independent of writeH1b.
import { ternaryCodec } from "../../codecs/registry.js";
import "../../codecs/seed.js";
import { Rng } from "../../synth/rng.js";

/** Parameters of {@link handBuiltH1b}. */
export interface HandBuiltOptions {
  readonly version: 1 | 2 | 3 | 4;
  readonly flags?: number;
  readonly hs: number;
  readonly is: number;
  readonly layers: number;
  readonly heads: number;
  readonly kvHeads: number;
  readonly vocab: number;
  readonly maxSeq?: number;
  readonly tie?: number;
  readonly ropeTheta?: number;
  readonly eps?: number;
  /** Magic byte 3 (0 in every seed file). */
  readonly magic3?: number;
  /** Fill the legacy slots with this instead of the canonical copies. */
  readonly legacyFill?: number;
  /** Bytes appended after the payload. */
  readonly trailing?: Uint8Array;
  readonly seed?: number;
}

/** What the fixture put where, for assertions. */
export interface HandBuilt {
  readonly bytes: Uint8Array;
  /** Per layer, per role: trits `[rows * cols]` and row scales (or Bonsai block scales). */
  readonly layers: Array<Record<string, { trits: Int8Array; scales: Float32Array; rows: number; cols: number }>>;
  readonly embedding: Float32Array;
  readonly finalNorm: Float32Array;
  readonly norms: Array<{ input: Float32Array; post: Float32Array; attnSub: Float32Array; ffnSub: Float32Array }>;
}

/**
 * Builds a small `.h1b` byte for byte from research/seed-system.md §1.1–1.5: header, f32
 * embedding, final norm, then per layer the three norms, five legacy slots, ffn_sub_norm and the
 * seven matrices (packed rows, then f32 row scales unless Bonsai).
 * @internal
 */
export function handBuiltH1b(o: HandBuiltOptions): HandBuilt {
  const flags = o.flags ?? 0;
  const rng = new Rng(o.seed ?? 1);
  const chunks: Uint8Array[] = [];
  const f32 = (values: Float32Array): void => void chunks.push(new Uint8Array(values.buffer.slice(0)));
  const header = new DataView(new ArrayBuffer(o.version === 1 ? 44 : 52));
  [0x48, 0x31, 0x42, o.magic3 ?? 0].forEach((b, i) => header.setUint8(i, b));
  header.setInt32(4, o.version, true);
  [o.hs, o.is, o.layers, o.heads, o.kvHeads, o.vocab, o.maxSeq ?? 4096, o.tie ?? 1, flags].forEach((v, i) => header.setInt32(8 + 4 * i, v, true));
  if (o.version >= 2) {
    header.setFloat32(0x2c, o.ropeTheta ?? 500000, true);
    header.setFloat32(0x30, o.eps ?? 1e-5, true);
  }
  chunks.push(new Uint8Array(header.buffer));
  const random = (n: number): Float32Array => Float32Array.from({ length: n }, () => rng.float() * 2 - 1);
  const embedding = random(o.vocab * o.hs);
  const finalNorm = random(o.hs);
  f32(embedding);
  f32(finalNorm);
  const bonsai = (flags & 0xc) !== 0;
  const packing = flags & 0x8 ? "bonsai-tq2" : flags & 0x4 ? "bonsai-q1" : o.version <= 2 ? "halo-v2" : o.version === 3 ? "sherry" : "tq1-v4";
  const hd = o.hs / o.heads;
  const shapes: Record<string, [number, number]> = {
    q: [o.hs, o.hs],
    k: [o.kvHeads * hd, o.hs],
    v: [o.kvHeads * hd, o.hs],
    o: [o.hs, o.hs],
    gate: [o.is, o.hs],
    up: [o.is, o.hs],
    down: [o.hs, o.is],
  };
  const layers: HandBuilt["layers"] = [];
  const norms: HandBuilt["norms"] = [];
  for (let l = 0; l < o.layers; l++) {
    const n = { input: random(o.hs), post: random(o.hs), attnSub: random(o.hs), ffnSub: random(o.is) };
    norms.push(n);
    f32(n.input);
    f32(n.post);
    f32(n.attnSub);
    const legacy = new Float32Array(5 * o.hs);
    if (o.legacyFill !== undefined) legacy.fill(o.legacyFill);
    else {
      for (let i = 0; i < 3; i++) legacy.set(n.attnSub, i * o.hs);
      for (let i = 3; i < 5; i++) legacy.set(n.ffnSub.subarray(0, o.hs), i * o.hs);
    }
    f32(legacy);
    f32(n.ffnSub);
    const entry: HandBuilt["layers"][number] = {};
    for (const [role, [rows, cols]] of Object.entries(shapes)) {
      const trits = new Int8Array(rows * cols);
      for (let i = 0; i < trits.length; i += 4) {
        // 3:4 groups (valid for every packing; Q1 gets ±1 only).
        const zero = Math.floor(rng.float() * 4);
        for (let k = 0; k < 4; k++) trits[i + k] = k === zero && packing !== "bonsai-q1" ? 0 : rng.float() < 0.5 ? -1 : 1;
      }
      const scales = bonsai
        ? Float32Array.from({ length: (rows * cols) / 128 }, () => 2 ** -(1 + Math.floor(rng.float() * 8)))
        : Float32Array.from({ length: rows }, () => Math.fround(0.01 + rng.float()));
      const scale = { kind: "block", blockSize: 128, values: scales } as const;
      chunks.push(ternaryCodec(packing).encode(trits, rows, cols, bonsai ? { scale } : {}));
      if (!bonsai) f32(scales);
      entry[role] = { trits, scales, rows, cols };
    }
    layers.push(entry);
  }
  if (o.trailing !== undefined) chunks.push(o.trailing);
  const bytes = Buffer.concat(chunks);
  return { bytes: new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength), layers, embedding, finalNorm, norms };
}
