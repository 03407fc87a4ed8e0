// Builds the training corpus of halo-tiny from the Python documentation's reStructuredText sources
// (Debian package python3-doc): cleans reST into readable text, deduplicates paragraphs, splits a
// held-out set by a hash of the path, and adds chat-format samples built from section headings.
//
// Run from the repository root: node packages/model-tiny/train/corpus.mjs
// Writes packages/model-tiny/train/work/{train.txt,heldout.txt,corpus-stats.json} and
// packages/model-tiny/data/heldout.txt. Deterministic: same input files give byte-identical output.
import { createHash } from "node:crypto";
import { existsSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { dirname, join, relative } from "node:path";
import { fileURLToPath } from "node:url";

const HERE = dirname(fileURLToPath(import.meta.url));
const WORK = join(HERE, "work");
const DATA = join(HERE, "..", "data");
const SOURCE_ROOT = "/usr/share/doc/python3.11/html/_sources";

/** Document separator in work/train.txt and work/heldout.txt: a line holding only a form feed. */
const DOC_SEPARATOR = "\n\f\n";
/** A document is held out iff the first byte of sha1(relative path) is divisible by this (≈4.3 %). */
const HELDOUT_MODULUS = 25;
/** Longest code block kept, in lines; longer blocks are cut here. */
const MAX_CODE_LINES = 15;
/** data/heldout.txt keeps whole documents up to about this many bytes when the held-out text exceeds HELDOUT_FULL_LIMIT. */
const HELDOUT_COPY_BUDGET = 300_000;
const HELDOUT_FULL_LIMIT = 400_000;
/** Version notes (versionadded/changed, deprecated) longer than this many characters are dropped. */
const MAX_VERSION_NOTE = 300;
/** Shortest first paragraph of a section that becomes a chat sample, in characters. */
const MIN_CHAT_ANSWER = 100;
/** Sections picked for chat samples: hash % 10 < this (≈30 %). */
const CHAT_SHARE_TENTHS = 3;
const EOT = "<|eot_id|>";
const QUESTION_TEMPLATES = [(t) => `What is ${t}?`, (t) => `Tell me about ${t}.`, (t) => `Explain ${t}.`, (t) => `How do I use ${t}?`];

/** Directives dropped with their whole indented body. */
const DROP = new Set([
  "index",
  "toctree",
  "module",
  "currentmodule",
  "moduleauthor",
  "sectionauthor",
  "highlight",
  "testsetup",
  "testcleanup",
  "include",
  "literalinclude",
  "raw",
  "image",
  "figure",
  "productionlist",
  "tabularcolumns",
  "csv-table",
  "list-table",
  "audit-event",
  "contents",
  "program",
  "miscnews",
  "limited-api-list",
  "only",
  "availability",
  "epigraph",
  "sidebar",
  "table",
  "c:namespace",
  "c:namespace-push",
  "c:namespace-pop",
]);
/** Directives whose body is code. */
const CODE = new Set(["code-block", "sourcecode", "code", "doctest", "testcode", "testoutput", "parsed-literal"]);
/** Version-note directives and the words Sphinx renders them with. */
const VERSION = {
  versionadded: "New in version",
  versionchanged: "Changed in version",
  deprecated: "Deprecated since version",
  "deprecated-removed": "Deprecated since version",
};

function sha1(text) {
  return createHash("sha1").update(text).digest();
}

function listSources(dir) {
  const out = [];
  for (const name of readdirSync(dir).sort()) {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) out.push(...listSources(path));
    else if (name.endsWith(".rst.txt")) out.push(path);
  }
  return out;
}

