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
from contextlib import suppress
from pathlib import Path
from typing import Any

from ...datasets import Dataset, SubjectType
from ...errors import StoreError
from ...settings import FilesystemStoreConfig, Settings
from ...templates import KeyTemplate
from ..base import SubjectSource
from .quarantine import Entry, Kept, PutBack, area, hidden
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

    def listing_order(self, key: str) -> Any:
        """The walk's order: a directory's files by name, then its subdirectories' trees."""
        parts = key.split("/")
        return (*((1, part) for part in parts[:-1]), (0, parts[-1]))

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
                if hidden(key):
                    continue  # the quarantine area is no dataset's
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
            problem = _regular(parts[-1], fd, record)
            if problem is not None:
                return None if problem == "" else problem
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

    # -- the quarantine area ------------------------------------------------------------------

    def keep(self, dataset: Dataset, records: Sequence[ObjectRecord], kept: Kept) -> DeleteResult:
        """Each file renamed into the area (one atomic step: a crash leaves it in one place or
        the other), with the checks of a delete."""
        moved: list[str] = []
        refused: dict[str, str] = {}
        failed: dict[str, str] = {}
        emptied: set[tuple[str, ...]] = set()
        for record in records:
            if record.problem is not None:
                refused[record.key] = record.problem
                continue
            parts = tuple(record.key.split("/"))
            try:
                outcome = self._move(parts, record, tuple(kept.path(record.key).split("/")))
            except OSError as exc:
                if exc.errno in (errno.ELOOP, errno.ENOTDIR):
                    refused[record.key] = "a directory on its path is a symlink (never followed)"
                else:
                    failed[record.key] = _code(exc)
                continue
            if outcome == "deleted":
                moved.append(record.key)
                emptied.add(parts[:-1])
            elif outcome is not None:
                refused[record.key] = outcome
        base = [p for p in self.template(dataset).literal_prefix.split("/") if p]
        self._remove_empty(emptied, len(base))
        return DeleteResult(deleted=tuple(moved), vetoed=refused, failed=failed)

    def _move(
        self, parts: tuple[str, ...], record: ObjectRecord, to: tuple[str, ...]
    ) -> str | None:
        """'deleted' (moved to `to`), None (gone or changed since listed), or why refused."""
        with _DirChain(self.root, parts[:-1]) as fd:
            problem = _regular(parts[-1], fd, record)
            if problem is not None:
                return None if problem == "" else problem
            with _DirChain(self.root, to[:-1], create=0o700) as into:
                os.rename(parts[-1], to[-1], src_dir_fd=fd, dst_dir_fd=into)
        return "deleted"

    def quarantine_pages(
        self, dataset: Dataset, run_id: str | None = None
    ) -> Iterator[list[ObjectRecord]]:
        page: list[ObjectRecord] = []
        for record in self._walk_area(tuple(area(dataset.name, run_id).strip("/").split("/"))):
            page.append(record)
            if len(page) >= PAGE_SIZE:
                yield page
                page = []
        if page:
            yield page

    def _walk_area(self, base: tuple[str, ...]) -> Iterator[ObjectRecord]:
        """Every regular file under `base`, in path order, never through a symlink."""
        stack = [base]
        while stack:
            parts = stack.pop()
            try:
                with os.scandir(self.root.joinpath(*parts)) as scan:
                    found = sorted(scan, key=lambda e: e.name)
            except FileNotFoundError:
                continue
            except OSError as exc:
                raise StoreError(f"{'/'.join(parts)}: {_reason(exc)}", store=self.name) from None
            subdirs = []
            for entry in found:
                here = (*parts, entry.name)
                if entry.is_dir(follow_symlinks=False):
                    subdirs.append(here)
                elif entry.is_file(follow_symlinks=False):
                    modified = _instant(entry.stat(follow_symlinks=False).st_mtime_ns)
                    yield ObjectRecord("/".join(here), modified, modified, None)
            stack.extend(reversed(subdirs))

    def purge_kept(self, dataset: Dataset, records: Sequence[ObjectRecord]) -> DeleteResult:
        deleted: list[str] = []
        failed: dict[str, str] = {}
        emptied: set[tuple[str, ...]] = set()
        for record in records:
            parts = tuple(record.key.split("/"))
            try:
                with _DirChain(self.root, parts[:-1]) as fd:
                    os.unlink(parts[-1], dir_fd=fd)
            except FileNotFoundError:
                continue  # purged already
            except OSError as exc:
                failed[record.key] = _code(exc)
                continue
            deleted.append(record.key)
            emptied.add(parts[:-1])
        self._remove_empty(emptied, 1)
        return DeleteResult(deleted=tuple(deleted), failed=failed)

    def put_back(self, dataset: Dataset, entries: Sequence[Entry]) -> PutBack:
        """Each file linked back under its own path (a link never replaces a file that exists
        again), then unlinked from the area; a crash between the two leaves both names of one
        file, which the next restore recognises and finishes."""
        restored: list[str] = []
        conflicts: list[str] = []
        failed: dict[str, str] = {}
        emptied: set[tuple[str, ...]] = set()
        for entry in entries:
            source = tuple(entry.path.split("/"))
            target = tuple(entry.key.split("/"))
            try:
                with _DirChain(self.root, source[:-1]) as fd:
                    info = os.stat(source[-1], dir_fd=fd, follow_symlinks=False)
                    if not stat.S_ISREG(info.st_mode):
                        failed[entry.key] = "not a regular file"
                        continue
                    with _DirChain(self.root, target[:-1], create=0o777) as into:
                        try:
                            os.link(
                                source[-1],
                                target[-1],
                                src_dir_fd=fd,
                                dst_dir_fd=into,
                                follow_symlinks=False,
                            )
                        except FileExistsError:
                            there = os.stat(target[-1], dir_fd=into, follow_symlinks=False)
                            if not os.path.samestat(info, there):
                                conflicts.append(entry.key)
                                continue
                    os.unlink(source[-1], dir_fd=fd)
            except FileNotFoundError:
                continue  # gone from the area since it was listed
            except OSError as exc:
                failed[entry.key] = _code(exc)
                continue
            restored.append(entry.key)
            emptied.add(source[:-1])
        self._remove_empty(emptied, 1)
        return PutBack(tuple(restored), tuple(conflicts), failed)

    def kept_present(self, dataset: Dataset, paths: Sequence[str]) -> set[str]:
        present = set()
        for path in paths:
            try:
                os.lstat(self.root / path)
            except FileNotFoundError:
                continue
            except OSError:
                pass  # unreadable: not known to be gone
            present.add(path)
        return present

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


