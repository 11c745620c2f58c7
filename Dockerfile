# One image for the dashboard and the API (served together by `python -m api.serve`).
#   GPU (default):  docker build -t realesrgan-studio .
#   CPU only:       docker build --build-arg VARIANT=cpu -t realesrgan-studio:cpu .
#   Ray nodes:      docker build --build-arg CLUSTER=1 -t realesrgan-studio:ray .   (docs/cluster.md: Ray with its
#                   dashboard and autoscaler, boto3 and the AWS CLI; /app/data for datasets, writable by studio)
# torch's CUDA wheels bring their own CUDA runtime: the host needs only the NVIDIA driver and
# the NVIDIA container toolkit (`docker run --gpus all ...`).
FROM python:3.11-slim

ARG VARIANT=cuda
ARG CLUSTER=0
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    STUDIO_WEIGHTS_DIR=/app/weights \
    STUDIO_RESULTS_DIR=/app/results

WORKDIR /app

# Dependencies first (cached across code changes). The CPU variant takes torch from the
# PyTorch CPU index (about 10x smaller); everything else is the same pinned set.
COPY requirements.txt requirements-cluster.txt requirements-cluster-node.txt ./
RUN pip install pip==26.3 \
 && if [ "$VARIANT" = "cpu" ]; then \
        pip install torch==2.14.1 torchvision==0.29.1 --index-url https://download.pytorch.org/whl/cpu; \
    fi \
 && pip install -r requirements.txt \
 && if [ "$CLUSTER" = "1" ]; then pip install -r requirements-cluster-node.txt; fi

COPY core core
COPY dashboard dashboard
COPY pages pages
COPY api api
COPY cli cli
COPY samples samples
COPY weights/README.md weights/README.md
COPY .streamlit .streamlit
COPY pyproject.toml README.md LICENSE ./
RUN pip install --no-deps . \
 && useradd --create-home --uid 10001 studio \
 && mkdir -p /app/results /app/data \
 && python -c "import core; [core.load_model(m.name) for m in core.list_models() if m.available]" \
 && chown -R studio:studio /app/weights /app/results /app/data

USER studio
# 8501: dashboard at / and API at /inference, /v1/*, /healthz, /readyz, /metrics, /docs.
EXPOSE 8501
HEALTHCHECK --interval=30s --timeout=5s --start-period=120s --retries=3 \
    CMD ["python", "-c", "import urllib.request, sys; sys.exit(urllib.request.urlopen('http://127.0.0.1:8501/healthz', timeout=4).status != 200)"]
VOLUME ["/app/weights", "/app/results"]
CMD ["python", "-m", "api.serve", "--host", "0.0.0.0", "--port", "8501"]
