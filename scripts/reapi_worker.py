#!/usr/bin/env python3
"""A small host worker for a BuildGrid Remote Execution engine (tests only).

BuildGrid gives actions to workers over the Remote Workers API
(google.devtools.remoteworkers.v1test2.Bots). The worker opens a BotSession with
CreateBotSession, then calls UpdateBotSession in a loop: each call reports the leases it holds
and, when it holds none, waits (long-polls) until the server assigns one. A lease's payload is
the REAPI Action (or the Action's Digest). For each lease this worker:

1. reads the Action, its Command and the input root's Directory tree from CAS;
2. lays the input root out in a fresh directory under --work-dir from a blob cache on disk
   (--blob-cache), shared by the workers of one engine: each file is fetched into the cache
   once (BatchReadBlobs for small blobs, ByteStream.Read streamed to a file for large ones, its
   SHA-256 checked while it is written) and then hard-linked into the input root (copied when
   linking fails, e.g. across file systems). Cached files are read-only (0444, or 0555 for
   is_executable files, which are a separate cache file since hard links share their mode); a
   declared output path that the input root already holds gets a private writable copy, so the
   command can rewrite it. Then the parent directories of every declared output path are
   created, and the input root's directories and symbolic links;
3. runs Command.arguments in Command.working_directory with exactly
   Command.environment_variables as its environment (nothing of the worker's is inherited; a
   bare program name is looked up in the Command's PATH, or /bin:/usr/bin without one), stdin
   from /dev/null, in a process group of its own that is killed when Action.timeout passes and
   when the command ends (so no background child outlives it);
4. uploads the outputs it declares (output_paths, or output_files and output_directories of
   older clients; directories as Tree messages), stdout and stderr to CAS, reading files from
   disk as they are sent (ByteStream.Write in chunks for large ones, BatchUpdateBlobs for small);
5. completes the lease with an ActionResult (exit code, outputs, stdout/stderr digests,
   timestamps) packed in Lease.result.

A command that fails is a normal ActionResult with its nonzero exit code; one killed by a signal
gets 128 + the signal's number, as a shell reports it; one that cannot be started (no such
program) gets 127 and the reason on stderr. A timeout completes the lease with status
DEADLINE_EXCEEDED and what the command wrote until then. Worker-side failures are lease
statuses: FAILED_PRECONDITION (with PreconditionFailure details) for a blob missing from CAS,
INVALID_ARGUMENT for a malformed Action, DATA_LOSS for a blob whose content does not match its
digest (never cached), INTERNAL for anything else (BuildGrid retries those).

The blob cache: DIR/<hash>-<size> (mode 0444) and DIR/<hash>-<size>.x (0555), temporary files in
DIR/.tmp and lock files in DIR/.locks (one per large blob, so that two workers wanting the same
large blob fetch it once). Entries appear by an atomic rename of a complete, verified file, so
workers racing on a blob both end up with a good one. An entry whose size, mode or owner has
changed since (a command that chmod-ed and rewrote a hard-linked input) is dropped and fetched
again; a same-size rewrite in place is not detected, and a command running as root can write
cached files despite their mode. The cache has no size bound here (scripts/reapi-engine bounds
it at start).

The worker advertises OSFamily=linux and ISA (x86-64, arm-a64 or the machine's name) as
properties of its primary device, the two keys BuildGrid matches by default, and one lease of
capacity. While an action runs, the main thread keeps calling UpdateBotSession every few
seconds as a heartbeat; if the server drops the lease (the operation was cancelled), the
command is killed. SIGTERM kills the running command and exits.

It imports BuildGrid's generated protos, so run it with the Python of BuildGrid's venv:

    python reapi_worker.py --remote 127.0.0.1:50051 --name worker-1 --work-dir /tmp/work \
        --blob-cache /tmp/blobs
"""

import argparse
import collections
import contextlib
import errno
import fcntl
import hashlib
import logging
import os
import platform
import re
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import threading
import time
import uuid

import grpc

from buildgrid._protos.build.bazel.remote.execution.v2 import remote_execution_pb2 as re_pb2
from buildgrid._protos.build.bazel.remote.execution.v2 import remote_execution_pb2_grpc as re_grpc
from buildgrid._protos.google.bytestream import bytestream_pb2, bytestream_pb2_grpc
from buildgrid._protos.google.devtools.remoteworkers.v1test2 import bots_pb2, bots_pb2_grpc, worker_pb2
from buildgrid._protos.google.rpc import code_pb2, error_details_pb2, status_pb2

