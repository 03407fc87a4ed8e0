// @halo/speculative: drafters (prompt lookup, draft model, Medusa heads), the lossless verification rule, and the policy that drafts only when it pays.
export { SpeculativeErrorCode } from "./errors.js";
export type { SpeculativeErrorCodeName } from "./errors.js";
export type { Draft, DraftRequest, Drafter, DrafterKind, DrafterSequence } from "./drafter.js";
export { createNgramDrafter, NGRAM_DEFAULTS, NGRAM_MAX_DRAFT } from "./ngram.js";
export type { NgramDrafterOptions } from "./ngram.js";
export { createMedusaDrafter } from "./medusa.js";
export type { MedusaHeadWeights, MedusaWeights } from "./medusa.js";
export { createDraftModelDrafter, DRAFT_MODEL_MAX_DRAFT, DRAFT_MODEL_CATCH_UP_ROWS } from "./draft-model.js";
export type { DraftModelDrafterOptions } from "./draft-model.js";
export { StepCostModel, STEP_COST_WINDOW, AcceptanceTracker, chooseDraftLength, expectedAccepted } from "./policy.js";
export type { DraftCostInput, DraftChoice } from "./policy.js";
export { verifyRow } from "./verify.js";
export type { RowVerdict } from "./verify.js";
export { checkSpeculativeOptions, checkSpeculativeRequest, DRAFTER_KINDS, DEFAULT_MAX_DRAFT, NGRAM_DEFAULT_MAX_DRAFT, MAX_DRAFT_LIMIT } from "./options.js";
export type { SpeculativeOptions, SpeculativeRequestOptions, SpeculativePolicy } from "./options.js";
