"""Survey: every pydicom bundled test file that pydicom reads and that holds pixel data, rendered.

    python -m benchmarks.testdata_survey [--out DIR] [--only SUBSTRING]

Each file is uploaded through the ASGI app (real SQLite index in a temporary folder), asked for
``?png`` and deleted again (many bundled files share a SOP Instance UID). A file the upload
refuses is rendered directly through the render pipeline instead (:func:`render_file` in the
decode sandbox), so the render side can be judged independently of ingest.
Prints one line per file: upload status, render status and reason.
PNGs are written to ``--out`` for looking at.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
from pathlib import Path

import httpx
from pydicom import dcmread
from pydicom.data import get_testdata_files

from app.config import Settings
from app.errors import LightboxError
from app.main import create_app
from app.services.renders import Encoding, RenderRequest, render_file
from app.services.sandbox import DecodeSandbox

PIXEL_KEYWORDS = ("PixelData", "FloatPixelData", "DoubleFloatPixelData")


def candidates(only: str | None) -> list[Path]:
    """Bundled files pydicom reads (as ``dcmread`` would, without ``force``) that hold pixel data."""
    found = []
    for name in sorted(set(get_testdata_files()), key=lambda p: Path(p).name):
        path = Path(name)
        if only and only not in path.name:
            continue
        try:
            ds = dcmread(path, stop_before_pixels=False, defer_size=256)
        except Exception:  # unreadable files are not part of the survey
            continue
        if any(keyword in ds for keyword in PIXEL_KEYWORDS):
            found.append(path)
    return found


async def direct(sandbox: DecodeSandbox, path: Path, settings: Settings, out: Path) -> tuple[int, str]:
    """Render through the pipeline without the index: 200, or the domain error's status and message."""
    from app.api.errors import status_for

    encoding = Encoding(settings.max_pixels, settings.png_compress_level, settings.jpeg_quality)
    try:
        png = await sandbox.run(render_file, path, None, RenderRequest(), encoding)
        (out / f"{path.name}.direct.png").write_bytes(png)
    except LightboxError as error:
        return status_for(error), error.message
    except Exception as error:  # the point of the survey is to find these
        return 500, f"{type(error).__name__}: {error}"
    return 200, ""


async def survey(files: list[Path], out: Path) -> None:
    with tempfile.TemporaryDirectory() as folder:
        settings = Settings(storage_dir=Path(folder) / "storage")
        app = create_app(settings)
        sandbox = DecodeSandbox(1, settings.decode_timeout_seconds)
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
            async with httpx.AsyncClient(transport=transport, base_url="http://survey", timeout=120) as client:
                for path in files:
                    upload = await client.post("/upload", files={"file": (path.name, path.read_bytes())})
                    if upload.status_code in (200, 201):
                        name = upload.json()["name"]
                        render = await client.get(f"/dicomFile/{name}?png")
                        status = render.status_code
                        reason = "" if status == 200 else render.json().get("error", render.text[:200])
                        if status == 200:
                            (out / f"{path.name}.png").write_bytes(render.content)
                        print(f"{path.name}\tupload {upload.status_code}\tpng {status}\t{reason}", flush=True)
                        await client.delete(f"/dicomFile/{name}")  # other files share its SOP Instance UID
                    else:
                        status, reason = await direct(sandbox, path, settings, out)
                        refused = upload.json().get("error", "")
                        print(
                            f"{path.name}\tupload {upload.status_code} ({refused})\tdirect {status}\t{reason}",
                            flush=True,
                        )
        sandbox.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--out", type=Path, default=Path(tempfile.gettempdir()) / "lightbox-survey")
    parser.add_argument("--only", default=None, help="survey only files whose name contains this")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    asyncio.run(survey(candidates(args.only), args.out))


if __name__ == "__main__":
    main()