LOG = logging.getLogger("reapi_worker")
BATCH_BYTES = 2 * 1024 * 1024  # per BatchRead/BatchUpdate request; BuildGrid allows 4 MiB - 1 KiB
BATCH_COUNT = 500  # blobs per BatchRead/BatchUpdate request (BuildGrid's MAX_REQUEST_COUNT)
FIND_MISSING_COUNT = 2000  # digests per FindMissingBlobs request
CHUNK = 1024 * 1024  # ByteStream chunk size, and the unit of file reads and writes
POLL = 30.0  # deadline of an idle UpdateBotSession (--poll); BuildGrid long-polls for 80% of it
HEARTBEAT = 5.0  # seconds between UpdateBotSession calls while an action runs
ACTIVE, COMPLETED = bots_pb2.LeaseState.ACTIVE, bots_pb2.LeaseState.COMPLETED
SHA256_HEX = re.compile(r"[0-9a-f]{64}")


class LeaseError(Exception):
    """A failure to report as the lease's status rather than as an ActionResult."""

    def __init__(self, code, message, missing=()):
        super().__init__(message)
        self.code, self.missing = code, list(missing)


def digest_of(data):
    return re_pb2.Digest(hash=hashlib.sha256(data).hexdigest(), size_bytes=len(data))


def key_of(d):
    return (d.hash, d.size_bytes)


def checked_digest(d):
    """d, when it can name a blob (and a cache file): 64 lowercase hex digits, a size >= 0."""
    if not SHA256_HEX.fullmatch(d.hash) or d.size_bytes < 0:
        raise LeaseError(code_pb2.INVALID_ARGUMENT, f"bad digest {d.hash!r}/{d.size_bytes}")
    return d


def check_content(d, sha256_hex, size):
    """LeaseError(DATA_LOSS) unless what was received (its SHA-256 and size) matches d."""
    if sha256_hex != d.hash or size != d.size_bytes:
        raise LeaseError(
            code_pb2.DATA_LOSS,
            f"blob {d.hash}/{d.size_bytes} from CAS does not match its digest ({sha256_hex}/{size})",
        )


def batches(digests):
    """Groups digests into lists of at most BATCH_BYTES of content and BATCH_COUNT blobs."""
    batch, size = [], 0
    for d in digests:
        if batch and (size + d.size_bytes > BATCH_BYTES or len(batch) >= BATCH_COUNT):
            yield batch
            batch, size = [], 0
        batch.append(d)
        size += d.size_bytes
    if batch:
        yield batch


def file_chunks(path):
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            yield chunk


class Uploads:
    """Blobs to upload: bytes, or files read from disk only when they are sent."""

    def __init__(self):
        self.blobs = {}  # (hash, size) -> (Digest, bytes or a file's path)

    def add_bytes(self, data):
        d = digest_of(data)
        self.blobs[key_of(d)] = (d, data)
        return d

    def add_file(self, path):
        sha, size = hashlib.sha256(), 0
        for chunk in file_chunks(path):
            sha.update(chunk)
            size += len(chunk)
        d = re_pb2.Digest(hash=sha.hexdigest(), size_bytes=size)
        self.blobs[key_of(d)] = (d, path)
        return d


def source_chunks(d, source):
    """The content of an upload in chunks; an error when a file changed since it was hashed."""
    if isinstance(source, bytes):
        yield from (source[i : i + CHUNK] for i in range(0, len(source), CHUNK))
        return
    sha, size = hashlib.sha256(), 0
    for chunk in file_chunks(source):
        sha.update(chunk)
        size += len(chunk)
        yield chunk
    if (sha.hexdigest(), size) != key_of(d):
        raise RuntimeError(f"output {source} changed while it was uploaded")


