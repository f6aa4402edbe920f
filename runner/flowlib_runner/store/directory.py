"""The directory store: a run's blobs as files under one folder.

The folder is a mounted PersistentVolumeClaim in a runner pod (``spec.store.type: pvc``) or the
``--store DIR`` of ``flowctl run``. A blob named ``checkpoint/meta`` is the file
``<root>/checkpoint/meta``, so a person can look at a run's store with ``ls`` and ``cat``.

Why the writes look the way they do:

- A blob is written to a temporary file in its own folder, flushed to disk (``fsync``) and moved
  over the old one with ``os.replace``: a reader (or the next pod, after a crash or a node failure)
  sees the old bytes or the new ones, never a torn file. Temporary names hold a ``~``, which no blob
  name does, so ``names`` never reports them and no blob can collide with one. Files are readable
  by their owner only (``mkstemp``'s mode): checkpoints may hold what a run read from Secrets.
- The folder of a deleted blob is removed when it is left empty, so a later blob may take the
  folder's name; a blob whose name is the folder of other blobs (``a`` beside ``a/b``) is refused
  with a ``StoreError`` (see ``base.py``).
- All file I/O runs on a worker thread (``asyncio.to_thread``): a slow volume (NFS, a cloud disk)
  must not stall the event loop that runs the flow. Writes are serialised (on the thread too, so
  a cancelled caller's write still finishes before the next begins), so a delete's clean-up of
  empty folders never races a write into them.
- Except for a caller whose event loop has a thread of its own (``own_thread=True``: the checkpoint
  writer), which does the I/O on the spot: nothing else waits on that loop, and each hand-off to a
  worker thread and back costs a GIL switch, up to ``sys.getswitchinterval()`` (5 ms) each while
  the run's thread is busy, which made a checkpoint of a few blobs take hundreds of milliseconds.
- A write is five system calls (open, write, fsync, close, rename) plus one folder fsync per
  batch: each call gives the GIL up, and taking it back can cost a switch interval when the run's
  thread is busy. Folders are made only when the open says one is missing, and each new folder's
  parent is fsynced too, or a crash could lose the folder with the blobs in it. ``make_folders``
  makes them ahead (the checkpoint writer does as it starts, off the run's critical path).
"""

from __future__ import annotations

import asyncio
import itertools
import os
import threading
from collections.abc import Iterator, Mapping
from pathlib import Path

from flowlib_runner.store.base import NAME_PATTERN, StoreError, check_name

TEMP_MARK = "~"
"""In every temporary file's name; never in a blob name."""
_TEMP_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)
_temp_numbers = itertools.count()


