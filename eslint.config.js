// ESLint flat config for the whole monorepo: typescript-eslint's recommended rules (syntax only, no type
// information, so `corepack pnpm lint` stays a few seconds on 2 cores), formatting left to prettier, and the package
// layering of docs/architecture.md enforced as import rules. Decisions and the rules turned off: docs/code-style.md.
import js from "@eslint/js";
import prettier from "eslint-config-prettier";
import globals from "globals";
import tseslint from "typescript-eslint";

// Files that ship in a package's dist (its `src/`, less tests and test helpers) are held to the strict layering;
// tests, test helpers, benches, labs and scripts may also import sideways and downwards, never upwards.
const TEST_FILES = ["**/*.test.ts", "**/*.test-support.ts", "**/test/**", "**/bench/**", "**/dev/**", "**/scripts/**", "**/*.config.ts"];

// The layers, lowest first. A package may import only packages of a lower layer (and, in src, not every one of those:
// see SRC_ALSO_FORBIDDEN). A package that is not listed here (a new one) is not restricted until it is added.
const LAYERS = {
  errors: 0,
  "h1b-format": 1,
  tokenizer: 1,
  sampler: 1,
  kernels: 1,
  "kernels-*": 2, // every backend: @halo/kernels-cpu, -hip, -xdna, …
  engine: 3,
  server: 4,
  cli: 5,
};

// Beyond "nothing upward": imports that the shipped code of a package must not make (tests may).
const SRC_ALSO_FORBIDDEN = {
  // The contract and the backends do not depend on the file format: weights reach them as structural types, and a
  // backend's own packing codec lives with the backend (docs/architecture.md).
  kernels: ["h1b-format"],
  "kernels-*": ["h1b-format"],
  // No package imports a backend by name: backends are discovered (`"halo": { "backend": true }`) or passed in.
  engine: ["kernels-*"],
  server: ["kernels-*"],
  cli: ["kernels-*"],
};

/** The import patterns (gitignore style, as `no-restricted-imports` takes them) of `@halo/<name>` and its subpaths. */
const patternsOf = (name) => [`@halo/${name}`, `@halo/${name}/*`];

/** The package directories a layer name covers (`kernels-*` is a glob over backend packages). */
const directoriesOf = (name) => [`packages/${name}/**`];

/** The restricted-import patterns for one package: everything of a higher layer, plus `extra`. */
function forbiddenFor(name, extra) {
  const rank = LAYERS[name];
  const above = Object.keys(LAYERS).filter((other) => LAYERS[other] > rank);
  return [...above, ...extra];
}

function restrictions(name, forbidden, shipped) {
  const where = shipped ? "shipped code (src/, not tests)" : "any file";
  const message =
    `@halo/${name} sits below what it would import here (${where}); dependencies point down only: ` +
    "errors ← h1b-format, tokenizer, sampler, kernels ← kernels-* backends ← engine ← server ← cli, and no package " +
    'imports a backend by name. See docs/code-style.md ("Architecture rules").';
  const packageNames = forbidden.map((f) => `@halo/${f}`);
  return {
    "no-restricted-imports": ["error", { patterns: [{ group: forbidden.flatMap(patternsOf), message }] }],
    // `import("@halo/…")` and `require("@halo/…")` and a bare `"@halo/kernels-cpu"` string handed to one of them.
    "no-restricted-syntax": [
      "error",
      ...packageNames.map((pkg) => ({
        selector: `ImportExpression > Literal[value=${regexOf(pkg)}]`,
        message,
      })),
      ...packageNames.map((pkg) => ({
        selector: `CallExpression[callee.name='require'] > Literal[value=${regexOf(pkg)}]`,
        message,
      })),
      ...(forbidden.includes("kernels-*")
        ? [
            {
              // A string that is exactly a backend's package name is a backend named in code, whatever imports it
              // later (a name table, `import(name)`). Prose that mentions one ("npm install @halo/kernels-cpu") is fine.
              selector: "Literal[value=/^@halo\\/kernels-[a-z0-9-]+(\\/.*)?$/]",
              message,
            },
            {
              selector: "TemplateLiteral[expressions.length=0] > TemplateElement[value.cooked=/^@halo\\/kernels-[a-z0-9-]+(\\/.*)?$/]",
              message,
            },
          ]
        : []),
    ],
  };
}

/** An esquery regex literal matching `@halo/<name>` (with `*` as any backend suffix) and its subpaths. */
function regexOf(pkg) {
  const body = pkg.replace("/", "\\/").replace("-*", "-[a-z0-9-]+");
  return `/^${body}(\\/.*)?$/`;
}

const layering = Object.keys(LAYERS).flatMap((name) => {
  const files = directoriesOf(name);
  const testForbidden = forbiddenFor(name, []);
  const srcForbidden = forbiddenFor(name, SRC_ALSO_FORBIDDEN[name] ?? []);
  const blocks = [];
  if (srcForbidden.length > 0) blocks.push({ name: `halo/layering/${name}/src`, files, ignores: TEST_FILES, rules: restrictions(name, srcForbidden, true) });
  if (testForbidden.length > 0)
    blocks.push({
      name: `halo/layering/${name}/tests`,
      files: TEST_FILES.map((t) => `packages/${name}/${t}`),
      rules: restrictions(name, testForbidden, false),
    });
  return blocks;
});

export default tseslint.config(
  {
    name: "halo/ignores",
    ignores: [
      "**/node_modules/",
      "**/dist/",
      "**/build/",
      "**/prebuilds/",
      "**/coverage/",
      "**/.turbo/",
      ".artifacts/",
      "docs/api/",
      "packages/server/test-artifacts/",
      "tmp/",
    ],
  },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    name: "halo/all",
    languageOptions: { ecmaVersion: 2023, sourceType: "module", globals: { ...globals.node } },
    linterOptions: { reportUnusedDisableDirectives: "error" },
    rules: {
      // `_`-prefixed names are deliberately unused (a destructured field left out, a callback's first parameter).
      "@typescript-eslint/no-unused-vars": [
        "error",
        { argsIgnorePattern: "^_", varsIgnorePattern: "^_", caughtErrorsIgnorePattern: "^_", ignoreRestSiblings: true },
      ],
      // `let s = seed; let a; [s, a] = splitMix64(s);` threads a state through tuple assignments: `a` cannot be a
      // const without splitting the tuple. Still reported when every name of a destructuring could be const.
      "prefer-const": ["error", { destructuring: "all" }],
    },
  },
  {
    // Tests cast parsed JSON bodies and mocks loosely; shipped code never uses `any`.
    name: "halo/tests",
    files: TEST_FILES,
    rules: { "@typescript-eslint/no-explicit-any": "off" },
  },
  {
    // The server's chat page: a browser ES module, no build step (packages/server/public/index.html loads it).
    name: "halo/browser",
    files: ["packages/server/public/**/*.js"],
    languageOptions: { sourceType: "module", globals: { ...globals.browser } },
  },
  ...layering,
  // Last: turns off every rule that would fight prettier's output.
  prettier,
);
