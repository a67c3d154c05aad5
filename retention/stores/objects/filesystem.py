"""The filesystem store: datasets are globs under a root directory; a file's clock is its mtime.

Deletion never leaves the root and never follows a symlink. The walk does not enter symlinked
directories, and a symlink whose own path matches a dataset's glob is listed only to be refused
(reported and audited, never deleted). At the moment of deletion every directory on the way
down from the root is opened with ``O_NOFOLLOW`` relative to its parent, and the file is
unlinked relative to that directory, so a directory swapped for a symlink after the listing
cannot redirect a delete outside the root. A file modified since it was listed is left for the
next run (its clock moved). Errors are per file (audited as failed), never fatal for the run.
Directories left empty by a delete are removed up to, never including, the dataset's fixed base
directory (``uploads`` for ``uploads/{account}/*``) and the root.
"""

from __future__ import annotations

import datetime as dt
import errno
import os
import stat
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from ...datasets import Dataset, SubjectType
from ...errors import StoreError
from ...settings import FilesystemStoreConfig, Settings
from ...templates import KeyTemplate
from ..base import SubjectSource
from .records import PAGE_SIZE, DeleteResult, ObjectRecord
from .store import ObjectStore

_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)


def _instant(ns: int) -> dt.datetime:
    return _EPOCH + dt.timedelta(microseconds=ns // 1000)


class FilesystemStore(ObjectStore):
    """A directory tree."""

    kind = "filesystem"

    def __init__(
        self,
        name: str,
        config: FilesystemStoreConfig,
        settings: Settings | None = None,
        subject_sources: Callable[[SubjectType], SubjectSource] | None = None,
    ) -> None:
        super().__init__(name, config, settings, subject_sources)
        self.configured_root = Path(config.root)
        self._root: Path | None = None

    @property
    def root(self) -> Path:
        """The real path of the root (symlinks in the configured path resolved once)."""
        if self._root is None:
            try:
                root = self.configured_root.resolve(strict=True)
            except OSError as exc:
                raise StoreError(
                    f"root {self.configured_root}: {_reason(exc)}", store=self.name
                ) from None
            if not root.is_dir():
                raise StoreError(f"root {root} is not a directory", store=self.name)
            self._root = root
        return self._root

    def template(self, dataset: Dataset) -> KeyTemplate:
        assert dataset.template is not None
        return dataset.template

    def mode(self, dataset: Dataset) -> str:
        return "files: unlinked, never through a symlink; emptied directories removed"

    # -- listing -----------------------------------------------------------------------------

    def pages(self, dataset: Dataset, prefix: str | None = None) -> Iterator[list[ObjectRecord]]:
        template = self.template(dataset)
        page: list[ObjectRecord] = []
        for record in self._walk(template):
            page.append(record)
            if len(page) >= PAGE_SIZE:
                yield page
                page = []
        if page:
            yield page

    def _walk(self, template: KeyTemplate) -> Iterator[ObjectRecord]:
        """Matching files in path order; symlinked directories are never entered."""
        base = tuple(p for p in template.literal_prefix.split("/") if p)
        stack: list[tuple[str, ...]] = [base]
        while stack:
            parts = stack.pop()
            directory = self.root.joinpath(*parts)
            try:
                with os.scandir(directory) as scan:
                    entries = sorted(scan, key=lambda e: e.name)
            except FileNotFoundError:
                continue
            except OSError as exc:
                self.unreadable.add(f"{'/'.join(parts) or '.'}: {_reason(exc)}")
                continue
            subdirs = []
            for entry in entries:
                here = (*parts, entry.name)
                key = "/".join(here)
                if entry.is_dir(follow_symlinks=False):
                    if template.may_contain(here):
                        subdirs.append(here)
                    continue
                if not (entry.is_file(follow_symlinks=False) or entry.is_symlink()):
                    continue
                if template.match(key) is None:
                    continue
                try:
                    info = entry.stat(follow_symlinks=False)
                except OSError:
                    continue  # gone since the scan
                problem = "a symlink (never followed)" if entry.is_symlink() else None
                modified = _instant(info.st_mtime_ns)
                yield ObjectRecord(
                    key, modified, modified, template.subject_of(key), problem=problem
                )
            stack.extend(reversed(subdirs))

    # -- deleting ----------------------------------------------------------------------------

    def delete(self, dataset: Dataset, records: Sequence[ObjectRecord]) -> DeleteResult:
        deleted: list[str] = []
        refused: dict[str, str] = {}
        failed: dict[str, str] = {}
        emptied: set[tuple[str, ...]] = set()
        for record in records:
            if record.problem is not None:
                refused[record.key] = record.problem
                continue
            parts = tuple(record.key.split("/"))
            try:
                outcome = self._unlink(parts, record)
            except OSError as exc:
                if exc.errno in (errno.ELOOP, errno.ENOTDIR):
                    refused[record.key] = "a directory on its path is a symlink (never followed)"
                else:
                    code = errno.errorcode.get(exc.errno or 0, "OSError")
                    failed[record.key] = f"{code}: {exc.strerror}"
                continue
            if outcome == "deleted":
                deleted.append(record.key)
                emptied.add(parts[:-1])
            elif outcome is not None:
                refused[record.key] = outcome
        base = [p for p in self.template(dataset).literal_prefix.split("/") if p]
        self._remove_empty(emptied, len(base))
        return DeleteResult(deleted=tuple(deleted), vetoed=refused, failed=failed)

    def _unlink(self, parts: tuple[str, ...], record: ObjectRecord) -> str | None:
        """'deleted', None (gone or changed: nothing to do now), or why it is refused."""
        with _DirChain(self.root, parts[:-1]) as fd:
            try:
                info = os.stat(parts[-1], dir_fd=fd, follow_symlinks=False)
            except FileNotFoundError:
                return None
            if stat.S_ISLNK(info.st_mode):
                return "a symlink (never followed)"
            if not stat.S_ISREG(info.st_mode):
                return "not a regular file"
            if _instant(info.st_mtime_ns) != record.modified:
                return None  # written since it was listed: its clock moved, judged next run
            os.unlink(parts[-1], dir_fd=fd)
        return "deleted"

    def _remove_empty(self, directories: set[tuple[str, ...]], base_depth: int) -> None:
        """Remove directories emptied by the batch, deepest first, down to the dataset base."""
        pending = set(directories)
        while pending:
            parts = max(pending, key=len)
            pending.discard(parts)
            if len(parts) <= base_depth:
                continue
            try:
                with _DirChain(self.root, parts[:-1]) as fd:
                    os.rmdir(parts[-1], dir_fd=fd)
            except OSError:
                continue  # not empty, gone, or a symlink on the way
            pending.add(parts[:-1])

    # -- recovery, explain, validate -------------------------------------------------------

    def absent(self, dataset: Dataset, entries: Sequence[Sequence[Any]]) -> list[str]:
        gone = []
        for entry in entries:
            key = str(entry[0])
            try:
                os.lstat(self.root / key)
            except FileNotFoundError:
                gone.append(key)
            except OSError:
                continue
        return gone

    def head(self, dataset: Dataset, key: str) -> ObjectRecord | None:
        template = self.template(dataset)
        if template.match(key) is None:
            return None
        try:
            info = os.lstat(self.root / key)
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise StoreError(f"{key}: {_reason(exc)}", store=self.name) from None
        if stat.S_ISDIR(info.st_mode):
            return None
        problem = "a symlink (never followed)" if stat.S_ISLNK(info.st_mode) else None
        modified = _instant(info.st_mtime_ns)
        return ObjectRecord(key, modified, modified, template.subject_of(key), problem=problem)

    def reach(self, dataset: Dataset | None = None) -> list[str]:
        try:
            root = self.root
        except StoreError as exc:
            return [str(exc)]
        if not os.access(root, os.R_OK | os.X_OK):
            return [f"root {root} is not readable"]
        if dataset is None:
            return []
        base = root / self.template(dataset).literal_prefix
        if base.is_symlink():
            return [f"{base} is a symlink: the dataset's files would never be reached"]
        if base.exists() and not os.access(base, os.R_OK | os.X_OK):
            return [f"{base} is not readable"]
        return []


class _DirChain:
    """A directory below the root opened one component at a time, never through a symlink."""

    def __init__(self, root: Path, parts: tuple[str, ...]) -> None:
        self.root = root
        self.parts = parts
        self.fds: list[int] = []

    def __enter__(self) -> int:
        try:
            self.fds.append(os.open(self.root, _DIR_FLAGS))
            for part in self.parts:
                self.fds.append(os.open(part, _DIR_FLAGS, dir_fd=self.fds[-1]))
        except BaseException:
            self.__exit__()
            raise
        return self.fds[-1]

    def __exit__(self, *exc: object) -> None:
        for fd in reversed(self.fds):
            os.close(fd)
        self.fds.clear()


def _reason(exc: OSError) -> str:
    return exc.strerror or type(exc).__name__


__all__ = ["FilesystemStore"]
