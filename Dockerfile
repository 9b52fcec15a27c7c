# Lightbox DICOM file service.
#   docker build -t lightbox . && docker run -p 8080:8080 -v lightbox-data:/srv/lightbox/uploads lightbox
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY app ./app
RUN python -m venv /opt/venv \
    && /opt/venv/bin/pip install --no-cache-dir .

FROM python:3.11-slim
RUN useradd --system --uid 10001 --create-home --home-dir /srv/lightbox lightbox \
    && mkdir -p /srv/lightbox/uploads \
    && chown lightbox:lightbox /srv/lightbox/uploads
COPY --from=build /opt/venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    LIGHTBOX_HOST=0.0.0.0 \
    LIGHTBOX_PORT=8080 \
    LIGHTBOX_STORAGE_DIR=/srv/lightbox/uploads
WORKDIR /srv/lightbox
USER lightbox
VOLUME ["/srv/lightbox/uploads"]
EXPOSE 8080
HEALTHCHECK --interval=30s --timeout=3s --start-period=10s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8080/healthz', timeout=2)"]
CMD ["lightbox"]
