# The creator (`python -m services.creator.serving`): TorchServe with the animation model and the
# registry's face swap models. Build from the repository root:
#   docker build -f docker/creator.Dockerfile -t dfp-creator:0.1.0 .
FROM python:3.11.7-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1

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
COPY models/creator ./models/creator
COPY models/enhancer/face-restore ./models/enhancer/face-restore

RUN pip install -c constraints.txt '.[creator]' grpcio-tools==1.85.1 \
    && pip install --no-deps facenet-pytorch==2.6.0 \
    && python scripts/gen_protos.py \
    && pip install --no-deps . \
    && useradd --uid 10001 --create-home dfp

USER 10001
EXPOSE 7070 8080
CMD ["python", "-m", "services.creator.serving", "--bind", "0.0.0.0", "--workdir", "/tmp/creator"]