class Cas:
    """Reads and writes the blobs of one instance with the CAS and ByteStream services."""

    def __init__(self, channel, instance):
        self.cas = re_grpc.ContentAddressableStorageStub(channel)
        self.bytestream = bytestream_pb2_grpc.ByteStreamStub(channel)
        self.instance = instance

    def _resource(self, *parts):
        return "/".join(p for p in (self.instance, *parts) if p)

    def read(self, digests):
        """{hash: contents} of the digests, in memory and checked: for Actions, Commands and
        Directories, not for input files (BlobCache.ensure). LeaseError(FAILED_PRECONDITION)
        names all the missing ones."""
        unique = {d.hash: checked_digest(d) for d in digests}.values()
        out, missing = {}, []
        for d in unique:
            if d.size_bytes > BATCH_BYTES:
                out[d.hash] = b"".join(self.read_stream(d))
            elif d.size_bytes == 0:
                out[d.hash] = b""
        for got, data in self.read_batches([d for d in unique if 0 < d.size_bytes <= BATCH_BYTES], missing):
            out[got.hash] = data
        if missing:
            raise_missing(missing)
        for d in unique:
            check_content(d, hashlib.sha256(out[d.hash]).hexdigest(), len(out[d.hash]))
        return out

    def read_batches(self, digests, missing):
        """Yields (Digest, contents) of small blobs, read with BatchReadBlobs; appends those the
        CAS lacks to missing."""
        for batch in batches(digests):
            request = re_pb2.BatchReadBlobsRequest(instance_name=self.instance, digests=batch)
            for r in self.cas.BatchReadBlobs(request).responses:
                if r.status.code == code_pb2.OK:
                    yield r.digest, r.data
                elif r.status.code == code_pb2.NOT_FOUND:
                    missing.append(r.digest)
                else:
                    raise RuntimeError(f"reading blob {r.digest.hash}: {r.status.code} {r.status.message}")

    def read_stream(self, d):
        """Yields the chunks of a blob read with ByteStream.Read."""
        request = bytestream_pb2.ReadRequest(resource_name=self._resource("blobs", d.hash, str(d.size_bytes)))
        try:
            # A deadline, so that a stalled read cannot hold the blob's lock forever.
            yield from (r.data for r in self.bytestream.Read(request, timeout=120 + d.size_bytes / 1e6))
        except grpc.RpcError as e:
            if e.code() == grpc.StatusCode.NOT_FOUND:
                raise_missing([d])
            raise

    def write(self, uploads):
        """Uploads the blobs of an Uploads that the CAS does not have yet."""
        digests = [d for d, _ in uploads.blobs.values()]
        missing = []
        for i in range(0, len(digests), FIND_MISSING_COUNT):
            request = re_pb2.FindMissingBlobsRequest(
                instance_name=self.instance, blob_digests=digests[i : i + FIND_MISSING_COUNT]
            )
            missing += self.cas.FindMissingBlobs(request).missing_blob_digests
        for d in missing:
            if d.size_bytes > BATCH_BYTES:
                self._write_stream(d, uploads.blobs[key_of(d)][1])
        for batch in batches(d for d in missing if d.size_bytes <= BATCH_BYTES):
            requests = [
                re_pb2.BatchUpdateBlobsRequest.Request(digest=d, data=b"".join(source_chunks(d, source)))
                for d, source in (uploads.blobs[key_of(b)] for b in batch)
            ]
            request = re_pb2.BatchUpdateBlobsRequest(instance_name=self.instance, requests=requests)
            for r in self.cas.BatchUpdateBlobs(request).responses:
                if r.status.code != code_pb2.OK:
                    raise RuntimeError(f"upload of {r.digest.hash} failed: {r.status.message}")

    def _write_stream(self, d, source):
        name = self._resource("uploads", str(uuid.uuid4()), "blobs", d.hash, str(d.size_bytes))

        def requests():
            offset = 0
            for chunk in source_chunks(d, source):
                yield bytestream_pb2.WriteRequest(
                    resource_name=name if offset == 0 else "",
                    write_offset=offset,
                    data=chunk,
                    finish_write=offset + len(chunk) >= d.size_bytes,
                )
                offset += len(chunk)

        response = self.bytestream.Write(requests())
        if response.committed_size not in (d.size_bytes, -1):
            raise RuntimeError(f"upload of {d.hash}: {response.committed_size} of {d.size_bytes} bytes committed")


def raise_missing(digests):
    names = ", ".join(f"{d.hash}/{d.size_bytes}" for d in digests[:3]) + (" ..." if len(digests) > 3 else "")
    raise LeaseError(code_pb2.FAILED_PRECONDITION, f"{len(digests)} blob(s) missing from CAS: {names}", digests)


