#!/usr/bin/env python3
"""Independent Python reference for Hugging Face transformers' CLIPModel / CLIPTokenizer.

Generates small, deterministic golden files that the C# (TorchSharp) implementation is
tested against. Nothing here imports transformers / safetensors / tokenizers: the model
forward, the tokenizer, the BPE training and the safetensors writer are all written from
scratch in plain PyTorch / numpy.

Run with Debian's interpreter (it has torch):

    /usr/bin/python3 tests/golden-generator/generate_clip_golden.py

Re-running overwrites the golden files with byte-identical content.
"""

import html
import json
import math
import os
import struct
import sys
from collections import Counter

import numpy as np
import regex
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
GOLDEN = os.path.normpath(os.path.join(HERE, "..", "TaptPlatform.Vision.Tests", "Golden"))

CONTEXT_LENGTH = 77
BOS_TOKEN = "<|startoftext|>"
EOS_TOKEN = "<|endoftext|>"

CLIP_MEAN = [0.48145466, 0.4578275, 0.40821073]
CLIP_STD = [0.26862954, 0.26130258, 0.27577711]


# ----------------------------------------------------------------------------------------
# Byte-level BPE tokenizer (CLIP flavour)
# ----------------------------------------------------------------------------------------

def byte_to_unicode_table():
    """GPT-2 / CLIP reversible byte -> printable unicode char table (insertion order matters:
    printable bytes first in ascending order, then the remaining bytes mapped to 256+n)."""
    printable = [b for b in range(256)
                 if (0x21 <= b <= 0x7E) or (0xA1 <= b <= 0xAC) or (0xAE <= b <= 0xFF)]
    table = {b: chr(b) for b in printable}
    extra = 0
    for b in range(256):
        if b not in table:
            table[b] = chr(256 + extra)
            extra += 1
    return table  # dict insertion order == CLIP vocab order of the first 256 entries


BYTE_TABLE = byte_to_unicode_table()

PRETOKENIZE = regex.compile(
    r"<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+",
    regex.IGNORECASE,
)
WHITESPACE = regex.compile(r"\s+")


def normalize_text(text):
    """CLIPTokenizer text cleanup when ftfy is not used (OpenAI basic_clean + whitespace_clean
    + lower): html.unescape twice, strip, collapse whitespace, strip, lowercase."""
    text = html.unescape(html.unescape(text)).strip()
    text = WHITESPACE.sub(" ", text).strip()
    return text.lower()


def piece_to_symbols(piece):
    """Byte-encode a pre-token and split into initial BPE symbols, '</w>' on the last one."""
    chars = [BYTE_TABLE[b] for b in piece.encode("utf-8")]
    chars[-1] = chars[-1] + "</w>"
    return chars


def apply_merge(symbols, first, second):
    out = []
    i = 0
    n = len(symbols)
    while i < n:
        if i < n - 1 and symbols[i] == first and symbols[i + 1] == second:
            out.append(first + second)
            i += 2
        else:
            out.append(symbols[i])
            i += 1
    return out


class ClipBpeTokenizer:
    def __init__(self, vocab, merges):
        self.vocab = vocab
        self.ranks = {pair: r for r, pair in enumerate(merges)}
        self.bos_id = vocab[BOS_TOKEN]
        self.eos_id = vocab[EOS_TOKEN]
        self.cache = {BOS_TOKEN: [BOS_TOKEN], EOS_TOKEN: [EOS_TOKEN]}

    @classmethod
    def from_files(cls, vocab_path, merges_path):
        with open(vocab_path, encoding="utf-8") as f:
            vocab = json.load(f)
        with open(merges_path, encoding="utf-8") as f:
            lines = f.read().strip().split("\n")[1:]  # skip '#version: 0.2'
        merges = [tuple(line.split()) for line in lines]
        return cls(vocab, merges)

    def bpe(self, piece_encoded):
        if piece_encoded in self.cache:
            return self.cache[piece_encoded]
        symbols = list(piece_encoded[:-1]) + [piece_encoded[-1] + "</w>"]
        while len(symbols) > 1:
            best = None
            best_rank = None
            for pair in zip(symbols, symbols[1:]):
                r = self.ranks.get(pair)
                if r is not None and (best_rank is None or r < best_rank):
                    best, best_rank = pair, r
            if best is None:
                break
            symbols = apply_merge(symbols, best[0], best[1])
        self.cache[piece_encoded] = symbols
        return symbols

    def tokenize(self, text):
        tokens = []
        for piece in PRETOKENIZE.findall(normalize_text(text)):
            encoded = "".join(BYTE_TABLE[b] for b in piece.encode("utf-8"))
            tokens.extend(self.bpe(encoded))
        return tokens

    def encode(self, text, context_length=CONTEXT_LENGTH):
        tokens = self.tokenize(text)
        ids = [self.vocab[t] for t in tokens]  # every symbol is in vocab: no unk possible
        ids = ids[: context_length - 2]
        return [self.bos_id] + ids + [self.eos_id], tokens[: context_length - 2]


