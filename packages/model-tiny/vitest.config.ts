import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    include: ["src/**/*.test.ts"],
    setupFiles: ["../../scripts/fast-check-seed.ts"],
    globalSetup: ["../../scripts/test-cache-dir.ts"],
    testTimeout: 60_000,
  },
});
