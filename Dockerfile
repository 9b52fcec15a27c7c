# Lightbox DICOM file service.
#   docker build -t lightbox . && docker run -p 8080:8080 -v lightbox-data:/srv/lightbox/uploads lightbox
# Dependencies are installed from requirements.lock (exact versions, made by scripts/lock) with the
# same command scripts/test runs, so the image runs what CI tested.
FROM python:3.11-slim AS build
WORKDIR /src
RUN python -m venv /opt/venv
COPY requirements.lock ./
RUN /opt/venv/bin/python -m pip install -q --disable-pip-version-check --no-cache-dir -r requirements.lock
COPY pyproject.toml README.md ./
COPY app ./app
RUN /opt/venv/bin/python -m pip install -q --disable-pip-version-check --no-cache-dir --no-deps . \
    && /opt/venv/bin/python -m pip check

FROM python:3.11-slim
RUN useradd --system --uid 10001 --create-home --home-dir /srv/lightbox lightbox \
    && mkdir -p /srv/lightbox/uploads \
    && chown lightbox:lightbox /srv/lightbox/uploads
COPY --from=build /opt/venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    LIGHTBOX_HOST=0.0.0.0 \
    LIGHTBOX_AUTH_REQUIRED=true \
    LIGHTBOX_PORT=8080 \
    LIGHTBOX_STORAGE_DIR=/srv/lightbox/uploads \
    LIGHTBOX_LOG_FORMAT=json
WORKDIR /srv/lightbox
USER lightbox
VOLUME ["/srv/lightbox/uploads"]
EXPOSE 8080
HEALTHCHECK --interval=30s --timeout=3s --start-period=10s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8080/healthz', timeout=2)"]
STOPSIGNAL SIGTERM
CMD ["lightbox"]
