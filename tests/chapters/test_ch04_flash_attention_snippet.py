"""The articles' tiled snippet is wrong (softmax per block, outputs summed); the online-softmax fix is exact."""

import pytest
import torch

from longctx_lab.attention.naive_tiled_snippet import (
    articles_flash_attention,
    exact_attention,
    fixed_flash_attention,
    snippet_error,
)


def _qkv(batch, seq, d, seed=0):
    gen = torch.Generator().manual_seed(seed)
    return [torch.randn(batch, seq, d, generator=gen, dtype=torch.float64) * d**-0.25 for _ in range(3)]


def test_snippet_is_exact_with_one_block_only():
    q, k, v = _qkv(2, 40, 8)
    torch.testing.assert_close(articles_flash_attention(q, k, v, 40), exact_attention(q, k, v))
    torch.testing.assert_close(articles_flash_attention(q, k, v, 64), exact_attention(q, k, v))
    assert (articles_flash_attention(q, k, v, 16) - exact_attention(q, k, v)).abs().max() > 0.1


def test_snippet_sums_independent_block_attentions():
    # Independent restatement of what the snippet computes: exact attention within each key
    # block, added over the blocks (no weighting by each block's share of the softmax mass).
    q, k, v = _qkv(1, 50, 8, seed=1)
    block = 16
    expected = sum(exact_attention(q, k[:, j : j + block], v[:, j : j + block]) for j in range(0, 50, block))
    torch.testing.assert_close(articles_flash_attention(q, k, v, block), expected)


@pytest.mark.parametrize("seq_len, block", [(100, 30), (256, 64), (37, 5), (64, 64)])
def test_fix_is_exact_and_snippet_weights_sum_to_block_count(seq_len, block):
    q, k, v = _qkv(2, seq_len, 8, seed=2)
    torch.testing.assert_close(fixed_flash_attention(q, k, v, block), exact_attention(q, k, v), rtol=1e-12, atol=1e-13)
    result = snippet_error(seq_len, 8, block, batch=2, seed=2)
    n_blocks = -(-seq_len // block)
    assert result["n_key_blocks"] == n_blocks
    assert result["snippet_row_weight_sum"] == pytest.approx(n_blocks)
    assert result["fixed_max_abs_error"] < 1e-12
    if n_blocks > 1:
        assert result["snippet_relative_error"] > 0.5
    else:
        assert result["snippet_max_abs_error"] < 1e-12


def test_bad_inputs():
    q, k, v = _qkv(1, 8, 4)
    with pytest.raises(ValueError, match="block_size must be an integer >= 1, got 0"):
        articles_flash_attention(q, k, v, 0)
    with pytest.raises(ValueError, match="3 dimensions"):
        fixed_flash_attention(q[0], k[0], v[0])
    with pytest.raises(ValueError, match="share one shape"):
        exact_attention(q, k[:, :4], v)
    with pytest.raises(ValueError, match="share one shape"):
        articles_flash_attention(q, k[:, :4], v[:, :4])
    with pytest.raises(TypeError, match="share one dtype"):
        articles_flash_attention(q, k.float(), v)
    with pytest.raises(ValueError, match="seq_len must be an integer >= 1"):
        snippet_error(0)


def test_printed_snippet_is_the_one_measured():
    """The text the chapter prints, run with its two literal slips fixed, is articles_flash_attention."""
    from longctx_lab.attention.naive_tiled_snippet import ARTICLE_SNIPPET

    assert "S_block = Q_block @ K_block.T" in ARTICLE_SNIPPET and "P_block = softmax(S_block)" in ARTICLE_SNIPPET
    source = ARTICLE_SNIPPET.replace("K_block.T", "K_block.transpose(-2, -1)")
    namespace = {"torch": torch, "softmax": lambda s: torch.softmax(s, dim=-1)}
    exec(source, namespace)  # noqa: S102 - the course's own constant
    q, k, v = _qkv(2, 70, 8, seed=3)
    torch.testing.assert_close(namespace["flash_attention"](q, k, v, 32), articles_flash_attention(q, k, v, 32))