def file_mode(executable):
    return 0o555 if executable else 0o444


class BlobCache:
    """The input files of actions, on disk, shared by the workers of one engine (see the module's
    doc). Entries are only ever created by renaming a complete, verified file into place."""

    def __init__(self, root):
        self.root = root
        self.tmp, self.locks = os.path.join(root, ".tmp"), os.path.join(root, ".locks")
        for d in (root, self.tmp, self.locks):
            os.makedirs(d, exist_ok=True)
        self.uid = os.geteuid()

    def path(self, d, executable):
        return os.path.join(self.root, f"{d.hash}-{d.size_bytes}" + (".x" if executable else ""))

    def _usable(self, d, executable):
        """Whether the entry exists as the cache made it; a changed one is removed."""
        path = self.path(d, executable)
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            return False
        mode = stat.S_IMODE(st.st_mode)
        if (
            stat.S_ISREG(st.st_mode)
            and st.st_size == d.size_bytes
            and mode == file_mode(executable)
            and st.st_uid == self.uid
        ):
            return True
        LOG.warning(
            "cache entry %s changed (size %d, mode %o, owner %d): dropping it", path, st.st_size, mode, st.st_uid
        )
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
        return False

    @contextlib.contextmanager
    def _new_entry(self, d, executable):
        """Yields a temporary file (open for writing) that becomes d's entry when the block ends
        without an exception; removed otherwise."""
        fd, tmp = tempfile.mkstemp(dir=self.tmp, prefix=f"{d.hash[:16]}-")
        done = False
        try:
            with os.fdopen(fd, "wb") as out:
                yield out
            os.chmod(tmp, file_mode(executable))
            os.rename(tmp, self.path(d, executable))  # atomic; a racing worker's equal entry may go
            done = True
        finally:
            if not done:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(tmp)

    def _derive(self, d, executable):
        """Makes the entry of d with the other mode from the one there is, without a fetch."""
        with self._new_entry(d, executable) as out, open(self.path(d, not executable), "rb") as src:
            shutil.copyfileobj(src, out, CHUNK)

    @contextlib.contextmanager
    def _locked(self, d):
        fd = os.open(os.path.join(self.locks, f"{d.hash}-{d.size_bytes}"), os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    def _complete(self, d, modes):
        """Makes the entries of modes from one another; the modes still without an entry."""
        absent = {m for m in modes if not self._usable(d, m)}
        for m in list(absent):
            if self._usable(d, not m):
                self._derive(d, m)
                absent.discard(m)
        return absent

    def ensure(self, cas, wanted):
        """Makes the cache hold wanted ({(hash, size): (Digest, {is_executable, ...})}), fetching
        the blobs it lacks. Returns (blobs fetched, bytes fetched)."""
        small, large, missing = {}, [], []
        for d, modes in wanted.values():
            absent = self._complete(d, modes)
            if absent and d.size_bytes <= BATCH_BYTES:
                small[key_of(d)] = (d, absent)
            elif absent:
                large.append((d, absent))
        fetched = [0, 0]

        def store(d, modes, chunks):
            """Writes chunks to d's entry for the first mode, checking them; derives the rest."""
            modes = sorted(modes)
            with self._new_entry(d, modes[0]) as out:
                sha, size = hashlib.sha256(), 0
                for chunk in chunks:
                    sha.update(chunk)
                    size += len(chunk)
                    out.write(chunk)
                check_content(d, sha.hexdigest(), size)
            for m in modes[1:]:
                self._derive(d, m)
            fetched[0] += 1
            fetched[1] += size

        for d, modes in small.values():
            if d.size_bytes == 0:
                store(d, modes, [])
        unanswered = {k for k, (d, _) in small.items() if d.size_bytes > 0}
        for got, data in cas.read_batches([d for d, _ in small.values() if d.size_bytes > 0], missing):
            d, modes = small[key_of(got)]
            store(d, modes, [data])
            unanswered.discard(key_of(got))
        unanswered -= {key_of(d) for d in missing}
        if unanswered:
            raise RuntimeError(f"BatchReadBlobs did not answer for {len(unanswered)} blob(s)")
        for d, modes in large:
            with self._locked(d):  # a worker that waited here finds the entry made
                modes = self._complete(d, modes)
                if modes:
                    try:
                        store(d, modes, cas.read_stream(d))
                    except LeaseError as e:
                        if not e.missing:
                            raise
                        missing += e.missing
        if missing:
            raise_missing(missing)
        return tuple(fetched)

    def place(self, cas, d, executable, dest):
        """Puts d's entry at dest: a hard link, or a copy when linking fails. Returns True for a
        link."""
        for attempt in (1, 2):
            try:
                os.link(self.path(d, executable), dest)
                return True
            except FileNotFoundError:
                if attempt == 2 or not os.path.isdir(os.path.dirname(dest)):
                    raise
                self.ensure(cas, {key_of(d): (d, {executable})})  # dropped by another worker meanwhile
            except OSError as e:
                if e.errno == errno.EEXIST:
                    raise LeaseError(code_pb2.INVALID_ARGUMENT, f"input root names {dest} twice") from e
                # EXDEV (another file system), EMLINK (too many links), EPERM (no hard links here)
                shutil.copyfile(self.path(d, executable), dest)
                os.chmod(dest, file_mode(executable))
                return False


def checked_name(name):
    if not name or name in (".", "..") or "/" in name:
        raise LeaseError(code_pb2.INVALID_ARGUMENT, f"bad name in input tree: {name!r}")
    return name


def inside(root, relative):
    """root/relative, refusing paths that leave root."""
    path = os.path.normpath(os.path.join(root, relative))
    if path != root and not path.startswith(root + os.sep):
        raise LeaseError(code_pb2.INVALID_ARGUMENT, f"path leaves the input root: {relative!r}")
    return path


def lay_out_input_root(cas, cache, root_digest, root):
    """Makes the directory root hold the Directory tree of root_digest: its files are taken from
    the blob cache (fetched into it when missing). Returns a summary for the log."""
    t0 = time.monotonic()
    dirs, level = {}, [root_digest]
    while level:  # read the tree one depth at a time
        blobs = cas.read(level)
        for d in level:
            dirs[d.hash] = re_pb2.Directory.FromString(blobs[d.hash])
        below = {n.digest.hash: n.digest for d in level for n in dirs[d.hash].directories}
        level = [d for h, d in below.items() if h not in dirs]
    wanted = {}
    for directory in dirs.values():
        for f in directory.files:
            wanted.setdefault(key_of(checked_digest(f.digest)), (f.digest, set()))[1].add(f.is_executable)
    fetched, fetched_bytes = cache.ensure(cas, wanted)
    counts = {"files": 0, "bytes": 0, "copies": 0}

    def write(digest, path):
        os.makedirs(path, exist_ok=True)
        directory = dirs[digest.hash]
        for f in directory.files:
            if not cache.place(cas, f.digest, f.is_executable, os.path.join(path, checked_name(f.name))):
                counts["copies"] += 1
            counts["files"] += 1
            counts["bytes"] += f.digest.size_bytes
        for sub in directory.directories:
            write(sub.digest, os.path.join(path, checked_name(sub.name)))
        for link in directory.symlinks:  # last: nothing is written through a link made here
            try:
                os.symlink(link.target, os.path.join(path, checked_name(link.name)))
            except FileExistsError as e:
                raise LeaseError(code_pb2.INVALID_ARGUMENT, f"input root names {link.name!r} twice") from e

    write(root_digest, root)
    return (
        f"{counts['files']} files ({counts['bytes'] / 1e6:.1f} MB), {fetched} blobs fetched "
        f"({fetched_bytes / 1e6:.1f} MB), {counts['copies']} copied instead of linked, "
        f"in {time.monotonic() - t0:.2f} s"
    )


def make_private(path):
    """Replaces a file that may be a hard link into the blob cache by a writable copy of its own."""
    st = os.lstat(path)
    mode = 0o755 if st.st_mode & 0o111 else 0o644
    if st.st_nlink > 1:
        fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path), prefix=".private-")
        try:
            with os.fdopen(fd, "wb") as out, open(path, "rb") as src:
                shutil.copyfileobj(src, out, CHUNK)
            os.chmod(tmp, mode)
            os.rename(tmp, path)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise
    else:
        os.chmod(path, mode)


