#!/usr/bin/env python3
"""Independent plain-PyTorch reference of TAPT's test-time step (Wang et al., CVPR 2025) on the default model.

Written from tapt-method.md, not from the C# code: its own CLIP forward with VLI prompt hooks (visual tokens appended
after the patches and replaced before deeper blocks; text context tokens replacing "a photo" after the start token),
its own views (bilinear crops given as data), confidence selection, marginal entropy, L1 alignment of block-input
statistics, torch.optim.AdamW, and the prediction of the original image with the tuned prompts.

    /usr/bin/python3 tests/golden-generator/tapt_reference.py golden [CROPS.json]
        writes tests/TaptPlatform.Vision.Tests/Golden/tapt-default-model/{input,expected}.json. CROPS.json holds the
        crops (top, left, height, width, flip) that the C# ViewAugmenter draws for each seed (default: those already in
        input.json); the C# test checks that they are still the ones it draws, then compares its TaptDefense with
        expected.json.
    /usr/bin/python3 tests/golden-generator/tapt_reference.py bench [--threads 2] [--images 32] [--views 64]
            [--vit-b32 | --vit-b16] [--rounds 1] [--straightforward | --efficient-only]
        seconds per image of the same step (one image at a time), efficient (scoring without autograd, gradients only
        through the selected views) and, with --straightforward (default on the default model), every view with
        autograd; for comparison with `tapt bench`. --vit-b32/--vit-b16: a CLIP of that size with random weights and
        random V prompts and statistics (2 tokens in the first 9 vision blocks), as `tapt bench --vit-b32 --designs V`.

Needs Debian's python3-torch and python3-regex (the tokenizer of generate_clip_golden.py); for `bench`, also
libopenblas0-pthread: Debian's torch is built against the generic reference BLAS, 5x slower on these matrix sizes.
"""

import gzip
import json
import math
import os
import resource
import struct
import sys
import time

# Debian's torch calls the system BLAS (libblas.so.3): install libopenblas0-pthread for a fast one, and give it the same
# thread count as torch, or its own threads fight torch's for the cores.
if "--threads" in sys.argv:
    os.environ.setdefault("OPENBLAS_NUM_THREADS", sys.argv[sys.argv.index("--threads") + 1])

import numpy as np  # noqa: E402
import torch  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.normpath(os.path.join(HERE, "..", ".."))
MODEL = os.path.join(ROOT, "models", "fashion-clip-small")
OUT = os.path.join(ROOT, "tests", "TaptPlatform.Vision.Tests", "Golden", "tapt-default-model")
sys.path.insert(0, HERE)
from generate_clip_golden import ClipBpeTokenizer, encoder_layer, linear, vision_embeddings  # noqa: E402


def layer_norm(x, w, b, eps):
    return torch.nn.functional.layer_norm(x, w.shape, w, b, eps)

CLASSES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]
TEMPLATE = "a photo of a {}."


def read_safetensors(path):
    raw = open(path, "rb").read()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8:8 + n])
    meta = header.pop("__metadata__", {})
    out = {}
    for name, info in header.items():
        assert info["dtype"] == "F32", name
        s, e = info["data_offsets"]
        out[name] = torch.from_numpy(np.frombuffer(raw[8 + n + s:8 + n + e], dtype=np.float32).reshape(info["shape"]).copy())
    return out, meta


