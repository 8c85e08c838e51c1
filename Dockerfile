# The gateway's container image, built and pushed to ECR by .github/workflows/deploy.yml.
#
# The ECS task definition (terraform/modules/compute) runs it with a read-only root filesystem and
# one writable volume at /tmp, checks /health with `python -c` (so python stays in the image), and
# sends SIGTERM, then SIGKILL after 120 s. Configuration comes from COLLABGATE_* variables and
# secrets; the data directory (audit spool) is on the /tmp volume.
FROM python:3.11.11-slim-bookworm AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY src ./src
RUN pip install --no-cache-dir --root-user-action=ignore --prefix=/install .

FROM python:3.11.11-slim-bookworm
RUN useradd --system --uid 10001 --no-create-home --shell /usr/sbin/nologin collabgate
COPY --from=build /install /usr/local
ENV COLLABGATE_HOST=0.0.0.0 \
    COLLABGATE_PORT=8080 \
    COLLABGATE_DATA_DIR=/tmp/collabgate \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
USER 10001
EXPOSE 8080
STOPSIGNAL SIGTERM
CMD ["collabgate", "serve"]
