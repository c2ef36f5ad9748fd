"""The shared vocabulary of the synthetic long-context tasks: token ids <-> strings.

One :class:`Vocab` (:data:`VOCAB`) is used by every generator of :mod:`longctx_lab.lm.tasks.generators`, by the
NIAH harness and by the tiny LM, so a model trained on the tasks and the tests agree on every id. Each token is
one "word", so any position in a sequence is a token boundary. The ids, in order:

- specials ``<pad>`` 0, ``<bos>`` 1, ``<q>`` 2 (the query starts), ``<a>`` 3 (the answer starts),
  ``=`` 4, ``;`` 5 (ends a statement), ``pass`` 6 (the passkey's key);
- digits ``0`` .. ``9`` (ids 7 .. 16), the values;
- keys / variable names ``K0`` .. ``K15`` (ids 17 .. 32);
- filler words ``w0`` .. ``w23`` (ids 33 .. 56), the haystack and the words of common-word extraction.

57 tokens in all (:attr:`Vocab.size`). Conventions and errors: docs/conventions.md.
"""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["VOCAB", "Vocab"]

SPECIALS = ("<pad>", "<bos>", "<q>", "<a>", "=", ";", "pass")


@dataclass(frozen=True)
class Vocab:
    """Token strings in id order, with the groups the generators draw from (module docstring)."""

    n_keys: int = 16
    n_filler: int = 24
    tokens: tuple[str, ...] = field(init=False)

    def __post_init__(self):
        tokens = SPECIALS + tuple(str(d) for d in range(10)) + tuple(f"K{i}" for i in range(self.n_keys)) + tuple(
            f"w{i}" for i in range(self.n_filler))
        object.__setattr__(self, "tokens", tokens)
        object.__setattr__(self, "_ids", {t: i for i, t in enumerate(tokens)})

    @property
    def size(self) -> int:
        """Number of tokens (the ``vocab_size`` a model needs)."""
        return len(self.tokens)

    def id(self, token: str) -> int:
        """Id of one token string; ``ValueError`` naming it when it is not in the vocabulary."""
        try:
            return self._ids[token]
        except (KeyError, TypeError):
            raise ValueError(f"token must be one of the vocabulary's {self.size} strings, got {token!r}") from None

    def encode(self, text) -> list[int]:
        """Ids of a whitespace-separated string, or of a list of token strings."""
        words = text.split() if isinstance(text, str) else list(text)
        return [self.id(w) for w in words]

    def decode(self, ids) -> str:
        """Space-separated token strings of a list of ids; ``ValueError`` for an id outside ``[0, size)``."""
        out = []
        for i in ids:
            if isinstance(i, bool) or not isinstance(i, int) or not 0 <= i < self.size:
                raise ValueError(f"ids must hold token ids in [0, {self.size}), got {i!r}")
            out.append(self.tokens[i])
        return " ".join(out)

    # Groups (ids) the generators draw from.
    @property
    def pad(self) -> int:
        return 0

    @property
    def bos(self) -> int:
        return 1

    @property
    def query(self) -> int:
        return 2

    @property
    def answer(self) -> int:
        return 3

    @property
    def equals(self) -> int:
        return 4

    @property
    def end(self) -> int:
        return 5

    @property
    def passkey(self) -> int:
        return 6

    @property
    def digits(self) -> list[int]:
        return list(range(len(SPECIALS), len(SPECIALS) + 10))

    @property
    def keys(self) -> list[int]:
        start = len(SPECIALS) + 10
        return list(range(start, start + self.n_keys))

    @property
    def filler(self) -> list[int]:
        start = len(SPECIALS) + 10 + self.n_keys
        return list(range(start, start + self.n_filler))


VOCAB = Vocab()