def _regular(name: str, fd: int, record: ObjectRecord) -> str | None:
    """None when `name` in directory `fd` is the regular file `record` listed; "" when it is
    gone or changed since (nothing to do now: its clock moved, judged next run); else why it
    is refused."""
    try:
        info = os.stat(name, dir_fd=fd, follow_symlinks=False)
    except FileNotFoundError:
        return ""
    if stat.S_ISLNK(info.st_mode):
        return "a symlink (never followed)"
    if not stat.S_ISREG(info.st_mode):
        return "not a regular file"
    if _instant(info.st_mtime_ns) != record.modified:
        return ""
    return None


class _DirChain:
    """A directory below the root opened one component at a time, never through a symlink
    (missing ones made with mode `create`, when given)."""

    def __init__(self, root: Path, parts: tuple[str, ...], create: int | None = None) -> None:
        self.root = root
        self.parts = parts
        self.create = create
        self.fds: list[int] = []

    def __enter__(self) -> int:
        try:
            self.fds.append(os.open(self.root, _DIR_FLAGS))
            for part in self.parts:
                if self.create is not None:
                    with suppress(FileExistsError):
                        os.mkdir(part, self.create, dir_fd=self.fds[-1])
                self.fds.append(os.open(part, _DIR_FLAGS, dir_fd=self.fds[-1]))
        except BaseException:
            self.__exit__()
            raise
        return self.fds[-1]

    def __exit__(self, *exc: object) -> None:
        for fd in reversed(self.fds):
            os.close(fd)
        self.fds.clear()


def _code(exc: OSError) -> str:
    return f"{errno.errorcode.get(exc.errno or 0, 'OSError')}: {exc.strerror}"


def _reason(exc: OSError) -> str:
    return exc.strerror or type(exc).__name__


__all__ = ["FilesystemStore"]
