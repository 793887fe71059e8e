"""Train a tiny Llama (built from a config: nothing is downloaded) with multiloss's
drop-in for Transformers' causal-LM loss, with gradient accumulation.

The data is a made-up language: each sequence follows t -> (5·t + 3) mod V from a random
start, with 10% of the tokens replaced by noise and a random-length prompt masked out of
the labels (-100). Each optimiser step accumulates micro-batches, each micro-batch's sum
divided by the step's count of targets (`num_items_in_batch`, as the Trainer passes it),
so the step's loss is the mean over all its tokens whatever the micro-batches' lengths.

    python examples/hf_causal_lm.py --steps 30                       # install(): multiloss's loss
    python examples/hf_causal_lm.py --steps 30 --loss transformers   # Transformers' own
    python examples/hf_causal_lm.py --steps 30 --loss fused          # fuse(): no logits formed
    python examples/hf_causal_lm.py --steps 30 --gamma 2             # focal loss, γ = 2

With the same seed the three `--loss` choices print the same losses (to float32 rounding).
"""

from __future__ import annotations

import argparse
import contextlib

import torch
from transformers import LlamaConfig, LlamaForCausalLM

import multiloss.torch.hf as mlhf

VOCAB = 64
LENGTH = 24


def make_batch(generator: torch.Generator, size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """`size` sequences of the made-up language and their labels (prompt masked)."""
    start = torch.randint(0, VOCAB, (size, 1), generator=generator)
    steps = torch.arange(LENGTH)
    ids = (start * 5**steps + 3 * (5**steps - 1) // 4) % VOCAB
    noise = torch.rand(size, LENGTH, generator=generator) < 0.1
    ids = torch.where(noise, torch.randint(0, VOCAB, (size, LENGTH), generator=generator), ids)
    labels = ids.clone()
    prompt = torch.randint(1, LENGTH // 2, (size, 1), generator=generator)
    labels[steps < prompt] = -100
    return ids, labels


def main(
    steps: int = 30,
    loss: str = "multiloss",
    gamma: float | None = None,
    micro_batches: int = 2,
    seed: int = 0,
    verbose: bool = True,
) -> list[float]:
    """Train and return the loss of every step."""
    config = LlamaConfig(
        vocab_size=VOCAB,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=LENGTH,
    )
    torch.manual_seed(seed)
    model = LlamaForCausalLM(config)
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    generator = torch.Generator().manual_seed(seed + 1)
    options = {} if gamma is None else {"gamma": gamma}
    if loss == "multiloss":
        context = mlhf.install(**options)
    elif loss == "fused":
        context = mlhf.fuse(model, **options)
    elif loss == "transformers" and gamma is None:
        context = contextlib.nullcontext()
    else:
        raise ValueError(f"loss={loss!r} (with gamma={gamma!r}) is not a choice here")
    losses = []
    with context:
        for step in range(steps):
            parts = [make_batch(generator, 4) for _ in range(micro_batches)]
            count = sum((labels[:, 1:] != -100).sum() for _, labels in parts)  # the Trainer's
            total = 0.0
            for ids, labels in parts:
                part = model(input_ids=ids, labels=labels, num_items_in_batch=count).loss
                part.backward()
                total += part.item()
            optimizer.step()
            optimizer.zero_grad()
            losses.append(total)
            if verbose and (step % 10 == 0 or step == steps - 1):
                print(f"step {step:3d}  loss {total:.4f}")
    return losses


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument(
        "--loss", choices=("multiloss", "transformers", "fused"), default="multiloss"
    )
    parser.add_argument("--gamma", type=float, default=None, help="focal loss γ (default: none)")
    parser.add_argument("--micro-batches", type=int, default=2)
    arguments = parser.parse_args()
    main(arguments.steps, arguments.loss, arguments.gamma, arguments.micro_batches)
