import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import fc from "fast-check";
import { htokToTokenizerPayload, readHtok, writeHtok, type HtokData } from "./htok.js";
import { caught } from "../../error-code.test-support.js";

/** research/seed-system.md §2, written out by hand: vocab ["a","b","ab"], one merge (0,1)→2, bos 0, eos 1. */
const HAND = Uint8Array.from([
  ...Buffer.from("HTOK"),
  3,
  0,
  0,
  0, // vocab_size
  1,
  0,
  0,
  0, // num_merges
  0,
  0,
  0,
  0, // bos_id
  1,
  0,
  0,
  0, // eos_id
  1,
  0,
  0x61, // "a"
  1,
  0,
  0x62, // "b"
  2,
  0,
  0x61,
  0x62, // "ab"
  0,
  0,
  0,
  0,
  1,
  0,
  0,
  0,
  2,
  0,
  0,
  0, // merge a b → ab
]);

describe(".htok", () => {
  it("reads the hand-written example and writes it back byte for byte", () => {
    const data = readHtok(HAND);
    expect(data.tokens.map((t) => Buffer.from(t).toString())).toEqual(["a", "b", "ab"]);
    expect([...data.merges]).toEqual([0, 1, 2]);
    expect([data.bosTokenId, data.eosTokenId]).toEqual([0, 1]);
    expect(Buffer.from(writeHtok(data)).equals(Buffer.from(HAND))).toBe(true);
    expect(htokToTokenizerPayload(data)).toMatchObject({ kind: "htok", bosTokenId: 0, eosTokenId: 1 });
  });

  it("reads from a path", () => {
    const dir = mkdtempSync(join(tmpdir(), "htok-"));
    writeFileSync(join(dir, "t.htok"), HAND);
    expect(readHtok(join(dir, "t.htok")).tokens).toHaveLength(3);
    expect(caught(() => readHtok(join(dir, "missing.htok"))).code).toBe("H1B_MISSING_FILE");
  });

  it("names the merge index and value when a merge is out of range", () => {
    const bad = HAND.slice();
    new DataView(bad.buffer).setUint32(HAND.length - 8, 77, true); // merge 0, field b
    const error = caught(() => readHtok(bad, "bad.htok"));
    expect(error.code).toBe("H1B_BAD_METADATA");
    expect(error.field).toBe("merges[0].b");
    expect(error.actual).toBe(77);
    expect(error.offset).toBe(HAND.length - 8);
    expect(error.path).toBe("bad.htok");
  });

  it("validates magic, counts, BOS/EOS and trailing bytes", () => {
    const with32 = (offset: number, value: number): Uint8Array => {
      const copy = HAND.slice();
      new DataView(copy.buffer).setUint32(offset, value, true);
      return copy;
    };
    expect(caught(() => readHtok(Uint8Array.from([0x58, ...HAND.subarray(1)]))).code).toBe("H1B_BAD_MAGIC");
    expect(caught(() => readHtok(with32(4, 0xffffffff))).code).toBe("H1B_TOO_LARGE");
    expect(caught(() => readHtok(with32(8, 1000))).code).toBe("H1B_TOO_LARGE");
    expect(caught(() => readHtok(with32(12, 3))).field).toBe("bos_id");
    expect(caught(() => readHtok(with32(16, 9))).field).toBe("eos_id");
    expect(caught(() => readHtok(Uint8Array.from([...HAND, 0]))).code).toBe("H1B_BAD_METADATA");
    expect(caught(() => readHtok(HAND.subarray(0, 10))).code).toBe("H1B_TRUNCATED");
    // A long surface that passes the end of the file.
    const long = HAND.slice();
    new DataView(long.buffer).setUint16(26, 40, true);
    expect(caught(() => readHtok(long)).code).toBe("H1B_TRUNCATED");
  });

  it("writeHtok refuses data the format cannot hold", () => {
    const ok: HtokData = { tokens: [Buffer.from("x")], merges: new Uint32Array(0), bosTokenId: 0, eosTokenId: 0 };
    expect(caught(() => writeHtok({ ...ok, tokens: [new Uint8Array(70000)] })).code).toBe("H1B_BAD_ARGUMENT");
    expect(caught(() => writeHtok({ ...ok, merges: Uint32Array.of(0, 0) })).code).toBe("H1B_BAD_ARGUMENT");
    expect(caught(() => writeHtok({ ...ok, merges: Uint32Array.of(0, 0, 1) })).code).toBe("H1B_BAD_ARGUMENT");
    expect(caught(() => writeHtok({ ...ok, eosTokenId: 1 })).code).toBe("H1B_BAD_ARGUMENT");
  });

  it("property: readHtok(writeHtok(d)) equals d and re-encodes byte-exact", () => {
    const data = fc.array(fc.uint8Array({ maxLength: 12 }), { minLength: 1, maxLength: 40 }).chain((tokens) =>
      fc.record({
        tokens: fc.constant(tokens),
        merges: fc.array(fc.nat(tokens.length - 1), { maxLength: 30 }).map((ids) => Uint32Array.from(ids.slice(0, ids.length - (ids.length % 3)))),
        bosTokenId: fc.nat(tokens.length - 1),
        eosTokenId: fc.nat(tokens.length - 1),
      }),
    );
    fc.assert(
      fc.property(data, (d) => {
        const bytes = writeHtok(d);
        const back = readHtok(bytes);
        expect(back.tokens.map((t) => Buffer.from(t).toString("hex"))).toEqual(d.tokens.map((t) => Buffer.from(t).toString("hex")));
        expect([...back.merges]).toEqual([...d.merges]);
        expect([back.bosTokenId, back.eosTokenId]).toEqual([d.bosTokenId, d.eosTokenId]);
        expect(Buffer.from(writeHtok(back)).equals(Buffer.from(bytes))).toBe(true);
      }),
      { numRuns: 200 },
    );
  });
});
