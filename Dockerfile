# One image, several commands: `astroloc serve`, `astroloc worker`, `astroloc worker --queues train`.
# The web map (frontend/) is built in a node stage from its lock file; only its dist/ is copied over.
FROM node:20-bookworm-slim AS web
WORKDIR /web
COPY frontend/package.json frontend/package-lock.json ./
RUN npm ci --no-audit --no-fund --loglevel=error
COPY frontend/ ./
RUN npm run build

FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    MALLOC_ARENA_MAX=2 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    ASTROLOC_DATA_DIR=/data \
    ASTROLOC_MODEL_STORE_DIR=/models

# libgl/libglib for OpenCV's wheels; curl for the health check.
RUN apt-get update \
 && apt-get install -y --no-install-recommends libglib2.0-0 libgomp1 curl \
 && rm -rf /var/lib/apt/lists/*

WORKDIR /app
# Dependencies first, so that code changes reuse the cached layer. The CPU wheel of torch keeps
# the image small; the pins match pyproject.toml.
COPY pyproject.toml README.md ./
RUN pip install --index-url https://download.pytorch.org/whl/cpu torch==2.14.1 torchvision==0.29.1
COPY . .
COPY --from=web /web/dist frontend/dist
RUN pip install -e . && useradd --create-home --uid 1000 astroloc \
 && mkdir -p /data /models && chown astroloc /data /models
USER astroloc

EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=5s CMD curl -fsS http://127.0.0.1:8000/health || exit 1
CMD ["astroloc", "serve", "--host", "0.0.0.0", "--port", "8000"]
