"""Object stores: one interface, a local folder (``file://``) and S3 (``s3://bucket/prefix``)."""

from __future__ import annotations

import os
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import IO, Protocol
from urllib.parse import unquote, urlparse

from flows.errors import ConfigError, KeyRejected, NotFound, StoreError
from flows.settings import StoreSettings

CHUNK = 1 << 20


@dataclass(frozen=True)
class ObjectInfo:
    key: str
    size: int
    etag: str | None


class ObjectStore(Protocol):
    uri: str

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]: ...
    def open(self, key: str) -> IO[bytes]: ...
    def put(self, key: str, data: bytes | IO[bytes], content_type: str | None = None) -> ObjectInfo: ...
    def head(self, key: str) -> ObjectInfo: ...
    def exists(self, key: str) -> bool: ...
    def delete(self, key: str) -> None: ...
    def probe(self) -> None: ...


def check_key(key: str) -> str:
    """Return ``key`` if it stays inside its root; raise :class:`KeyRejected` otherwise."""
    if not key or "\x00" in key:
        raise KeyRejected(f"invalid key {key!r}: empty or contains a NUL byte")
    if key.startswith("/") or PurePosixPath(key).is_absolute():
        raise KeyRejected(f"invalid key {key!r}: absolute paths are not allowed")
    if any(part in ("..", ".") for part in key.split("/")):
        raise KeyRejected(f"invalid key {key!r}: '.' and '..' segments would escape the store root")
    if "//" in key or key.endswith("/"):
        raise KeyRejected(f"invalid key {key!r}: empty path segment")
    return key


def read_all(store: ObjectStore, key: str) -> bytes:
    with store.open(key) as fh:
        return fh.read()


def _process_umask() -> int:
    mask = os.umask(0)  # read at import, while no other thread can create a file meanwhile
    os.umask(mask)
    return mask


_UMASK = _process_umask()


class LocalStore:
    """A folder on disk. ETags are ``<mtime_ns>-<size>`` in hex, like a web server's.

    A file is written under a temporary name in the store's own ``.archive-tmp/`` folder and
    renamed into place, so readers never see half a file and a write killed half-way leaves
    nothing inside a version's folder; opening a store to write clears temporaries older than
    ``TMP_MAX_AGE`` seconds (a live writer's are younger)."""

    TMP = ".archive-tmp"
    TMP_MAX_AGE = 3600

    def __init__(self, root: Path, create: bool = False):
        self.root = root.resolve()
        if create:
            self.root.mkdir(parents=True, exist_ok=True)
            self._sweep_temporaries()
        elif not self.root.is_dir():
            raise StoreError(f"folder {self.root} does not exist or is not a directory")
        self.uri = self.root.as_uri()

    def _sweep_temporaries(self) -> None:
        import time

        folder = self.root / self.TMP
        if not folder.is_dir():
            return
        for leftover in folder.glob(".tmp-*"):
            try:
                if time.time() - leftover.stat().st_mtime > self.TMP_MAX_AGE:
                    leftover.unlink()
            except FileNotFoundError:  # another process swept it first
                pass

    def probe(self) -> None:
        """Raise :class:`StoreError` unless the folder can be read."""
        if not os.access(self.root, os.R_OK | os.X_OK):
            raise StoreError(f"folder {self.root} is not readable")

    def _path(self, key: str) -> Path:
        return self.root.joinpath(*check_key(key).split("/"))

    @staticmethod
    def _info(key: str, st: os.stat_result) -> ObjectInfo:
        return ObjectInfo(key=key, size=st.st_size, etag=f"{st.st_mtime_ns:x}-{st.st_size:x}")

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        # Walk only below the prefix's folder: the store may hold millions of files.
        base = prefix.rsplit("/", 1)[0] if "/" in prefix else ""
        start = self._path(base) if base else self.root
        if not start.is_dir():
            return
        for dirpath, dirnames, filenames in os.walk(start):
            dirnames[:] = sorted(d for d in dirnames if d != self.TMP or Path(dirpath) != self.root)
            rel = Path(dirpath).relative_to(self.root).as_posix()
            for name in sorted(filenames):
                key = name if rel == "." else f"{rel}/{name}"
                if key.startswith(prefix) and not name.startswith(".tmp-"):
                    yield self._info(key, os.stat(os.path.join(dirpath, name)))

    def open(self, key: str) -> IO[bytes]:
        try:
            return self._path(key).open("rb")
        except FileNotFoundError:
            raise NotFound(f"no object {key!r} in {self.uri}") from None

    def head(self, key: str) -> ObjectInfo:
        try:
            return self._info(key, self._path(key).stat())
        except FileNotFoundError:
            raise NotFound(f"no object {key!r} in {self.uri}") from None

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def delete(self, key: str) -> None:
        """Remove an object (only ever a crashed attempt's leftovers: versions are immutable)."""
        self._path(key).unlink(missing_ok=True)

    def put(self, key: str, data: bytes | IO[bytes], content_type: str | None = None) -> ObjectInfo:
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        # Write to a temporary name outside the key's folder and rename (see the class).
        (self.root / self.TMP).mkdir(exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=self.root / self.TMP)
        try:
            os.fchmod(
                fd, 0o666 & ~_UMASK
            )  # as any file the user writes (mkstemp's 0600 would hide it from a web server)
            with os.fdopen(fd, "wb") as out:
                if isinstance(data, bytes | bytearray | memoryview):
                    out.write(data)
                else:
                    while chunk := data.read(CHUNK):
                        out.write(chunk)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return self.head(key)


