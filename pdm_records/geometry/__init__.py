"""Pure geometry core: load meshes from bytes, measure them, build verification reports.

No Flask and no database imports here (the web layer and the CLI wrap these functions).
"""

from .errors import MESH_ERROR_CODES, MeshError, RayEngineUnavailable
from .loaders import DEFAULT_LIMITS, SUPPORTED_FORMATS, LoadLimits, load_mesh_bytes
from .mesh import Mesh
from .report import ALGORITHM_VERSION, REPORT_SCHEMA, check_mesh_bytes, measure

__all__ = [
    "ALGORITHM_VERSION",
    "DEFAULT_LIMITS",
    "MESH_ERROR_CODES",
    "REPORT_SCHEMA",
    "SUPPORTED_FORMATS",
    "LoadLimits",
    "Mesh",
    "MeshError",
    "RayEngineUnavailable",
    "check_mesh_bytes",
    "load_mesh_bytes",
    "measure",
]
