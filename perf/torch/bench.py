#!/usr/bin/env python3
"""PyTorch's forward, gradient, HVP and train step on the models of docs/MODELS.md: the same-run baseline.

    /usr/bin/python3 perf/torch/bench.py --threads 2 --repeats 3 resnet20_b128      # a table of its own
    /usr/bin/python3 perf/torch/bench.py --threads 2 --serve                        # rounds on request (perf/Bench)

In --serve mode it reads one command per line on stdin and answers one JSON line on stdout:
    info                 -> {"torch": ..., "threads": ..., "blas": ..., "forward_over_reverse": bool}
    load KEY             -> {"key": KEY, "parameters": N}
    round KEY            -> {"forward": ms, "gradient": ms, "hvp": ms, "train_step": ms}
so perf/Bench can interleave PyTorch's rounds with the engine's (PyTorch, engine, PyTorch, engine, ...) and
take ratios of medians measured in one run. The actions are the engine's: a training-mode forward of the mean
cross-entropy without a graph; its gradient (loss.backward() through autograd.grad); a Hessian-vector product by
double backward (1.13's forward-mode AD has no rule for the softmax's backward, so functorch's forward-over-reverse
fails on every model here); and a train step: training-mode forward (running statistics updated), backward, SGD with momentum 0.9 (lr 1e-6).
"""
import argparse
import json
import statistics
import sys
import time

import torch

sys.path.insert(0, __file__.rsplit("/", 1)[0])
import models  # noqa: E402


class Case:
    def __init__(self, key):
        self.key = key
        self.model, self.x, self.y = models.case(key)
        self.model.train()
        self.params = [p for p in self.model.parameters()]
        g = torch.Generator().manual_seed(1)
        self.v = [torch.randn(p.shape, generator=g) for p in self.params]
        self.optimizer = torch.optim.SGD(self.params, lr=1e-6, momentum=0.9)

    def loss(self):
        return models.cross_entropy(self.model(self.x), self.y)

    def forward(self):
        with torch.no_grad():
            return self.loss().item()

    def gradient(self):
        return torch.autograd.grad(self.loss(), self.params)

    def hvp(self):
        g = torch.autograd.grad(self.loss(), self.params, create_graph=True)
        return torch.autograd.grad(g, self.params, grad_outputs=self.v)

    def train_step(self):
        self.optimizer.zero_grad(set_to_none=True)
        loss = self.loss()
        loss.backward()
        self.optimizer.step()
        return loss.item()

    def round(self):
        times = {}
        for name in ("forward", "gradient", "hvp", "train_step"):
            start = time.perf_counter()
            getattr(self, name)()
            times[name] = (time.perf_counter() - start) * 1000
        return times


def info():
    torch.ones(64, 64) @ torch.ones(64, 64)  # loads the BLAS the products call
    with open("/proc/self/maps") as maps:
        blas = sorted({line.split()[-1] for line in maps if "blas" in line.split()[-1]})
    return {"torch": torch.__version__, "threads": torch.get_num_threads(), "blas": ", ".join(blas) or "built in"}


def serve():
    cases = {}
    for line in sys.stdin:
        words = line.split()
        if not words:
            continue
        try:
            if words[0] == "info":
                answer = info()
            elif words[0] == "load" and len(words) == 2:
                cases[words[1]] = Case(words[1])
                answer = {"key": words[1], "parameters": sum(p.numel() for p in cases[words[1]].params)}
            elif words[0] == "round" and len(words) == 2 and words[1] in cases:
                answer = cases[words[1]].round()
            else:
                answer = {"error": f"unknown command {line.strip()!r}; expected info, load KEY or round KEY (after load)"}
        except Exception as e:  # the caller prints it; the server stays up
            answer = {"error": f"{type(e).__name__}: {e}"}
        print(json.dumps(answer), flush=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--serve", action="store_true")
    parser.add_argument("keys", nargs="*", default=["mlp_b5000", "resnet20_b128", "gpt6L384_T256_b8"])
    args = parser.parse_args()
    if args.threads < 1 or args.repeats < 1:
        parser.error("--threads and --repeats must be at least 1")
    torch.set_num_threads(args.threads)
    if args.serve:
        serve()
        return
    print(json.dumps(info()))
    print("| model | | PyTorch ms (median) | fastest |")
    print("|---|---|---|---|")
    for key in args.keys:
        case = Case(key)
        case.round()  # warm-up
        rounds = [case.round() for _ in range(args.repeats)]
        for name in ("forward", "gradient", "hvp", "train_step"):
            ms = [r[name] for r in rounds]
            print(f"| {key if name == 'forward' else ''} | {name} | {statistics.median(ms):.1f} | {min(ms):.1f} |")


if __name__ == "__main__":
    main()