class Model:
    def __init__(self):
        self.cfg = json.load(open(os.path.join(MODEL, "config.json")))
        self.p, _ = read_safetensors(os.path.join(MODEL, "model.safetensors"))
        pre = json.load(open(os.path.join(MODEL, "preprocessor_config.json")))
        self.mean = torch.tensor(pre["image_mean"]).view(1, 3, 1, 1)
        self.std = torch.tensor(pre["image_std"]).view(1, 3, 1, 1)
        self.tok = ClipBpeTokenizer.from_files(os.path.join(MODEL, "vocab.json"), os.path.join(MODEL, "merges.txt"))
        # The label prompts, tokenised once and padded: the causal mask keeps padding out of the end-of-text token.
        rows = [self.tok.encode(TEMPLATE.format(label.lower()))[0] for label in CLASSES]
        tc = self.cfg["text_config"]
        self.ids = torch.full((len(rows), max(map(len, rows))), tc["pad_token_id"], dtype=torch.long)
        for r, ids in enumerate(rows):
            self.ids[r, :len(ids)] = torch.tensor(ids)
        self.eos = torch.tensor([ids.index(tc["eos_token_id"]) for ids in rows])
        art, meta = read_safetensors(os.path.join(MODEL, "tapt-prompts.safetensors"))
        self.artifact_header = json.loads(meta["tapt"])
        self.p_adv = {k[len("prompts.adv."):]: v for k, v in art.items() if k.startswith("prompts.adv.")}
        self.stats = {name: (art[f"stats.{name}.mean"], art[f"stats.{name}.var"]) for name in ("adv", "clean")}

    def block(self, x, i, c, prefix, causal):
        return encoder_layer(x, self.p, prefix, i, c, causal, norm=layer_norm)

    def image_features(self, pixels01, prompts=None, capture=0):
        """Normalised projected features; prompts: {"visual.l": [n, D]}; returns (features, block inputs of the first `capture` blocks)."""
        c, p = self.cfg["vision_config"], self.p
        h = vision_embeddings(p, c, (pixels01 - self.mean) / self.std)
        n = h.shape[0]
        k = 0
        if prompts is not None:
            k = prompts["visual.0"].shape[0]
            h = torch.cat([h, prompts["visual.0"].unsqueeze(0).expand(n, -1, -1)], 1)
        h = layer_norm(h, p["vision_model.pre_layrnorm.weight"], p["vision_model.pre_layrnorm.bias"], c["layer_norm_eps"])
        blocks = []
        for i in range(c["num_hidden_layers"]):
            if i > 0 and prompts is not None and f"visual.{i}" in prompts:
                h = torch.cat([h[:, :-k], prompts[f"visual.{i}"].unsqueeze(0).expand(n, -1, -1)], 1)
            if i < capture:
                blocks.append(h)
            h = self.block(h, i, c, "vision_model", causal=False)
        pooled = layer_norm(h[:, 0], p["vision_model.post_layernorm.weight"], p["vision_model.post_layernorm.bias"], c["layer_norm_eps"])
        f = linear(pooled, p["visual_projection.weight"])
        return f / f.norm(dim=-1, keepdim=True), blocks

    def text_features(self, prompts=None):
        c, p = self.cfg["text_config"], self.p
        n, length = self.ids.shape
        h = p["text_model.embeddings.token_embedding.weight"][self.ids]
        if prompts is not None and "text.0" not in prompts:  # V: prompts on the vision side only
            prompts = None
        if prompts is not None:
            k = prompts["text.0"].shape[0]
            h = torch.cat([h[:, :1], prompts["text.0"].unsqueeze(0).expand(n, -1, -1), h[:, 1 + k:]], 1)
        h = h + p["text_model.embeddings.position_embedding.weight"][:length]
        for i in range(c["num_hidden_layers"]):
            if i > 0 and prompts is not None and f"text.{i}" in prompts:
                h = torch.cat([h[:, :1], prompts[f"text.{i}"].unsqueeze(0).expand(n, -1, -1), h[:, 1 + k:]], 1)
            h = self.block(h, i, c, "text_model", causal=True)
        h = layer_norm(h, p["text_model.final_layer_norm.weight"], p["text_model.final_layer_norm.bias"], c["layer_norm_eps"])
        f = linear(h[torch.arange(n), self.eos], p["text_projection.weight"])
        return f / f.norm(dim=-1, keepdim=True)

    def logits(self, img, txt):
        return self.p["logit_scale"].exp() * img @ txt.t()


def views_of(image, crops, size):
    """The original image, then each crop resized bilinearly (antialiased, as torchvision's RandomResizedCrop) and flipped."""
    out = [image.unsqueeze(0)]
    for top, left, h, w, flip in crops:
        v = torch.nn.functional.interpolate(image[:, top:top + h, left:left + w].unsqueeze(0), size=(size, size),
                                            mode="bilinear", align_corners=False, antialias=True)
        out.append(v.flip(3) if flip else v)
    return torch.cat(out, 0)