def bpe_reference_slow(piece_encoded, ranks):
    """Second BPE implementation, written differently (priority over all positions, merging the
    leftmost occurrence one at a time), used only to cross-check ClipBpeTokenizer.bpe."""
    if piece_encoded in (BOS_TOKEN, EOS_TOKEN):
        return [piece_encoded]
    sym = list(piece_encoded)
    sym[-1] += "</w>"
    while True:
        cands = [(ranks[(sym[i], sym[i + 1])], i) for i in range(len(sym) - 1)
                 if (sym[i], sym[i + 1]) in ranks]
        if not cands:
            return sym
        r, _ = min(cands)
        # merge every non-overlapping occurrence of the best pair, left to right
        i = 0
        while i < len(sym) - 1:
            if (sym[i], sym[i + 1]) in ranks and ranks[(sym[i], sym[i + 1])] == r:
                sym[i:i + 2] = [sym[i] + sym[i + 1]]
            i += 1


TRAIN_CORPUS = """
a photo of a sneaker
a photo of a running shoe
a picture of a running shoe
a photo of a leather boot
a photo of a white sneaker
a photo of a black sneaker
a photo of a red dress
a picture of a blue dress
a photo of a summer dress
a photo of a denim jacket
a photo of a leather jacket
a picture of a rain jacket
a photo of a wool sweater
a photo of a cotton t-shirt
a photo of a striped shirt
a photo of a white shirt
a photo of a pair of jeans
a photo of a pair of shorts
a photo of a pair of sandals
a photo of a pair of sneakers
a picture of a pair of boots
a photo of a handbag
a photo of a leather handbag
a photo of a backpack
a photo of a baseball cap
a photo of a wool hat
a photo of a silk scarf
a photo of a wrist watch
a photo of a pair of sunglasses
a photo of a gold necklace
a photo of a silver ring
a photo of a running shoe on a white background
a close-up photo of a sneaker's sole
a product photo of a hoodie
a product photo of a trench coat
a product photo of a puffer jacket
an image of a skirt
an image of a blouse
an image of a cardigan
an image of a pair of heels
an image of a loafer
a photo of the shoe, the sole and the laces.
this is a photo of a shoe!
it's a running shoe
it's a leather boot, isn't it?
don't wear the red dress
we'll buy 2 pairs of socks
i'm wearing size 42 shoes
size 38, size 40, size 44
model 2024 edition
50% off all sneakers!!!
new arrivals: dresses, shirts & jackets
men's shoes and women's shoes
kids' sneakers
a café in paris
a naïve pattern
a photo of a sneaker
a photo of a sneaker
a photo of a shoe
a photo of a shoe
a photo of a dress
a photo of a jacket
a photo of a t-shirt
a photo of a shirt
a photo of a boot
a photo of a bag
a photo of a hat
a photo of a coat
a photo of clothing
a photo of footwear
a photo of accessories
sneakers, boots, sandals and slippers
running shoes for training and running
a pair of white leather sneakers with laces
a pair of black running shoes with a rubber sole
a light blue denim jacket with buttons
a long red evening dress
a striped cotton shirt with short sleeves
a photo of a knitted beanie and matching gloves
a photo of a cashmere sweater in beige
a photo of a linen shirt in light green
a photo of a velvet blazer in dark purple
a photo of a pleated skirt in navy blue
a photo of a floral print dress
a photo of a polka dot blouse
a photo of a plaid flannel shirt
a photo of a camouflage jacket
a photo of a corduroy pants in brown
a photo of a pair of chinos
a photo of a pair of leggings
a photo of a pair of sweatpants
a photo of a pair of joggers
a photo of a pair of hiking boots
a photo of a pair of ankle boots
a photo of a pair of chelsea boots
a photo of a pair of ballet flats
a photo of a pair of flip flops
a photo of a pair of slippers
a photo of a pair of trainers
a photo of a pair of basketball shoes
a photo of a pair of tennis shoes
a photo of a pair of platform sneakers
a photo of a pair of high heels
a photo of a pair of wedge sandals
a photo of a pair of loafers
a photo of a pair of oxford shoes
a photo of a pair of socks
a photo of a leather belt with a metal buckle
a photo of a crossbody bag
a photo of a tote bag
a photo of a clutch purse
a photo of a wallet
a photo of a bow tie
a photo of a necktie
a photo of a bucket hat
a photo of a fedora
a photo of a beret
a photo of earrings and a bracelet
a photo of a swimsuit
a photo of a bikini
a photo of a tracksuit
a photo of a raincoat
a photo of a parka
a photo of a windbreaker
a photo of a vest
a photo of a tank top
a photo of a crop top
a photo of a polo shirt
a photo of a turtleneck
a photo of a jumpsuit
a photo of overalls
a photo of pajamas
a photo of a bathrobe
a photo of a kimono
a photo of a poncho
a photo of a shawl
a photo of a uniform
the sneaker is white, the laces are red and the sole is grey.
the jacket is waterproof and breathable.
these shoes are comfortable for walking and running.
this dress is perfect for a wedding or a party.
the shirt is made of organic cotton.
the boots are made of genuine leather.
handmade, sustainable, vintage, classic, modern, elegant, casual, sporty
colors: black, white, grey, red, blue, green, yellow, orange, pink, purple, brown
sizes: xs, s, m, l, xl, xxl
price: 19.99, 49.95, 120.00
""".strip().split("\n")