class S3Store:
    """An S3-API bucket (AWS, MinIO, Ceph RGW, moto) under an optional prefix."""

    def __init__(self, bucket: str, prefix: str, settings: StoreSettings, max_pool: int = 16):
        try:
            import boto3
            from boto3.s3.transfer import TransferConfig
            from botocore.config import Config
        except ImportError:  # pragma: no cover - depends on the install
            raise ConfigError("S3 support needs the 's3' extra: pip install 'photo-archive[s3]'") from None
        self.bucket, self.prefix = bucket, prefix.strip("/")
        self.uri = f"s3://{bucket}/{self.prefix}".rstrip("/")
        self.endpoint = settings.endpoint_url or "AWS"
        secret = lambda s: s.get_secret_value() if s else None  # noqa: E731
        self.client = boto3.client(
            "s3",
            endpoint_url=settings.endpoint_url,
            region_name=settings.region,
            aws_access_key_id=secret(settings.access_key_id),
            aws_secret_access_key=secret(settings.secret_access_key),
            config=Config(
                retries={"mode": "standard", "max_attempts": settings.max_attempts},
                connect_timeout=settings.connect_timeout_s,
                max_pool_connections=max_pool,
            ),
        )
        threshold = settings.multipart_threshold_mb * CHUNK
        self.transfer = TransferConfig(multipart_threshold=threshold, multipart_chunksize=threshold)

    def probe(self) -> None:
        """Raise :class:`StoreError` unless the bucket answers (one cheap request, no retries)."""
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            self.client.head_bucket(Bucket=self.bucket)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchBucket"):
                raise StoreError(f"bucket {self.bucket!r} does not exist at {self.endpoint}") from None
            raise self._fail(exc, "access") from None
        except BotoCoreError as exc:
            raise self._fail(exc, "access") from None

    def _full(self, key: str) -> str:
        check_key(key)
        return f"{self.prefix}/{key}" if self.prefix else key

    def _rel(self, full: str) -> str:
        return full[len(self.prefix) + 1 :] if self.prefix else full

    def _fail(self, exc: Exception, what: str) -> Exception:
        from botocore.exceptions import ClientError

        if isinstance(exc, ClientError):
            code = exc.response.get("Error", {}).get("Code", "")
            if code in ("NoSuchKey", "404", "NotFound"):
                return NotFound(f"no object {what} in {self.uri}")
            if code == "NoSuchBucket":
                return StoreError(f"bucket {self.bucket!r} does not exist at {self.endpoint}")
            return StoreError(f"S3 refused {what} in {self.uri}: {code} {exc}")
        return StoreError(f"cannot reach S3 endpoint {self.endpoint} for {self.uri}: {exc}")

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        from botocore.exceptions import BotoCoreError, ClientError

        full_prefix = f"{self.prefix}/{prefix}" if self.prefix else prefix
        pages = self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=full_prefix)
        try:
            for page in pages:
                for obj in page.get("Contents", []):
                    if not obj["Key"].endswith("/"):
                        yield ObjectInfo(self._rel(obj["Key"]), obj["Size"], obj["ETag"].strip('"'))
        except (BotoCoreError, ClientError) as exc:
            raise self._fail(exc, "listing") from None

    def open(self, key: str) -> IO[bytes]:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            return self.client.get_object(Bucket=self.bucket, Key=self._full(key))["Body"]
        except (BotoCoreError, ClientError) as exc:
            raise self._fail(exc, repr(key)) from None

    def head(self, key: str) -> ObjectInfo:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            meta = self.client.head_object(Bucket=self.bucket, Key=self._full(key))
        except (BotoCoreError, ClientError) as exc:
            raise self._fail(exc, repr(key)) from None
        return ObjectInfo(key, meta["ContentLength"], meta["ETag"].strip('"'))

    def exists(self, key: str) -> bool:
        try:
            self.head(key)
        except NotFound:
            return False
        return True

    def delete(self, key: str) -> None:
        """Remove an object (only ever a crashed attempt's leftovers: versions are immutable)."""
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            self.client.delete_object(Bucket=self.bucket, Key=self._full(key))
        except (BotoCoreError, ClientError) as exc:
            raise self._fail(exc, repr(key)) from None

    def put(self, key: str, data: bytes | IO[bytes], content_type: str | None = None) -> ObjectInfo:
        import io

        from botocore.exceptions import BotoCoreError, ClientError

        body = io.BytesIO(data) if isinstance(data, bytes | bytearray | memoryview) else data
        extra = {"ContentType": content_type} if content_type else None
        try:
            # upload_fileobj switches to a multipart upload above the threshold.
            self.client.upload_fileobj(
                body, self.bucket, self._full(key), ExtraArgs=extra, Config=self.transfer
            )
        except (BotoCoreError, ClientError) as exc:
            raise self._fail(exc, repr(key)) from None
        try:
            return self.head(key)
        except StoreError:
            # The upload's own success is the confirmation: a HEAD after it that fails (a 503, a
            # dropped connection) must not report a stored object as a failed write.
            return ObjectInfo(
                key, len(data) if isinstance(data, bytes | bytearray | memoryview) else -1, None
            )