def entropy(logits):
    logp = logits.log_softmax(-1)
    return -(logp.exp() * logp).sum(-1)


def tapt(model, image, crops, s, efficient=True):
    """One image: reset to P_adv, `s["steps"]` AdamW steps on the selected views, then classify the original."""
    size = model.cfg["vision_config"]["image_size"]
    layers = min(s["alignment_layers"], model.cfg["vision_config"]["num_hidden_layers"])
    with torch.no_grad():
        views = views_of(image, crops, size)
        baseline = model.logits(model.image_features(image.unsqueeze(0))[0], model.text_features()).softmax(-1)[0]
    prompts = {k: v.clone().requires_grad_(True) for k, v in model.p_adv.items()}
    opt = torch.optim.AdamW(list(prompts.values()), lr=s["lr"], weight_decay=s["weight_decay"])
    n_sel = max(1, int(s["selection_fraction"] * len(views)))
    steps, apt, vote = [], None, None
    for step in range(s["steps"]):
        txt = model.text_features(prompts)
        if efficient:
            with torch.no_grad():
                all_logits = model.logits(model.image_features(views, prompts)[0], txt)
            sel = entropy(all_logits).topk(n_sel, largest=False, sorted=True).indices
            img, blocks = model.image_features(views[sel], prompts, capture=layers)
            sel_logits = model.logits(img, txt)
        else:
            img, all_blocks = model.image_features(views, prompts, capture=layers)
            all_logits = model.logits(img, txt)
            sel = entropy(all_logits.detach()).topk(n_sel, largest=False, sorted=True).indices
            sel_logits, blocks = all_logits[sel], [b[sel] for b in all_blocks]
        if step == 0:
            apt = all_logits[0].detach().softmax(-1)
            vote = int(all_logits.detach()[sel].softmax(-1).mean(0).argmax())
        avg = sel_logits.log_softmax(-1).logsumexp(0) - math.log(n_sel)
        ent = -(avg.exp() * avg).sum()

        def distance(ref):
            total = 0
            for l in range(layers):
                mu, var = blocks[l].mean(0), blocks[l].var(0, unbiased=False)
                total = total + 0.5 * (mu - ref[0][l]).abs().mean() + 0.5 * (var - ref[1][l]).abs().mean()
            return total

        d_adv, d_clean = distance(model.stats["adv"]), distance(model.stats["clean"])
        loss = ent + s["alignment_weight"] * (s["gamma"] * d_adv + (1 - s["gamma"]) * d_clean)
        opt.zero_grad()
        loss.backward()
        opt.step()
        steps.append({"selected": sel.tolist(), "entropy": ent.item(), "alignment_adversarial": float(d_adv),
                      "alignment_clean": float(d_clean), "total": loss.item()})
    with torch.no_grad():
        probs = model.logits(model.image_features(image.unsqueeze(0), prompts)[0], model.text_features(prompts)).softmax(-1)[0]
    return {"baseline": baseline.tolist(), "apt": apt.tolist(), "probabilities": probs.tolist(), "views_vote": vote, "steps": steps}


def test_images(indices):
    raw = gzip.open("/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz").read()[16:]
    labels = gzip.open("/usr/share/datasets/fashion-mnist/t10k-labels-idx1-ubyte.gz").read()[8:]
    return [(list(raw[i * 784:(i + 1) * 784]), labels[i]) for i in indices]


def upsample(pixels, size):
    """28x28 bytes -> [3, size, size] in [0,1], bilinear (align_corners=False), as the training and evaluation data path."""
    g = torch.tensor(pixels, dtype=torch.float32).view(1, 1, 28, 28) / 255
    g = torch.nn.functional.interpolate(g, size=(size, size), mode="bilinear", align_corners=False).clamp(0, 1)
    return g[0].expand(3, -1, -1).contiguous()


# gamma 0: at the first step the prompt tokens of block 0 equal, under P_adv, the adversarial reference's mean there
# exactly (they do not depend on the image), so |mu - mu_ref| sits on its kink and the sign of float rounding noise picks
# the subgradient; Adam's first step (lr * g / |g|) turns that into +-lr moves that differ between any two
# implementations. The clean reference has no kink (P_clean differs from P_adv); the adversarial distance is still
# compared as a value.
SETTINGS = {"views": 64, "selection_fraction": 0.1, "steps": 2, "lr": 0.02, "weight_decay": 0.01, "alignment_layers": 8,
            "alignment_weight": 100 / 9, "gamma": 0.0}
