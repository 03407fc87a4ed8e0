#!/usr/bin/env node
// Entry point of the `halo` executable.
import { quietOnBrokenPipe } from "./broken-pipe.js";
import { main } from "./main.js";

// `halo run … | head -c 5` closes stdout early: end quietly (exit 0) instead of an EPIPE stack trace.
const stdout = quietOnBrokenPipe(process.stdout, (code) => process.exit(code));
process.stderr.on("error", (error: NodeJS.ErrnoException) => {
  if (error.code === "EPIPE") process.exit(process.exitCode ?? 0);
  throw error;
});
const code = await main(process.argv.slice(2), { stdout, stderr: process.stderr, env: process.env, stdin: process.stdin });
process.exitCode = code;
