"""The DICOMweb transport (PS3.18) under ``LIGHTBOX_DICOMWEB_ROOT``: STOW-RS, QIDO-RS, WADO-RS, WADO-URI."""

from __future__ import annotations

from fastapi import APIRouter

from app.api.routes.dicomweb import qido, rendered, stow, wado, wado_uri


def router() -> APIRouter:
    """Every DICOMweb route; the app mounts it under the configured root."""
    combined = APIRouter(tags=["DICOMweb"])
    for module in (stow, qido, wado, rendered, wado_uri):
        combined.include_router(module.router)
    return combined
