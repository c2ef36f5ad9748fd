"""nbgrader sanitizing steps that keep one damaged submission from stopping the whole autograde run.

nbgrader 0.9's ``DeduplicateIds`` turns the metadata of a copied graded cell into an empty
``nbgrader: {}``, which its own metadata validator then reads as schema version 0 and answers with
``SchemaTooOldError``: ``nbgrader autograde`` stops for every student after that one. :class:`DropDuplicateIds`
removes the ``nbgrader`` metadata of the other copies instead (they become plain cells; the last one, as
in nbgrader, is graded, restored from the source like any locked cell). ``nbgrader_config.py`` uses it in place
of ``DeduplicateIds``, :class:`OverwriteKnownCells` in place of ``OverwriteCells``, and sets
``OverwriteCells.add_missing_cells`` so that a deleted (or metadata-stripped)
graded cell is put back from the source and graded. ``longctx-lab audit`` reports all of these.
"""

from __future__ import annotations

from nbgrader import utils
from nbgrader.preprocessors import DeduplicateIds, OverwriteCells


class DropDuplicateIds(DeduplicateIds):
    """``DeduplicateIds`` that leaves no empty ``nbgrader`` metadata behind (see the module docstring)."""

    def preprocess_cell(self, cell, resources, cell_index):
        if not (utils.is_grade(cell) or utils.is_solution(cell) or utils.is_locked(cell)):
            if cell.metadata.get("nbgrader") == {}:
                cell.metadata.pop("nbgrader")
            return cell, resources
        grade_id = cell.metadata.nbgrader.get("grade_id")
        if grade_id in self.grade_ids:
            self.log.warning("Cell with id '%s' exists multiple times: only the last copy is graded", grade_id)
            cell.metadata.pop("nbgrader")
        else:
            self.grade_ids.add(grade_id)
        return cell, resources



class OverwriteKnownCells(OverwriteCells):
    """``OverwriteCells`` that drops the ``nbgrader`` metadata of a cell whose ``grade_id`` the source does not have.

    nbgrader deletes only the ``grade_id`` of such a cell and keeps the rest of its metadata; with
    ``add_missing_cells`` on, its next step then fails with ``KeyError: 'grade_id'`` and the submission is not
    graded at all. Here the cell becomes a plain cell (run, not graded)."""

    def preprocess_cell(self, cell, resources, cell_index):
        cell, resources = super().preprocess_cell(cell, resources, cell_index)
        meta = cell.metadata.get("nbgrader")
        if meta is not None and "grade_id" not in meta:
            self.log.warning("Cell %d carries nbgrader metadata the source does not know: not graded", cell_index)
            cell.metadata.pop("nbgrader")
        return cell, resources
