"""An S3-compatible bucket as a backend (AWS S3, Cloudflare R2, MinIO, moto).

Conditional writes are S3's own: `PutObject` with `If-None-Match: *` creates only, with
`If-Match: <ETag>` replaces only an unchanged object; a failed condition is 412 (or 409 for a
concurrent conflicting write). botocore retries 5xx, throttling and timeouts (standard mode,
3 attempts). A write whose answer was lost (a timeout after the store applied it, then a retry
answered 412) is recognised by reading the object back: if it holds exactly our bytes, the write
happened. Credentials come from the standard AWS chain and never appear in a message.
This module imports boto3, so it is imported only when an s3 backend is in use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import boto3
import botocore.exceptions
from botocore.config import Config

from runtime.backends import (
    BackendError,
    BackendUnavailableError,
    BackendUrl,
    ConditionFailed,
    Versioned,
)

if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = ["S3Backend"]

_CONDITION_CODES = {"PreconditionFailed", "ConditionalRequestConflict", "412", "409"}
_MISSING_CODES = {"NoSuchKey", "404", "NotFound"}
_UNREACHABLE = (botocore.exceptions.EndpointConnectionError,
                botocore.exceptions.ConnectTimeoutError, botocore.exceptions.ReadTimeoutError,
                botocore.exceptions.ConnectionClosedError, botocore.exceptions.ConnectionError)


class S3Backend:
    """Objects under `s3://bucket/prefix/`."""

    def __init__(self, url: BackendUrl) -> None:
        self._url = url
        self._requests = 0
        session = boto3.session.Session(profile_name=url.profile) if url.profile \
            else boto3.session.Session()
        config = Config(connect_timeout=url.timeout_sec, read_timeout=url.timeout_sec,
                        retries={"max_attempts": 3, "mode": "standard"},
                        s3={"addressing_style": "path"} if url.endpoint else None)
        try:
            self._client: Any = session.client("s3", endpoint_url=url.endpoint,
                                               region_name=url.region, config=config)
        except botocore.exceptions.BotoCoreError as exc:
            raise BackendError(f"cannot use {url.display}: {exc}") from None
        self._client.meta.events.register("before-send.s3", self._count)

    def _count(self, **_: Any) -> None:
        self._requests += 1

    @property
    def url(self) -> str:
        return self._url.display

    @property
    def requests(self) -> int:
        return self._requests

    def _key(self, key: str) -> str:
        return f"{self._url.prefix}/{key}" if self._url.prefix else key

    def where(self, key: str) -> str:
        return f"s3://{self._url.root}/{self._key(key)}"

    def _call(self, what: str, key: str, call: Callable[[], Any]) -> Any:
        """Run one S3 call; map its failures to this module's errors, with the key's address."""
        try:
            return call()
        except botocore.exceptions.ClientError as exc:
            error = exc.response.get("Error", {})
            code = str(error.get("Code", ""))
            status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
            if code in _CONDITION_CODES or status in (409, 412):
                raise ConditionFailed(f"{self.where(key)} changed since it was read "
                                      f"({code or status})") from None
            if code == "NoSuchBucket":
                raise BackendError(f"bucket {self._url.root!r} does not exist (at "
                                   f"{self.url}); create it first") from None
            if code in ("AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch", "403"):
                raise BackendError(f"access denied to {self.where(key)} ({code}); check the AWS "
                                   "credentials (environment, profile or config file)") from None
            if isinstance(status, int) and status >= 500:
                raise BackendUnavailableError(
                    f"{what} {self.where(key)} failed: the store answered {status} {code} "
                    "(after retries)") from None
            raise BackendError(f"{what} {self.where(key)} failed: {code or status} "
                               f"{error.get('Message', '')}".rstrip()) from None
        except botocore.exceptions.NoCredentialsError:
            raise BackendError(f"no AWS credentials for {self.url}: set AWS_ACCESS_KEY_ID/"
                               "AWS_SECRET_ACCESS_KEY, a profile (?profile=NAME) or a config "
                               "file") from None
        except _UNREACHABLE as exc:
            raise BackendUnavailableError(f"{what} {self.where(key)} failed: the store did not "
                                          f"answer ({type(exc).__name__}, after retries)") from None

    def read(self, key: str) -> Versioned | None:
        def get() -> Versioned | None:
            try:
                answer = self._client.get_object(Bucket=self._url.root, Key=self._key(key))
            except botocore.exceptions.ClientError as exc:
                if str(exc.response.get("Error", {}).get("Code", "")) in _MISSING_CODES:
                    return None
                raise
            return Versioned(answer["Body"].read(), str(answer["ETag"]))

        result: Versioned | None = self._call("reading", key, get)
        return result

    def _put(self, key: str, data: bytes, **condition: str) -> str:
        """A conditional put that tells a lost answer from a refusal by reading back."""
        try:
            answer = self._call("writing", key, lambda: self._client.put_object(
                Bucket=self._url.root, Key=self._key(key), Body=data, **condition))
        except (ConditionFailed, BackendUnavailableError):
            try:
                current = self.read(key)
            except BackendError:
                current = None
            if current is not None and current.data == data:
                return current.version  # our write landed; its answer was lost
            raise
        return str(answer["ETag"])

    def write_if(self, key: str, data: bytes, expected_version: str) -> str:
        return self._put(key, data, IfMatch=expected_version)

    def create_if_absent(self, key: str, data: bytes) -> str:
        return self._put(key, data, IfNoneMatch="*")

    def put(self, key: str, data: bytes) -> str:
        answer = self._call("writing", key, lambda: self._client.put_object(
            Bucket=self._url.root, Key=self._key(key), Body=data))
        return str(answer["ETag"])

    def delete(self, key: str, expected_version: str | None = None) -> None:
        extra = {"IfMatch": expected_version} if expected_version else {}

        def remove() -> None:
            try:
                self._client.delete_object(Bucket=self._url.root, Key=self._key(key), **extra)
            except botocore.exceptions.ClientError as exc:
                if str(exc.response.get("Error", {}).get("Code", "")) not in _MISSING_CODES:
                    raise

        self._call("deleting", key, remove)

    def list(self, prefix: str) -> list[str]:
        full = self._key(prefix)
        strip = len(self._key(""))

        def keys() -> list[str]:
            found: list[str] = []
            paginator = self._client.get_paginator("list_objects_v2")
            for page in paginator.paginate(Bucket=self._url.root, Prefix=full):
                found.extend(str(item["Key"])[strip:] for item in page.get("Contents", ()))
            return sorted(found)

        result: list[str] = self._call("listing", prefix, keys)
        return result
