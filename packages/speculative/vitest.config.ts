import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    include: ["src/**/*.test.ts", "test/**/*.test.ts"],
    setupFiles: ["../../scripts/fast-check-seed.ts"],
    globalSetup: ["../../scripts/test-cache-dir.ts", "../../scripts/vitest-ci-requires.ts"],
    // test:ci collects every package's counts and skips with their reasons (scripts/vitest-test-report.ts).
    reporters: ["default", "../../scripts/vitest-test-report.ts"],
    testTimeout: 60_000,
  },
});
