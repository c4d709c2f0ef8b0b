"""Writing results to files: the tidy CSV tables, and the atomic replace every file output goes through."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from pyxl_del.engine.errors import OutputError

if TYPE_CHECKING:
    import pandas as pd

    from pyxl_del.engine.pipeline import DelResult

TABLE_FILES = ("del_long.csv", "calibration_factors.csv", "transition_matrices.csv")
EXCEL_MAX_ROWS = 1_048_576  # rows of one sheet, header included


@contextlib.contextmanager
def atomic_replace(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside `path`; on success it replaces `path` in one rename, on failure it is removed.

    A reader never sees a half-written file, and an error (unwritable folder, file locked by Excel on
    Windows) leaves the previous file intact.
    """
    path = Path(path)
    folder = path.parent if str(path.parent) else Path(".")
    if not folder.is_dir():
        raise OutputError(f"cannot write {path}: folder {folder} does not exist")
    try:
        fd, tmp_name = tempfile.mkstemp(prefix=f".{path.stem}-", suffix=path.suffix, dir=folder)
    except OSError as exc:
        raise OutputError(f"cannot write {path}: folder {folder} is not writable ({exc.strerror})") from exc
    os.close(fd)
    tmp = Path(tmp_name)
    # mkstemp makes the file private (0600); an output should get the permissions any new file would.
    umask = os.umask(0)
    os.umask(umask)
    tmp.chmod(0o666 & ~umask)
    try:
        yield tmp
        try:
            os.replace(tmp, path)
        except OSError as exc:
            raise OutputError(
                f"cannot replace {path} ({exc.strerror}); is it open in Excel? The previous file is unchanged"
            ) from exc
    finally:
        tmp.unlink(missing_ok=True)


def write_frames(frames: Mapping[str, pd.DataFrame], folder: str | Path) -> list[Path]:
    """Each frame as ``folder/<stem>.csv``, UTF-8, empty cells for missing values (the folder is created if
    needed); every file is replaced atomically."""
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"cannot create output folder {folder} ({exc.strerror})") from exc
    written = []
    for stem, frame in frames.items():
        target = folder / f"{stem}.csv"
        with atomic_replace(target) as tmp:
            frame.to_csv(tmp, index=False, na_rep="", encoding="utf-8")
        written.append(target)
    return written


def write_tables(result: DelResult, folder: str | Path) -> list[Path]:
    """del_long.csv, calibration_factors.csv and transition_matrices.csv into `folder` (created if needed)."""
    frames = (result.del_long, result.calibration_factors, result.transition_matrices)
    return write_frames({Path(name).stem: frame for name, frame in zip(TABLE_FILES, frames, strict=True)}, folder)
