#!/usr/bin/python3
"""Trains, evaluates and measures halo's tiny BitNet b1.58 models on the CPU (Debian python3-torch 1.13).

The architecture is microsoft/bitnet-b1.58-2B-4T's, scaled down: ternary absmean weights with a
straight-through estimator, per-token absmax int8 activations, ReLU²-gated FFN, attention and FFN
sub-norms, NeoX RoPE (theta 500000), grouped-query attention, tied embedding, no biases.

Subcommands (run from the repository root; `packages/model-tiny/train/run.sh` runs them in order):
  train     train the main or draft model from token files, write a halo-train-checkpoint
  medusa    train four Medusa heads on a frozen trained model, write a medusa checkpoint
  logits    logits of a token file under an exported Hugging Face snapshot, in HF semantics (float32 .bin)
  ppl       perplexity of a token file under an exported snapshot, with `halo ppl`'s windows
  accept    greedy speculation acceptance of a draft snapshot and a Medusa file against the main snapshot
  bench     tokens per second of a few training steps (sizes a run for this CPU)
  sparsity  exact zeros in the FFN down projection's input (ReLU² gate) and the down bytes a zero-skipping kernel saves
"""
import argparse
import json
import math
import os
import struct
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

ACT_ABSMAX_FLOOR = 1e-5  # BitNet's clamp(min=1e-5) on the per-token absmax
WEIGHT_SCALE_FLOOR = 1e-5  # and on the per-matrix absmean

MAIN_CONFIG = dict(
    hiddenSize=256, intermediateSize=768, numLayers=4, numHeads=4, numKvHeads=2, headDim=64,
    vocabSize=4096, maxPositionEmbeddings=1024, ropeTheta=500000.0, rmsNormEps=1e-5,
    activation="relu2", tiedEmbeddings=True, bosTokenId=4090, eosTokenIds=[4091, 4094],
)
DRAFT_CONFIG = dict(MAIN_CONFIG, intermediateSize=512, numLayers=2)
TERNARY_ROLES = ["q", "k", "v", "o", "gate", "up", "down"]
NORM_ROLES = ["attnNorm", "attnSubNorm", "ffnNorm", "ffnSubNorm"]
HF_LINEAR = {"q": "self_attn.q_proj", "k": "self_attn.k_proj", "v": "self_attn.v_proj", "o": "self_attn.o_proj",
             "gate": "mlp.gate_proj", "up": "mlp.up_proj", "down": "mlp.down_proj"}
HF_NORM = {"attnNorm": "input_layernorm", "attnSubNorm": "self_attn.attn_sub_norm",
           "ffnNorm": "post_attention_layernorm", "ffnSubNorm": "mlp.ffn_sub_norm"}
MEDUSA_HEADS = 4


