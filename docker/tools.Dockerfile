# The tools: the `dfp` CLI with the detector stack (training, export to the TF Serving layout,
# `dfp models sync`, the chart's registry sidecar), the local TF Serving API model server, and
# `dfp batch` for Kubernetes Jobs (the batch pods run this image). Build from the repository root:
#   docker build -f docker/tools.Dockerfile -t dfp-tools:0.1.0 .
FROM python:3.11.7-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 TF_CPP_MIN_LOG_LEVEL=2

WORKDIR /opt/dfp
COPY pyproject.toml constraints.txt README.md ./
COPY protos ./protos
COPY scripts/gen_protos.py ./scripts/gen_protos.py
COPY dfp ./dfp
COPY gateway ./gateway
COPY services ./services
COPY models/detector ./models/detector

RUN pip install -c constraints.txt '.[tools]' grpcio-tools==1.85.1 \
    && pip install --no-deps facenet-pytorch==2.6.0 \
    && python scripts/gen_protos.py \
    && pip install --no-deps . \
    && useradd --uid 10001 --create-home dfp

USER 10001
CMD ["dfp", "--help"]
