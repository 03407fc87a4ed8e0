// Test support (not exported from the package): the native addon for tests, or a skip naming what is missing — a failure under HALO_REQUIRE_NATIVE=1.
import { tryNativeBinding, type HipNativeBinding, type NativeGpuConfig } from "./native-binding.js";

/** Why the addon cannot be used here, or null when it loads. */
export function nativeMissingReason(): string | null {
  const { missing } = tryNativeBinding();
  return missing === null ? null : `halo_hip.node is not usable here (${String(missing.actual)})`;
}

/** Whether the test command demands the native addon (test:ci sets HALO_REQUIRE_NATIVE=1): then a missing one fails, never skips. */
export const NATIVE_REQUIRED = process.env.HALO_REQUIRE_NATIVE === "1";

/** The build command that makes the addon, for skip messages. */
export const BUILD_HINT = "build it with `corepack pnpm --filter @halo/kernels-hip build` (needs g++, make and python3)";

/**
 * The addon, or: throws (HALO_REQUIRE_NATIVE=1) / skips the calling test with the reason. `context` is vitest's test context.
 */
export function needNative(context: { skip(note?: string): void }, what: string): HipNativeBinding {
  const { native } = tryNativeBinding();
  if (native !== null) return native;
  const message = `${what}: ${nativeMissingReason() ?? "halo_hip.node is not usable here"}; ${BUILD_HINT}`;
  if (NATIVE_REQUIRED) throw new Error(`${message} — and HALO_REQUIRE_NATIVE=1 demands it`);
  console.log(`skipped: ${message}`);
  context.skip(message);
  throw new Error("unreachable: context.skip() returns only under runners without skip");
}

/** A one-layer native model small enough to build by hand in a test (64 wide, vocab 40, 16 positions, 2 slots). */
export const SMALL_CONFIG: NativeGpuConfig = {
  hidden: 64,
  intermediate: 128,
  layers: 1,
  heads: 2,
  kvHeads: 1,
  headDim: 32,
  vocab: 40,
  context: 16,
  maxSequences: 2,
  maxBatchTokens: 8,
  ropeTheta: 10000,
  eps: 1e-5,
  relu2: true,
  kvDtype: "f16",
  graphs: true,
};
