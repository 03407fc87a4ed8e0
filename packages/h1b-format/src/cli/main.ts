#!/usr/bin/env node
// The `h1b` executable: runs the CLI and sets the exit status (the library entry stays side-effect free).
import "../index.js";
import { runCli } from "./run-cli.js";

process.exitCode = await runCli(process.argv.slice(2));
