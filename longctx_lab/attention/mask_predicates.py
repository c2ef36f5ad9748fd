"""Masks as predicates ``mask(q_idx, kv_idx) -> bool``: the form kernels evaluate tile by tile.

A dense ``(q_len, kv_len)`` boolean mask costs ``q_len * kv_len`` bytes; at 128K tokens that is
16 GiB per mask, more than the keys and values themselves. A kernel therefore never reads a dense
mask: it evaluates a small rule on the (query position, key position) pairs of the tile it is
working on (FlexAttention calls this a ``mask_mod``). This module writes every mask of chapter 3 as
such a rule, a :class:`MaskPredicate`, and materialises the dense tensor only on request.

Conventions (``True`` = the query may attend to the key):

* Indices are *absolute positions*. ``q_idx`` and ``kv_idx`` are Python ints or integer tensors
  that broadcast against each other; the result is a boolean tensor of the broadcast shape.
* :meth:`MaskPredicate.dense` builds the ``(q_len, kv_len)`` tensor; alignment (bottom-right) and the
  sliding window (causal ``p - w < j <= p``, bidirectional ``|p - j| < w``) are those of docs/conventions.md.
* Predicates built on lookup tables (global tokens, BigBird's random blocks, document ids) are
  defined for positions ``0 .. length - 1``; :attr:`MaskPredicate.length` records that bound and
  :meth:`dense` refuses longer sequences.
"""

from __future__ import annotations

import numbers
from collections.abc import Callable, Sequence

import torch

from longctx_lab.core.validate import check_bool, check_int

__all__ = [
    "MaskPredicate",
    "and_masks",
    "attention_predicate",
    "axial_predicate",
    "band_predicate",
    "bigbird_block_layout",
    "bigbird_predicate",
    "causal_predicate",
    "dilated_window_predicate",
    "document_ids",
    "document_predicate",
    "full_predicate",
    "longformer_predicate",
    "or_masks",
    "prefix_lm_predicate",
    "sink_window_predicate",
    "sliding_window_predicate",
]


def _as_index(name: str, value) -> torch.Tensor:
    if isinstance(value, torch.Tensor):
        if value.dtype == torch.bool or value.is_floating_point() or value.is_complex():
            raise TypeError(f"{name} must hold integer positions, got a tensor of dtype {value.dtype}")
        return value
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an int or an integer tensor, got {type(value).__name__} {value!r}")
    return torch.tensor(int(value))


