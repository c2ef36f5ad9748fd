"""nbgrader configuration: solutions/ is the source directory, exercises/ the release directory.

Assignment names are the chapter folders (``ch01_quadratic_wall``...). See INSTRUCTORS.md.
"""

import os

from nbgrader.converters import GenerateAssignment

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
# ...and without the jupytext pairing of the source notebook (longctx_lab/nbgrader_release.py).
c.GenerateAssignment.preprocessors = [
    *GenerateAssignment.class_traits()["preprocessors"].default(),
    "longctx_lab.nbgrader_release.StripJupytextPairing",
]
c.ExecutePreprocessor.timeout = 300
c.Execute.timeout = 300