const indentOf = (line) => line.length - line.trimStart().length;
const isBlank = (line) => line.trim() === "";
/** A heading underline/overline or a table border: one punctuation character repeated (optionally in space-separated runs). */
const isRule = (line) => /^\s*([=\-~*^#"+`'.:_])\1{2,}\s*$/.test(line) || /^\s*=+(\s+=+)+\s*$/.test(line) || /^\s*\+[-=+]+\+\s*$/.test(line);

/** Turns inline reST markup into plain text. */
function cleanInline(text) {
  let t = text;
  // :role:`text` with an optional domain (:py:func:), targets (`text <target>`), ~ and ! prefixes.
  t = t.replace(/:((?:[\w-]+:)*)([\w-]+):`([^`]+)`/g, (_, _domain, role, body) => {
    let inner = body.replace(/\\</g, "<");
    const explicit = /^(.*\S)\s*<[^<>]+>$/s.exec(inner);
    if (explicit) inner = explicit[1];
    else {
      if (inner.startsWith("~")) inner = inner.slice(1).split(".").pop();
      if (inner.startsWith("!")) inner = inner.slice(1);
    }
    if (role === "pep") return `PEP ${inner}`;
    if (role === "rfc") return `RFC ${inner}`;
    if ((role === "func" || role === "meth") && !inner.endsWith(")")) return `${inner}()`;
    return inner;
  });
  t = t.replace(/``(.+?)``/g, "$1");
  t = t.replace(/`([^`<]+?)\s*<[^`>]+>`__?/g, "$1");
  t = t.replace(/`([^`]+)`__?/g, "$1");
  t = t.replace(/`([^`]+)`/g, "$1");
  t = t.replace(/\s*\[(?:#[\w-]*|\d+|\*)\]_/g, "");
  t = t.replace(/\|([\w -]+)\|_?/g, "$1");
  t = t.replace(/\*\*([^*\s](?:[^*]*?[^*\s])?)\*\*/g, "$1");
  t = t.replace(/(^|[\s("'/-])\*([^*\s](?:[^*]*?[^*\s])?)\*(?=$|[\s.,;:!?)"'/-])/g, "$1$2");
  t = t.replace(/\\ /g, "");
  t = t.replace(/\\([\\*`_|:<>])/g, "$1");
  return t;
}

