# syntax=docker/dockerfile:1
# Build: docker build -t pricebandit .
# Run:   docker run -p 50051:50051 -p 9464:9464 -v pricebandit-data:/data pricebandit
FROM python:3.11.11-slim-bookworm AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
WORKDIR /src
COPY pyproject.toml README.md constraints.txt ./
COPY learner learner
COPY server server
COPY simulator simulator
COPY evaluation evaluation
COPY proto proto
# The sim extra too: the image ships pricebandit-sim (e.g. `live` against this server), which needs
# it. Versions pinned by constraints.txt, so a rebuild installs what was tested.
RUN python -m venv /opt/venv && /opt/venv/bin/pip install -c constraints.txt '.[sim]'

FROM python:3.11.11-slim-bookworm
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PATH=/opt/venv/bin:$PATH \
    PRICEBANDIT_HOST=0.0.0.0 PRICEBANDIT_METRICS_HOST=0.0.0.0 PRICEBANDIT_DATA_DIR=/data
RUN useradd --system --uid 10001 --home-dir /data --create-home pricebandit
COPY --from=build /opt/venv /opt/venv
USER pricebandit
WORKDIR /data
VOLUME /data
EXPOSE 50051 9464
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s --retries=3 \
    CMD ["pricebandit-healthcheck"]
STOPSIGNAL SIGTERM
ENTRYPOINT ["pricebandit-server"]
