#!/usr/bin/env node
// Entry point of the `halo` executable.
import { main } from "./main.js";

const code = await main(process.argv.slice(2), { stdout: process.stdout, stderr: process.stderr, env: process.env, stdin: process.stdin });
process.exitCode = code;
