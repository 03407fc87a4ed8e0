// The option check every BackendFactory.create runs: an object whose keys are all the backend's own.
import { HaloError } from "@halo/errors";
import { KernelsErrorCode } from "../errors.js";

/**
 * Checks the options a `BackendFactory.create` was given: a plain object (not null, not an
 * array) whose every key is one of `allowedKeys`. Throws `KERNELS_BAD_OPTION` naming the field as
 * `<backendName>.<key>` (the path under `backendOptions`) and listing the allowed keys. Returns the
 * options, typed as the backend's own.
 *
 * @example
 * ```ts
 * create(options = {}) {
 *   return myBackend(checkBackendOptions<MyOptions>("mine", ["threads", "device"], options));
 * }
 * ```
 */
export function checkBackendOptions<T extends object>(backendName: string, allowedKeys: readonly string[], options: unknown): T {
  if (typeof options !== "object" || options === null || Array.isArray(options)) {
    throw new HaloError(KernelsErrorCode.KERNELS_BAD_OPTION, `${backendName} backend options must be an object`, {
      field: backendName,
      expected: "an object",
      actual: options === null ? "null" : Array.isArray(options) ? "an array" : typeof options,
    });
  }
  for (const key of Object.keys(options)) {
    if (!allowedKeys.includes(key)) {
      throw new HaloError(KernelsErrorCode.KERNELS_BAD_OPTION, `the ${backendName} backend has no option "${key}"`, {
        field: `${backendName}.${key}`,
        expected: allowedKeys.join(", "),
        actual: key,
        hint: "Options of other backends go under their own name in backendOptions",
      });
    }
  }
  return options as T;
}
