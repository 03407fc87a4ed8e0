// Test support shared by the packages' suites: the code of the HaloError an action throws or rejects with.

/**
 * Runs `action` (awaiting what it returns) and gives the `code` of the HaloError it throws or rejects with, `"not a
 * HaloError: …"` for any other error, and undefined when it succeeds. A HaloError is recognised as `isHaloError` in
 * @halo/errors recognises one (its `name` and a string `code`), so this file needs no package.
 *
 * @example
 * ```ts
 * expect(await haloCodeOf(() => engine.embed([]))).toBe("ENGINE_BAD_OPTION");
 * ```
 */
export async function haloCodeOf(action: () => unknown): Promise<string | undefined> {
  try {
    await action();
  } catch (error) {
    const named = typeof error === "object" && error !== null && (error as { name?: unknown }).name === "HaloError";
    const code = named ? (error as { code?: unknown }).code : undefined;
    return typeof code === "string" ? code : `not a HaloError: ${String(error)}`;
  }
  return undefined;
}
