// @halo/cli: the `halo` command as a library (for embedding and tests).
export { main, mainHelp, ExitCode } from "./main.js";
export type { CommandContext } from "./context.js";
export { parseTokenList } from "./commands/eval.js";
export { bytesPerDecodedToken } from "./commands/bench.js";
export { CliErrorCode } from "./errors.js";
export type { CliErrorCodeName } from "./errors.js";
export { modelCacheDir, snapshotDir, COMPLETE_MARKER } from "./hub/cache-dir.js";
export { listRepoFiles, hubOptionsFromEnv, resolveUrl, DEFAULT_HF_ENDPOINT, OFFLINE_HINT } from "./hub/hub-client.js";
export type { HubOptions, HubFile, RepoListing } from "./hub/hub-client.js";
export { downloadFile, openFileWriter } from "./hub/download-file.js";
export type { DownloadTarget, DownloadResult, DownloadOptions, FileWriter, OpenWriter } from "./hub/download-file.js";
export { pull, parsePullSpec, readMarker } from "./hub/pull.js";
export type { PullSpec, PullOptions, PullResult } from "./hub/pull.js";
export { resolveModel, pullWithProgress, DEFAULT_MODEL_REPO } from "./hub/resolve-model.js";
