// @halo/errors: the HaloError base class and the error-code registry shared by every package.
export { HaloError, isHaloError, formatHaloMessage } from "./halo-error.js";
export type { HaloErrorDetails } from "./halo-error.js";
export { defineErrorCodes } from "./registry.js";
export type { ErrorCodeInfo } from "./registry.js";
export { closestMatch, editDistance } from "./suggest.js";