/** Joins prose lines into one paragraph; list items start new lines. */
function joinProse(lines) {
  const out = [];
  for (const raw of lines) {
    const line = raw.trim();
    if (out.length > 0 && !/^([*+-]|#\.|\d+\.|\(\d+\))\s/.test(line)) out[out.length - 1] += ` ${line}`;
    else out.push(line);
  }
  return out.map((l) => cleanInline(l).replace(/\s+/g, " ").trim()).join("\n");
}

/** Dedents code lines and cuts the block at MAX_CODE_LINES. */
function codeBlock(lines) {
  while (lines.length > 0 && isBlank(lines[lines.length - 1])) lines.pop();
  while (lines.length > 0 && isBlank(lines[0])) lines.shift();
  if (lines.length === 0) return null;
  const cut = Math.min(...lines.filter((l) => !isBlank(l)).map(indentOf));
  return lines
    .slice(0, MAX_CODE_LINES)
    .map((l) => l.slice(cut).trimEnd())
    .join("\n");
}

/** Index after the indented body of a block starting at `start` whose marker has indentation `indent`. */
function bodyEnd(lines, start, indent) {
  let j = start + 1;
  while (j < lines.length && (isBlank(lines[j]) || indentOf(lines[j]) > indent)) j++;
  return j;
}

/**
 * Parses one reST source into paragraphs `{ kind: "heading" | "prose" | "code", text }`.
 */
function parseRst(source) {
  const lines = source.replace(/\r\n?/g, "\n").replace(/\t/g, "        ").split("\n");
  const paras = [];
  let buffer = [];
  let bufferIndent = 0;
  let literalNext = false; // the previous paragraph ended with "::"
  const push = (kind, text) => {
    if (text !== null && text.trim() !== "") paras.push({ kind, text });
  };
  const flush = () => {
    if (buffer.length === 0) return;
    let joined = buffer;
    const last = joined[joined.length - 1].trimEnd();
    if (last.endsWith("::")) {
      literalNext = true;
      const trimmed = last.trim() === "::" ? null : last.replace(/\s*::$/, (m) => (/\s/.test(m[0]) ? "" : ":"));
      joined = trimmed === null ? joined.slice(0, -1) : [...joined.slice(0, -1), trimmed];
    }
    if (joined.length > 0) {
      const first = joined[0].trimStart();
      if (first.startsWith(">>>")) push("code", codeBlock([...joined]));
      else if (joined.every((l) => /^\s*\|/.test(l))) push("prose", joinProse(joined.map((l) => l.replace(/\|/g, " ").trim()).filter((l) => l !== "")));
      else push("prose", joinProse(joined));
    }
    buffer = [];
  };
  let i = 0;
  while (i < lines.length) {
    const line = lines[i];
    if (isBlank(line)) {
      flush();
      i++;
      continue;
    }
    const indent = indentOf(line);
    if (literalNext) {
      literalNext = false;
      if (indent > bufferIndent || line.trimStart().startsWith(">>>")) {
        // The literal block runs while lines stay indented at least as deep as its first line.
        const end = bodyEnd(lines, i - 1, indent - 1);
        push("code", codeBlock(lines.slice(i, end)));
        i = end;
        continue;
      }
    }
    // Heading: text line with an underline (optionally an overline above it).
    if (isRule(line) && i + 2 < lines.length && !isBlank(lines[i + 1]) && isRule(lines[i + 2]) && buffer.length === 0) {
      push("heading", cleanInline(lines[i + 1].trim()));
      i += 3;
      continue;
    }
    if (i + 1 < lines.length && isRule(lines[i + 1]) && buffer.length === 0 && !isRule(line) && lines[i + 1].trim().length >= line.trim().length - 1) {
      push("heading", cleanInline(line.trim()));
      i += 2;
      continue;
    }
    if (isRule(line)) {
      flush();
      i++;
      continue;
    }
    const directive = /^\s*\.\.\s+(.*)$/.exec(line);
    if (directive || line.trim() === "..") {
      flush();
      const rest = directive ? directive[1] : "";
      const end = bodyEnd(lines, i, indent);
      const d = /^([\w:-]+)::\s*(.*)$/.exec(rest);
      if (!d) {
        i = end; // comment, target (.. _label:), substitution definition, footnote
        continue;
      }
      const [, name, arg] = d;
      // Directive options (":noindex:" lines) directly after the marker.
      let j = i + 1;
      const signature = [arg];
      // Continuation lines of a multi-signature directive are aligned with the argument.
      while (
        j < end &&
        !isBlank(lines[j]) &&
        !/^\s*:[\w-]+:/.test(lines[j]) &&
        indentOf(lines[j]) > indent &&
        /^\s*[\w.]+\(/.test(lines[j]) &&
        !CODE.has(name)
      ) {
        signature.push(lines[j].trim());
        j++;
      }
      while (j < end && /^\s*:[\w -]+:/.test(lines[j])) j++;
      if (DROP.has(name) || (name === "rubric" && arg.trim() === "Footnotes")) {
        i = end;
      } else if (CODE.has(name)) {
        push("code", codeBlock(lines.slice(j, end)));
        i = end;
      } else if (name in VERSION) {
        const [version, ...extra] = arg.trim().split(/\s+/);
        const removed = name === "deprecated-removed" ? extra.shift() : undefined;
        const inline = extra.join(" ");
        const body = joinProse([inline, ...lines.slice(j, end)].filter((l) => !isBlank(l)));
        const head = removed ? `${VERSION[name]} ${version}, will be removed in version ${removed}` : `${VERSION[name]} ${version}`;
        const text = body === "" ? `${head}.` : `${head}: ${body}`;
        if (text.length <= MAX_VERSION_NOTE) push("prose", text);
        i = end;
      } else {
        // Object descriptions (function, class, ...), admonitions, unknown directives: keep the argument as a line, then the body.
        if (arg.trim() !== "") push("prose", signature.map((s) => cleanInline(s.trim())).join("\n"));
        i = j;
      }
      continue;
    }
    if (buffer.length === 0) bufferIndent = indent;
    buffer.push(line);
    i++;
  }
  flush();
  return paras;
}

function main() {
  if (!existsSync(SOURCE_ROOT)) {
    console.error(`corpus: ${SOURCE_ROOT} not found; install the Python documentation sources: apt-get install python3-doc`);
    process.exit(1);
  }
  const started = Date.now();
  const files = listSources(SOURCE_ROOT);
  const seen = new Set();
  let parasBefore = 0;
  let parasAfter = 0;
  const train = [];
  const heldout = [];
  let chatSamples = 0;
  let chatCandidates = 0;
  for (const file of files) {
    const rel = relative(SOURCE_ROOT, file);
    const isHeldout = sha1(rel)[0] % HELDOUT_MODULUS === 0;
    const paras = parseRst(readFileSync(file, "utf8"));
    const kept = [];
    let removedSinceHeading = false;
    for (const p of paras) {
      if (p.kind === "heading") {
        // A heading whose whole section was removed as duplicates goes too.
        if (removedSinceHeading && kept.length > 0 && kept[kept.length - 1].kind === "heading") kept.pop();
        removedSinceHeading = false;
        kept.push(p);
        continue;
      }
      parasBefore++;
      const key = p.text.replace(/\s+/g, " ").trim();
      if (seen.has(key)) {
        removedSinceHeading = true;
        continue;
      }
      seen.add(key);
      parasAfter++;
      kept.push(p);
    }
    // Drop headings left with nothing under them (their section was all duplicates or dropped).
    if (kept.length > 0 && kept[kept.length - 1].kind === "heading") kept.pop();
    const text = kept
      .map((p) => p.text)
      .join("\n\n")
      .trim();
    if (text === "") continue;
    (isHeldout ? heldout : train).push(text);
    if (isHeldout) continue;
    for (let k = 0; k < paras.length; k++) {
      if (paras[k].kind !== "heading") continue;
      let answer = null;
      for (let m = k + 1; m < paras.length && paras[m].kind !== "heading"; m++) {
        if (paras[m].kind === "prose") {
          answer = paras[m].text;
          break;
        }
      }
      if (answer === null || answer.length < MIN_CHAT_ANSWER || answer.includes(EOT)) continue;
      const title = paras[k].text
        .split(/\s+---\s+|\s+—\s+/)[0]
        .replace(/[\s:.]+$/, "")
        .trim();
      if (title === "" || title.includes(EOT)) continue;
      chatCandidates++;
      const h = sha1(`${rel}\0${k}\0${title}`);
      if (h[0] % 10 >= CHAT_SHARE_TENTHS) continue;
      const question = QUESTION_TEMPLATES[h[1] % QUESTION_TEMPLATES.length](title);
      train.push(`User: ${question}${EOT}Assistant: ${answer.replace(/\n/g, " ")}${EOT}`);
      chatSamples++;
    }
  }
  mkdirSync(WORK, { recursive: true });
  mkdirSync(DATA, { recursive: true });
  const trainText = train.join(DOC_SEPARATOR) + "\n";
  const heldoutText = heldout.join(DOC_SEPARATOR) + "\n";
  writeFileSync(join(WORK, "train.txt"), trainText);
  writeFileSync(join(WORK, "heldout.txt"), heldoutText);
  let copy = heldout;
  if (Buffer.byteLength(heldout.join("\n\n")) > HELDOUT_FULL_LIMIT) {
    copy = [];
    let bytes = 0;
    for (const doc of heldout) {
      const n = Buffer.byteLength(doc) + 2;
      if (bytes + n > HELDOUT_COPY_BUDGET) continue;
      copy.push(doc);
      bytes += n;
    }
  }
  writeFileSync(join(DATA, "heldout.txt"), copy.join("\n\n") + "\n");
  const stats = {
    sourceFiles: files.length,
    trainDocuments: train.length - chatSamples,
    heldoutDocuments: heldout.length,
    heldoutDocumentsInDataCopy: copy.length,
    paragraphsBeforeDedupe: parasBefore,
    paragraphsAfterDedupe: parasAfter,
    chatCandidates,
    chatSamples,
    trainBytes: Buffer.byteLength(trainText),
    heldoutBytes: Buffer.byteLength(heldoutText),
    dataHeldoutBytes: Buffer.byteLength(copy.join("\n\n") + "\n"),
    seconds: (Date.now() - started) / 1000,
  };
  writeFileSync(join(WORK, "corpus-stats.json"), JSON.stringify(stats, null, 2) + "\n");
  console.log(JSON.stringify(stats, null, 2));
}

main();