class MaskPredicate:
    """A mask rule ``pred(q_idx, kv_idx) -> bool tensor`` over absolute positions.

    ``fn`` receives two integer tensors that broadcast together and must return a boolean tensor
    of their broadcast shape using elementwise torch operations only (so the same rule runs
    eagerly, under ``torch.vmap`` and inside FlexAttention's ``create_block_mask``).
    ``length`` is ``None`` for rules defined at every position, else the number of positions a
    lookup-table rule covers. Combine rules with ``&`` / ``|`` (or :func:`and_masks` /
    :func:`or_masks`).

    ``band = (lo, hi)`` is an optional promise that every kept pair has ``lo <= q - k <= hi``
    (``None`` = unbounded on that side). It is what a kernel uses as loop bounds: for a causal
    window only the key blocks within ``window - 1`` behind the query block are visited at all.
    ``band_exact=True`` promises more: a pair is kept *exactly* when it lies in the band (full,
    causal and sliding-window attention, built by :func:`band_predicate`), so a tile that lies
    wholly inside the band needs no mask at all (:meth:`covers`).
    """

    def __init__(
        self,
        fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
        name: str,
        *,
        length=None,
        band: tuple[int | None, int | None] | None = None,
        band_exact: bool = False,
    ):
        if not callable(fn):
            raise TypeError(f"fn must be callable, got {type(fn).__name__}")
        if not isinstance(name, str) or not name:
            raise TypeError(f"name must be a non-empty string, got {name!r}")
        self._fn = fn
        self.name = name
        self.length = None if length is None else check_int("length", length, minimum=1)
        if band is not None:
            if not isinstance(band, tuple) or len(band) != 2:
                raise TypeError(f"band must be a (lo, hi) tuple, got {band!r}")
            lo, hi = (None if b is None else check_int("band", b) for b in band)
            if lo is not None and hi is not None and lo > hi:
                raise ValueError(f"band must have lo <= hi, got {band}")
            band = (lo, hi) if (lo, hi) != (None, None) else None
        self.band = band
        self.band_exact = check_bool("band_exact", band_exact)

    def __call__(self, q_idx, kv_idx) -> torch.Tensor:
        q_idx = _as_index("q_idx", q_idx)
        kv_idx = _as_index("kv_idx", kv_idx)
        for name, idx in (("q_idx", q_idx), ("kv_idx", kv_idx)):
            if idx.numel() and int(idx.min()) < 0:
                raise ValueError(f"{name} must hold positions >= 0, got {int(idx.min())}")
            if self.length is not None and idx.numel() and int(idx.max()) >= self.length:
                raise ValueError(
                    f"{name} must hold positions < {self.length} for mask {self.name!r}, got {int(idx.max())}"
                )
        return self._fn(q_idx, kv_idx)

    def __repr__(self) -> str:
        extra = f", length={self.length}" if self.length is not None else ""
        return f"MaskPredicate({self.name}{extra})"

    def __and__(self, other: MaskPredicate) -> MaskPredicate:
        return and_masks(self, other)

    def __or__(self, other: MaskPredicate) -> MaskPredicate:
        return or_masks(self, other)

    def check_lengths(self, q_len: int, kv_len: int | None = None) -> tuple[int, int]:
        """Validate ``q_len``/``kv_len`` (``kv_len`` defaults to ``q_len``) against :attr:`length`.

        ``q_len > kv_len`` puts the first queries at negative positions (bottom-right alignment);
        rules defined at every position (``length is None``) evaluate them as written, so under
        ``causal`` those rows see no key. Lookup-table rules refuse it.
        """
        q_len = check_int("q_len", q_len, minimum=1)
        kv_len = q_len if kv_len is None else check_int("kv_len", kv_len, minimum=1)
        if q_len > kv_len and self.length is not None:
            raise ValueError(
                f"q_len must be <= kv_len for mask {self.name!r} (queries are the last q_len positions), "
                f"got q_len={q_len}, kv_len={kv_len}"
            )
        if self.length is not None and kv_len > self.length:
            raise ValueError(
                f"kv_len must be <= {self.length}, the positions mask {self.name!r} was built for, got {kv_len}"
            )
        return q_len, kv_len

    def dense(self, q_len: int, kv_len: int | None = None, *, device=None) -> torch.Tensor:
        """The boolean ``(q_len, kv_len)`` mask; row ``r`` is query position ``r + kv_len - q_len``."""
        q_len, kv_len = self.check_lengths(q_len, kv_len)
        return self.rows(kv_len - q_len, kv_len, 0, kv_len, device=device)

    def rows(self, q_start: int, q_stop: int, k_start: int, k_stop: int, *, device=None) -> torch.Tensor:
        """The ``(q_stop - q_start, k_stop - k_start)`` block of the mask: query positions
        ``q_start .. q_stop - 1`` against key positions ``k_start .. k_stop - 1`` (no checks: internal)."""
        q_pos = torch.arange(q_start, q_stop, device=device)[:, None]
        k_pos = torch.arange(k_start, k_stop, device=device)[None, :]
        out = self._fn(q_pos, k_pos)
        if not isinstance(out, torch.Tensor) or out.dtype != torch.bool:
            raise TypeError(f"mask {self.name!r} must return a boolean tensor, got {getattr(out, 'dtype', out)!r}")
        return out.expand(q_stop - q_start, k_stop - k_start)

    def evaluate(self, q_idx: torch.Tensor, kv_idx: torch.Tensor) -> torch.Tensor:
        """The rule on integer position tensors, without validation (for inner loops)."""
        return self._fn(q_idx, kv_idx)

    def covers(self, q_start: int, q_stop: int, k_start: int, k_stop: int) -> bool:
        """True when every pair of query positions ``q_start .. q_stop - 1`` and key positions
        ``k_start .. k_stop - 1`` is kept, known from the band alone (only for ``band_exact``
        rules; ``False`` otherwise). A kernel skips the element mask on such a tile."""
        if not self.band_exact:
            return False
        lo, hi = self.band if self.band is not None else (None, None)
        # q - k ranges over [q_start - (k_stop - 1), (q_stop - 1) - k_start] on this tile
        return (lo is None or q_start - (k_stop - 1) >= lo) and (hi is None or q_stop - 1 - k_start <= hi)

    def key_range(self, q_start: int, q_stop: int, kv_len: int) -> tuple[int, int]:
        """Keys ``[k_start, k_stop)`` that queries ``q_start .. q_stop - 1`` can possibly see,
        from :attr:`band` (all of ``0 .. kv_len - 1`` without one)."""
        lo, hi = self.band if self.band is not None else (None, None)
        k_start = 0 if hi is None else max(0, q_start - hi)
        k_stop = kv_len if lo is None else min(kv_len, q_stop - 1 - lo + 1)
        return k_start, max(k_start, k_stop)

    def as_mask_mod(self, q_offset: int = 0):
        """A FlexAttention ``mask_mod(b, h, q_idx, kv_idx)``; FlexAttention numbers queries from 0,
        so pass ``q_offset = kv_len - q_len`` for bottom-right alignment."""
        q_offset = check_int("q_offset", q_offset, minimum=0)
        fn = self._fn
        return lambda b, h, q_idx, kv_idx: fn(q_idx + q_offset, kv_idx)


