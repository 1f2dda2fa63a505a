# The gateway (`python -m gateway`): the public API, media, jobs, face finding before detection.
# Build from the repository root:  docker build -f docker/gateway.Dockerfile -t dfp-gateway:0.1.0 .
FROM python:3.11.7-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 TF_CPP_MIN_LOG_LEVEL=2

WORKDIR /opt/dfp
COPY pyproject.toml constraints.txt README.md ./
COPY protos ./protos
COPY scripts/gen_protos.py ./scripts/gen_protos.py
COPY dfp ./dfp
COPY gateway ./gateway
COPY services ./services
# The face restorer that full-resolution face swap merges apply to the decoded faces.
COPY models/enhancer/face-restore ./models/enhancer/face-restore

RUN pip install -c constraints.txt '.[gateway]' grpcio-tools==1.85.1 \
    && pip install --no-deps facenet-pytorch==2.6.0 \
    && python scripts/gen_protos.py \
    && pip install --no-deps . \
    && useradd --uid 10001 --create-home dfp

USER 10001
EXPOSE 50051 8086 9100
CMD ["python", "-m", "gateway"]
