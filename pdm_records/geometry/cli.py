"""Command-line entry: ``python -m pdm_records.geometry.cli PATH [--json]``.

Runs the same ``check_mesh_bytes`` the web application uses (the Flask ``check-mesh`` command
wraps it), so a report produced here is the report the records would hold.

Exit status: 0 report produced (and the envelope, if given, passed); 1 envelope failed;
2 the file is not a verifiable mesh or the envelope is invalid; 3 Embree unavailable.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from typing import Any

from .errors import MeshError, RayEngineUnavailable
from .loaders import SUPPORTED_FORMATS
from .report import DEFAULT_THICKNESS_SAMPLES, check_mesh_bytes


def _read_envelope(path: str) -> Any:
    with open(path, encoding="utf-8") as fh:
        text = fh.read()
    if path.endswith((".yaml", ".yml")):
        import yaml

        return yaml.safe_load(text)
    return json.loads(text)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m pdm_records.geometry.cli",
        description="Verify a mesh file: topology, size, wall thickness, self-intersections "
        "and (optionally) a design envelope.",
    )
    p.add_argument("path", help="mesh file (stl, obj, ply, off, 3mf)")
    p.add_argument("--type", dest="file_type", choices=SUPPORTED_FORMATS,
                   help="file type (default: from the file name's extension)")
    p.add_argument("--units", default="mm", help="unit of the file's coordinates: mm, cm, m, in")
    p.add_argument("--envelope", help="envelope limits as JSON or YAML")
    p.add_argument("--expected-size", type=float, dest="expected_size",
                   help="expected largest extent in mm (units sanity check)")
    p.add_argument("--samples", type=int, default=DEFAULT_THICKNESS_SAMPLES,
                   help="thickness rays (default %(default)s)")
    p.add_argument("--seed", type=int, default=0, help="sampling seed (default 0)")
    p.add_argument("--json", action="store_true", help="print the full report as JSON")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit status (see module docstring)."""
    args = build_parser().parse_args(argv)
    file_type = args.file_type or os.path.splitext(args.path)[1].lstrip(".").lower()

    def fail(code: str, message: str, status: int = 2) -> int:
        print(f"error: {message} [{code}]", file=sys.stderr)
        if args.json:
            json.dump({"error": {"code": code, "message": message}}, sys.stdout, indent=2)
            sys.stdout.write("\n")
        return status

    try:
        with open(args.path, "rb") as fh:
            data = fh.read()
    except OSError as exc:
        return fail("unreadable", f"cannot read {args.path}: {exc.strerror or exc}")
    try:
        envelope = _read_envelope(args.envelope) if args.envelope else None
        report = check_mesh_bytes(
            data, file_type, args.units, envelope,
            expected_max_extent_mm=args.expected_size,
            thickness_samples=args.samples, seed=args.seed,
        )
    except MeshError as exc:
        return fail(exc.code, exc.message)
    except (ValueError, OSError) as exc:  # EnvelopeError, malformed or missing envelope files
        return fail("invalid_envelope", f"invalid envelope: {exc}")
    except RayEngineUnavailable as exc:
        return fail("ray_engine_unavailable", str(exc), 3)
    if args.json:
        json.dump(report, sys.stdout, indent=2, sort_keys=True, allow_nan=False)
        sys.stdout.write("\n")
    else:
        _print_summary(report)
    evaluation = report.get("evaluation")
    return 1 if evaluation is not None and not evaluation["passed"] else 0


def _print_summary(report: dict[str, Any]) -> None:
    m = report["measurements"]
    th = m["thickness"]
    lines = [
        f"faces {m['faces']}  vertices {m['vertices']}  bodies {m['bodies']}",
        f"watertight {m['watertight']}  boundary edges {m['boundary_edges']}  "
        f"non-manifold edges {m['non_manifold_edges']}  winding consistent "
        f"{m['winding_consistent']}",
        f"self-intersections {m['self_intersections']}  degenerate {m['degenerate_faces']}  "
        f"duplicate {m['duplicate_faces']}",
        f"extents {', '.join(f'{v:.3f}' for v in m['extents'])} mm  diameter "
        f"{m['diameter']:.3f} mm  volume {m['volume']} mm3",
        f"thickness min {th['min']}  p5 {th['p5']}  median {th['median']} "
        f"({th['method']}, {th['samples']} samples)",
    ]
    for w in report["warnings"]:
        lines.append(f"warning: {w['message']}")
    ev = report.get("evaluation")
    if ev is not None:
        lines.append(f"envelope: {'PASS' if ev['passed'] else 'FAIL'}; closest to limits: "
                     f"{', '.join(ev['checks_by_margin'][:3])}")
    print("\n".join(lines))


if __name__ == "__main__":
    sys.exit(main())