def prepare_outputs(command, workdir):
    """Gives the command writable copies of the declared outputs that the input root holds (so it
    cannot write into the blob cache through them) and creates the parent directories of all
    declared outputs, as the REAPI requires of a worker."""
    for relative in dict.fromkeys([*command.output_paths, *command.output_files, *command.output_directories]):
        path = inside(workdir, relative)
        if os.path.islink(path):
            pass
        elif os.path.isfile(path):
            make_private(path)
        elif os.path.isdir(path):
            for parent, _, files in os.walk(path):
                for name in files:
                    if not os.path.islink(os.path.join(parent, name)):
                        make_private(os.path.join(parent, name))
        os.makedirs(os.path.dirname(path), exist_ok=True)


def is_executable(path):
    return bool(os.stat(path).st_mode & 0o111)


def directory_messages(path, uploads):
    """The Directory of path and of every directory below it (uploads collects their files)."""
    directory, below = re_pb2.Directory(), []
    for entry in sorted(os.scandir(path), key=lambda e: e.name):
        if entry.is_symlink():
            directory.symlinks.add(name=entry.name, target=os.readlink(entry.path))
        elif entry.is_dir():
            sub, sub_below = directory_messages(entry.path, uploads)
            below += [sub] + sub_below
            directory.directories.add(name=entry.name, digest=digest_of(sub.SerializeToString()))
        elif entry.is_file():
            d = uploads.add_file(entry.path)
            directory.files.add(name=entry.name, digest=d, is_executable=is_executable(entry.path))
    return directory, below