def train_bpe(corpus, num_merges):
    """Deterministic byte-level BPE training: repeatedly merge the most frequent adjacent pair
    (ties: lexicographically smallest pair); pairs whose concatenation already is a token are
    skipped so that every merge adds exactly one new vocab entry."""
    words = Counter()
    for line in corpus:
        for piece in PRETOKENIZE.findall(normalize_text(line)):
            words[tuple(piece_to_symbols(piece))] += 1
    word_list = [[list(w), c] for w, c in sorted(words.items())]
    known = set(BYTE_TABLE.values()) | {v + "</w>" for v in BYTE_TABLE.values()}
    merges = []
    while len(merges) < num_merges:
        counts = Counter()
        for sym, c in word_list:
            for pair in zip(sym, sym[1:]):
                counts[pair] += c
        cands = [(-c, p) for p, c in counts.items() if (p[0] + p[1]) not in known]
        if not cands:
            break
        _, best = min(cands)
        merges.append(best)
        known.add(best[0] + best[1])
        for entry in word_list:
            entry[0] = apply_merge(entry[0], best[0], best[1])
    return merges


def build_vocab(merges):
    tokens = list(BYTE_TABLE.values())
    tokens += [t + "</w>" for t in list(BYTE_TABLE.values())]
    tokens += [a + b for a, b in merges]
    tokens += [BOS_TOKEN, EOS_TOKEN]
    vocab = {t: i for i, t in enumerate(tokens)}
    assert len(vocab) == len(tokens), "duplicate tokens in vocab"
    return vocab


def write_vocab_files(directory, vocab, merges):
    with open(os.path.join(directory, "vocab.json"), "w", encoding="utf-8", newline="\n") as f:
        json.dump(vocab, f, ensure_ascii=False, indent=None, separators=(",", ":"))
        f.write("\n")
    with open(os.path.join(directory, "merges.txt"), "w", encoding="utf-8", newline="\n") as f:
        f.write("#version: 0.2\n")
        for a, b in merges:
            f.write(f"{a} {b}\n")


# ----------------------------------------------------------------------------------------
# safetensors (hand-written)
# ----------------------------------------------------------------------------------------

_DTYPES = {torch.float32: ("F32", "<f4"), torch.float16: ("F16", "<f2"), torch.int64: ("I64", "<i8")}
_NP_FROM_ST = {"F32": "<f4", "F16": "<f2", "I64": "<i8"}


def save_safetensors(path, tensors):
    header = {"__metadata__": {"format": "pt"}}
    blobs = []
    offset = 0
    for name in sorted(tensors):
        t = tensors[name].detach().contiguous()
        st_dtype, np_dtype = _DTYPES[t.dtype]
        data = np.ascontiguousarray(t.numpy().astype(np_dtype)).tobytes()
        header[name] = {"dtype": st_dtype, "shape": list(t.shape),
                        "data_offsets": [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    hjson = json.dumps(header, separators=(",", ":")).encode("utf-8")
    hjson += b" " * ((8 - len(hjson) % 8) % 8)  # pad header to 8-byte alignment like safetensors
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(hjson)))
        f.write(hjson)
        for b in blobs:
            f.write(b)


def load_safetensors(path):
    with open(path, "rb") as f:
        raw = f.read()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8:8 + n].decode("utf-8"))
    base = 8 + n
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        s, e = info["data_offsets"]
        arr = np.frombuffer(raw[base + s:base + e], dtype=_NP_FROM_ST[info["dtype"]]).reshape(info["shape"])
        out[name] = (info["dtype"], torch.from_numpy(arr.copy()))
    return out


# ----------------------------------------------------------------------------------------
# Weights
# ----------------------------------------------------------------------------------------

