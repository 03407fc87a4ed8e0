// @halo/cli: the `halo` command as a library (for embedding and tests).
export { main, mainHelp, ExitCode } from "./main.js";
export type { CommandContext } from "./context.js";
export { parseTokenList } from "./commands/eval.js";
export { CliErrorCode } from "./errors.js";
export type { CliErrorCodeName } from "./errors.js";
