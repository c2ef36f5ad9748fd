"""longctx_lab: the implementations behind the longctx-lab course.

Modules hold one concept each; see COURSE.md in the course repository for the layout.
Tensors follow ``torch.nn.functional.scaled_dot_product_attention``: ``(batch, heads, seq, head_dim)``.
"""

__version__ = "0.1.0"
