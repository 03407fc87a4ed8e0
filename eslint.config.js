// ESLint flat config for the whole monorepo: typescript-eslint's recommended rules (syntax only, no type
// information, so `corepack pnpm lint` stays a few seconds on 2 cores), formatting left to prettier, and the package
// layering of docs/architecture.md enforced as import rules. Decisions and the rules turned off: docs/code-style.md.
import js from "@eslint/js";
import prettier from "eslint-config-prettier";
import globals from "globals";
import tseslint from "typescript-eslint";

// Tests and test helpers (also inside src/), and everything of a package outside src/ (benches, labs, scripts,
// configs), do not ship: they may import sideways and downwards, never upwards. Shipped code is held to more.
const TEST_FILES = ["**/*.test.ts", "**/*.test-support.ts", "**/test/**", "**/bench/**", "**/dev/**", "**/scripts/**", "**/*.config.ts"];

// The layers, lowest first. A package may import only packages of a lower layer (and, in src, not every one of those:
// see SRC_ALSO_FORBIDDEN). A package that is not listed here (a new one) is not restricted until it is added.
const LAYERS = {
  errors: 0,
  "h1b-format": 1,
  tokenizer: 1,
  sampler: 1,
  kernels: 1,
  "model-tiny": 1, // data: the trained demo model; imports @halo/errors only
  "kernels-*": 2, // every backend: @halo/kernels-cpu, -hip, -xdna, …
  speculative: 2, // drafters and verification: on the kernels and sampler contracts, below the engine
  engine: 3,
  server: 4,
  cli: 5,
};

// Beyond "nothing upward": imports that the shipped code of a package must not make (tests may), and why.
const BACKEND_BY_NAME =
  'no package imports a backend by name: backends are found among the installed packages (`"halo": { "backend": true }` in their ' +
  "package.json, exporting `backendFactory`) or passed in as objects";
const FORMAT_IN_KERNELS =
  "the backend contract and the backends do not depend on the file format: weights reach them as structural types " +
  "(@halo/kernels' ModelWeights), and a backend's own packing codec lives with the backend";
const SRC_ALSO_FORBIDDEN = {
  kernels: { "h1b-format": FORMAT_IN_KERNELS },
  "kernels-*": { "h1b-format": FORMAT_IN_KERNELS },
  engine: { "kernels-*": BACKEND_BY_NAME },
  server: { "kernels-*": BACKEND_BY_NAME },
  cli: { "kernels-*": BACKEND_BY_NAME },
};

const SEE = 'See docs/code-style.md ("Architecture rules").';
const UPWARD = "dependencies point down only (errors ← h1b-format, tokenizer, sampler, kernels ← kernels-* backends ← engine ← server ← cli)";

/** `{ target: why }` for one package: every package of a higher layer, plus the src-only extras when `shipped`. */
function forbiddenFor(name, shipped) {
  const forbidden = {};
  for (const other of Object.keys(LAYERS)) {
    if (LAYERS[other] > LAYERS[name]) forbidden[other] = `@halo/${name} must not import @halo/${other}: ${UPWARD}`;
  }
  if (shipped) {
    for (const [other, why] of Object.entries(SRC_ALSO_FORBIDDEN[name] ?? {})) {
      forbidden[other] =
        `@halo/${name} must not import ${other === "kernels-*" ? "a backend (@halo/kernels-*)" : `@halo/${other}`} in src/ (tests may): ${why}`;
    }
  }
  return forbidden;
}

/** An esquery regex literal matching `@halo/<name>` (`kernels-*`: any backend) and its subpaths. */
function regexOf(name) {
  return `/^@halo\\/${name.replace("-*", "-[a-z0-9-]+")}(\\/.*)?$/`;
}

function restrictions(forbidden) {
  const entries = Object.entries(forbidden);
  return {
    // Static imports and re-exports.
    "no-restricted-imports": [
      "error",
      { patterns: entries.map(([target, why]) => ({ group: [`@halo/${target}`, `@halo/${target}/*`], message: `${why}. ${SEE}` })) },
    ],
    // `import("@halo/…")`, `require("@halo/…")`, and (for backends) a string that is exactly a backend's package name:
    // that is a backend named in code whatever loads it later (a name table, `import(name)`). Prose that mentions one
    // ("npm install @halo/kernels-cpu") is fine.
    "no-restricted-syntax": [
      "error",
      ...entries.flatMap(([target, why]) => {
        const message = `${why}. ${SEE}`;
        const regex = regexOf(target);
        // A backend's name anywhere but an import declaration (which no-restricted-imports reports) covers import(),
        // require() and name tables alike.
        const selectors =
          target === "kernels-*"
            ? [
                `Literal[value=${regex}]:not(ImportDeclaration > Literal, ExportNamedDeclaration > Literal, ExportAllDeclaration > Literal)`,
                `TemplateLiteral[expressions.length=0] > TemplateElement[value.cooked=${regex}]`,
              ]
            : [`ImportExpression > Literal[value=${regex}]`, `CallExpression[callee.name='require'] > Literal[value=${regex}]`];
        return selectors.map((selector) => ({ selector, message }));
      }),
    ],
  };
}

// Every file of a package gets "nothing upward"; then the files that ship (src/, less tests and test helpers) get the
// stricter list, which replaces the first for them (a later config object's rule setting wins in a flat config).
const layering = Object.keys(LAYERS).flatMap((name) => {
  const blocks = [];
  const anyFile = forbiddenFor(name, false);
  const shipped = forbiddenFor(name, true);
  if (Object.keys(anyFile).length > 0) blocks.push({ name: `halo/layering/${name}`, files: [`packages/${name}/**`], rules: restrictions(anyFile) });
  if (Object.keys(shipped).length > 0)
    blocks.push({ name: `halo/layering/${name}/src`, files: [`packages/${name}/src/**`], ignores: TEST_FILES, rules: restrictions(shipped) });
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