def make_weights(cfg, seed):
    g = torch.Generator().manual_seed(seed)

    def normal(shape, std):
        return torch.randn(tuple(shape), generator=g, dtype=torch.float32) * std

    def ln(prefix, dim, p):
        p[prefix + ".weight"] = 1.0 + normal((dim,), 0.1)
        p[prefix + ".bias"] = normal((dim,), 0.05)

    def lin(prefix, dout, din, p, std, bias=True):
        p[prefix + ".weight"] = normal((dout, din), std)
        if bias:
            p[prefix + ".bias"] = normal((dout,), 0.02)

    def encoder(prefix, c, p):
        d, m = c["hidden_size"], c["intermediate_size"]
        for i in range(c["num_hidden_layers"]):
            lp = f"{prefix}.encoder.layers.{i}"
            ln(lp + ".layer_norm1", d, p)
            for proj in ("q_proj", "k_proj", "v_proj", "out_proj"):
                lin(f"{lp}.self_attn.{proj}", d, d, p, 0.1)
            ln(lp + ".layer_norm2", d, p)
            lin(lp + ".mlp.fc1", m, d, p, 0.08)
            lin(lp + ".mlp.fc2", d, m, p, 0.08)

    p = {}
    t, v = cfg["text_config"], cfg["vision_config"]
    p["text_model.embeddings.token_embedding.weight"] = normal((t["vocab_size"], t["hidden_size"]), 0.1)
    p["text_model.embeddings.position_embedding.weight"] = normal((t["max_position_embeddings"], t["hidden_size"]), 0.05)
    encoder("text_model", t, p)
    ln("text_model.final_layer_norm", t["hidden_size"], p)

    dv, ps = v["hidden_size"], v["patch_size"]
    npos = (v["image_size"] // ps) ** 2 + 1
    p["vision_model.embeddings.class_embedding"] = normal((dv,), 0.1)
    p["vision_model.embeddings.patch_embedding.weight"] = normal((dv, v["num_channels"], ps, ps), 0.05)
    p["vision_model.embeddings.position_embedding.weight"] = normal((npos, dv), 0.05)
    ln("vision_model.pre_layrnorm", dv, p)
    encoder("vision_model", v, p)
    ln("vision_model.post_layernorm", dv, p)

    p["visual_projection.weight"] = normal((cfg["projection_dim"], dv), 0.1)
    p["text_projection.weight"] = normal((cfg["projection_dim"], t["hidden_size"]), 0.1)
    p["logit_scale"] = torch.tensor(math.log(1 / 0.07), dtype=torch.float32) + normal((), 0.01)
    return p


# ----------------------------------------------------------------------------------------
# Reference forward (manual math; run in float64 on float32/float16-valued weights)
# ----------------------------------------------------------------------------------------

def act_fn(name):
    if name == "quick_gelu":
        return lambda x: x * torch.sigmoid(1.702 * x)
    if name == "gelu":
        return lambda x: 0.5 * x * (1.0 + torch.erf(x / math.sqrt(2.0)))
    raise ValueError(name)


def layer_norm(x, w, b, eps):
    mu = x.mean(dim=-1, keepdim=True)
    var = ((x - mu) ** 2).mean(dim=-1, keepdim=True)  # biased variance, like nn.LayerNorm
    return (x - mu) / torch.sqrt(var + eps) * w + b


def linear(x, w, b=None):
    y = x @ w.t()
    return y if b is None else y + b


def self_attention(x, p, prefix, heads, causal):
    bsz, seq, dim = x.shape
    hd = dim // heads
    q = linear(x, p[prefix + ".q_proj.weight"], p[prefix + ".q_proj.bias"])
    k = linear(x, p[prefix + ".k_proj.weight"], p[prefix + ".k_proj.bias"])
    v = linear(x, p[prefix + ".v_proj.weight"], p[prefix + ".v_proj.bias"])
    q = q.view(bsz, seq, heads, hd).transpose(1, 2)
    k = k.view(bsz, seq, heads, hd).transpose(1, 2)
    v = v.view(bsz, seq, heads, hd).transpose(1, 2)
    scores = (q @ k.transpose(-1, -2)) * (hd ** -0.5)
    if causal:
        # additive mask: -inf strictly above the diagonal (key index > query index)
        mask = torch.triu(torch.full((seq, seq), float("-inf"), dtype=x.dtype), diagonal=1)
        scores = scores + mask
    w = torch.softmax(scores, dim=-1)
    out = (w @ v).transpose(1, 2).reshape(bsz, seq, dim)
    return linear(out, p[prefix + ".out_proj.weight"], p[prefix + ".out_proj.bias"])


def encoder_layer(x, p, prefix, i, c, causal, norm=None):
    """One pre-LN encoder block; `norm` replaces this file's float64-friendly layer_norm (tapt_reference.py)."""
    norm = norm or layer_norm
    act = act_fn(c["hidden_act"])
    eps = c["layer_norm_eps"]
    lp = f"{prefix}.encoder.layers.{i}"
    h = norm(x, p[lp + ".layer_norm1.weight"], p[lp + ".layer_norm1.bias"], eps)
    x = x + self_attention(h, p, lp + ".self_attn", c["num_attention_heads"], causal)
    h = norm(x, p[lp + ".layer_norm2.weight"], p[lp + ".layer_norm2.bias"], eps)
    h = act(linear(h, p[lp + ".mlp.fc1.weight"], p[lp + ".mlp.fc1.bias"]))
    return x + linear(h, p[lp + ".mlp.fc2.weight"], p[lp + ".mlp.fc2.bias"])


def run_encoder(x, p, prefix, c, causal):
    block_inputs = []
    for i in range(c["num_hidden_layers"]):
        block_inputs.append(x)
        x = encoder_layer(x, p, prefix, i, c, causal)
    return x, block_inputs


def vision_embeddings(p, c, pixels_normalized):
    """Class token + patch embeddings + positions, [n, 1 + patches, d] (before pre_layrnorm)."""
    n, ch, hh, ww = pixels_normalized.shape
    ps, d = c["patch_size"], c["hidden_size"]
    gh, gw = hh // ps, ww // ps
    # patchify (row-major over the grid; within a patch: channel, row, col) then matmul == conv
    patches = pixels_normalized.reshape(n, ch, gh, ps, gw, ps).permute(0, 2, 4, 1, 3, 5).reshape(n, gh * gw, ch * ps * ps)
    emb = patches @ p["vision_model.embeddings.patch_embedding.weight"].reshape(d, -1).t()
    cls = p["vision_model.embeddings.class_embedding"].view(1, 1, d).expand(n, 1, d)
    return torch.cat([cls, emb], dim=1) + p["vision_model.embeddings.position_embedding.weight"].unsqueeze(0)


def vision_forward(p, c, pixels_normalized):
    x = vision_embeddings(p, c, pixels_normalized)
    x = layer_norm(x, p["vision_model.pre_layrnorm.weight"], p["vision_model.pre_layrnorm.bias"], c["layer_norm_eps"])
    x, block_inputs = run_encoder(x, p, "vision_model", c, causal=False)
    pooled = layer_norm(x[:, 0, :], p["vision_model.post_layernorm.weight"], p["vision_model.post_layernorm.bias"], c["layer_norm_eps"])
    return pooled, torch.stack(block_inputs, dim=0)


def pooled_index(ids, eos_token_id):
    if eos_token_id == 2:  # legacy configs: take argmax of the ids (eot is the largest id)
        return int(torch.tensor(ids).argmax())
    return ids.index(eos_token_id)  # first occurrence


def text_forward_one(p, c, ids):
    ids_t = torch.tensor(ids, dtype=torch.long)
    x = p["text_model.embeddings.token_embedding.weight"][ids_t] + p["text_model.embeddings.position_embedding.weight"][: len(ids)]
    x, _ = run_encoder(x.unsqueeze(0), p, "text_model", c, causal=True)
    x = layer_norm(x, p["text_model.final_layer_norm.weight"], p["text_model.final_layer_norm.bias"], c["layer_norm_eps"])
    return x[0, pooled_index(ids, c["eos_token_id"])]


def clip_forward(p, cfg, pixels_normalized, id_lists):
    v_pooled, block_inputs = vision_forward(p, cfg["vision_config"], pixels_normalized)
    t_pooled = torch.stack([text_forward_one(p, cfg["text_config"], ids) for ids in id_lists])
    img = linear(v_pooled, p["visual_projection.weight"])
    txt = linear(t_pooled, p["text_projection.weight"])
    img = img / img.pow(2).sum(-1, keepdim=True).sqrt()
    txt = txt / txt.pow(2).sum(-1, keepdim=True).sqrt()
    logits_per_image = p["logit_scale"].exp() * (img @ txt.t())
    return {
        "image_embeds": img,
        "text_embeds": txt,
        "logits_per_image": logits_per_image,
        "vision_pooler_output": v_pooled,
        "text_pooler_output": t_pooled,
        "vision_block_inputs": block_inputs,
    }


# ----------------------------------------------------------------------------------------
# Independent cross-check built from torch.nn modules (fp32, batched + padded text)
# ----------------------------------------------------------------------------------------

class _Layer(torch.nn.Module):
    def __init__(self, d, m, heads, eps, act):
        super().__init__()
        self.ln1 = torch.nn.LayerNorm(d, eps=eps)
        self.attn = torch.nn.MultiheadAttention(d, heads, batch_first=True)
        self.ln2 = torch.nn.LayerNorm(d, eps=eps)
        self.fc1 = torch.nn.Linear(d, m)
        self.fc2 = torch.nn.Linear(m, d)
        self.act = act

    def forward(self, x, mask):
        h = self.ln1(x)
        x = x + self.attn(h, h, h, attn_mask=mask, need_weights=False)[0]
        return x + self.fc2(self.act(self.fc1(self.ln2(x))))


def _load_layer(layer, p, lp):
    with torch.no_grad():
        layer.ln1.weight.copy_(p[lp + ".layer_norm1.weight"]); layer.ln1.bias.copy_(p[lp + ".layer_norm1.bias"])
        layer.ln2.weight.copy_(p[lp + ".layer_norm2.weight"]); layer.ln2.bias.copy_(p[lp + ".layer_norm2.bias"])
        sa = lp + ".self_attn."
        layer.attn.in_proj_weight.copy_(torch.cat([p[sa + f"{x}_proj.weight"] for x in "qkv"]))
        layer.attn.in_proj_bias.copy_(torch.cat([p[sa + f"{x}_proj.bias"] for x in "qkv"]))
        layer.attn.out_proj.weight.copy_(p[sa + "out_proj.weight"]); layer.attn.out_proj.bias.copy_(p[sa + "out_proj.bias"])
        layer.fc1.weight.copy_(p[lp + ".mlp.fc1.weight"]); layer.fc1.bias.copy_(p[lp + ".mlp.fc1.bias"])
        layer.fc2.weight.copy_(p[lp + ".mlp.fc2.weight"]); layer.fc2.bias.copy_(p[lp + ".mlp.fc2.bias"])


def nn_crosscheck(p32, cfg, pixels_normalized, id_lists):
    F = torch.nn.functional
    acts = {"quick_gelu": lambda x: x * torch.sigmoid(1.702 * x), "gelu": F.gelu}
    out = {}
    with torch.no_grad():
        v = cfg["vision_config"]
        conv = torch.nn.Conv2d(v["num_channels"], v["hidden_size"], v["patch_size"], v["patch_size"], bias=False)
        conv.weight.copy_(p32["vision_model.embeddings.patch_embedding.weight"])
        x = conv(pixels_normalized.float()).flatten(2).transpose(1, 2)
        cls = p32["vision_model.embeddings.class_embedding"].expand(x.shape[0], 1, -1)
        x = torch.cat([cls, x], 1) + p32["vision_model.embeddings.position_embedding.weight"]
        x = F.layer_norm(x, (v["hidden_size"],), p32["vision_model.pre_layrnorm.weight"], p32["vision_model.pre_layrnorm.bias"], v["layer_norm_eps"])
        blocks = []
        for i in range(v["num_hidden_layers"]):
            layer = _Layer(v["hidden_size"], v["intermediate_size"], v["num_attention_heads"], v["layer_norm_eps"], acts[v["hidden_act"]])
            _load_layer(layer, p32, f"vision_model.encoder.layers.{i}")
            layer.eval()
            blocks.append(x)
            x = layer(x, None)
        out["vision_block_inputs"] = torch.stack(blocks)
        out["vision_pooler_output"] = F.layer_norm(x[:, 0], (v["hidden_size"],), p32["vision_model.post_layernorm.weight"], p32["vision_model.post_layernorm.bias"], v["layer_norm_eps"])

        t = cfg["text_config"]
        seq = max(len(i) for i in id_lists)
        pad = t["pad_token_id"]
        batch = torch.tensor([ids + [pad] * (seq - len(ids)) for ids in id_lists])
        x = F.embedding(batch, p32["text_model.embeddings.token_embedding.weight"]) + p32["text_model.embeddings.position_embedding.weight"][:seq]
        causal = torch.ones(seq, seq, dtype=torch.bool).triu(1)  # True == not allowed to attend
        for i in range(t["num_hidden_layers"]):
            layer = _Layer(t["hidden_size"], t["intermediate_size"], t["num_attention_heads"], t["layer_norm_eps"], acts[t["hidden_act"]])
            _load_layer(layer, p32, f"text_model.encoder.layers.{i}")
            layer.eval()
            x = layer(x, causal)
        x = F.layer_norm(x, (t["hidden_size"],), p32["text_model.final_layer_norm.weight"], p32["text_model.final_layer_norm.bias"], t["layer_norm_eps"])
        if t["eos_token_id"] == 2:
            idx = batch.to(torch.int).argmax(-1)
        else:
            idx = (batch == t["eos_token_id"]).int().argmax(-1)
        out["text_pooler_output"] = x[torch.arange(x.shape[0]), idx]
        img = out["vision_pooler_output"] @ p32["visual_projection.weight"].t()
        txt = out["text_pooler_output"] @ p32["text_projection.weight"].t()
        img = img / img.norm(dim=-1, keepdim=True)
        txt = txt / txt.norm(dim=-1, keepdim=True)
        out["image_embeds"], out["text_embeds"] = img, txt
        out["logits_per_image"] = (txt @ img.t()).t() * p32["logit_scale"].exp()
    return out


# ----------------------------------------------------------------------------------------
# Cases
# ----------------------------------------------------------------------------------------

LABEL_TEXTS = [
    "a photo of a sneaker",
    "a picture of a RUNNING shoe",
    "It's a leather boot, isn't it?!",
    "a café dress — très chic 👗",
    "size 42 &amp; 50% off...",
]


def make_config(vocab_size, bos, eos, pad, text, vision, projection_dim, act, eps, dtype):
    tc = dict(text)
    tc.update({"vocab_size": vocab_size, "hidden_act": act, "layer_norm_eps": eps,
               "bos_token_id": bos, "eos_token_id": eos, "pad_token_id": pad,
               "projection_dim": projection_dim, "attention_dropout": 0.0, "dropout": 0.0,
               "initializer_factor": 1.0, "initializer_range": 0.02, "model_type": "clip_text_model"})
    vc = dict(vision)
    vc.update({"num_channels": 3, "hidden_act": act, "layer_norm_eps": eps,
               "projection_dim": projection_dim, "attention_dropout": 0.0, "dropout": 0.0,
               "initializer_factor": 1.0, "initializer_range": 0.02, "model_type": "clip_vision_model"})
    return {
        "architectures": ["CLIPModel"],
        "model_type": "clip",
        "initializer_factor": 1.0,
        "logit_scale_init_value": 2.6592,
        "projection_dim": projection_dim,
        "torch_dtype": dtype,
        "text_config": {k: tc[k] for k in sorted(tc)},
        "vision_config": {k: vc[k] for k in sorted(vc)},
    }


def write_json(path, obj, indent=2):
    with open(path, "w", encoding="utf-8", newline="\n") as f:
        json.dump(obj, f, ensure_ascii=False, indent=indent)
        f.write("\n")


def max_abs(a, b):
    return float((a.double() - b.double()).abs().max())


def generate_case(name, cfg, seed, vocab, merges, tokenizer, preprocessor=None, store_fp16=False):
    d = os.path.join(GOLDEN, name)
    os.makedirs(d, exist_ok=True)
    write_json(os.path.join(d, "config.json"), cfg)
    write_vocab_files(d, vocab, merges)
    pp_path = os.path.join(d, "preprocessor_config.json")
    if preprocessor is not None:
        write_json(pp_path, preprocessor)
    elif os.path.exists(pp_path):
        os.remove(pp_path)

    weights = make_weights(cfg, seed)
    if store_fp16:
        weights = {k: w.to(torch.float16) for k, w in weights.items()}
    save_safetensors(os.path.join(d, "model.safetensors"), weights)
    # what the C# side will read back, as float32 (fp16 rounded values for the fp16 case)
    p32 = {k: t.to(torch.float32) for k, (_, t) in load_safetensors(os.path.join(d, "model.safetensors")).items()}
    assert set(p32) == set(weights)
    p64 = {k: t.double() for k, t in p32.items()}

    v = cfg["vision_config"]
    g = torch.Generator().manual_seed(seed + 1000)
    pixel_values = torch.rand(3, 3, v["image_size"], v["image_size"], generator=g, dtype=torch.float32)
    save_safetensors(os.path.join(d, "inputs.safetensors"), {"pixel_values": pixel_values})

    mean = preprocessor["image_mean"] if preprocessor else CLIP_MEAN
    std = preprocessor["image_std"] if preprocessor else CLIP_STD
    mean_t = torch.tensor(mean, dtype=torch.float64).view(1, 3, 1, 1)
    std_t = torch.tensor(std, dtype=torch.float64).view(1, 3, 1, 1)
    pixels_norm = (pixel_values.double() - mean_t) / std_t

    id_lists = [tokenizer.encode(t)[0] for t in LABEL_TEXTS]
    tokens = [tokenizer.encode(t)[1] for t in LABEL_TEXTS]
    ids_max = max(max(i) for i in id_lists)
    assert ids_max < cfg["text_config"]["vocab_size"]
    eos_positions = [pooled_index(ids, cfg["text_config"]["eos_token_id"]) for ids in id_lists]
    assert all(ids[pos] == tokenizer.eos_id for ids, pos in zip(id_lists, eos_positions))

    with torch.no_grad():
        ref = clip_forward(p64, cfg, pixels_norm, id_lists)
        chk = nn_crosscheck(p32, cfg, pixels_norm.float(), id_lists)
    worst = 0.0
    for k in chk:
        diff = max_abs(ref[k], chk[k])
        worst = max(worst, diff)
        assert diff < 5e-5, f"{name}: nn cross-check mismatch on {k}: {diff}"

    expected = {k: t.to(torch.float32) for k, t in ref.items()}
    expected["pixel_values_normalized"] = pixels_norm.to(torch.float32)
    save_safetensors(os.path.join(d, "expected.safetensors"), expected)
    write_json(os.path.join(d, "expected.json"), {
        "texts": LABEL_TEXTS,
        "input_ids": id_lists,
        "tokens": tokens,
        "pooled_positions": eos_positions,
    }, indent=None)

    img_norm = ref["image_embeds"].norm(dim=-1)
    txt_norm = ref["text_embeds"].norm(dim=-1)
    assert torch.allclose(img_norm, torch.ones_like(img_norm), atol=1e-12)
    assert torch.allclose(txt_norm, torch.ones_like(txt_norm), atol=1e-12)
    assert torch.isfinite(ref["logits_per_image"]).all()
    # the tensors must actually vary (catch degenerate weights)
    assert float(ref["text_embeds"].std(dim=0).mean()) > 1e-3
    assert float(ref["image_embeds"].std(dim=0).mean()) > 1e-3
    print(f"[{name}] params={sum(t.numel() for t in p32.values())} vocab={len(vocab)} "
          f"pooled_pos={eos_positions} nn-crosscheck max|diff|={worst:.2e}")
    print(f"  logits_per_image=\n{np.array2string(ref['logits_per_image'].numpy(), precision=4)}")


def tokenizer_cases(tokenizer):
    long_text = " ".join(
        ["a photo of a white leather sneaker with red laces and a rubber sole"] * 9
    )  # 117 words
    texts = [
        ("", "empty string"),
        ("   ", "spaces only"),
        ("a photo of a sneaker", "plain caption, all words known"),
        ("A PhOtO oF a SnEaKeR", "mixed case is lowercased"),
        ("  a   photo\tof\na\r\nsneaker  ", "tabs/newlines/runs of spaces collapse"),
        ("It's a boot", "contraction 's"),
        ("we'll buy it", "contraction 'll"),
        ("don't", "contraction 't"),
        ("I'M HERE, YOU'RE THERE, WE'VE GONE, SHE'D GO", "upper-case contractions ('m 're 've 'd) after lowercasing"),
        ("rock'n'roll", "apostrophe not followed by a contraction suffix is punctuation"),
        ("it'self", "'s matches even inside a word (regex alternation order)"),
        ("1234", "digits are split one per pre-token"),
        ("size42shoe", "letters/digits boundary"),
        ("3.5mm", "digit, punct, digit, letters"),
        ("!!!...", "punctuation run is one pre-token"),
        ("wow!!! ok... (yes) [no] {maybe}", "mixed punctuation"),
        ("&amp;", "html entity -> &"),
        ("&amp;lt;", "double html unescape -> <"),
        ("Tom &amp; Jerry&#39;s &quot;shoes&quot;", "named + numeric entities"),
        ("a&nbsp;shoe", "&nbsp; becomes U+00A0 which is whitespace -> collapsed to a space"),
        ("café naïve", "precomposed accented letters (NFC input)"),
        ("运动鞋", "CJK: letters, one pre-token, byte-level fallback"),
        ("sneaker 👟 and 👍🏽", "emoji (astral, So/Sk) go through the punctuation branch"),
        ("𝐛𝐨𝐥𝐝 shoe", "astral LETTERS (U+1D41B..) are \\p{L} in Python; beware UTF-16 regex engines"),
        ("zqxjvk", "word made of characters absent from the merges"),
        ("<|endoftext|>", "special token literal in the text maps to eos id"),
        ("a photo<|startoftext|>of", "special token literal inside text"),
        ("x", "single char word: bpe returns char + </w>"),
        ("sneakers sneakers sneakers", "repeated word (bpe cache)"),
        (long_text, "long text: truncated to 75 content tokens + bos/eos = 77"),
    ]
    ranks = tokenizer.ranks
    out = []
    for text, note in texts:
        ids, toks = tokenizer.encode(text)
        # cross-check BPE with the second implementation
        alt = []
        for piece in PRETOKENIZE.findall(normalize_text(text)):
            alt.extend(bpe_reference_slow("".join(BYTE_TABLE[b] for b in piece.encode("utf-8")), ranks))
        assert alt[:CONTEXT_LENGTH - 2] == toks, (text, alt, toks)
        assert ids[0] == tokenizer.bos_id and ids[-1] == tokenizer.eos_id and len(ids) <= CONTEXT_LENGTH
        out.append({"text": text, "ids": ids, "tokens": toks, "note": note})
    assert len(out[-1]["ids"]) == CONTEXT_LENGTH
    return out


def main():
    torch.set_num_threads(1)
    torch.manual_seed(0)

    merges = train_bpe(TRAIN_CORPUS, num_merges=400)
    vocab = build_vocab(merges)
    tokenizer = ClipBpeTokenizer(vocab, merges)
    eos_id, bos_id = vocab[EOS_TOKEN], vocab[BOS_TOKEN]
    assert eos_id == len(vocab) - 1 and bos_id == len(vocab) - 2

    os.makedirs(GOLDEN, exist_ok=True)

    text_small = {"hidden_size": 24, "intermediate_size": 48, "num_hidden_layers": 2,
                  "num_attention_heads": 2, "max_position_embeddings": 77}
    vision_small = {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2,
                    "num_attention_heads": 4, "image_size": 16, "patch_size": 4}

    cfg1 = make_config(len(vocab), 0, 2, 1, text_small, vision_small, 16, "quick_gelu", 1e-5, "float32")
    generate_case("tiny-quickgelu-legacy-eos", cfg1, 1234, vocab, merges, tokenizer)

    # tokenizer read back from the written files must be identical
    d1 = os.path.join(GOLDEN, "tiny-quickgelu-legacy-eos")
    tok_files = ClipBpeTokenizer.from_files(os.path.join(d1, "vocab.json"), os.path.join(d1, "merges.txt"))
    assert tok_files.vocab == vocab and tok_files.ranks == tokenizer.ranks

    cfg2 = make_config(
        len(vocab), bos_id, eos_id, eos_id,
        {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 1,
         "num_attention_heads": 4, "max_position_embeddings": 77},
        {"hidden_size": 48, "intermediate_size": 96, "num_hidden_layers": 3,
         "num_attention_heads": 3, "image_size": 24, "patch_size": 8},
        8, "gelu", 1e-6, "float32")
    preproc = {
        "crop_size": {"height": 24, "width": 24},
        "do_center_crop": True,
        "do_convert_rgb": True,
        "do_normalize": True,
        "do_rescale": True,
        "do_resize": True,
        "image_mean": [0.5, 0.5, 0.5],
        "image_processor_type": "CLIPImageProcessor",
        "image_std": [0.25, 0.3, 0.35],
        "resample": 3,
        "rescale_factor": 0.00392156862745098,
        "size": {"shortest_edge": 24},
    }
    generate_case("tiny-gelu-new-eos", cfg2, 5678, vocab, merges, tokenizer, preprocessor=preproc)

    cfg3 = make_config(len(vocab), 0, 2, 1, text_small, vision_small, 16, "quick_gelu", 1e-5, "float16")
    generate_case("tiny-fp16", cfg3, 4321, vocab, merges, tokenizer, store_fp16=True)

    tdir = os.path.join(GOLDEN, "tokenizer")
    os.makedirs(tdir, exist_ok=True)
    cases = tokenizer_cases(tok_files)
    with open(os.path.join(tdir, "cases.json"), "w", encoding="utf-8", newline="\n") as f:
        f.write("[\n")
        f.write(",\n".join("  " + json.dumps(c, ensure_ascii=False) for c in cases))
        f.write("\n]\n")
    print(f"[tokenizer] {len(cases)} cases, vocab={len(vocab)} merges={len(merges)} bos={bos_id} eos={eos_id}")

    total = 0
    for root, _, files in os.walk(GOLDEN):
        for fn in sorted(files):
            total += os.path.getsize(os.path.join(root, fn))
    print(f"total golden size: {total / 1024:.1f} KiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
