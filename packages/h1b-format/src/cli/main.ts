#!/usr/bin/env node
// The `h1b` executable: runs the CLI and sets the exit status (the library entry stays side-effect free).
import "../index.js";
import { runCli } from "./run-cli.js";

// `h1b inspect big.halo | head` closes stdout early: stop quietly instead of crashing on EPIPE.
process.stdout.on("error", (error: NodeJS.ErrnoException) => {
  if (error.code === "EPIPE") process.exit(process.exitCode ?? 0);
  throw error;
});

process.exitCode = await runCli(process.argv.slice(2));
