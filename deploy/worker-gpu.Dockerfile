# GPU worker: runs restore-batch. Needs the NVIDIA driver on the host and the container toolkit.
#   docker build -f deploy/worker-gpu.Dockerfile -t photo-archive-worker-gpu .
FROM python:3.11-slim

WORKDIR /opt/photo-archive
COPY pyproject.toml constraints.txt README.md ./
COPY archive_db ./archive_db
COPY flows ./flows
COPY restoration ./restoration
# PyPI's Linux wheels of torch and torchvision are CUDA builds with their CUDA libraries;
# torchvision adds nvJPEG decoding on the GPU (restoration/decode.py).
RUN pip install --no-cache-dir -c constraints.txt torch==2.13.0 torchvision==0.28.0 \
 && pip install --no-cache-dir -c constraints.txt '.[postgres,s3]'

ENV PREFECT_LOGGING_LEVEL=INFO \
    ARCHIVE_DEVICE__DEVICE=cuda \
    NVIDIA_VISIBLE_DEVICES=all \
    NVIDIA_DRIVER_CAPABILITIES=compute,utility
CMD ["prefect", "worker", "start", "--pool", "gpu", "--type", "process"]
