"""The loaded-mesh container handed from the loaders to the measurement pipeline."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


@dataclass(frozen=True)
class Mesh:
    """A triangle mesh exactly as read from the file, converted to millimetres.

    Contract:
    - ``vertices`` is a read-only ``(n, 3)`` float64 array in millimetres, all finite.
    - ``faces`` is a read-only ``(m, 3)`` int64 array, ``m >= 1``, every index in ``[0, n)``.
    - Nothing has been merged, removed or reordered: an STL is a triangle soup with three
      vertices per face. Welding happens in the measurement pipeline (exact position weld), so
      the weld rule is a property of the measurement, recorded in the report.
    - ``load_notes`` are human-readable remarks from the loader (for example a 3MF that declares
      a unit different from the one the uploader declared); they become report warnings.
    """

    vertices: FloatArray
    faces: IntArray
    file_type: str
    source_unit: str
    load_notes: tuple[str, ...] = field(default=())

    def __post_init__(self) -> None:
        if self.vertices.ndim != 2 or self.vertices.shape[1] != 3:
            raise ValueError("vertices must have shape (n, 3)")
        if self.faces.ndim != 2 or self.faces.shape[1] != 3:
            raise ValueError("faces must have shape (m, 3)")
        # Freeze the arrays too: a measurement must not be able to change the input of the next.
        self.vertices.flags.writeable = False
        self.faces.flags.writeable = False

    @property
    def triangles(self) -> FloatArray:
        """``(m, 3, 3)`` corner coordinates of every face (a new array)."""
        return np.asarray(self.vertices[self.faces])