def add_output_directory(result, relative, path, uploads):
    root, below = directory_messages(path, uploads)
    children = {digest_of(d.SerializeToString()).hash: d for d in below}
    for d in [root, *children.values()]:  # each Directory too, for DIRECTORY_ONLY clients
        uploads.add_bytes(d.SerializeToString())
    tree = uploads.add_bytes(re_pb2.Tree(root=root, children=children.values()).SerializeToString())
    root_digest = digest_of(root.SerializeToString())
    result.output_directories.add(path=relative, tree_digest=tree, root_directory_digest=root_digest)


def collect_outputs(command, workdir, result, uploads):
    """Fills result's outputs from what the command left in workdir."""
    # REAPI v2.1+ clients declare output_paths (files or directories); older ones declare
    # output_files and output_directories apart. Paths are relative to the working directory.
    new_style = bool(command.output_paths)
    files = list(command.output_paths) if new_style else list(command.output_files)
    dirs = list(command.output_paths) if new_style else list(command.output_directories)
    for relative in dict.fromkeys(files + dirs):
        path = inside(workdir, relative)
        if os.path.islink(path):
            if new_style:
                links = result.output_symlinks
            else:
                links = result.output_directory_symlinks if relative in dirs else result.output_file_symlinks
            links.add(path=relative, target=os.readlink(path))
        elif os.path.isdir(path) and relative in dirs:
            add_output_directory(result, relative, path, uploads)
        elif os.path.isfile(path) and relative in files:
            d = uploads.add_file(path)
            result.output_files.add(path=relative, digest=d, is_executable=is_executable(path))


