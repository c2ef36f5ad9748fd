"""An nbgrader ``Execute`` preprocessor that survives a cell which kills or wedges the kernel.

nbgrader's own ``Execute`` gives up on the whole notebook when one cell ends the kernel (``os._exit``,
a segfault, running out of memory) or runs past the cell timeout without answering the interrupt (a
loop that ignores ``SIGINT``): the submission then scores 0 with no feedback. :class:`ResilientExecute`
instead records a readable error in that cell (so a graded cell scores 0 for that task only), restarts
the kernel, re-runs the code cells above it (their outputs are kept, the failed cells are skipped) and
goes on with the next cell. After ``max_restarts`` restarts the remaining cells are marked as not run.

``nbgrader_config.py`` puts it in place of ``Execute`` in ``Autograde.autograde_preprocessors``.
"""

from __future__ import annotations

import copy

from nbclient.exceptions import CellTimeoutError, DeadKernelError
from nbclient.util import run_sync
from nbformat import NotebookNode
from nbgrader.preprocessors import Execute
from traitlets import Integer

_HOW = {
    "timeout": "ran longer than the {timeout} s cell time limit and did not stop when interrupted",
    "died": "ended the Python kernel (os._exit(), a crash, or running out of memory)",
}


class ResilientExecute(Execute):
    """``Execute``, but a cell that kills or wedges the kernel fails alone (see the module docstring)."""

    max_restarts = Integer(3, help="kernel restarts per notebook before the remaining cells are marked not run"
                           ).tag(config=True)

    def preprocess(self, nb, resources=None, km=None):
        self._skipped: set[int] = set()
        self._restarts = 0
        self._abandoned = False
        return super().preprocess(nb, resources, km)

    def preprocess_cell(self, cell, resources, index):
        if self._abandoned:
            if cell.cell_type == "code":
                cell.outputs = [_error("NotRun", "not run: the kernel was restarted too many times above this cell")]
            return cell, self.resources
        try:
            return super().preprocess_cell(cell, resources, index)
        except (CellTimeoutError, DeadKernelError) as exc:
            why = "died" if isinstance(exc, DeadKernelError) else "timeout"
            self.log.warning("cell %d %s; restarting the kernel and re-running the cells above it", index, why)
            message = (f"This cell {_HOW[why].format(timeout=self.timeout)}, so the grader restarted the kernel, "
                       "re-ran the cells above it and went on with the next cell.")
            cell.outputs = [_error("DeadKernelError" if why == "died" else "CellTimeoutError", message)]
            self._skipped.add(index)
            self._recover(index)
            return cell, self.resources

    def _recover(self, index: int) -> None:
        self._restarts += 1
        if self._restarts > self.max_restarts:
            self._abandoned = True
            return
        run_sync(self.km.restart_kernel)(now=True)
        if self.kc is not None:
            self.kc.stop_channels()
            self.kc = None
        self.start_new_kernel_client()
        for i, earlier in enumerate(self.nb.cells[:index]):
            if earlier.cell_type != "code" or i in self._skipped:
                continue
            try:
                self.execute_cell(copy.deepcopy(earlier), i, store_history=False)
            except (CellTimeoutError, DeadKernelError):
                self._skipped.add(i)
                self._abandoned = True  # a cell that passed before fails on the re-run: stop here
                return


def _error(ename: str, message: str) -> NotebookNode:
    return NotebookNode(output_type="error", ename=ename, evalue=message, traceback=[f"{ename}: {message}"])
