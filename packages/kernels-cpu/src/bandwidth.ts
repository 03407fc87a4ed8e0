// measureReadBandwidth: the machine's DRAM read bandwidth, for roofline figures (halo bench, bench/).
import { badOption } from "./errors.js";
import { fromNative, nativeBinding, statusError } from "./native-binding.js";

/** Options of {@link measureReadBandwidth}. */
export interface ReadBandwidthOptions {
  /** Threads reading (the backend's pool of that size). Whole number in [1, 1024]. Default: hardware threads. */
  readonly threads?: number;
  /** MiB read per pass: far above the last-level cache, so the passes stream from DRAM. Whole number in [64, 65536]. Default 512. */
  readonly mib?: number;
}

/**
 * DRAM read bandwidth in GB/s (10^9 bytes per second): the median of 7 read-reduce passes over `mib` MiB, split across
 * `threads` workers of the CPU backend's thread pool, each first touching its own part, with huge pages advised and a
 * software prefetch 2 KB ahead as halo's kernels stream their weights (the same method as `bench/bandwidth.c`). Runs
 * off the JS thread; takes about a second for the default 512 MiB. A decode step that reads B bytes per token cannot
 * run faster than this ÷ B tokens per second — the roofline `halo bench` reports against.
 *
 * @example
 * ```ts
 * const gbps = await measureReadBandwidth({ threads: 2 });
 * console.log(`${gbps.toFixed(1)} GB/s: at most ${((gbps * 1e9) / 1.19e9).toFixed(1)} tok/s for 1.19 GB per token`);
 * ```
 */
export async function measureReadBandwidth(options: ReadBandwidthOptions = {}): Promise<number> {
  const native = nativeBinding();
  const threads = options.threads ?? (native.hardwareThreads() || 1);
  if (typeof threads !== "number" || !Number.isInteger(threads) || threads < 1 || threads > 1024) {
    throw badOption("threads", "threads must be a whole number from 1 to 1024", "an integer in [1, 1024]", threads);
  }
  const mib = options.mib ?? 512;
  if (typeof mib !== "number" || !Number.isInteger(mib) || mib < 64 || mib > 65536) {
    throw badOption("mib", "mib must be a whole number from 64 to 65536 (MiB read per pass)", "an integer in [64, 65536]", mib);
  }
  const result = native.measureReadBandwidth(threads, mib);
  // A number is the status of a call the binding refused before starting (the options were checked above).
  if (typeof result === "number") throw statusError(result, "measuring the read bandwidth", "mib");
  try {
    return await result;
  } catch (error) {
    throw fromNative(error, "measuring the read bandwidth");
  }
}
