import { describe, expect, it } from "vitest";
import { writeBackendNotice } from "./backend-notice.js";

function capture(): { ctx: { stdout: { write(t: string): void }; stderr: { write(t: string): void }; env: Record<string, string> }; err: () => string } {
  let err = "";
  return { ctx: { stdout: { write: () => {} }, stderr: { write: (t) => void (err += t) }, env: {} }, err: () => err };
}

describe("writeBackendNotice", () => {
  it("names the backend that runs, the one passed over, its reason and fix", () => {
    const { ctx, err } = capture();
    const reason = "the native CPU addon could not be loaded. Fix: `npm rebuild @halo/kernels-cpu`";
    writeBackendNotice("run", { backend: "reference", skippedBackends: [{ name: "cpu", reason }] }, ctx);
    expect(err()).toBe(`halo run: running on the reference backend (the TypeScript reference backend: correct but far slower); the cpu backend was not used: ${reason}\n`);
  });

  it("says when options given for a backend had no effect because another runs", () => {
    const { ctx, err } = capture();
    writeBackendNotice("bench", { backend: "reference", skippedBackends: [] }, ctx, { cpu: { lmHead: "int8", threads: 2 }, reference: { splitKvTile: 64 } });
    expect(err()).toBe("halo bench: --lm-head, --threads apply to the cpu backend, which does not run here (the reference backend runs): not used\n");
  });

  it("says nothing when the first choice runs", () => {
    const { ctx, err } = capture();
    expect(writeBackendNotice("serve", { backend: "cpu", skippedBackends: [] }, ctx)).toEqual([]);
    expect(err()).toBe("");
  });
});
