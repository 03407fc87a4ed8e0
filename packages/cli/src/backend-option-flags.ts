// The flags that set one backend's option, written once: parsing, help, error messages and notices all read this table.
import type { FlagSpec } from "./args.js";

/** A flag of its own for one option of one backend (`--threads` sets `backendOptions.cpu.threads`). */
export interface BackendOptionFlag {
  /** The flag, with its dashes. */
  readonly flag: `--${string}`;
  /** The backend (its factory's name) that takes the option. */
  readonly backend: string;
  /** The option's key in that backend's options. */
  readonly key: string;
  /** How the flag's text becomes the option's value: a whole number, or the text as is. */
  readonly value: "integer" | "text";
  readonly placeholder: string;
  /** Help text. */
  readonly description: string;
}

/**
 * Every flag that sets a backend option directly. These are the cpu backend's options, so this is
 * the one place the CLI names that backend; every other option of every backend is set with
 * `--backend-option name.key=value`, so a new backend needs no row here. The backend checks the
 * values (ranges, names): the CLI only reads a whole number as a number.
 *
 * @example
 * ```ts
 * BACKEND_OPTION_FLAGS.find((f) => f.flag === "--threads"); // { backend: "cpu", key: "threads", … }
 * ```
 */
export const BACKEND_OPTION_FLAGS: readonly BackendOptionFlag[] = [
  { flag: "--threads", backend: "cpu", key: "threads", value: "integer", placeholder: "n", description: "threads of the cpu backend (default: all cores)" },
  {
    flag: "--lm-head",
    backend: "cpu",
    key: "lmHead",
    value: "text",
    placeholder: "f16|int8|int4",
    description: "LM head storage of the cpu backend: f16 (exact, default) | int8 | int4 — faster decoding at a measured quality cost, see docs/benchmarks.md",
  },
];

/**
 * The `parseFlags` specs of {@link BACKEND_OPTION_FLAGS}, by flag name without dashes.
 *
 * @example
 * ```ts
 * const FLAGS = { ...backendOptionFlagSpecs() }; // { threads: {…}, "lm-head": {…} }
 * ```
 */
export function backendOptionFlagSpecs(): Record<string, FlagSpec> {
  return Object.fromEntries(
    BACKEND_OPTION_FLAGS.map((f) => [f.flag.slice(2), { type: "string", placeholder: f.placeholder, description: f.description } satisfies FlagSpec]),
  );
}

/**
 * The flag that sets option `key` of backend `backend`: its own flag from {@link BACKEND_OPTION_FLAGS},
 * else `--backend-option backend.key`.
 *
 * @example
 * ```ts
 * flagOfBackendOption("cpu", "threads"); // "--threads"
 * flagOfBackendOption("hip", "device"); // "--backend-option hip.device"
 * ```
 */
export function flagOfBackendOption(backend: string, key: string): string {
  return BACKEND_OPTION_FLAGS.find((f) => f.backend === backend && f.key === key)?.flag ?? `--backend-option ${backend}.${key}`;
}

/**
 * The flags that set any option of `backend`: its own flags, then `--backend-option backend.…`.
 *
 * @example
 * ```ts
 * flagsOfBackend("cpu"); // "--threads / --lm-head / --backend-option cpu.…"
 * ```
 */
export function flagsOfBackend(backend: string): string {
  return [...BACKEND_OPTION_FLAGS.filter((f) => f.backend === backend).map((f) => f.flag), `--backend-option ${backend}.…`].join(" / ");
}

/** The flag that set each option, by `backend.key`, for option objects {@link recordSetters} saw. */
const setters = new WeakMap<object, ReadonlyMap<string, string>>();

/**
 * Remembers which flag set each option of a `backendOptions` object (`cpu.lmHead` → `--backend-option
 * cpu.lmHead` or `--lm-head`), for {@link flagThatSet}. Called by the parser that builds the object.
 *
 * @example
 * ```ts
 * recordSetters(options, new Map([["cpu.lmHead", "--backend-option cpu.lmHead"]]));
 * ```
 */
export function recordSetters(backendOptions: object, byOption: ReadonlyMap<string, string>): void {
  setters.set(backendOptions, byOption);
}

/**
 * The flag that set option `key` of `backend` in `backendOptions`: the one the parser recorded, else
 * {@link flagOfBackendOption}.
 *
 * @example
 * ```ts
 * flagThatSet(backendFlags("run", values).backendOptions, "cpu", "lmHead"); // "--lm-head" or "--backend-option cpu.lmHead"
 * ```
 */
export function flagThatSet(backendOptions: object | undefined, backend: string, key: string): string {
  return (backendOptions === undefined ? undefined : setters.get(backendOptions)?.get(`${backend}.${key}`)) ?? flagOfBackendOption(backend, key);
}
