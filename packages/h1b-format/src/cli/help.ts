// Help text of the h1b command and its subcommands, with examples.
import { CONVERT_FORMATS } from "../convert.js";

const FORMATS = CONVERT_FORMATS.join("|");

/** Help per command; `""` is the top-level help. */
export const HELP: Readonly<Record<string, string>> = {
  "": `h1b — inspect, convert, verify and synthesise ternary (BitNet b1.58) model files

Usage: h1b <command> [options]

Commands:
  inspect <path>            format, version, config, tensors, sizes, bits/weight
  convert <input> -o <out>  write a model in another format
  verify <path>             exit 0 only when the file is sound
  synth -o <out>            write a deterministic synthetic model

Reads: .halo containers, seed .h1b v1–v4 (+ .htok), GGUF, Hugging Face snapshot directories.

Global options:
  --json       machine-readable output on stdout
  --progress   draw progress on stderr even when it is not a terminal
  --verbose    print stack traces with errors
  -h, --help   help for a command
  --version    print the version

Examples:
  h1b synth --shape tiny --seed 1 -o tiny.halo
  h1b inspect tiny.halo
  h1b convert ./bitnet-b1.58-2B-4T -o bitnet.halo --format halo
  h1b verify bitnet.halo && echo sound
`,
  inspect: `Usage: h1b inspect <path> [--json] [--tensors]

Prints the format, version, config, tokenizer, tensor list, sizes and bits per weight of a
model. Reads headers only, so it is instant on multi-GB files.

Options:
  --tensors   list every tensor (default: the first layer stands for the others)
  --json      the full summary as JSON

Examples:
  h1b inspect model.h1b
  h1b inspect ./bitnet-b1.58-2B-4T --json | jq .totals
`,
  convert: `Usage: h1b convert <input> -o <output> --format <${FORMATS}> [--tokenizer <file>] [--packing <name>] [--force]

Converts between formats. Lossy conversions (Sherry's 3:4 sparsity, scales f16 cannot hold,
bf16 master weights) are refused unless --force; the report lists what changed.
Without --format the output's extension decides (.halo, .h1b, .gguf → gguf-tq2_0).

Options:
  -o, --output <path>     output file (directory for hf-packed / hf-bf16)
  --format <name>         ${FORMATS}
  --tokenizer <file>      use this tokenizer.json or .htok instead of the model's own
  --packing <name>        ternary packing inside a .halo: auto (default), a format packing
                          (halo-v2, tq1-v4, int8, …) or a backend layout passed in. h1b sees
                          no backends, so auto stores halo-v2; \`halo convert\` passes the
                          installed backends' layouts and auto stores the best one's
  --force                 accept lossy conversions

Examples:
  h1b convert model.h1b -o model.halo --format halo
  h1b convert model.halo -o model.gguf --format gguf-tq1_0 --force
  h1b convert model.h1b -o model.halo --tokenizer tokenizer.json
`,
  verify: `Usage: h1b verify <path> [--json]

Checks a model file. For .halo: preamble, header and every tensor's CRC-32. For other formats:
the header, every tensor range and a decode of each ternary matrix's first and last row.
Exit status 0 only when the file is sound; otherwise 1 and one line saying why.

Examples:
  h1b verify model.halo
  h1b verify model.gguf --json
`,
  synth: `Usage: h1b synth --shape <tiny|tiny-gqa|bitnet-2b-4t> --seed <n> -o <path> [--activation relu2|silu] [--format <name>] [--force]

Writes a deterministic synthetic model (random ternary weights, working tokenizer). The same
seed gives the same bytes. Without --format the extension decides (.halo, .h1b, .gguf → gguf-tq2_0).

Examples:
  h1b synth --shape tiny --seed 1 -o tiny.halo
  h1b synth --shape bitnet-2b-4t --activation silu --seed 0 -o big.gguf --format gguf-tq2_0 --force
`,
};
