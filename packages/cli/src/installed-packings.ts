// The weight layouts of the installed backends, best backend that runs here first: what `halo convert` and `halo pull --convert` store and decode.
import { discoverBackends, installedPackings as packingsOfFactories, type BackendFactory } from "@halo/engine";
import type { TernaryCodec } from "@halo/h1b-format";

/** Whether a factory's probe says it runs here; a probe that throws (the contract says it never does) does not. */
async function runsHere(factory: BackendFactory): Promise<boolean> {
  try {
    return (await factory.probe()).available;
  } catch {
    return false;
  }
}

/**
 * The packing codecs (`BackendFactory.packings`) of every backend `@halo/engine` discovers, one per
 * packing name: first those of the backends whose probe says they run here, highest priority first,
 * then those of the others (the engine's `installedPackings` over that order). Passed as `codecs` to
 * `@halo/h1b-format`, they let `halo convert` store, under `--packing auto`, the own layout of the
 * best backend that runs on this machine (`halo-i2x256` of `@halo/kernels-cpu`, which that backend
 * maps with no repacking; `halo-g2` of `@halo/kernels-hip` only where a GPU opens — a GPU layout
 * written on a machine without one would make the CPU backend repack every load), and decode files
 * stored in any installed backend's layout, runnable here or not.
 *
 * @example
 * ```ts
 * const codecs = await installedPackings(process.env);
 * await convertModel(model, "model.halo", { format: "halo", codecs }); // the layout of the best backend that runs here
 * ```
 */
export async function installedPackings(env?: Readonly<Record<string, string | undefined>>): Promise<TernaryCodec[]> {
  const { factories } = await discoverBackends(env === undefined ? {} : { env });
  const runs = await Promise.all(factories.map(runsHere));
  return packingsOfFactories([...factories.filter((_, i) => runs[i]), ...factories.filter((_, i) => !runs[i])]);
}