def _check_predicates(preds) -> list[MaskPredicate]:
    if not preds:
        raise ValueError("masks must hold at least one MaskPredicate, got none")
    for p in preds:
        if not isinstance(p, MaskPredicate):
            raise TypeError(f"masks must be MaskPredicate objects, got {type(p).__name__}")
    return list(preds)


def _combined_length(preds) -> int | None:
    lengths = [p.length for p in preds if p.length is not None]
    return min(lengths) if lengths else None


def and_masks(*masks: MaskPredicate) -> MaskPredicate:
    """Intersection: a pair is kept when every mask keeps it (e.g. causal & document)."""
    preds = _check_predicates(masks)

    def fn(q, k):
        out = preds[0]._fn(q, k)
        for p in preds[1:]:
            out = out & p._fn(q, k)
        return out

    # The intersection's band is the tightest of the bands given.
    los = [p.band[0] for p in preds if p.band is not None and p.band[0] is not None]
    his = [p.band[1] for p in preds if p.band is not None and p.band[1] is not None]
    band = (max(los) if los else None, min(his) if his else None)
    if band[0] is not None and band[1] is not None and band[0] > band[1]:
        band = (band[0], band[0])  # nothing is kept; any one-offset band is a valid promise
    return MaskPredicate(fn, "(" + " & ".join(p.name for p in preds) + ")", length=_combined_length(preds),
                         band=band)


def or_masks(*masks: MaskPredicate) -> MaskPredicate:
    """Union: a pair is kept when any mask keeps it (e.g. local window | global tokens)."""
    preds = _check_predicates(masks)

    def fn(q, k):
        out = preds[0]._fn(q, k)
        for p in preds[1:]:
            out = out | p._fn(q, k)
        return out

    # The union's band is the hull of the bands, unbounded if any side of any mask is.
    band = None
    if all(p.band is not None for p in preds):
        los = [p.band[0] for p in preds]
        his = [p.band[1] for p in preds]
        band = (None if None in los else min(los), None if None in his else max(his))
    return MaskPredicate(fn, "(" + " | ".join(p.name for p in preds) + ")", length=_combined_length(preds),
                         band=band)


