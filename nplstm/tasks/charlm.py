"""Character-level language modelling on any UTF-8 text (by default, CPython's own doc topics)."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..ops import log_softmax
from .base import Batch, Task, check_batch_size, check_int, check_out, finite, mean_xent, one_hot


def _code_points(s: str) -> np.ndarray:
    """s -> (len(s),) uint32 Unicode code points: characters, not bytes."""
    return np.frombuffer(s.encode("utf-32-le"), np.uint32)


def _read(path: str | None) -> str:
    if path is None:
        from pydoc_data.topics import topics                  # ships with every CPython
        return "\n\n".join(topics[key] for key in sorted(topics))
    try:
        with open(path, encoding="utf-8") as f:
            return f.read()
    except (OSError, UnicodeDecodeError) as e:
        raise ValueError(f"charlm: path must name a readable UTF-8 text file, got {path!r} ({e})") from e


@dataclass(eq=False, kw_only=True)
class CharLM(Task):
    """Next-character prediction on a text: a character-level language model.

    x: (B, T) int64 character ids (the model embeds them: build_model gives a task with `vocab_size` an
    Embedding, as it does your own token ids); y: (B, T) int64 the next character; mask: (B, T) all True;
    V = vocab_size = len(vocab), the sorted distinct characters of the whole text.

    The text is split by position, the first 90% for training and the last 10% held out.
    `batch` draws random windows of T + 1 training characters; the test set tiles the held-out
    text with windows of stride T (at most `max_test_windows` of them, evenly spread), so each
    held-out character after the first is a target once. Default text: the Python documentation
    topics of `pydoc_data.topics`, joined in sorted key order (no download needed).
    Metrics: loss (mean nats per character), bits_per_char, accuracy, and for reference
    unigram_entropy and bigram_entropy; solved = loss below the bigram entropy (ours: there is
    no published number for such a corpus).
    """
    path: str | None = None   # a UTF-8 text file; None for the Python doc topics
    T: int = 100              # characters per window
    seed: int = 0             # unused: training windows come from the rng, test windows are fixed
    max_test_windows: int = 512

    name = "charlm"
    loss = "xent"
    many_to_one = False

    def __post_init__(self):
        check_int(self.name, "T", self.T, 1)
        check_int(self.name, "max_test_windows", self.max_test_windows, 1)
        text = _read(self.path)
        self._codes = np.unique(_code_points(text))            # sorted, so ids follow code point order
        self.vocab = tuple(chr(c) for c in self._codes)
        ids = self.encode(text)
        split = int(0.9 * len(ids))
        self.train_ids, self.heldout_ids = ids[:split], ids[split:]
        if len(self.heldout_ids) < self.T + 1:
            raise ValueError(f"charlm: the text must hold at least T + 1 = {self.T + 1} characters in its last "
                             f"10% (so about {10 * (self.T + 1)} in all), got {len(ids)} characters")
        self._entropies = self._smoothed_entropies()

    @property
    def input_size(self) -> int:
        return 1                              # one character id per step

    @property
    def vocab_size(self) -> int:
        return len(self.vocab)

    @property
    def output_size(self) -> int:
        return len(self.vocab)

    @property
    def paper(self) -> dict:
        return {"source": "none: no published result for this text; compare with n-gram entropies (nats/char)",
                "unigram_entropy": self.unigram_entropy(), "bigram_entropy": self.bigram_entropy()}

    def encode(self, s: str) -> np.ndarray:
        """s -> (len(s),) int64 ids; ValueError for a character outside the vocabulary."""
        codes = _code_points(s)
        ids = np.minimum(np.searchsorted(self._codes, codes), len(self._codes) - 1)
        unknown = self._codes[ids] != codes
        if unknown.any():
            raise ValueError(f"charlm: character {chr(codes[unknown][0])!r} is not in the vocabulary "
                             f"of {len(self.vocab)} characters")
        return ids.astype(np.int64)

    def decode(self, ids) -> str:
        """ids: ints in [0, V) -> the string they spell."""
        return self._codes[np.asarray(ids, np.int64)].astype("<u4").tobytes().decode("utf-32-le")

    def _windows(self, ids: np.ndarray, starts: np.ndarray) -> Batch:
        w = ids[starts[:, None] + np.arange(self.T + 1)]          # (B, T+1)
        return Batch(w[:, :-1], w[:, 1:], np.ones((len(w), self.T), bool))

    def batch(self, rng: np.random.Generator, batch_size: int) -> Batch:
        starts = rng.integers(0, len(self.train_ids) - self.T, check_batch_size(self.name, batch_size))
        return self._windows(self.train_ids, starts)

    def _make_test_set(self) -> Batch:
        n = (len(self.heldout_ids) - 1) // self.T
        chosen = np.arange(n) if n <= self.max_test_windows else \
            np.linspace(0, n - 1, self.max_test_windows).round().astype(np.int64)
        return self._windows(self.heldout_ids, chosen * self.T)

    def _smoothed_entropies(self) -> tuple[float, float]:
        """Cross-entropy (nats/char) of the held-out text under add-one-smoothed training counts.

        Unigram: p(c) = (n(c) + 1) / (N + V), averaged over every held-out character.
        Bigram: p(b | a) = (n(a b) + 1) / (n(a ·) + V), averaged over every held-out pair.
        """
        V, train, held = len(self.vocab), self.train_ids, self.heldout_ids
        unigram = np.bincount(train, minlength=V) + 1.0
        h1 = -np.mean(np.log(unigram[held] / unigram.sum()))
        pairs, counts = np.unique(train[:-1] * V + train[1:], return_counts=True)  # sparse n(a b)
        wanted = held[:-1] * V + held[1:]
        at = np.minimum(np.searchsorted(pairs, wanted), len(pairs) - 1)
        n_ab = np.where(pairs[at] == wanted, counts[at], 0)
        n_a = np.bincount(train[:-1], minlength=V)[held[:-1]]
        h2 = -np.mean(np.log((n_ab + 1.0) / (n_a + V)))
        return float(h1), float(h2)

    def unigram_entropy(self) -> float:
        """Held-out nats per character of an add-one-smoothed unigram model of the training text."""
        return self._entropies[0]

    def bigram_entropy(self) -> float:
        """Held-out nats per character of an add-one-smoothed bigram model of the training text."""
        return self._entropies[1]

    def evaluate(self, out: np.ndarray, batch: Batch) -> dict[str, float]:
        """out: (B, T, V) logits. Metrics: loss, bits_per_char, accuracy, unigram/bigram_entropy, solved.
        A non-finite logit makes its step wrong, and the batch unsolved."""
        out = check_out(self.name, out, batch.y.shape + (len(self.vocab),))
        ok = finite(out)                                              # (B, T)
        loss = mean_xent(log_softmax(out), batch.y, batch.mask)
        return {"loss": loss, "bits_per_char": loss / float(np.log(2)),
                "accuracy": float(((out.argmax(-1) == batch.y) & ok)[batch.mask].mean()),  # argmax may pick a NaN
                "unigram_entropy": self.unigram_entropy(), "bigram_entropy": self.bigram_entropy(),
                "solved": float(loss < self.bigram_entropy() and ok[batch.mask].all())}


def sample_text(model, vocab, *, prime: str = "", length: int = 500, temperature: float = 0.8,
                seed: int = 0) -> str:
    """Generate `length` characters after `prime` from a charlm model, one step at a time.

    model: a many-to-many Model over character ids (with an Embedding) or, as charlm runs before the
    Embedding wrote them, over one-hot characters; vocab: its characters in id order.
    Each sampled character is fed back in with the carried (h, c) state; temperature < 1
    sharpens the distribution, > 1 flattens it.
    """
    if not temperature > 0:
        raise ValueError(f"temperature: expected a positive number, got {temperature!r}")
    if length < 0:
        raise ValueError(f"length: expected a count >= 0, got {length!r}")
    index = {ch: k for k, ch in enumerate(vocab)}
    missing = sorted(set(prime) - set(index))
    if missing:
        raise ValueError(f"prime: characters not in the model's vocabulary: {''.join(missing)!r}")
    rng = np.random.default_rng(seed)
    ids = [index[ch] for ch in prime] or [index.get("\n", 0)]
    state, out = None, []
    for _ in range(length):
        x = np.array([ids])                                          # (1, t) ids
        x = model.embedding.forward(x) if model.embedding is not None else one_hot(x, len(vocab)).astype(model.dtype)
        y, state = model.lstm.forward(x, state)
        logits = model.head.forward(y[:, -1]).astype(np.float64)[0] / temperature
        p = np.exp(logits - logits.max())
        ids = [int(rng.choice(len(vocab), p=p / p.sum()))]
        out.append(vocab[ids[0]])
    return prime + "".join(out)
