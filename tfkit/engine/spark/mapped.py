"""Per-record arrays shared with the executors as memory-mapped files, not as broadcast objects.

The kernels the Spark engine reuses (`blocking.produced_by`, `comparisons.comparison_levels`,
`predict.score`) gather every record's int32 codes by row position. Broadcasting the prepared
records pickles them on the driver, stores a copy in the JVM's block manager and unpickles one copy
in every Python worker: at 10M x 10M that is several GiB each, and the 24 GiB machine ran out of
memory. Instead the driver writes each array once as a `.npy` file into a private folder, Spark
ships the folder to every executor (`SparkContext.addFile`, on a cluster too), and the workers map
the files (`np.load(mmap_mode="r")`): one copy on each node's disk, shared through the page cache
by all its workers, never in the JVM heap. What is broadcast is a small stub: the folder's name,
the array names and (for the records) the vocabularies and term-frequency tables, which are per
distinct value.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from dataclasses import dataclass, field

import numpy as np

from tfkit.linkage import standardise as st


@dataclass
class Mapped:
    """Named arrays in a folder Spark ships to every executor; each mapped on first use."""

    folder: str  # the name Spark ships it under (SparkFiles.get)
    files: dict[str, str]  # array name -> file stem
    local: str = ""  # the driver's copy ("" once pickled: the executors read theirs)
    _open: dict[str, np.ndarray] = field(default_factory=dict, repr=False)

    def array(self, name: str) -> np.ndarray:
        if name not in self._open:
            if self.local:
                root = self.local
            else:
                from pyspark import SparkFiles

                root = SparkFiles.get(self.folder)
            self._open[name] = np.load(os.path.join(root, f"{self.files[name]}.npy"), mmap_mode="r")
        return self._open[name]

    def __contains__(self, name: str) -> bool:
        return name in self.files

    def __getstate__(self):
        return {**self.__dict__, "local": "", "_open": {}}


def folder() -> Mapped:
    """An empty private (0700) temporary folder to `save` arrays into, then `ship`."""
    name = f"tfkit-mapped-{uuid.uuid4().hex[:12]}"
    parent = tempfile.mkdtemp(prefix="tfkit-")
    local = os.path.join(parent, name)  # Spark ships a folder under its own base name
    os.mkdir(local, 0o700)
    return Mapped(name, {}, local)


def save(mapped: Mapped, key: str, values: np.ndarray) -> None:
    """Write one array as a .npy file into the driver's folder (written at once: the driver need
    not hold every array of a plan together)."""
    stem = f"a{len(mapped.files)}"
    np.save(os.path.join(mapped.local, f"{stem}.npy"), np.ascontiguousarray(values), allow_pickle=False)
    mapped.files[key] = stem


def ship(spark, mapped: Mapped) -> Mapped:
    """Ship the folder to the executors (`SparkContext.addFile`)."""
    spark.sparkContext.addFile(mapped.local, recursive=True)
    return mapped


def share(spark, arrays: dict[str, np.ndarray]) -> Mapped:
    """Write `arrays` as .npy files to a private (0700) temporary folder and ship it to the
    executors; `drop` deletes the driver's folder when the job no longer needs it."""
    mapped = folder()
    for key, values in arrays.items():
        save(mapped, key, values)
    return ship(spark, mapped)


def drop(mapped: Mapped) -> None:
    """Delete the driver's folder (the executors' copies go with the session's files)."""
    if mapped.local:
        shutil.rmtree(os.path.dirname(mapped.local), ignore_errors=True)


@dataclass
class MappedPrepared(st.Prepared):
    """A `standardise.Prepared` whose codes are the mapped arrays: `frame` is the schema only (what
    the kernels check column names against), `rows` the number of records."""

    rows: int = 0
    mapped: Mapped | None = None

    @property
    def n(self) -> int:
        return self.rows

    def codes(self, column: str) -> np.ndarray:
        return self.mapped.array(column)

    def __getstate__(self):  # caches are rebuilt where the stub lands
        return {**self.__dict__, "_codes": {}, "_char_planes": {}, "_joint": {}, "_strings": {}}


def share_prepared(spark, prepared: st.Prepared) -> MappedPrepared:
    """`prepared` for the executors: every integer column's codes (`Prepared.codes`: int32, NULL
    where missing) mapped, the vocabularies and term frequencies carried by the stub."""
    columns = [c for c, t in prepared.frame.schema.items() if t.is_integer() and c != "_rid"]
    mapped = share(spark, {c: prepared.codes(c) for c in columns})
    return MappedPrepared(frame=prepared.frame.head(0), sources=list(prepared.sources), vocab=prepared.vocab,
                          truncated=dict(prepared.truncated), tf=prepared.tf, rows=prepared.n, mapped=mapped)