def band_predicate(lo: int | None, hi: int | None, name: str) -> MaskPredicate:
    """The rule "keep ``(q, k)`` exactly when ``lo <= q - k <= hi``" (``None``: no bound on that side).

    Full, causal and sliding-window attention are all bands of diagonals; this is their one
    definition, shared by the dense masks (:mod:`~longctx_lab.attention.masks`), the tile classes
    (:mod:`~longctx_lab.attention.block_sparsity`) and the tiled kernel's loop bounds and tile masks
    (:mod:`~longctx_lab.attention.tiled`).
    """
    lo = None if lo is None else check_int("lo", lo)
    hi = None if hi is None else check_int("hi", hi)

    def fn(q, k):
        d = q - k
        keep = d == d  # all True, in the broadcast shape
        if lo is not None:
            keep = keep & (d >= lo)
        if hi is not None:
            keep = keep & (d <= hi)
        return keep

    return MaskPredicate(fn, name, band=(lo, hi), band_exact=True)


def full_predicate() -> MaskPredicate:
    """Every query sees every key (bidirectional full attention)."""
    return band_predicate(None, None, "full")


def causal_predicate() -> MaskPredicate:
    """Query ``p`` sees keys ``j <= p``."""
    return band_predicate(0, None, "causal")


def sliding_window_predicate(window: int, *, causal: bool = True) -> MaskPredicate:
    """Sliding window of ``window`` keys.

    Causal: query ``p`` sees ``p - window < j <= p`` (itself and the ``window - 1`` before it;
    flash-attn ``window_size=(window - 1, 0)``). Bidirectional: ``|p - j| < window``.
    """
    window = check_int("window", window, minimum=1)
    check_bool("causal", causal)
    if causal:
        return band_predicate(0, window - 1, f"window{window}")
    return band_predicate(1 - window, window - 1, f"window{window}-bidir")


def sink_window_predicate(window: int, sinks: int) -> MaskPredicate:
    """A causal sliding window of ``window`` keys plus ``sinks`` attention sinks (StreamingLLM, Xiao et al. 2023).

    Query ``p`` sees keys ``p - window < j <= p`` and the first ``sinks`` positions ``j < min(sinks, p + 1)``
    (a sink is never in a query's future). ``sinks=0`` is :func:`sliding_window_predicate`. Its band is
    ``(0, None)`` (causal, unbounded behind: a sink may be any distance back), not exact.
    """
    window = check_int("window", window, minimum=1)
    sinks = check_int("sinks", sinks, minimum=0)
    if sinks == 0:
        return sliding_window_predicate(window)

    def fn(q, k):
        d = q - k
        return (d >= 0) & ((d < window) | (k < sinks))

    return MaskPredicate(fn, f"window{window}+sinks{sinks}", band=(0, None))


def attention_predicate(*, causal: bool = False, window: int | None = None) -> MaskPredicate:
    """The rule for the ``causal``/``window`` arguments every attention function takes.

    No mask: :func:`full_predicate`; ``causal`` only: :func:`causal_predicate`; a window:
    :func:`sliding_window_predicate` (bidirectional without ``causal``).
    """
    check_bool("causal", causal)
    if window is not None:
        return sliding_window_predicate(check_int("window", window, minimum=1), causal=causal)
    return causal_predicate() if causal else full_predicate()


def dilated_window_predicate(window: int, dilation: int, *, causal: bool = True) -> MaskPredicate:
    """A window of ``window`` keys spaced ``dilation`` apart.

    Causal: query ``p`` sees ``j = p - m * dilation`` for ``m = 0 .. window - 1`` (span
    ``(window - 1) * dilation + 1`` positions). Bidirectional: also ``j = p + m * dilation``.
    ``dilation=1`` is the ordinary sliding window.
    """
    window = check_int("window", window, minimum=1)
    dilation = check_int("dilation", dilation, minimum=1)
    check_bool("causal", causal)
    reach = (window - 1) * dilation

    if causal:
        def fn(q, k):
            d = q - k
            return (d >= 0) & (d <= reach) & (d % dilation == 0)
    else:
        def fn(q, k):
            d = (q - k).abs()
            return (d <= reach) & (d % dilation == 0)

    suffix = "" if causal else "-bidir"
    band = (0, reach) if causal else (-reach, reach)
    return MaskPredicate(fn, f"dilated{window}x{dilation}{suffix}", band=band)


