// Engine errors in the CLI's words: the JavaScript option names an error names become the flags that set them.
import { flagOfBackendOption, flagsOfBackend } from "./backend-option-flags.js";

/**
 * The `loadModel`/`generate` option each `halo` flag sets, by option name. `null`: no flag sets it.
 * Backend options are not here: `backendOptions.<backend>.<key>` is written as the flag that sets it
 * (see `BACKEND_OPTION_FLAGS`).
 *
 * @internal
 */
export const FLAG_OF_OPTION: Readonly<Record<string, string | null>> = {
  contextLength: "--context-length",
  maxSequences: "--parallel",
  kvDtype: "--kv-dtype",
  maxTokens: "--max-tokens",
  chatTemplate: "--chat-template",
  contextShift: "--context-shift",
  draftModel: "--draft-model",
  maxDraft: "--max-draft",
  templateVariables: null,
};

/**
 * Where a command's flag for an option differs from {@link FLAG_OF_OPTION}: `halo bench --batch`
 * sets `maxSequences`.
 *
 * @internal
 */
export const COMMAND_FLAG_OF_OPTION: Readonly<Record<string, Readonly<Record<string, string>>>> = {
  bench: { maxSequences: "--batch" },
};

function flagText(option: string, command: string | undefined): string {
  const flag = (command === undefined ? undefined : COMMAND_FLAG_OF_OPTION[command]?.[option]) ?? FLAG_OF_OPTION[option];
  return flag === null || flag === undefined ? "template variables (no halo flag sets them)" : flag;
}

/**
 * Rewrites an error message written for the JavaScript API in the CLI's flags:
 * `backend: "reference"` → `--backend reference`, `verify: false` → `--no-verify`,
 * `contextLength` → `--context-length` (see {@link FLAG_OF_OPTION}; `command` picks its own flag where
 * it has one, {@link COMMAND_FLAG_OF_OPTION}), "load the model with a larger contextLength" → "pass a
 * larger --context-length", and backend options (`backendOptions.cpu.threads` → `--threads`,
 * `backendOptions.hip.device` → `--backend-option hip.device`).
 *
 * @example
 * ```ts
 * inCliTerms('no backend can run this model. … or pass backend: "reference"'); // '… or pass --backend reference'
 * ```
 * @internal
 */
export function inCliTerms(message: string, command?: string): string {
  let text = message
    .replace(/load the model with a larger contextLength/g, "pass a larger --context-length")
    // Backend options: a few have flags of their own (BACKEND_OPTION_FLAGS), every other goes through --backend-option.
    .replace(/\bbackendOptions\.([a-z][a-z0-9-]*)\.([A-Za-z_$][\w$]*)/g, (_, name: string, key: string) => flagOfBackendOption(name, key))
    .replace(/\bbackendOptions\.([a-z][a-z0-9-]*)\b/g, (_, name: string) => flagsOfBackend(name))
    .replace(/\bbackend: "([a-z0-9-]+)"/g, "--backend $1")
    .replace(/\bverify: false\b/g, "--no-verify");
  for (const option of Object.keys(FLAG_OF_OPTION)) {
    text = text.replace(new RegExp(`(?<![\\w.-])${option}\\b`, "g"), flagText(option, command));
  }
  return text;
}

/**
 * True when an `ENGINE_BAD_OPTION` error's `field` is an option a `halo` flag sets: then the
 * flag's value was wrong, a usage error (exit 2).
 *
 * @internal
 */
export function isFlagOption(field: string | undefined): boolean {
  return field !== undefined && (field === "verify" || (FLAG_OF_OPTION[field] !== undefined && FLAG_OF_OPTION[field] !== null) || field === "backend");
}
