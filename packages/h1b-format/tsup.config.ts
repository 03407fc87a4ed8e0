import { defineConfig } from "tsup";
import { packageBuild } from "../../tsup.config.base.js";

// Two entries: the side-effect-free library and the `h1b` executable (bin).
export default defineConfig(packageBuild({ index: "src/index.ts", cli: "src/cli/main.ts" }));