CASES = [(17, 11), (4242, 12)]  # (test image index, view seed)


def golden(crops_path):
    torch.manual_seed(0)
    if crops_path is None:  # regenerate with the crops already recorded (the view sampler has not changed)
        crops = {str(c["seed"]): c["crops"] for c in json.load(open(os.path.join(OUT, "input.json")))["images"]}
    else:
        crops = json.load(open(crops_path))
    model = Model()
    size = model.cfg["vision_config"]["image_size"]
    images = test_images([i for i, _ in CASES])
    cases, expected = [], []
    for (index, seed), (pixels, label) in zip(CASES, images):
        c = crops[str(seed)]
        assert len(c) == SETTINGS["views"] - 1
        cases.append({"index": index, "label": label, "seed": seed, "pixels": pixels, "crops": c})
        r = tapt(model, upsample(pixels, size), c, SETTINGS)
        r2 = tapt(model, upsample(pixels, size), c, SETTINGS, efficient=False)
        assert r["steps"][0]["selected"] == r2["steps"][0]["selected"]
        assert max(abs(a - b) for a, b in zip(r["probabilities"], r2["probabilities"])) < 1e-5
        expected.append(r)
    os.makedirs(OUT, exist_ok=True)
    checksum = model.artifact_header["model_checksum"]
    json.dump({"model_checksum": checksum, "settings": SETTINGS, "classes": CLASSES, "template": TEMPLATE, "images": cases},
              open(os.path.join(OUT, "input.json"), "w"), separators=(",", ":"))
    json.dump({"generator": "tests/golden-generator/tapt_reference.py (torch " + torch.__version__ + ")", "results": expected},
              open(os.path.join(OUT, "expected.json"), "w"), indent=1)
    for r in expected:
        print("apt", np.argmax(r["apt"]), "tapt", np.argmax(r["probabilities"]), [round(s["total"], 5) for s in r["steps"]])