def prefix_lm_predicate(prefix_len: int) -> MaskPredicate:
    """Prefix LM: the first ``prefix_len`` positions see each other bidirectionally; every query
    also sees all keys ``j <= p`` (keys ``j < prefix_len`` or ``j <= p``)."""
    prefix_len = check_int("prefix_len", prefix_len, minimum=0)
    return MaskPredicate(lambda q, k: (k <= q) | (k < prefix_len), f"prefix{prefix_len}")


def _global_flags(global_tokens, seq_len: int) -> torch.Tensor:
    if isinstance(global_tokens, torch.Tensor):
        if global_tokens.dtype == torch.bool or global_tokens.is_floating_point():
            raise TypeError(f"global_tokens must hold integer positions, got a tensor of dtype {global_tokens.dtype}")
        global_tokens = global_tokens.flatten().tolist()
    if isinstance(global_tokens, (str, bytes)) or not isinstance(global_tokens, Sequence):
        raise TypeError(f"global_tokens must be a sequence of positions, got {type(global_tokens).__name__}")
    flags = torch.zeros(seq_len, dtype=torch.bool)
    for g in global_tokens:
        g = check_int("global_tokens[i]", g, minimum=0)
        if g >= seq_len:
            raise ValueError(f"global_tokens must be positions < seq_len={seq_len}, got {g}")
        flags[g] = True
    return flags


def longformer_predicate(window: int, global_tokens, seq_len: int, *, causal: bool = False) -> MaskPredicate:
    """Longformer: a sliding window plus global tokens that see, and are seen by, every position.

    Local part: ``|p - j| < window`` (bidirectional, as in the Longformer encoder) or the causal
    window ``p - window < j <= p``. A global position ``g`` adds row ``g`` (it sees every key) and
    column ``g`` (every query sees it); with ``causal=True`` both stay within ``j <= p``.
    Note Longformer's paper quotes the window as the total width ``w`` (``w/2`` per side); here
    ``window`` counts the keys on one side, the query included.
    """
    window = check_int("window", window, minimum=1)
    seq_len = check_int("seq_len", seq_len, minimum=1)
    check_bool("causal", causal)
    flags = _global_flags(global_tokens, seq_len)
    local = sliding_window_predicate(window, causal=causal)._fn

    def fn(q, k):
        glob = flags[q] | flags[k]
        if causal:
            glob = glob & (k <= q)
        return local(q, k) | glob

    n_global = int(flags.sum())
    return MaskPredicate(fn, f"longformer{window}+{n_global}g{'-causal' if causal else ''}", length=seq_len)


