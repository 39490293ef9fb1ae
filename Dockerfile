# syntax=docker/dockerfile:1
# The Easel image: `easel` is the entrypoint, `serve` the default command; run `worker`,
# `migrate`, `create-admin --email ...` or `schema` instead by giving that command.
#
#   docker build -t easel:0.1.0 .
#   docker run --rm -e DATABASE_URL=postgres://... -e EASEL_JWT_SECRET=... -p 8080:8080 easel:0.1.0
#
# Containers must set DATABASE_URL: without it Easel would start an embedded PostgreSQL
# (development only), and this image has no PostgreSQL server programs, so it stops at start-up.
# See README "Deploying" and deploy/ (Compose and Kubernetes).

# ---- build: the default feature set (what ships; `bench` is not built), release profile
# (thin LTO). The toolchain matches the one the project is developed and tested with.
FROM rust:1.95-slim-bookworm AS build
WORKDIR /src
COPY . .
# BuildKit cache mounts keep the registry and the dependency builds between image builds;
# the binary is copied out of the cached target directory.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/usr/local/cargo/git \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --bin easel \
    && cp target/release/easel /usr/local/bin/easel

# ---- runtime: Debian slim with CA certificates (HTTPS to S3, Stripe, the SMS gateway and the
# images API; the binary uses rustls and needs no OpenSSL or libpq).
FROM debian:bookworm-slim AS runtime
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 10001 easel \
    && useradd --system --uid 10001 --gid 10001 --home-dir /var/lib/easel \
       --no-create-home --shell /usr/sbin/nologin easel \
    && mkdir -p /var/lib/easel \
    && chown 10001:10001 /var/lib/easel
COPY --from=build /usr/local/bin/easel /usr/local/bin/easel
# Listen on every interface (the default, 127.0.0.1, is unreachable from outside the
# container). EASEL_DATA_DIR is where a local media store would live (deployments use S3).
ENV EASEL_BIND=0.0.0.0:8080 \
    EASEL_DATA_DIR=/var/lib/easel
WORKDIR /var/lib/easel
# A numeric user, so Kubernetes' runAsNonRoot can check it.
USER 10001:10001
EXPOSE 8080
# SIGTERM drains requests and lets running jobs finish within EASEL_SHUTDOWN_GRACE_SECS (30 s
# by default): give the container more than that to stop (Compose stop_grace_period,
# Kubernetes terminationGracePeriodSeconds).
STOPSIGNAL SIGTERM
ENTRYPOINT ["easel"]
CMD ["serve"]
