// Vitest global setup for every package: under CI (`CI` set, as .ci/run and CI services set it) a test that needs a
// tool demands it, as test:ci does: HALO_REQUIRE_NATIVE, HALO_REQUIRE_BROWSER and HALO_REQUIRE_TORCH default to 1, so a
// missing native addon, browser or torch fails the run instead of skipping (the tests read these). A value set
// explicitly is kept, and said. Runs in the main vitest process before the workers start, which inherit it.

/** The variables a tool-dependent test reads to turn its skip into a failure. */
const REQUIRES = ["HALO_REQUIRE_NATIVE", "HALO_REQUIRE_BROWSER", "HALO_REQUIRE_TORCH"] as const;

export default function setup(): void {
  const ci = process.env["CI"];
  if (ci === undefined || ci === "" || ci === "0" || ci === "false") return;
  for (const name of REQUIRES) {
    const value = process.env[name];
    if (value === undefined) process.env[name] = "1";
    else if (value !== "1") console.warn(`CI=${ci} but ${name}=${value}: tests that need this tool may skip instead of failing`);
  }
}