def bigbird_block_layout(
    seq_len: int,
    block_size: int,
    *,
    window_blocks: int = 3,
    global_blocks: int = 1,
    random_blocks: int = 2,
    seed: int = 0,
) -> torch.Tensor:
    """BigBird's block pattern: a boolean ``(n_blocks, n_blocks)`` table, ``n_blocks = ceil(seq_len / block_size)``.

    Query block ``a`` sees key block ``b`` when: ``|a - b| <= window_blocks // 2`` (window);
    ``a < global_blocks`` or ``b < global_blocks`` (global blocks at the start); or ``b`` is one of
    ``random_blocks`` key blocks drawn for row ``a`` without replacement, from the blocks the first
    two rules leave out, with ``torch.Generator().manual_seed(seed)`` (same seed, same pattern).
    """
    seq_len = check_int("seq_len", seq_len, minimum=1)
    block_size = check_int("block_size", block_size, minimum=1)
    window_blocks = check_int("window_blocks", window_blocks, minimum=1)
    if window_blocks % 2 == 0:
        raise ValueError(f"window_blocks must be an odd integer (the block and its neighbours), got {window_blocks}")
    global_blocks = check_int("global_blocks", global_blocks, minimum=0)
    random_blocks = check_int("random_blocks", random_blocks, minimum=0)
    seed = check_int("seed", seed)
    n = -(-seq_len // block_size)
    a = torch.arange(n)[:, None]
    b = torch.arange(n)[None, :]
    table = ((a - b).abs() <= window_blocks // 2) | (a < global_blocks) | (b < global_blocks)
    gen = torch.Generator().manual_seed(seed)
    for row in range(global_blocks, n):
        free = (~table[row]).nonzero().flatten()
        if len(free) == 0 or random_blocks == 0:
            continue
        pick = free[torch.randperm(len(free), generator=gen)[:random_blocks]]
        table[row, pick] = True
    return table


def bigbird_predicate(
    seq_len: int,
    block_size: int,
    *,
    window_blocks: int = 3,
    global_blocks: int = 1,
    random_blocks: int = 2,
    seed: int = 0,
) -> MaskPredicate:
    """BigBird (window + global + seeded random key blocks), bidirectional, at token level:
    query ``p`` sees key ``j`` when ``layout[p // block_size, j // block_size]``
    (see :func:`bigbird_block_layout`)."""
    layout = bigbird_block_layout(
        seq_len, block_size, window_blocks=window_blocks, global_blocks=global_blocks,
        random_blocks=random_blocks, seed=seed,
    )
    n = layout.shape[0]
    flat = layout.flatten()

    def fn(q, k):
        return flat[(q // block_size) * n + k // block_size]

    name = f"bigbird(b={block_size},w={window_blocks},g={global_blocks},r={random_blocks},seed={seed})"
    return MaskPredicate(fn, name, length=seq_len)


def document_ids(doc_lengths: Sequence[int]) -> torch.Tensor:
    """Document id of each position of a packed sequence: ``[2, 3] -> [0, 0, 1, 1, 1]``."""
    if isinstance(doc_lengths, (str, bytes)) or not isinstance(doc_lengths, (Sequence, torch.Tensor)):
        raise TypeError(f"doc_lengths must be a sequence of integers, got {type(doc_lengths).__name__}")
    if isinstance(doc_lengths, torch.Tensor):
        doc_lengths = doc_lengths.tolist()
    if len(doc_lengths) == 0:
        raise ValueError("doc_lengths must hold at least one document length, got an empty sequence")
    lengths = [check_int("doc_lengths[i]", n, minimum=1) for n in doc_lengths]
    return torch.repeat_interleave(torch.arange(len(lengths)), torch.tensor(lengths))


def document_predicate(doc_lengths: Sequence[int], *, causal: bool = True) -> MaskPredicate:
    """Packed sequences: documents of the given lengths laid end to end; a query sees only keys of
    its own document (and, with ``causal=True``, only ``j <= p``). Defined for ``sum(doc_lengths)``
    positions."""
    check_bool("causal", causal)
    ids = document_ids(doc_lengths)

    if causal:
        def fn(q, k):
            return (ids[q] == ids[k]) & (k <= q)
    else:
        def fn(q, k):
            return ids[q] == ids[k]

    return MaskPredicate(fn, f"documents{len(doc_lengths)}{'-causal' if causal else ''}", length=len(ids))


def axial_predicate(grid_cols: int, axis: str) -> MaskPredicate:
    """Axial attention over a sequence laid out row-major on a grid ``grid_cols`` wide.

    ``axis="row"``: query ``p`` sees the keys of its own row (``p // grid_cols == j // grid_cols``);
    ``axis="col"``: the keys of its own column (``p % grid_cols == j % grid_cols``). Bidirectional.
    A row pass followed by a column pass lets every position reach every other in two layers.
    """
    grid_cols = check_int("grid_cols", grid_cols, minimum=1)
    if axis == "row":
        return MaskPredicate(lambda q, k: q // grid_cols == k // grid_cols, f"axial-row{grid_cols}",
                             band=(1 - grid_cols, grid_cols - 1))
    if axis == "col":
        return MaskPredicate(lambda q, k: q % grid_cols == k % grid_cols, f"axial-col{grid_cols}")
    raise ValueError(f"axis must be 'row' or 'col', got {axis!r}")