class Job:
    """One lease being worked on in a thread of its own."""

    def __init__(self, lease, cas, cache, bot_id, work_dir):
        self.lease, self.cas, self.cache, self.bot_id, self.work_dir = lease, cas, cache, bot_id, work_dir
        self.proc, self.cancelled = None, threading.Event()
        self.result, self.status = None, status_pb2.Status(code=code_pb2.OK)
        self.thread = threading.Thread(target=self._run, daemon=True, name=f"lease-{lease.id}")
        self.thread.start()

    def cancel(self):
        self.cancelled.set()
        self._kill_group()

    def _kill_group(self):
        if self.proc is not None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass

    def _run(self):
        try:
            self.result, code = self._execute()
            self.status.code = code
        except LeaseError as e:
            LOG.warning("lease %s: %s", self.lease.id, e)
            self.status = status_pb2.Status(code=e.code, message=str(e))
            if e.missing:
                failure = error_details_pb2.PreconditionFailure()
                for d in e.missing:
                    failure.violations.add(type="MISSING", subject=f"blobs/{d.hash}/{d.size_bytes}")
                self.status.details.add().Pack(failure)
        except Exception as e:  # noqa: BLE001 - any other failure is the worker's, reported as INTERNAL
            LOG.exception("lease %s failed", self.lease.id)
            self.status = status_pb2.Status(code=code_pb2.INTERNAL, message=f"worker error: {e!r}")

    def _execute(self):
        meta = re_pb2.ExecutedActionMetadata(worker=self.bot_id)
        meta.worker_start_timestamp.GetCurrentTime()
        meta.input_fetch_start_timestamp.GetCurrentTime()
        action = re_pb2.Action()
        if not self.lease.payload.Unpack(action):
            digest = re_pb2.Digest()
            if not self.lease.payload.Unpack(digest):
                raise LeaseError(code_pb2.INVALID_ARGUMENT, f"unknown payload {self.lease.payload.type_url}")
            action = re_pb2.Action.FromString(self.cas.read([digest])[digest.hash])
        command = re_pb2.Command.FromString(self.cas.read([action.command_digest])[action.command_digest.hash])
        if not command.arguments:
            raise LeaseError(code_pb2.INVALID_ARGUMENT, "Command has no arguments")
        base = tempfile.mkdtemp(prefix="action-", dir=self.work_dir)
        try:
            root = os.path.join(base, "root")
            summary = lay_out_input_root(self.cas, self.cache, action.input_root_digest, root)
            LOG.info("lease %s: input root: %s", self.lease.id, summary)
            workdir = inside(root, command.working_directory)
            os.makedirs(workdir, exist_ok=True)
            prepare_outputs(command, workdir)
            meta.input_fetch_completed_timestamp.GetCurrentTime()
            exit_code, timed_out = self._run_command(command, action, workdir, base, meta)
            meta.output_upload_start_timestamp.GetCurrentTime()
            result, uploads = re_pb2.ActionResult(exit_code=exit_code), Uploads()
            collect_outputs(command, workdir, result, uploads)
            result.stdout_digest.CopyFrom(uploads.add_file(os.path.join(base, "stdout")))
            result.stderr_digest.CopyFrom(uploads.add_file(os.path.join(base, "stderr")))
            self.cas.write(uploads)
            meta.output_upload_completed_timestamp.GetCurrentTime()
            meta.worker_completed_timestamp.GetCurrentTime()
            result.execution_metadata.CopyFrom(meta)
            return result, code_pb2.DEADLINE_EXCEEDED if timed_out else code_pb2.OK
        finally:
            shutil.rmtree(base, ignore_errors=True)

    def _run_command(self, command, action, workdir, base, meta):
        """Runs the command; returns (exit code, whether the action's timeout killed it)."""
        env = {v.name: v.value for v in command.environment_variables}
        timeout = action.timeout.ToTimedelta().total_seconds() or None
        timed_out = False
        with open(os.path.join(base, "stdout"), "wb") as out, open(os.path.join(base, "stderr"), "wb") as err:
            meta.execution_start_timestamp.GetCurrentTime()
            try:
                self.proc = subprocess.Popen(
                    list(command.arguments), cwd=workdir, env=env, stdin=subprocess.DEVNULL,
                    stdout=out, stderr=err, start_new_session=True,
                )  # fmt: skip
            except OSError as e:
                err.write(f"reapi_worker: cannot run {command.arguments[0]!r}: {e}\n".encode())
                return 127, False
            if self.cancelled.is_set():
                self._kill_group()
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                timed_out = True
            self._kill_group()  # at the timeout, or background children left behind
            returncode = self.proc.wait()
            meta.execution_completed_timestamp.GetCurrentTime()
        return (128 - returncode if returncode < 0 else returncode), timed_out


def new_session(bot_id):
    isa = {"x86_64": "x86-64", "amd64": "x86-64", "aarch64": "arm-a64"}.get(platform.machine().lower())
    device = worker_pb2.Device(handle=bot_id)
    device.properties.add(key="OSFamily", value="linux")
    device.properties.add(key="ISA", value=isa or platform.machine())
    worker = worker_pb2.Worker(devices=[device], configs=[worker_pb2.Worker.Config(key="capacity", value="1")])
    return bots_pb2.BotSession(bot_id=bot_id, status=bots_pb2.BotStatus.OK, worker=worker)