class RandomClip(Model):
    """A ViT-B CLIP with random weights (HF names, normal(0, 0.02) as `tapt bench` draws them), 10 labels of 8 random
    tokens, and random TAPT-V prompts and statistics: timing needs no trained ones."""

    def __init__(self, patch):
        g = torch.Generator().manual_seed(1)
        vc = {"hidden_size": 768, "intermediate_size": 3072, "num_hidden_layers": 12, "num_attention_heads": 12,
              "image_size": 224, "patch_size": patch, "hidden_act": "quick_gelu", "layer_norm_eps": 1e-5}
        tc = {"hidden_size": 512, "intermediate_size": 2048, "num_hidden_layers": 12, "num_attention_heads": 8,
              "max_position_embeddings": 77, "hidden_act": "quick_gelu", "layer_norm_eps": 1e-5,
              "vocab_size": 49408, "pad_token_id": 1, "eos_token_id": 49407}
        self.cfg = {"vision_config": vc, "text_config": tc}
        positions = (224 // patch) ** 2 + 1
        shapes = {"vision_model.embeddings.patch_embedding.weight": [768, 3, patch, patch],
                  "vision_model.embeddings.class_embedding": [768],
                  "vision_model.embeddings.position_embedding.weight": [positions, 768],
                  "text_model.embeddings.token_embedding.weight": [49408, 512],
                  "text_model.embeddings.position_embedding.weight": [77, 512],
                  "visual_projection.weight": [512, 768], "text_projection.weight": [512, 512], "logit_scale": []}
        for prefix, final, c in (("vision_model", "post_layernorm", vc), ("text_model", "final_layer_norm", tc)):
            d, m = c["hidden_size"], c["intermediate_size"]
            for i in range(c["num_hidden_layers"]):
                lp = f"{prefix}.encoder.layers.{i}"
                for proj in ("q_proj", "k_proj", "v_proj", "out_proj"):
                    shapes[f"{lp}.self_attn.{proj}.weight"], shapes[f"{lp}.self_attn.{proj}.bias"] = [d, d], [d]
                shapes[f"{lp}.mlp.fc1.weight"], shapes[f"{lp}.mlp.fc1.bias"] = [m, d], [m]
                shapes[f"{lp}.mlp.fc2.weight"], shapes[f"{lp}.mlp.fc2.bias"] = [d, m], [d]
                for ln in ("layer_norm1", "layer_norm2"):
                    shapes[f"{lp}.{ln}.weight"], shapes[f"{lp}.{ln}.bias"] = [d], [d]
            shapes[f"{prefix}.{final}.weight"], shapes[f"{prefix}.{final}.bias"] = [d], [d]
        shapes["vision_model.pre_layrnorm.weight"] = shapes["vision_model.pre_layrnorm.bias"] = [768]
        self.p = {k: torch.empty(v).normal_(0, 0.02, generator=g) for k, v in shapes.items()}
        self.mean = torch.tensor([0.4815, 0.4578, 0.4082]).view(1, 3, 1, 1)
        self.std = torch.tensor([0.2686, 0.2613, 0.2758]).view(1, 3, 1, 1)
        self.ids = torch.randint(2, 49000, (10, 8), generator=g)
        self.ids[:, -1] = 49407
        self.eos = torch.full((10,), 7)
        self.p_adv = {f"visual.{i}": torch.empty(2, 768).normal_(0, 0.02, generator=g) for i in range(9)}
        self.stats = {name: (torch.randn(12, positions + 2, 768, generator=g), torch.rand(12, positions + 2, 768, generator=g))
                      for name in ("adv", "clean")}


def bench(argv):
    def arg(name, default):
        return int(argv[argv.index(name) + 1]) if name in argv else default

    threads, n, views, rounds = arg("--threads", 2), arg("--images", 32), arg("--views", 64), arg("--rounds", 1)
    torch.set_num_threads(threads)
    patch = 32 if "--vit-b32" in argv else 16 if "--vit-b16" in argv else None
    model = Model() if patch is None else RandomClip(patch)
    name, design = ("default model", "VLI") if patch is None else (f"ViT-B/{patch} random weights", "V")
    size = model.cfg["vision_config"]["image_size"]
    if patch is None:
        images = [upsample(p, size) for p, _ in test_images(range(n))]
    else:
        images = [torch.rand(3, size, size, generator=torch.Generator().manual_seed(2 + i)) for i in range(n)]
    rng = np.random.default_rng(0)

    def random_crops():
        out = []
        for _ in range(views - 1):
            a = rng.uniform(0.08, 1) * size * size
            r = math.exp(rng.uniform(math.log(3 / 4), math.log(4 / 3)))
            w, h = min(size, max(1, round(math.sqrt(a * r)))), min(size, max(1, round(math.sqrt(a / r))))
            out.append((int(rng.integers(0, size - h + 1)), int(rng.integers(0, size - w + 1)), h, w, int(rng.random() < 0.5)))
        return out

    settings = dict(SETTINGS, views=views, steps=1)
    modes = (True, False) if (patch is None and "--efficient-only" not in argv) or "--straightforward" in argv else (True,)
    for efficient in modes:
        tapt(model, images[0], random_crops(), settings, efficient)  # warm-up
    # Rounds outermost, modes inside: a noisy neighbour hits every mode alike.
    for round_ in range(1, rounds + 1):
        for efficient in modes:
            t = time.perf_counter()
            for img in images:
                tapt(model, img, random_crops(), settings, efficient)
            per = (time.perf_counter() - t) / n
            peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
            print(f"python torch {torch.__version__}, {name}, {threads} threads, {views} views, 1 step, {design}, "
                  f"{'efficient' if efficient else 'straightforward'}, round {round_}: {per * 1000:.1f} ms/image "
                  f"({1 / per:.2f} img/s, {n} images, process peak RSS {peak:.0f} MiB)", flush=True)


if __name__ == "__main__":
    if len(sys.argv) >= 2 and sys.argv[1] == "golden":
        golden(sys.argv[2] if len(sys.argv) >= 3 else None)
    elif len(sys.argv) >= 2 and sys.argv[1] == "bench":
        bench(sys.argv[2:])
    else:
        print(__doc__)
        sys.exit(2)
