"""`nplstm export RUN_DIR --onnx model.onnx`: a trained run's model as an ONNX file (needs `pip install onnx`)."""
from __future__ import annotations

from pathlib import Path

from .options import integer


def add_export_parser(sub) -> None:
    """Register the `export` subcommand on the subparsers object of build_parser."""
    p = sub.add_parser("export", help="write a trained run's model as an ONNX file",
                       description="Export the model in RUN_DIR/checkpoint.npz to ONNX (float32, with a "
                                   "sequence_lens input), for ONNX Runtime and the like. Needs: pip install onnx.")
    p.add_argument("run_dir", metavar="RUN_DIR", help="a directory written by `nplstm train`, or its checkpoint.npz")
    p.add_argument("--onnx", metavar="PATH", required=True, help="the .onnx file to write")
    p.add_argument("--opset", type=integer(1), default=None,
                   help="ONNX opset (default: nplstm.interop.onnx.DEFAULT_OPSET, 17)")
    p.add_argument("--float32", action="store_true", help="export a float64 model as a float32 copy")
    p.set_defaults(run=_export)


def _export(args) -> None:
    import numpy as np

    from ..interop.onnx import export
    from ..training.checkpoint import load_model
    try:
        import onnx  # noqa: F401
    except ImportError:
        raise ValueError("export needs the onnx package: pip install onnx") from None

    path = Path(args.run_dir)
    checkpoint = path / "checkpoint.npz" if path.is_dir() else path
    if not checkpoint.is_file():
        raise ValueError(f"RUN_DIR: expected a run directory holding checkpoint.npz, got {str(path)!r} "
                         f"({str(checkpoint)!r} does not exist)")
    model = load_model(checkpoint)
    print(export(model, args.onnx, opset=args.opset, dtype=np.float32 if args.float32 else None))
