"""An nbgrader feedback preprocessor that keeps hidden tests hidden.

``nbgrader generate_feedback`` renders the *autograded* notebook, in which the hidden tests were put
back into the graded test cells; left alone, the feedback page shows their source (and, in a failed
cell's traceback, the lines around the failing check). :class:`HideHiddenTests` runs before the HTML
export (``nbgrader_config.py``): in every graded test cell it replaces each
``### BEGIN HIDDEN TESTS`` ... ``### END HIDDEN TESTS`` region by one comment line, and reduces every
error output to its exception name and message. The student still sees which task failed, its score,
the visible checks, and the readable hint of the failed check (``longctx_lab.course.grading`` puts the hint
in the message), but no hidden code.
"""

from __future__ import annotations

import re

from nbgrader.preprocessors import NbGraderPreprocessor
from traitlets import Unicode

_ANSI = re.compile(r"\x1b\[[0-9;]*m")


class HideHiddenTests(NbGraderPreprocessor):
    """Strip hidden-test source and tracebacks from graded test cells (see the module docstring)."""

    begin = Unicode("### BEGIN HIDDEN TESTS").tag(config=True)
    end = Unicode("### END HIDDEN TESTS").tag(config=True)
    placeholder = Unicode("# (hidden tests, run when the notebook was graded: not shown)").tag(config=True)

    def preprocess_cell(self, cell, resources, index):
        if cell.cell_type == "code" and cell.metadata.get("nbgrader", {}).get("grade"):
            cell.source = hide_hidden_tests(cell.source, self.begin, self.end, self.placeholder)
            for output in cell.get("outputs", []):
                if output.get("output_type") == "error":
                    message = _ANSI.sub("", str(output.get("evalue", "")))
                    output["traceback"] = [f"{output.get('ename', 'Error')}: {message}"]
        return cell, resources


def hide_hidden_tests(source: str, begin: str = "### BEGIN HIDDEN TESTS", end: str = "### END HIDDEN TESTS",
                      placeholder: str = "# (hidden tests: not shown)") -> str:
    """``source`` with every ``begin`` ... ``end`` region (markers included) replaced by ``placeholder``.

    An unterminated region hides everything after ``begin``.
    """
    if not isinstance(source, str):
        raise TypeError(f"source must be a str, got {type(source).__name__}")
    out, hiding = [], False
    for line in source.splitlines():
        if not hiding and line.strip() == begin:
            hiding = True
            out.append(line[: len(line) - len(line.lstrip())] + placeholder)
        elif hiding and line.strip() == end:
            hiding = False
        elif not hiding:
            out.append(line)
    return "\n".join(out)
