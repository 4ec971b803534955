"""A tiny transformer on a task generated in the chapter: sort a few distinct digits.

A sequence is a prompt of ``L`` distinct digits (``L`` from :data:`MIN_LENGTH` to
:data:`MAX_LENGTH`), the separator :data:`SEP`, then the same digits sorted, and
padding :data:`PAD` up to :data:`SEQ_LEN` tokens::

    7 2 9 = 2 7 9 _ _ _ _ _ _ _ _      (L = 3, "_" is PAD)

The model reads the tokens left to right (a causal mask) and predicts each next token;
the loss counts only the sorted part. Its normalizations (:class:`TokenNorm`) are batch
norm over every token of the batch, padding included, as ``nn.BatchNorm1d`` on the
``(N·T, d)`` features does when dropped into a transformer, or layer norm over each
token's own ``d`` features.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

MIN_LENGTH, MAX_LENGTH = 2, 7
#: Tokens: the digits 0 … 9, then the separator and the padding.
SEP, PAD = 10, 11
VOCAB = 12
SEQ_LEN = 2 * MAX_LENGTH + 1
#: Features per token, attention heads, blocks.
D_MODEL, HEADS, BLOCKS = 32, 2, 1
SEQ_NORMS = ("batch", "layer")


@dataclass(frozen=True)
class SortBatch:
    """``tokens`` ``(N, SEQ_LEN)``, ``lengths`` ``(N,)``: ``L`` of each sequence."""

    tokens: torch.Tensor
    lengths: torch.Tensor

    def targets(self) -> torch.Tensor:
        """The next token at each position, -100 (ignored) outside the sorted part."""
        n = self.tokens.shape[0]
        target = torch.full((n, SEQ_LEN), -100, dtype=torch.int64)
        for i, length in enumerate(self.lengths.tolist()):
            # position L (the separator) predicts the first sorted digit, and so on
            target[i, length : 2 * length] = self.tokens[i, length + 1 : 2 * length + 1]
        return target


def sort_batch(n: int, generator: torch.Generator, length: int | None = None) -> SortBatch:
    """``n`` sequences of random distinct digits (a random length each, or ``length``)."""
    tokens = torch.full((n, SEQ_LEN), PAD, dtype=torch.int64)
    if length is None:
        lengths = torch.randint(MIN_LENGTH, MAX_LENGTH + 1, (n,), generator=generator)
    else:
        lengths = torch.full((n,), length, dtype=torch.int64)
    for i, size in enumerate(lengths.tolist()):
        digits = torch.randperm(10, generator=generator)[:size]
        tokens[i, :size] = digits
        tokens[i, size] = SEP
        tokens[i, size + 1 : 2 * size + 1] = digits.sort().values
    return SortBatch(tokens, lengths)


class TokenNorm(nn.Module):
    """Normalization of ``(N, T, d)`` token features: ``"batch"``, ``BatchNorm1d(d)`` over
    all N·T tokens (padding included); ``"layer"``, ``LayerNorm(d)`` over each token."""

    def __init__(self, norm: str, features: int) -> None:
        super().__init__()
        if norm not in SEQ_NORMS:
            raise ValueError(f"norm must be one of {SEQ_NORMS}, got {norm!r}")
        self.norm = norm
        self.layer = nn.BatchNorm1d(features) if norm == "batch" else nn.LayerNorm(features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.norm == "layer":
            return self.layer(x)
        n, t, d = x.shape
        return self.layer(x.reshape(n * t, d)).view(n, t, d)


class Block(nn.Module):
    """A pre-norm transformer block: ``x + attention(norm(x))``, then ``x + mlp(norm(x))``."""

    def __init__(self, norm: str, d: int = D_MODEL, heads: int = HEADS) -> None:
        super().__init__()
        self.norm1, self.norm2 = TokenNorm(norm, d), TokenNorm(norm, d)
        self.heads = heads
        self.qkv, self.out = nn.Linear(d, 3 * d), nn.Linear(d, d)
        self.mlp = nn.Sequential(nn.Linear(d, 2 * d), nn.ReLU(), nn.Linear(2 * d, d))

    def attention(self, x: torch.Tensor) -> torch.Tensor:
        """Causal self-attention: position i attends to positions 0 … i only."""
        n, t, d = x.shape
        q, k, v = self.qkv(x).view(n, t, 3, self.heads, d // self.heads).unbind(2)
        y = F.scaled_dot_product_attention(*(z.transpose(1, 2) for z in (q, k, v)), is_causal=True)
        return self.out(y.transpose(1, 2).reshape(n, t, d))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attention(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class TinyTransformer(nn.Module):
    """Token and position embeddings, :data:`BLOCKS` causal pre-norm blocks, a final
    norm and a linear read-out to the :data:`VOCAB` tokens."""

    def __init__(self, norm: str, seed: int = 0, blocks: int = BLOCKS, d: int = D_MODEL):
        super().__init__()
        torch.manual_seed(seed)
        self.embed = nn.Embedding(VOCAB, d)
        self.position = nn.Parameter(0.1 * torch.randn(SEQ_LEN, d))
        self.blocks = nn.ModuleList([Block(norm, d) for _ in range(blocks)])
        self.norm = TokenNorm(norm, d)
        self.head = nn.Linear(d, VOCAB)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        x = self.embed(tokens) + self.position[: tokens.shape[1]]
        for block in self.blocks:
            x = block(x)
        return self.head(self.norm(x))


def train_sorter(
    norm: str, seed: int, steps: int, batch_size: int = 64, lr: float = 3e-3
) -> tuple[TinyTransformer, np.ndarray]:
    """Train a :class:`TinyTransformer` with Adam on fresh batches; returns it (in eval
    mode) and the training loss at each step."""
    model = TinyTransformer(norm, seed).train()
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    generator = torch.Generator().manual_seed(1000 + seed)
    losses = np.zeros(steps)
    for step in range(steps):
        batch = sort_batch(batch_size, generator)
        logits = model(batch.tokens)
        loss = F.cross_entropy(logits.transpose(1, 2), batch.targets())
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses[step] = float(loss.detach())
    return model.eval(), losses


@torch.no_grad()
def teacher_forced_accuracy(model: nn.Module, batch: SortBatch) -> float:
    """Share of sequences whose every sorted digit is predicted right from the true
    prefix, all sequences in one batch, in the model's current mode."""
    logits = model(batch.tokens)
    targets = batch.targets()
    wrong = ((logits.argmax(-1) != targets) & (targets != -100)).any(1)
    return float((~wrong).float().mean())


@torch.no_grad()
def decode(model: nn.Module, batch: SortBatch) -> float:
    """Greedy decoding one sequence at a time, one token at a time (each step sees only
    the prompt and the tokens generated so far, no padding): the share of sequences
    sorted exactly, in the model's current mode."""
    right = 0
    for tokens, length in zip(batch.tokens, batch.lengths.tolist(), strict=True):
        prefix = tokens[: length + 1].unsqueeze(0)  # the digits and the separator
        for _ in range(length):
            following = model(prefix)[0, -1].argmax()
            prefix = torch.cat([prefix, following.view(1, 1)], 1)
        right += bool(torch.equal(prefix[0, length + 1 :], tokens[length + 1 : 2 * length + 1]))
    return right / batch.tokens.shape[0]
