// The weight layouts of the installed backends, best backend first: what `halo convert` and `halo pull --convert` store and decode.
import { discoverBackends, installedPackings as packingsOfFactories } from "@halo/engine";
import type { TernaryCodec } from "@halo/h1b-format";

/**
 * The packing codecs (`BackendFactory.packings`) of every backend `@halo/engine` discovers, one per
 * packing name, the highest-priority backend's first (the engine's `installedPackings`, as
 * `loadModel` opens files with). Passed as `codecs` to `@halo/h1b-format`, they let `halo convert`
 * store the best installed backend's own layout under `--packing auto` (`halo-i2x256` with
 * `@halo/kernels-cpu`, which that backend maps with no repacking) and decode files stored in any
 * installed backend's layout. Discovery looks at installed packages only (no probe), so a layout is
 * written even where its backend cannot run on this machine: the file still opens everywhere, and
 * that backend maps it where it runs.
 *
 * @example
 * ```ts
 * const codecs = await installedPackings(process.env);
 * await convertModel(model, "model.halo", { format: "halo", codecs }); // the best backend's layout
 * ```
 */
export async function installedPackings(env?: Readonly<Record<string, string | undefined>>): Promise<TernaryCodec[]> {
  const { factories } = await discoverBackends(env === undefined ? {} : { env });
  return packingsOfFactories(factories);
}
