"""longctx_lab: the implementations behind the longctx-lab course.

Modules hold one concept each (DEVELOPING.md says where things go). Shapes, masks, units, seeds and
error messages follow docs/conventions.md; a module's docstring states only where it differs.
"""

__version__ = "0.1.0"