def log(message):
    print(message, file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------------------------
# The model


def act_quant(x):
    """Per-token absmax int8 fake quantisation (round half to even, like torch.round), STE gradient."""
    scale = 127.0 / x.abs().amax(dim=-1, keepdim=True).clamp(min=ACT_ABSMAX_FLOOR)
    q = (x * scale).round().clamp(-128, 127) / scale
    return x + (q - x).detach()


def ternary_codes(w):
    """Absmean ternarisation: scale = mean|w| (float32), codes = clamp(round(w / scale), -1, 1)."""
    scale = w.abs().mean().clamp(min=WEIGHT_SCALE_FLOOR)
    return (w / scale).round().clamp(-1, 1), scale


class BitLinear(torch.nn.Module):
    """A bias-free linear layer with ternary weights (STE over float32 master weights) or frozen codes × scale."""

    def __init__(self, out_features, in_features):
        super().__init__()
        self.weight = torch.nn.Parameter(torch.empty(out_features, in_features))
        torch.nn.init.normal_(self.weight, std=in_features ** -0.5)
        self.frozen = None  # a float32 [out, in] tensor of code × scale when loaded from a file

    def effective_weight(self):
        if self.frozen is not None:
            return self.frozen
        codes, scale = ternary_codes(self.weight)
        w = codes * scale
        return self.weight + (w - self.weight).detach()

    def forward(self, x_quantised):
        return F.linear(x_quantised, self.effective_weight())


class RMSNorm(torch.nn.Module):
    def __init__(self, dim, eps):
        super().__init__()
        self.weight = torch.nn.Parameter(torch.ones(dim))
        self.eps = eps

    def forward(self, x):
        return x * torch.rsqrt(x.pow(2).mean(dim=-1, keepdim=True) + self.eps) * self.weight


def rope_tables(cfg, length):
    half = cfg["headDim"] // 2
    inv = 1.0 / (cfg["ropeTheta"] ** (torch.arange(0, half, dtype=torch.float64) * 2.0 / cfg["headDim"]))
    angles = torch.arange(length, dtype=torch.float64)[:, None] * inv[None, :]
    cos = torch.cat([angles.cos(), angles.cos()], dim=-1).float()
    sin = torch.cat([angles.sin(), angles.sin()], dim=-1).float()
    return cos, sin


def apply_rope(x, cos, sin):
    """NeoX RoPE (HF rotate_half): pairs (i, i + d/2). x: [B, heads, T, d]."""
    half = x.shape[-1] // 2
    rotated = torch.cat([-x[..., half:], x[..., :half]], dim=-1)
    return x * cos + rotated * sin


class Layer(torch.nn.Module):
    def __init__(self, cfg):
        super().__init__()
        h, q_dim, kv_dim, inter = cfg["hiddenSize"], cfg["numHeads"] * cfg["headDim"], cfg["numKvHeads"] * cfg["headDim"], cfg["intermediateSize"]
        eps = cfg["rmsNormEps"]
        self.cfg = cfg
        self.attnNorm, self.attnSubNorm = RMSNorm(h, eps), RMSNorm(q_dim, eps)
        self.ffnNorm, self.ffnSubNorm = RMSNorm(h, eps), RMSNorm(inter, eps)
        self.q, self.k, self.v, self.o = BitLinear(q_dim, h), BitLinear(kv_dim, h), BitLinear(kv_dim, h), BitLinear(h, q_dim)
        self.gate, self.up, self.down = BitLinear(inter, h), BitLinear(inter, h), BitLinear(h, inter)

    def forward(self, x, cos, sin, mask):
        cfg = self.cfg
        b, t, _ = x.shape
        heads, kv_heads, d = cfg["numHeads"], cfg["numKvHeads"], cfg["headDim"]
        a = act_quant(self.attnNorm(x))
        q = self.q(a).view(b, t, heads, d).transpose(1, 2)
        k = self.k(a).view(b, t, kv_heads, d).transpose(1, 2)
        v = self.v(a).view(b, t, kv_heads, d).transpose(1, 2)
        q, k = apply_rope(q, cos, sin), apply_rope(k, cos, sin)
        group = heads // kv_heads
        k = k.repeat_interleave(group, dim=1)
        v = v.repeat_interleave(group, dim=1)
        scores = (q @ k.transpose(-1, -2)) * (d ** -0.5) + mask
        attn = torch.softmax(scores, dim=-1) @ v
        attn = attn.transpose(1, 2).reshape(b, t, heads * d)
        x = x + self.o(act_quant(self.attnSubNorm(attn)))
        f = act_quant(self.ffnNorm(x))
        mixed = F.relu(self.gate(f)).square() * self.up(f)
        return x + self.down(act_quant(self.ffnSubNorm(mixed)))


class BitNet(torch.nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.cfg = cfg
        self.embed = torch.nn.Embedding(cfg["vocabSize"], cfg["hiddenSize"])
        torch.nn.init.normal_(self.embed.weight, std=0.02)
        self.layers = torch.nn.ModuleList([Layer(cfg) for _ in range(cfg["numLayers"])])
        self.norm = RMSNorm(cfg["hiddenSize"], cfg["rmsNormEps"])
        self.frozen_head = None  # a float32 head when loaded from a file (tied: the stored embedding)

    def hidden(self, tokens):
        """Post-final-norm hidden states [B, T, hidden]."""
        t = tokens.shape[1]
        cos, sin = rope_tables(self.cfg, t)
        mask = torch.full((t, t), float("-inf")).triu(1)
        x = self.embed(tokens)
        for layer in self.layers:
            x = layer(x, cos, sin, mask)
        return self.norm(x)

    def head(self, normed):
        w = self.frozen_head if self.frozen_head is not None else self.embed.weight
        return F.linear(normed, w)

    def forward(self, tokens):
        return self.head(self.hidden(tokens))


class MedusaHeads(torch.nn.Module):
    """Head i: h_out = h + w_out · SiLU(w_in · h) over the post-final-norm hidden state; logits = tied head(h_out)."""

    def __init__(self, hidden):
        super().__init__()
        self.w_in = torch.nn.ParameterList([torch.nn.Parameter(torch.randn(hidden, hidden) * hidden ** -0.5) for _ in range(MEDUSA_HEADS)])
        self.w_out = torch.nn.ParameterList([torch.nn.Parameter(torch.zeros(hidden, hidden)) for _ in range(MEDUSA_HEADS)])

    def forward(self, h, i):
        return h + F.linear(F.silu(F.linear(h, self.w_in[i])), self.w_out[i])


# ---------------------------------------------------------------------------------------------
# Files: token files, checkpoints, safetensors snapshots


def load_tokens(path):
    return np.fromfile(path, dtype="<u2").astype(np.int64)


def write_checkpoint(out_dir, kind, cfg, tensors, training):
    os.makedirs(out_dir, exist_ok=True)
    manifest = {"format": "halo-train-checkpoint", "version": 1, "kind": kind, "config": cfg, "tensors": {}, "training": training}
    offset = 0
    with open(os.path.join(out_dir, "checkpoint.bin.tmp"), "wb") as f:
        for name, (array, scale) in tensors.items():
            data = np.ascontiguousarray(array).tobytes()
            entry = {"dtype": "i8" if array.dtype == np.int8 else "f32", "shape": list(array.shape), "offset": offset, "byteLength": len(data)}
            if scale is not None:
                entry["scale"] = float(np.float32(scale))
            manifest["tensors"][name] = entry
            f.write(data)
            offset += len(data)
    os.replace(os.path.join(out_dir, "checkpoint.bin.tmp"), os.path.join(out_dir, "checkpoint.bin"))
    with open(os.path.join(out_dir, "checkpoint.json"), "w") as f:
        json.dump(manifest, f, indent=1)


def model_checkpoint_tensors(model):
    out = {"token_embd": (model.embed.weight.detach().float().numpy(), None), "output_norm": (model.norm.weight.detach().numpy(), None)}
    for l, layer in enumerate(model.layers):
        for role in NORM_ROLES:
            out[f"blk.{l}.{role}"] = (getattr(layer, role).weight.detach().numpy(), None)
        for role in TERNARY_ROLES:
            codes, scale = ternary_codes(getattr(layer, role).weight.detach())
            out[f"blk.{l}.{role}"] = (codes.numpy().astype(np.int8), scale.item())
    return out


SAFETENSORS_DTYPES = {"F32": np.float32, "F16": np.float16, "U8": np.uint8, "I8": np.int8}


def read_safetensors(path):
    """name -> float32 or uint8 numpy array (BF16 widened exactly to float32)."""
    with open(path, "rb") as f:
        blob = f.read()
    (header_len,) = struct.unpack("<Q", blob[:8])
    header = json.loads(blob[8:8 + header_len])
    base = 8 + header_len
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        start, end = info["data_offsets"]
        raw = blob[base + start:base + end]
        if info["dtype"] == "BF16":
            array = (np.frombuffer(raw, dtype="<u2").astype(np.uint32) << 16).view(np.float32)
        else:
            array = np.frombuffer(raw, dtype=SAFETENSORS_DTYPES[info["dtype"]])
        out[name] = array.reshape(info["shape"]) if info["shape"] else array.reshape(())
    return out


def hf_config_to_cfg(hf):
    eos = hf.get("eos_token_id")
    return dict(
        hiddenSize=hf["hidden_size"], intermediateSize=hf["intermediate_size"], numLayers=hf["num_hidden_layers"],
        numHeads=hf["num_attention_heads"], numKvHeads=hf.get("num_key_value_heads", hf["num_attention_heads"]),
        headDim=hf.get("head_dim") or hf["hidden_size"] // hf["num_attention_heads"], vocabSize=hf["vocab_size"],
        maxPositionEmbeddings=hf.get("max_position_embeddings", 2048), ropeTheta=float(hf.get("rope_theta", 500000.0)),
        rmsNormEps=float(hf.get("rms_norm_eps", 1e-5)), activation=hf.get("hidden_act", "relu2"), tiedEmbeddings=bool(hf.get("tie_word_embeddings", False)),
        bosTokenId=hf.get("bos_token_id"), eosTokenIds=eos if isinstance(eos, list) else [eos],
    )


def unpack_hf_weight(packed, rows):
    """microsoft/bitnet-b1.58-2B-4T packing: uint8 [rows/4, cols]; row block i holds bits 2i..2i+1; code = bits − 1."""
    quarter = packed.shape[0]
    assert quarter * 4 == rows, f"packed weight has {quarter} rows, expected {rows // 4}"
    out = np.empty((rows, packed.shape[1]), dtype=np.float32)
    for i in range(4):
        out[i * quarter:(i + 1) * quarter] = ((packed >> (2 * i)) & 3).astype(np.float32) - 1.0
    return out


def load_hf_snapshot(directory):
    """A BitNet model whose every weight is the snapshot's (packed codes × weight_scale, bf16 rest), in float32."""
    with open(os.path.join(directory, "config.json")) as f:
        cfg = hf_config_to_cfg(json.load(f))
    if cfg["activation"] != "relu2":
        raise SystemExit(f"{directory}: hidden_act {cfg['activation']} — this script models ReLU² BitNet only")
    tensors = {}
    for name in sorted(os.listdir(directory)):
        if name.endswith(".safetensors"):
            tensors.update(read_safetensors(os.path.join(directory, name)))
    model = BitNet(cfg)
    with torch.no_grad():
        model.embed.weight.copy_(torch.from_numpy(tensors["model.embed_tokens.weight"].astype(np.float32)))
        model.norm.weight.copy_(torch.from_numpy(tensors["model.norm.weight"].astype(np.float32)))
        head = tensors.get("lm_head.weight", tensors["model.embed_tokens.weight"])
        model.frozen_head = torch.from_numpy(np.array(head, dtype=np.float32))
        for l, layer in enumerate(model.layers):
            for role in NORM_ROLES:
                getattr(layer, role).weight.copy_(torch.from_numpy(tensors[f"model.layers.{l}.{HF_NORM[role]}.weight"].astype(np.float32)))
            for role in TERNARY_ROLES:
                linear = getattr(layer, role)
                prefix = f"model.layers.{l}.{HF_LINEAR[role]}"
                codes = unpack_hf_weight(tensors[prefix + ".weight"], linear.weight.shape[0])
                scale = np.float32(tensors[prefix + ".weight_scale"].reshape(-1)[0])
                linear.frozen = torch.from_numpy(codes * scale)
    model.eval()
    return model


# ---------------------------------------------------------------------------------------------
# Training


def batches(tokens, seq, batch, generator):
    top = len(tokens) - seq - 1
    while True:
        starts = torch.randint(0, top, (batch,), generator=generator).numpy()
        chunk = np.stack([tokens[s:s + seq + 1] for s in starts])
        t = torch.from_numpy(chunk)
        yield t[:, :-1], t[:, 1:]


def heldout_windows(tokens, seq, count):
    step = max(1, (len(tokens) - seq - 1) // count)
    starts = [i * step for i in range(count)]
    chunk = torch.from_numpy(np.stack([tokens[s:s + seq + 1] for s in starts]))
    return chunk[:, :-1], chunk[:, 1:]


def lr_at(step, total, peak, warmup):
    if step < warmup:
        return peak * (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return peak * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(1.0, progress))))


def evaluate(model, windows, medusa=None):
    model.eval()
    with torch.no_grad():
        x, y = windows
        h = model.hidden(x)
        loss = F.cross_entropy(model.head(h).reshape(-1, model.cfg["vocabSize"]), y.reshape(-1)).item()
    model.train()
    return loss


def setup_threads(threads):
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    blas = sorted({os.path.realpath(line.split()[-1]) for line in open("/proc/self/maps") if "blas" in line})
    name = next((os.path.basename(os.path.dirname(path)) for path in blas if "openblas" in path), "reference BLAS")
    if name == "reference BLAS":
        log("warning: torch is not using OpenBLAS (apt-get install libopenblas0-pthread); training runs ~30x slower")
    return name


def train_command(args):
    blas = setup_threads(args.threads)
    cfg = dict(DRAFT_CONFIG if args.kind == "draft" else MAIN_CONFIG)
    torch.manual_seed(args.seed)
    model = BitNet(cfg)
    train_tokens, held = load_tokens(args.train), load_tokens(args.heldout)
    assert train_tokens.max() < cfg["vocabSize"], "token id beyond the vocabulary"
    windows = heldout_windows(held, args.seq, 16)
    decay = [p for n, p in model.named_parameters() if n.endswith(".weight") and p.dim() == 2 and not n.startswith("embed")]
    rest = [p for n, p in model.named_parameters() if not (n.endswith(".weight") and p.dim() == 2 and not n.startswith("embed"))]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": args.weight_decay}, {"params": rest, "weight_decay": 0.0}], lr=args.lr, betas=(0.9, 0.95))
    generator = torch.Generator().manual_seed(args.seed)
    data = batches(train_tokens, args.seq, args.batch, generator)
    params = sum(p.numel() for p in model.parameters())
    log(f"train {args.kind}: {params / 1e6:.2f}M parameters, {len(train_tokens)} training tokens, {args.steps} steps of {args.batch}x{args.seq}, blas {blas}, {args.threads} threads")
    started = time.time()
    history = []
    for step in range(args.steps):
        for group in opt.param_groups:
            group["lr"] = lr_at(step, args.steps, args.lr, args.warmup)
        x, y = next(data)
        loss = F.cross_entropy(model(x).reshape(-1, cfg["vocabSize"]), y.reshape(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        if (step + 1) % args.log_every == 0 or step + 1 == args.steps:
            elapsed = time.time() - started
            tps = (step + 1) * args.batch * args.seq / elapsed
            held_loss = evaluate(model, windows)
            history.append({"step": step + 1, "loss": round(loss.item(), 4), "heldoutLoss": round(held_loss, 4), "seconds": round(elapsed, 1)})
            log(f"step {step + 1}/{args.steps} loss {loss.item():.3f} heldout {held_loss:.3f} ppl {math.exp(held_loss):.1f} {tps:.0f} tok/s {elapsed / 60:.1f} min")
    elapsed = time.time() - started
    training = {
        "script": "packages/model-tiny/train/train.py", "kind": args.kind, "seed": args.seed, "steps": args.steps, "batch": args.batch,
        "sequence": args.seq, "lr": args.lr, "warmup": args.warmup, "weightDecay": args.weight_decay, "tokens": args.steps * args.batch * args.seq,
        "seconds": round(elapsed, 1), "tokensPerSecond": round(args.steps * args.batch * args.seq / elapsed), "threads": args.threads, "blas": blas,
        "torch": torch.__version__, "parameters": params, "finalHeldoutLoss": history[-1]["heldoutLoss"], "history": history,
    }
    write_checkpoint(args.out, "model", cfg, model_checkpoint_tensors(model), training)
    log(f"wrote {args.out} ({elapsed / 60:.1f} min)")


def medusa_command(args):
    setup_threads(args.threads)
    torch.manual_seed(args.seed)
    base = load_hf_snapshot(args.snapshot)
    for p in base.parameters():
        p.requires_grad_(False)
    heads = MedusaHeads(base.cfg["hiddenSize"])
    train_tokens = load_tokens(args.train)
    opt = torch.optim.AdamW(heads.parameters(), lr=args.lr, weight_decay=0.0)
    generator = torch.Generator().manual_seed(args.seed)
    data = batches(train_tokens, args.seq, args.batch, generator)
    started = time.time()
    history = []
    for step in range(args.steps):
        for group in opt.param_groups:
            group["lr"] = lr_at(step, args.steps, args.lr, 50)
        x, _ = next(data)
        with torch.no_grad():
            h = base.hidden(x)
        total = 0.0
        losses = []
        for i in range(MEDUSA_HEADS):
            shift = i + 2  # head i at position t predicts token t + i + 2
            logits = base.head(heads(h[:, :-shift + 1 if shift > 1 else None], i))
            target = x[:, shift:]
            logits = logits[:, : target.shape[1]]
            loss_i = F.cross_entropy(logits.reshape(-1, base.cfg["vocabSize"]), target.reshape(-1))
            losses.append(loss_i.item())
            total = total + loss_i
        opt.zero_grad(set_to_none=True)
        total.backward()
        opt.step()
        if (step + 1) % args.log_every == 0 or step + 1 == args.steps:
            history.append({"step": step + 1, "losses": [round(v, 4) for v in losses]})
            log(f"medusa step {step + 1}/{args.steps} losses {' '.join(f'{v:.3f}' for v in losses)} {(time.time() - started) / 60:.1f} min")
    tensors = {}
    for i in range(MEDUSA_HEADS):
        tensors[f"medusa.{i}.w_in"] = (heads.w_in[i].detach().numpy(), None)
        tensors[f"medusa.{i}.w_out"] = (heads.w_out[i].detach().numpy(), None)
    training = {"script": "packages/model-tiny/train/train.py medusa", "seed": args.seed, "steps": args.steps, "batch": args.batch, "sequence": args.seq,
                "lr": args.lr, "seconds": round(time.time() - started, 1), "base": args.snapshot, "history": history}
    write_checkpoint(args.out, "medusa", {"hiddenSize": base.cfg["hiddenSize"], "numHeads": MEDUSA_HEADS}, tensors, training)
    log(f"wrote {args.out}")


# ---------------------------------------------------------------------------------------------
# Evaluation in Hugging Face semantics (the exported snapshot's numbers, float32 arithmetic)


def windows_of(ids, window):
    """`halo ppl`'s independent windows: [begin, begin + window) from 0, each window's first token unscored."""
    begin = 0
    while begin < len(ids) - 1:
        end = min(begin + window, len(ids))
        yield begin, end
        if end == len(ids):
            break
        begin += window


def ppl_command(args):
    setup_threads(args.threads)
    model = load_hf_snapshot(args.snapshot)
    ids = load_tokens(args.tokens)
    nll, scored = 0.0, 0
    with torch.no_grad():
        for begin, end in windows_of(ids, args.context_length):
            chunk = torch.from_numpy(ids[begin:end])[None]
            logits = model(chunk)[0].double()
            nll += F.cross_entropy(logits[:-1], chunk[0, 1:], reduction="sum").item()
            scored += end - begin - 1
    result = {"perplexity": math.exp(nll / scored), "meanNll": nll / scored, "scoredTokens": scored, "totalTokens": len(ids)}
    if args.unigram_from:
        # The baseline a trained model must beat: add-one-smoothed token frequencies of the training stream, scored on the same tokens.
        counts = np.bincount(load_tokens(args.unigram_from), minlength=model.cfg["vocabSize"]).astype(np.float64) + 1.0
        logp = np.log(counts / counts.sum())
        uni = -sum(float(logp[ids[begin + 1:end]].sum()) for begin, end in windows_of(ids, args.context_length))
        result["unigramPerplexity"] = math.exp(uni / scored)
    print(json.dumps(result))


def sparsity_command(args):
    """Activation sparsity of the FFN down projection's input (issue 20): per layer, the share of exact zeros in
    ReLU²(gate)·up (before the sub-norm) and in the int8-quantised input the down matrix multiplies (after it), over
    `halo ppl`'s windows of the given tokens; and the ternary bytes of down a kernel that skips zero inputs' columns
    would not read per token (2 bits per weight, `hidden` weights per input column)."""
    setup_threads(args.threads)
    model = load_hf_snapshot(args.snapshot)
    ids = load_tokens(args.tokens)
    cfg = model.cfg
    layers = len(model.layers)
    mixed_zero, quant_zero, count = [0] * layers, [0] * layers, [0] * layers
    hooks = []
    for i, layer in enumerate(model.layers):
        def on_mixed(_module, inputs, i=i):
            mixed_zero[i] += int((inputs[0] == 0).sum())
            count[i] += inputs[0].numel()
        def on_down(_module, inputs, i=i):
            quant_zero[i] += int((inputs[0] == 0).sum())
        hooks.append(layer.ffnSubNorm.register_forward_pre_hook(on_mixed))
        hooks.append(layer.down.register_forward_pre_hook(on_down))
    tokens = 0
    with torch.no_grad():
        for begin, end in windows_of(ids, args.context_length):
            model(torch.from_numpy(ids[begin:end])[None])
            tokens += end - begin
    for hook in hooks:
        hook.remove()
    inter, hidden = cfg["intermediateSize"], cfg["hiddenSize"]
    down_bytes = layers * inter * hidden / 4
    zero = sum(quant_zero) / sum(count)
    result = {
        "tokens": tokens,
        "intermediateSize": inter,
        "perLayer": [{"layer": i, "zeroBeforeQuant": mixed_zero[i] / count[i], "zeroAfterQuant": quant_zero[i] / count[i]} for i in range(layers)],
        "zeroBeforeQuant": sum(mixed_zero) / sum(count),
        "zeroAfterQuant": zero,
        "downBytesPerToken": down_bytes,
        "downBytesSkippablePerToken": zero * down_bytes,
    }
    print(json.dumps(result))


def logits_command(args):
    setup_threads(args.threads)
    model = load_hf_snapshot(args.snapshot)
    ids = torch.from_numpy(load_tokens(args.tokens))[None]
    with torch.no_grad():
        logits = model(ids)[0].float().numpy()
    logits.astype("<f4").tofile(args.out)
    print(json.dumps({"rows": logits.shape[0], "vocab": logits.shape[1]}))


def read_medusa_file(path):
    with open(path, "rb") as f:
        blob = f.read()
    assert blob[:8] == b"MEDUSA1\x00", "not a .h1b-medusa file"
    version, heads, hidden, residual, dtype = struct.unpack("<5I", blob[8:28])
    assert (version, heads, residual, dtype) == (2, MEDUSA_HEADS, 1, 1), "unexpected .h1b-medusa header"
    body = np.frombuffer(blob[68:], dtype="<f2").astype(np.float32).reshape(heads, 2, hidden, hidden)
    module = MedusaHeads(hidden)
    with torch.no_grad():
        for i in range(heads):
            module.w_in[i].copy_(torch.from_numpy(body[i, 0]))
            module.w_out[i].copy_(torch.from_numpy(body[i, 1]))
    return module


def accept_command(args):
    """Greedy acceptance measured on the main model's own greedy continuations of held-out prompts."""
    setup_threads(args.threads)
    main = load_hf_snapshot(args.snapshot)
    draft = load_hf_snapshot(args.draft) if args.draft else None
    medusa = read_medusa_file(args.medusa) if args.medusa else None
    ids = load_tokens(args.tokens)
    k = args.draft_tokens
    draft_hits = draft_total = 0
    medusa_hits = [0] * MEDUSA_HEADS
    medusa_total = 0
    run_lengths_draft, run_lengths_medusa = [], []
    with torch.no_grad():
        for p in range(args.prompts):
            start = p * (len(ids) - args.prompt_tokens - 1) // args.prompts
            seq = torch.from_numpy(ids[start:start + args.prompt_tokens])[None]
            for _ in range(args.new_tokens):  # the main model's greedy continuation
                seq = torch.cat([seq, main(seq)[:, -1].argmax(-1, keepdim=True)], dim=1)
            gen_from = args.prompt_tokens
            target = seq[0]
            main_hidden = main.hidden(seq)
            if draft is not None:
                predicted = draft(seq)[0].argmax(-1)
                hit = (predicted[gen_from - 1:-1] == target[gen_from:]).tolist()
                draft_hits += sum(hit)
                draft_total += len(hit)
                for t in range(len(hit) - k + 1):  # tokens accepted when drafting k at each position
                    n = 0
                    while n < k and hit[t + n]:
                        n += 1
                    run_lengths_draft.append(n)
            if medusa is not None:
                for t in range(gen_from - 1, seq.shape[1] - 2 - MEDUSA_HEADS):
                    h = main_hidden[0, t]
                    n, chained = 0, True
                    for i in range(MEDUSA_HEADS):
                        guess = main.head(medusa(h, i)).argmax().item()
                        ok = guess == target[t + 2 + i].item()
                        medusa_hits[i] += int(ok)
                        chained = chained and ok
                        n += int(chained)
                    medusa_total += 1
                    run_lengths_medusa.append(n)
    result = {"prompts": args.prompts, "promptTokens": args.prompt_tokens, "newTokens": args.new_tokens}
    if draft is not None:
        result["draft"] = {"tokenAcceptance": draft_hits / draft_total, "draftTokens": k,
                           "meanAcceptedOfK": float(np.mean(run_lengths_draft)), "tokensPerVerifyStep": 1 + float(np.mean(run_lengths_draft))}
    if medusa is not None:
        result["medusa"] = {"headAcceptance": [h / medusa_total for h in medusa_hits],
                            "meanAcceptedChain": float(np.mean(run_lengths_medusa)), "tokensPerVerifyStep": 1 + float(np.mean(run_lengths_medusa))}
    print(json.dumps(result, indent=1))


def bench_command(args):
    blas = setup_threads(args.threads)
    model = BitNet(dict(DRAFT_CONFIG if args.kind == "draft" else MAIN_CONFIG))
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    x = torch.randint(0, 4090, (args.batch, args.seq))
    for i in range(args.steps + 2):
        if i == 2:
            started = time.time()
        loss = F.cross_entropy(model(x).reshape(-1, 4096), x.reshape(-1))
        opt.zero_grad()
        loss.backward()
        opt.step()
    tps = args.steps * args.batch * args.seq / (time.time() - started)
    print(json.dumps({"kind": args.kind, "tokensPerSecond": round(tps), "blas": blas, "threads": args.threads}))


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    t = sub.add_parser("train")
    t.add_argument("--kind", choices=["main", "draft"], default="main")
    t.add_argument("--train", required=True)
    t.add_argument("--heldout", required=True)
    t.add_argument("--out", required=True)
    t.add_argument("--steps", type=int, default=1800)
    t.add_argument("--batch", type=int, default=16)
    t.add_argument("--seq", type=int, default=256)
    t.add_argument("--lr", type=float, default=3e-3)
    t.add_argument("--warmup", type=int, default=100)
    t.add_argument("--weight-decay", type=float, default=0.05)
    t.add_argument("--log-every", type=int, default=100)
    m = sub.add_parser("medusa")
    m.add_argument("--snapshot", required=True)
    m.add_argument("--train", required=True)
    m.add_argument("--out", required=True)
    m.add_argument("--steps", type=int, default=300)
    m.add_argument("--batch", type=int, default=16)
    m.add_argument("--seq", type=int, default=128)
    m.add_argument("--lr", type=float, default=2e-3)
    m.add_argument("--log-every", type=int, default=50)
    sp = sub.add_parser("sparsity")
    sp.add_argument("--snapshot", required=True)
    sp.add_argument("--tokens", required=True)
    sp.add_argument("--context-length", type=int, default=256)
    for name in ("ppl", "logits"):
        e = sub.add_parser(name)
        e.add_argument("--snapshot", required=True)
        e.add_argument("--tokens", required=True)
        if name == "ppl":
            e.add_argument("--context-length", type=int, default=256)
            e.add_argument("--unigram-from", help="a training token file: also report a unigram model's perplexity on the same tokens")
        else:
            e.add_argument("--out", required=True)
    a = sub.add_parser("accept")
    a.add_argument("--snapshot", required=True)
    a.add_argument("--draft")
    a.add_argument("--medusa")
    a.add_argument("--tokens", required=True)
    a.add_argument("--prompts", type=int, default=24)
    a.add_argument("--prompt-tokens", type=int, default=64)
    a.add_argument("--new-tokens", type=int, default=64)
    a.add_argument("--draft-tokens", type=int, default=4)
    b = sub.add_parser("bench")
    b.add_argument("--kind", choices=["main", "draft"], default="main")
    b.add_argument("--steps", type=int, default=5)
    b.add_argument("--batch", type=int, default=16)
    b.add_argument("--seq", type=int, default=256)
    for p in (t, m, sub.choices["ppl"], sub.choices["logits"], a, b, sp):
        p.add_argument("--threads", type=int, default=2)
        p.add_argument("--seed", type=int, default=1234)
    args = parser.parse_args()
    {"train": train_command, "medusa": medusa_command, "ppl": ppl_command, "logits": logits_command, "accept": accept_command, "bench": bench_command, "sparsity": sparsity_command}[args.command](args)


if __name__ == "__main__":
    main()