class DirectoryStore:
    """A run's blobs as files under ``root`` (created on the first write); ``own_thread``: the
    caller's event loop runs on a thread of its own, so file I/O is done on it directly."""

    compress_blobs = False
    """Checkpoints are written uncompressed (``base.compresses``): zlib takes about 9 ms a MiB on
    the run's critical path, a local or mounted disk about 1 ms to write the MiB saved."""

    def __init__(self, root: Path | str, *, own_thread: bool = False) -> None:
        self.root = Path(root)
        self.own_thread = own_thread
        self._write_lock = asyncio.Lock()  # callers wait here, not on worker threads
        self._thread_lock = threading.Lock()  # held while a write runs, even if its caller was cancelled

    @property
    def location(self) -> str:
        return str(self.root)

    def __repr__(self) -> str:
        return f"DirectoryStore({self.location!r})"

    async def put_many(self, blobs: Mapping[str, bytes | None]) -> None:
        items = [(check_name(name), data) for name, data in blobs.items()]
        if not items:
            return
        async with self._write_lock:
            if self.own_thread:
                self._put_many(items)
            else:
                await asyncio.to_thread(self._put_many, items)

    async def get(self, name: str) -> bytes | None:
        if self.own_thread:
            return self._get(check_name(name))
        return await asyncio.to_thread(self._get, check_name(name))

    async def names(self, prefix: str = "") -> list[str]:
        if self.own_thread:
            return self._names(prefix)
        return await asyncio.to_thread(self._names, prefix)

    async def make_folders(self, folders: list[str]) -> None:
        """Make the folders blobs will be written in (``checkpoint``, ``shared``), durably, now rather
        than at the first write; a name that is a blob already is left alone (its write says so)."""
        paths = [os.path.join(self.root, check_name(folder)) for folder in folders]

        def make() -> None:
            with self._thread_lock:
                for path in paths:
                    try:
                        _make_folder(path)
                    except (FileExistsError, NotADirectoryError):
                        continue
                    except OSError as error:
                        raise StoreError(f"{self.location}: cannot make folder {path}: {error}") from error

        async with self._write_lock:
            if self.own_thread:
                make()
            else:
                await asyncio.to_thread(make)

    async def delete_all(self) -> None:
        async with self._write_lock:
            await asyncio.to_thread(self._delete_all)

    # -- on the worker thread ------------------------------------------------------------------

    def _put_many(self, items: list[tuple[str, bytes | None]]) -> None:
        with self._thread_lock:
            self._put_all(items)

    def _put_all(self, items: list[tuple[str, bytes | None]]) -> None:
        touched: set[str] = set()
        for name, data in items:
            try:
                if data is None:
                    self._delete(name)
                else:
                    touched.add(self._write(name, data))
            except OSError as error:
                verb = "delete" if data is None else "write"
                raise StoreError(f"{self.location}: cannot {verb} {name}: {error}") from error
        for folder in touched:
            _fsync_dir(folder)

    def _write(self, name: str, data: bytes) -> str:
        path = os.path.join(self.root, name)
        folder, base = os.path.split(path)
        handle, temp = self._open_temp(name, folder, base)
        try:
            try:
                view = memoryview(data)
                while view:
                    view = view[os.write(handle, view) :]
                os.fsync(handle)
            finally:
                os.close(handle)
            try:
                os.replace(temp, path)
            except IsADirectoryError:
                try:
                    os.rmdir(path)  # an empty folder left over from blobs that were deleted
                except OSError:
                    raise StoreError(self._conflict(name, "it is the folder of other blobs")) from None
                os.replace(temp, path)
        except BaseException:
            try:
                os.unlink(temp)
            except FileNotFoundError:
                pass
            raise
        return folder

    def _open_temp(self, name: str, folder: str, base: str) -> tuple[int, str]:
        """A new temporary file beside the blob (its folder made when missing), open for writing;
        readable by its owner only."""
        for attempt in range(100):
            temp = os.path.join(folder, f".{base}{TEMP_MARK}{os.getpid()}-{next(_temp_numbers)}")
            try:
                return os.open(temp, _TEMP_FLAGS, 0o600), temp
            except FileExistsError:
                continue  # another process's file of the same number: take the next
            except FileNotFoundError:
                if attempt:
                    raise
            except NotADirectoryError:
                raise StoreError(self._conflict(name, "a folder of it is a blob")) from None
            try:
                _make_folder(folder)
            except (FileExistsError, NotADirectoryError):
                raise StoreError(self._conflict(name, "a folder of it is a blob")) from None
        raise StoreError(f"{self.location}: cannot write blob {name}: no free temporary name beside it")

    def _conflict(self, name: str, why: str) -> str:
        return (
            f"{self.location}: cannot write blob {name}: {why}; a blob name must not be the folder of "
            "other blob names (a directory store keeps blobs as files)"
        )

    def _delete(self, name: str) -> None:
        path = self.root / name
        try:
            path.unlink()
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            return  # not a blob: nothing to delete
        self._prune(path.parent)

    def _prune(self, folder: Path) -> None:
        """Remove ``folder`` and its parents up to the root while they are empty."""
        while folder != self.root and self.root in folder.parents:
            try:
                folder.rmdir()
            except OSError:
                return  # not empty (or already gone): stop here
            folder = folder.parent

    def _get(self, name: str) -> bytes | None:
        try:
            return (self.root / name).read_bytes()
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            return None
        except OSError as error:
            raise StoreError(f"{self.location}: cannot read {name}: {error}") from error

    def _names(self, prefix: str) -> list[str]:
        # Walk only the folder the prefix's complete segments name: ``items/n3/0`` looks in items/n3.
        folder, _, _ = prefix.rpartition("/")
        if folder:
            try:
                check_name(folder)
            except ValueError:
                return []  # no blob name has that folder
        try:
            found = [name for name in _walk(self.root / folder, folder) if name.startswith(prefix)]
        except OSError as error:
            raise StoreError(f"{self.location}: cannot list blobs: {error}") from error
        return sorted(found)

    def _delete_all(self) -> None:
        """Remove every blob and temporary file, then the folders left empty (the root too);
        anything else that somebody put under the root stays."""
        with self._thread_lock:
            self._delete_everything()

    def _delete_everything(self) -> None:
        try:
            for dirpath, _subfolders, filenames in os.walk(self.root, topdown=False):  # bottom-up
                here = Path(dirpath)
                for filename in filenames:
                    if _is_segment(filename) or TEMP_MARK in filename:
                        (here / filename).unlink(missing_ok=True)
                if here == self.root or _is_segment(here.name):
                    try:
                        here.rmdir()
                    except OSError:
                        pass  # something that is not ours is left inside
        except OSError as error:
            raise StoreError(f"{self.location}: cannot delete the blobs: {error}") from error


def _is_segment(text: str) -> bool:
    return text not in (".", "..") and NAME_PATTERN.match(text) is not None and "/" not in text


def _walk(folder: Path, name: str) -> Iterator[str]:
    """The blob names under ``folder`` (whose blob name is ``name``); symlinks are not followed."""
    try:
        entries = list(os.scandir(folder))
    except (FileNotFoundError, NotADirectoryError):
        return
    for entry in entries:
        if not _is_segment(entry.name):
            continue  # a temporary file, lost+found, ...
        child = f"{name}/{entry.name}" if name else entry.name
        if entry.is_dir(follow_symlinks=False):
            yield from _walk(Path(entry.path), child)
        elif entry.is_file(follow_symlinks=False):
            yield child


def _make_folder(folder: str) -> None:
    """Make ``folder`` and its missing parents, each made durable in its parent (``_fsync_dir``)."""
    if os.path.isdir(folder):
        return
    parent = os.path.dirname(folder)
    if parent and parent != folder:
        _make_folder(parent)
    try:
        os.mkdir(folder)
    except FileExistsError:
        if not os.path.isdir(folder):
            raise
        return  # made meanwhile by another writer
    _fsync_dir(parent or ".")


def _fsync_dir(folder: str) -> None:
    """Make the renames in ``folder`` durable (where the platform allows opening a folder)."""
    try:
        handle = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(handle)
    except OSError:
        pass  # some file systems refuse fsync on a folder; the file itself was synced
    finally:
        os.close(handle)
