// The model a command runs: --model as given (a path, or owner/name pulled on demand), else the cached default, pulled on first use.
import { existsSync } from "node:fs";
import { join } from "node:path";
import { HaloError, isHaloError } from "@halo/errors";
import type { CommandContext } from "../context.js";
import { CliErrorCode } from "../errors.js";
import { modelCacheDir, snapshotDir } from "./cache-dir.js";
import { hfHubCacheDir, hfSnapshotDir, loadableSnapshot } from "./hf-cache.js";
import { hubOptionsFromEnv, OFFLINE_HINT } from "./hub-client.js";
import { ProgressBar } from "./progress-bar.js";
import { parsePullSpec, pull, readMarker, type PullOptions, type PullResult, type PullSpec } from "./pull.js";

/**
 * The model `run`, `chat` and `serve` use when no `--model` is given.
 *
 * @example
 * ```ts
 * await pullWithProgress(parsePullSpec(DEFAULT_MODEL_REPO), ctx, { progress: true });
 * ```
 */
export const DEFAULT_MODEL_REPO = "microsoft/bitnet-b1.58-2B-4T";

/** Whether progress bars draw: `--progress`, or stderr is a terminal. */
export function progressEnabled(ctx: CommandContext, force: boolean): boolean {
  return force || (ctx.stderr as { isTTY?: boolean }).isTTY === true;
}

/**
 * {@link pull} with a progress bar per file on the command's stderr (when enabled).
 *
 * @example
 * ```ts
 * await pullWithProgress(parsePullSpec("owner/name"), ctx, { progress: true });
 * ```
 */
export async function pullWithProgress(
  spec: PullSpec,
  ctx: CommandContext,
  options: { progress: boolean; announce?: string } & Partial<Omit<PullOptions, "onFile" | "onProgress" | "onFileDone">>,
): Promise<PullResult> {
  const enabled = progressEnabled(ctx, options.progress);
  let bar: ProgressBar | undefined;
  let announce = options.announce;
  return pull(spec, {
    hub: options.hub ?? hubOptionsFromEnv(ctx.env),
    cacheDir: options.cacheDir ?? modelCacheDir(ctx.env),
    ...(options.include !== undefined ? { include: options.include } : {}),
    ...(options.convert !== undefined ? { convert: options.convert } : {}),
    ...(options.retries !== undefined ? { retries: options.retries } : {}),
    ...(options.openWriter !== undefined ? { openWriter: options.openWriter } : {}),
    ...(options.signal !== undefined ? { signal: options.signal } : {}),
    onFile: (file) => {
      if (announce !== undefined) ctx.stderr.write(announce);
      announce = undefined;
      bar = new ProgressBar(file, ctx.stderr, enabled);
    },
    onProgress: (_file, done, total, fetched) => bar?.update(done, total, fetched),
    onFileDone: () => bar?.finish(),
  });
}

/** The path to load for a complete cached snapshot: its `model.halo` when converted, else the directory. */
function loadablePath(dir: string): string {
  const halo = join(dir, "model.halo");
  return existsSync(halo) ? halo : dir;
}

/**
 * Resolves `--model`: an existing path is used as is; `owner/name[@rev]` that is not a path is
 * taken from halo's cache, else from a complete snapshot in the Hugging Face hub cache (saying so
 * on stderr), else pulled; no value means {@link DEFAULT_MODEL_REPO}, cached or pulled on
 * first use. Offline without a cached default it throws `CLI_NO_MODEL` saying what to do.
 *
 * @example
 * ```ts
 * const path = await resolveModel(values.model as string | undefined, ctx, { progress: false });
 * ```
 */
export async function resolveModel(model: string | undefined, ctx: CommandContext, options: { progress: boolean }): Promise<string> {
  if (model !== undefined && (existsSync(model) || !/^(hf:)?[\w.-]+\/[\w.-]+(@[\w./-]+)?$/.test(model) || model.startsWith(".") || model.startsWith("/"))) {
    return model;
  }
  const spec = parsePullSpec(model ?? DEFAULT_MODEL_REPO);
  if (spec.kind !== "repo") return model!;
  const dir = snapshotDir(modelCacheDir(ctx.env), spec.repo, spec.revision);
  // A snapshot pulled with --include holds only some files: pull the rest before using it.
  const marker = await readMarker(dir);
  if (marker !== undefined && marker.include.length === 0) return loadablePath(dir);
  // Already downloaded with the Hugging Face tools: use that snapshot rather than a second copy.
  const hfDir = hfSnapshotDir(hfHubCacheDir(ctx.env), spec.repo, spec.revision);
  const fromHf = hfDir === null ? null : loadableSnapshot(hfDir);
  if (fromHf !== null) {
    ctx.stderr.write(`halo: using ${spec.repo} from the Hugging Face cache (${fromHf}), not downloading it.\n`);
    return fromHf;
  }
  try {
    await pullWithProgress(spec, ctx, { progress: options.progress, announce: `halo: ${spec.repo} is not in the cache (${dir}); pulling it once.\n` });
  } catch (error) {
    if (model === undefined && isHaloError(error) && (error.code === CliErrorCode.CLI_HUB_UNREACHABLE || error.code === CliErrorCode.CLI_HUB_AUTH)) {
      const why =
        error.code === CliErrorCode.CLI_HUB_UNREACHABLE ? `the hub at ${hubOptionsFromEnv(ctx.env).endpoint} cannot be reached` : "the hub refused access";
      throw new HaloError(CliErrorCode.CLI_NO_MODEL, `no --model given, the default model ${DEFAULT_MODEL_REPO} is not cached and ${why}`, {
        path: dir,
        hint: OFFLINE_HINT,
      });
    }
    throw error;
  }
  return loadablePath(dir);
}
