"""The reference models of docs/MODELS.md in PyTorch: the same names, shapes and losses as the engine's.

A baseline for perf/ only (Debian's python3-torch 1.13, CPU); the engine never depends on it. The state_dict
names are the ones docs/MODELS.md lists, so a safetensors file written by either side loads in the other.
"""
import math

import torch
from torch import nn
import torch.nn.functional as F


def mlp(width=200, activation="tanh"):
    """Cohen et al. 2021's fc-tanh network: 784-200-200-10."""
    act = nn.Tanh if activation == "tanh" else nn.ReLU
    return nn.Sequential(nn.Flatten(), nn.Linear(784, width), act(), nn.Linear(width, width), act(), nn.Linear(width, 10))


class BasicBlock(nn.Module):
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.downsample = None
        if stride != 1 or cin != cout:
            self.downsample = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + (x if self.downsample is None else self.downsample(x)))


class ResNet20(nn.Module):
    """He et al. 2016, CIFAR variant, projection shortcuts, torchvision names."""

    def __init__(self, channels=3, classes=10):
        super().__init__()
        self.conv1 = nn.Conv2d(channels, 16, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(16)
        self.layer1 = nn.Sequential(*[BasicBlock(16, 16, 1) for _ in range(3)])
        self.layer2 = nn.Sequential(BasicBlock(16, 32, 2), BasicBlock(32, 32, 1), BasicBlock(32, 32, 1))
        self.layer3 = nn.Sequential(BasicBlock(32, 64, 2), BasicBlock(64, 64, 1), BasicBlock(64, 64, 1))
        self.fc = nn.Linear(64, classes)

    def forward(self, x):
        x = F.relu(self.bn1(self.conv1(x)))
        x = self.layer3(self.layer2(self.layer1(x)))
        return self.fc(x.mean(dim=(2, 3)))


class Attention(nn.Module):
    def __init__(self, width, heads, context):
        super().__init__()
        self.heads = heads
        self.c_attn = nn.Linear(width, 3 * width)
        self.c_proj = nn.Linear(width, width)
        self.register_buffer("mask", torch.tril(torch.ones(context, context, dtype=torch.bool)), persistent=False)

    def forward(self, x):
        n, t, d = x.shape
        q, k, v = self.c_attn(x).split(d, dim=2)
        q, k, v = (z.view(n, t, self.heads, d // self.heads).transpose(1, 2) for z in (q, k, v))
        scores = (q @ k.transpose(-2, -1)) / math.sqrt(d // self.heads)
        scores = scores.masked_fill(~self.mask[:t, :t], float("-inf"))
        y = torch.softmax(scores, dim=-1) @ v
        return self.c_proj(y.transpose(1, 2).reshape(n, t, d))


class Mlp(nn.Module):
    def __init__(self, width):
        super().__init__()
        self.c_fc = nn.Linear(width, 4 * width)
        self.c_proj = nn.Linear(4 * width, width)

    def forward(self, x):
        return self.c_proj(F.gelu(self.c_fc(x)))  # exact (erf) GELU, as the engine's


class Block(nn.Module):
    def __init__(self, width, heads, context):
        super().__init__()
        self.ln_1 = nn.LayerNorm(width, eps=1e-5)
        self.attn = Attention(width, heads, context)
        self.ln_2 = nn.LayerNorm(width, eps=1e-5)
        self.mlp = Mlp(width)

    def forward(self, x):
        x = x + self.attn(self.ln_1(x))
        return x + self.mlp(self.ln_2(x))


class Gpt(nn.Module):
    """nanoGPT's names: pre-norm blocks, biases on, lm_head tied to transformer.wte."""

    def __init__(self, vocabulary=65, context=256, layers=6, heads=6, width=384):
        super().__init__()
        self.transformer = nn.ModuleDict(dict(
            wte=nn.Embedding(vocabulary, width),
            wpe=nn.Embedding(context, width),
            h=nn.ModuleList([Block(width, heads, context) for _ in range(layers)]),
            ln_f=nn.LayerNorm(width, eps=1e-5),
        ))
        self.lm_head = nn.Linear(width, vocabulary, bias=False)
        self.lm_head.weight = self.transformer.wte.weight

    def forward(self, idx):
        t = idx.shape[1]
        x = self.transformer.wte(idx) + self.transformer.wpe(torch.arange(t, device=idx.device))
        for block in self.transformer.h:
            x = block(x)
        return self.lm_head(self.transformer.ln_f(x))


def cross_entropy(logits, targets):
    """The mean cross-entropy of docs/MODELS.md (over the batch, and over positions for the GPT)."""
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1))


# The benchmark cases of perf/Bench's models table: key -> (description, model, input, targets).
def case(key):
    g = torch.Generator().manual_seed(0)
    if key == "mlp_b5000":
        return mlp(), torch.randn(5000, 784, generator=g), torch.randint(0, 10, (5000,), generator=g)
    if key == "resnet20_b128":
        return ResNet20(3), torch.randn(128, 3, 32, 32, generator=g), torch.randint(0, 10, (128,), generator=g)
    if key == "gpt6L384_T256_b8":
        return Gpt(), torch.randint(0, 65, (8, 256), generator=g), torch.randint(0, 65, (8, 256), generator=g)
    if key == "gpt4L128_T128_b32":
        return (Gpt(context=128, layers=4, heads=4, width=128), torch.randint(0, 65, (32, 128), generator=g),
                torch.randint(0, 65, (32, 128), generator=g))
    raise KeyError(f"unknown case {key!r}; expected mlp_b5000, resnet20_b128, gpt6L384_T256_b8 or gpt4L128_T128_b32")
