"""An nbgrader preprocessor that keeps jupytext's pairing out of released exercises.

Every source notebook under ``solutions/`` is paired with a MyST Markdown text source by jupytext
(``metadata.jupytext.formats = "ipynb,md:myst"``). A released exercise must not carry that pairing:
a student who opens it with jupytext installed would get a paired text file, and a release folder
that also held the source's ``.md`` (with the answers) would have jupytext load the answers back into
the exercise (jupytext issue 157). ``nbgrader_config.py`` therefore ignores ``*.md`` when copying an
assignment's files and runs :class:`StripJupytextPairing` last in ``generate_assignment``.
"""

from __future__ import annotations

from nbgrader.preprocessors import NbGraderPreprocessor


class StripJupytextPairing(NbGraderPreprocessor):
    """Remove ``metadata.jupytext`` (pairing formats, text representation) from the notebook."""

    def preprocess(self, nb, resources):
        nb.metadata.pop("jupytext", None)
        return nb, resources
