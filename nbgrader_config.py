"""nbgrader configuration: solutions/ is the source directory, exercises/ the release directory.

Assignment names are the chapter folders (``ch01_quadratic_wall``...). See INSTRUCTORS.md.
"""

import os

from nbgrader.converters import Autograde, GenerateAssignment, GenerateFeedback
from nbgrader.preprocessors import DeduplicateIds, Execute, OverwriteCells

c = get_config()  # noqa: F821 (provided by nbgrader when it loads this file)

# The course root is this file's folder, wherever nbgrader (or JupyterLab's nbgrader extension) is started.
c.CourseDirectory.root = os.path.dirname(os.path.abspath(__file__))
c.CourseDirectory.source_directory = "solutions"
c.CourseDirectory.release_directory = "exercises"
c.CourseDirectory.submitted_directory = "submitted"
c.CourseDirectory.autograded_directory = "autograded"
c.CourseDirectory.feedback_directory = "feedback"
c.CourseDirectory.course_id = "longctx-lab"
# The jupytext text sources (*.md, with the answers) stay in solutions/: never copied into a release.
c.CourseDirectory.ignore = [".ipynb_checkpoints", "*.pyc", "__pycache__", "feedback", "*.md"]

# Exercises start from a clean slate: no outputs stored, hidden tests stripped, solutions replaced.
c.ClearSolutions.code_stub = {"python": "# YOUR CODE HERE\nraise NotImplementedError()"}
c.ClearSolutions.text_stub = "YOUR ANSWER HERE"
c.ClearOutput.enabled = True
c.ClearHiddenTests.enabled = True
# ...and without the jupytext pairing of the source notebook (longctx_lab/course/grading/nbgrader_release.py).
c.GenerateAssignment.preprocessors = [
    *GenerateAssignment.class_traits()["preprocessors"].default(),
    "longctx_lab.course.grading.nbgrader_release.StripJupytextPairing",
]

# Autograding: 60 s per cell at most (longctx_lab.course.grading limits each call of a student's function to a few
# seconds, stated per task), and a cell that kills the kernel or ignores the interrupt fails alone: the kernel
# is restarted and grading goes on (longctx_lab/course/grading/nbgrader_execute.py replaces nbgrader's Execute).
c.ExecutePreprocessor.timeout = 60
c.Execute.timeout = 60
# Sanitizing: a copied, deleted, stripped or invented graded cell must not stop grading for everyone
# (longctx_lab/course/grading/nbgrader_sanitize.py; `longctx-lab audit` reports each one).
_replace = {DeduplicateIds: "longctx_lab.course.grading.nbgrader_sanitize.DropDuplicateIds",
            OverwriteCells: "longctx_lab.course.grading.nbgrader_sanitize.OverwriteKnownCells"}
c.Autograde.sanitize_preprocessors = [_replace.get(pp, pp)
                                      for pp in Autograde.class_traits()["sanitize_preprocessors"].default()]
c.OverwriteCells.add_missing_cells = True  # a deleted graded cell is put back from the source (and audited)
c.Autograde.autograde_preprocessors = [
    "longctx_lab.course.grading.nbgrader_execute.ResilientExecute" if pp is Execute else pp
    for pp in Autograde.class_traits()["autograde_preprocessors"].default()
]
# Feedback shows each task's score, its visible checks and the hint of a failed check, never hidden-test source
# or tracebacks into it (longctx_lab/course/grading/nbgrader_feedback.py).
c.GenerateFeedback.preprocessors = [
    "longctx_lab.course.grading.nbgrader_feedback.HideHiddenTests",
    *GenerateFeedback.class_traits()["preprocessors"].default(),
]
