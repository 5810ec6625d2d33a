"""Uploading input images with fal's storage protocol, through the engine's own transport.

fal_client's CDN upload opens httpx clients of its own, which a custom transport cannot
reach; doing the two small steps here keeps every byte on the configured base URL.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta, timezone

import httpx

from ..errors import FalError
from .protocol import http_error

REST_URL = "https://rest.fal.ai"


class StorageUploader:
    """fal storage: a CDN token then ``POST /files/upload``; the GCS initiate/PUT pair as fallback."""

    def __init__(self, http: Callable[[], Awaitable[httpx.AsyncClient]], plain: httpx.AsyncClient) -> None:
        self._http = http
        self._plain = plain  # no Authorization header: used for signed upload URLs
        self._token: dict[str, str] | None = None
        self._expires = datetime.min.replace(tzinfo=timezone.utc)

    async def upload(self, data: bytes, content_type: str, file_name: str) -> str:
        try:
            return await self._upload_cdn(data, content_type, file_name)
        except FalError as first:
            try:
                return await self._upload_gcs(data, content_type, file_name)
            except FalError as second:
                raise FalError(f"could not upload the input image: {first}; fallback: {second}") from None

    async def _cdn_token(self) -> dict[str, str]:
        if self._token is None or datetime.now(timezone.utc) + timedelta(seconds=30) >= self._expires:
            http = await self._http()
            response = await http.post(f"{REST_URL}/storage/auth/token", params={"storage_type": "fal-cdn-v3"}, json={})
            if response.status_code >= 400:
                raise http_error(response)
            token = response.json()
            self._token = token
            try:
                self._expires = datetime.fromisoformat(str(token["expires_at"]).replace("Z", "+00:00"))
            except (KeyError, ValueError):
                self._expires = datetime.now(timezone.utc) + timedelta(minutes=5)
            if self._expires.tzinfo is None:
                self._expires = self._expires.replace(tzinfo=timezone.utc)
        return self._token

    async def _upload_cdn(self, data: bytes, content_type: str, file_name: str) -> str:
        token = await self._cdn_token()
        http = await self._http()
        response = await http.post(
            token["base_url"].rstrip("/") + "/files/upload",
            content=data,
            headers={
                "Authorization": f"{token['token_type']} {token['token']}",
                "Content-Type": content_type,
                "X-Fal-File-Name": file_name,
            },
        )
        if response.status_code >= 400:
            raise http_error(response)
        return str(response.json()["access_url"])

    async def _upload_gcs(self, data: bytes, content_type: str, file_name: str) -> str:
        http = await self._http()
        response = await http.post(
            f"{REST_URL}/storage/upload/initiate",
            params={"storage_type": "gcs"},
            json={"file_name": file_name, "content_type": content_type},
        )
        if response.status_code >= 400:
            raise http_error(response)
        target = response.json()
        put = await self._plain.put(target["upload_url"], content=data, headers={"Content-Type": content_type})
        if put.status_code >= 400:
            raise http_error(put)
        return str(target["file_url"])