def serve(args):
    channel = grpc.insecure_channel(args.remote)
    if args.token_file:
        with open(args.token_file) as f:
            channel = grpc.intercept_channel(channel, Bearer(f.read().strip()))
    bots, cas = bots_pb2_grpc.BotsStub(channel), Cas(channel, args.instance)
    cache = BlobCache(args.blob_cache)
    bot_id = f"{socket.gethostname()}/{args.name}/{os.getpid()}"
    session, job = None, None

    def on_signal(signum, _frame):
        LOG.info("signal %d: stopping", signum)
        if job is not None:
            job.cancel()
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    while True:
        try:
            if session is None:
                request = bots_pb2.CreateBotSessionRequest(parent=args.instance, bot_session=new_session(bot_id))
                session = bots.CreateBotSession(request, timeout=args.poll, wait_for_ready=True)
                LOG.info("bot session %s (bot id %s)", session.name, bot_id)
            else:
                request = bots_pb2.UpdateBotSessionRequest(name=session.name, bot_session=session)
                session = bots.UpdateBotSession(request, timeout=args.poll if job is None else 4 * HEARTBEAT)
        except grpc.RpcError as e:
            LOG.warning("Bots call failed: %s %s", e.code(), e.details())
            if e.code() not in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED):
                if job is not None:  # the lease went with the session; BuildGrid reassigns it
                    job.cancel()
                session, job = None, None
            time.sleep(1)
            continue
        if job is not None and not any(le.id == job.lease.id and le.state == ACTIVE for le in session.leases):
            LOG.info("lease %s withdrawn by the server: killing its command", job.lease.id)
            job.cancel()
            job = None
        if job is None:
            lease = next((le for le in session.leases if le.state == ACTIVE), None)
            if lease is not None:
                LOG.info("lease %s: starting", lease.id)
                job = Job(lease, cas, cache, bot_id, args.work_dir)
        if job is not None:
            job.thread.join(HEARTBEAT)
            if not job.thread.is_alive():
                lease = next(le for le in session.leases if le.id == job.lease.id)
                lease.state = COMPLETED
                lease.status.CopyFrom(job.status)
                if job.result is not None:
                    lease.result.Pack(job.result)
                LOG.info("lease %s: done, status %d", lease.id, job.status.code)
                job = None


class CallDetails(
    collections.namedtuple("CallDetails", ("method", "timeout", "metadata", "credentials", "wait_for_ready", "compression")),
    grpc.ClientCallDetails,
):
    pass


class Bearer(
    grpc.UnaryUnaryClientInterceptor,
    grpc.UnaryStreamClientInterceptor,
    grpc.StreamUnaryClientInterceptor,
    grpc.StreamStreamClientInterceptor,
):
    """Adds `authorization: Bearer TOKEN` to every call (an engine started with --auth)."""

    def __init__(self, token):
        self.header = ("authorization", "Bearer " + token)

    def _with(self, d):
        metadata = list(d.metadata or []) + [self.header]
        return CallDetails(d.method, d.timeout, metadata, d.credentials, getattr(d, "wait_for_ready", None),
                           getattr(d, "compression", None))

    def intercept_unary_unary(self, continuation, details, request):
        return continuation(self._with(details), request)

    def intercept_unary_stream(self, continuation, details, request):
        return continuation(self._with(details), request)

    def intercept_stream_unary(self, continuation, details, requests):
        return continuation(self._with(details), requests)

    def intercept_stream_stream(self, continuation, details, requests):
        return continuation(self._with(details), requests)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--remote", required=True, help="BuildGrid's host:port")
    parser.add_argument("--instance", default="", help="REAPI instance name (default: empty)")
    parser.add_argument("--name", default="worker", help="this worker's name, part of its bot id")
    parser.add_argument("--work-dir", required=True, help="where actions' input roots are laid out")
    parser.add_argument("--token-file", help="a file holding the bearer token the engine wants (--auth)")
    parser.add_argument(
        "--poll",
        type=float,
        default=POLL,
        help="seconds an idle call for work may wait; keep it well under the server's bot keepalive",
    )
    parser.add_argument(
        "--blob-cache",
        help="the blob cache's directory, shared by the workers of one engine; on the file system of "
        "--work-dir, so that its files can be hard-linked (default: WORK_DIR/blobs)",
    )
    args = parser.parse_args()
    args.work_dir = os.path.abspath(args.work_dir)
    args.blob_cache = os.path.abspath(args.blob_cache or os.path.join(args.work_dir, "blobs"))
    os.makedirs(args.work_dir, exist_ok=True)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(name)s: %(message)s")
    serve(args)


if __name__ == "__main__":
    main()