def open_store(uri: str, settings: StoreSettings, create: bool = False, max_pool: int = 16) -> ObjectStore:
    """Open ``file://PATH``, a plain path, or ``s3://bucket/prefix``."""
    parsed = urlparse(uri)
    if parsed.scheme == "s3":
        if not parsed.netloc:
            raise ConfigError(f"invalid store URI {uri!r}: expected s3://bucket/prefix")
        return S3Store(parsed.netloc, unquote(parsed.path), settings, max_pool=max_pool)
    if parsed.scheme == "file":
        path = unquote(parsed.netloc + parsed.path)  # file://./rel keeps the relative part
        return LocalStore(Path(path), create=create)
    if parsed.scheme == "":
        return LocalStore(Path(uri), create=create)
    raise ConfigError(f"unsupported store URI {uri!r}: use file://PATH, a folder path or s3://bucket/prefix")


_stores: dict[tuple, ObjectStore] = {}
_stores_lock = threading.Lock()


def cached_store(source: str, settings: StoreSettings, pool_size: int) -> ObjectStore:
    """One store (and S3 connection pool) per source per process, reused across batches."""
    secrets = tuple(
        s.get_secret_value() if s else None for s in (settings.access_key_id, settings.secret_access_key)
    )
    key = (source, settings.model_dump_json(), *secrets)
    with _stores_lock:
        if key not in _stores:
            _stores[key] = open_store(source, settings, max_pool=pool_size + 2)
        return _stores[key]
