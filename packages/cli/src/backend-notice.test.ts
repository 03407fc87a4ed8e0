import { describe, expect, it } from "vitest";
import { referenceBackendFactory, type BackendFactory } from "@halo/engine";
import { writeBackendNotice } from "./backend-notice.js";

function capture(): { ctx: { stdout: { write(t: string): void }; stderr: { write(t: string): void }; env: Record<string, string> }; err: () => string } {
  let err = "";
  return { ctx: { stdout: { write: () => {} }, stderr: { write: (t) => void (err += t) }, env: {} }, err: () => err };
}

/** A factory as the engine reports the running one: only its name and description are read. */
function factory(name: string, description: string): BackendFactory {
  return { ...referenceBackendFactory, name, description };
}

describe("writeBackendNotice", () => {
  it("names the backend that runs with its factory's own description, the one passed over, its reason and fix", () => {
    const { ctx, err } = capture();
    const reason = "the native CPU addon could not be loaded. Fix: `npm rebuild @halo/kernels-cpu`";
    writeBackendNotice(
      "run",
      { backend: "reference", backendFactory: referenceBackendFactory, skippedBackends: [{ name: "cpu", reason }], unusedBackendOptions: [] },
      ctx,
    );
    expect(err()).toBe(`halo run: running on the reference backend (${referenceBackendFactory.description}); the cpu backend was not used: ${reason}\n`);
    expect(err()).toMatch(/slowly/);
    // Any backend's description, not a name check: a fallback to another slow backend says what it is the same way.
    const other = capture();
    writeBackendNotice(
      "run",
      {
        backend: "npu v2",
        backendFactory: factory("npu", "an NPU, slow to start"),
        skippedBackends: [{ name: "gpu", reason: "no device" }],
        unusedBackendOptions: [],
      },
      other.ctx,
    );
    expect(other.err()).toBe("halo run: running on the npu backend (an NPU, slow to start); the gpu backend was not used: no device\n");
  });

  it("says when options given for a backend had no effect because another runs, naming the flags that set them (the engine's unusedBackendOptions)", () => {
    const { ctx, err } = capture();
    const given = { cpu: { lmHead: "int8", threads: 2 }, reference: { splitKvTile: 64 }, hip: { device: 1 } };
    // The running factory is "reference" whatever its display name: its own options were used.
    writeBackendNotice(
      "bench",
      { backend: "reference split-kv 64", backendFactory: referenceBackendFactory, skippedBackends: [], unusedBackendOptions: ["cpu", "hip"] },
      ctx,
      given,
    );
    expect(err()).toBe(
      "halo bench: --lm-head, --threads apply to the cpu backend, which does not run here (the reference backend runs): not used\n" +
        "halo bench: --backend-option hip.device applies to the hip backend, which does not run here (the reference backend runs): not used\n",
    );
  });

  it("says nothing when the first choice runs with every option given", () => {
    const { ctx, err } = capture();
    // Even when an engine lists the running backend (by its display name) as unused: its factory's options were used.
    expect(
      writeBackendNotice(
        "serve",
        { backend: "reference split-kv 64", backendFactory: referenceBackendFactory, skippedBackends: [], unusedBackendOptions: ["reference"] },
        ctx,
        { reference: { splitKvTile: 64 } },
      ),
    ).toEqual([]);
    expect(err()).toBe("");
  });
});
