# CPU worker: ingest, dispatch (restore-collection, reprocess) and fixity audits.
#   docker build -f deploy/worker-cpu.Dockerfile -t photo-archive-worker-cpu .
FROM python:3.11-slim

WORKDIR /opt/photo-archive
COPY pyproject.toml constraints.txt README.md ./
COPY archive_db ./archive_db
COPY flows ./flows
COPY restoration ./restoration
# The CPU build of torch (the default wheel index would pull several GB of CUDA packages).
RUN pip install --no-cache-dir -c constraints.txt --extra-index-url https://download.pytorch.org/whl/cpu \
        'torch==2.13.0+cpu' \
 && pip install --no-cache-dir -c constraints.txt '.[postgres,s3,web]'

ENV PREFECT_LOGGING_LEVEL=INFO
CMD ["prefect", "worker", "start", "--pool", "cpu", "--type", "process"]
