# syntax=docker/dockerfile:1
# One multi-stage build for every service: `docker build --build-arg SERVICE=orders .`
# cargo-chef caches the dependency layer, so code changes rebuild only the workspace crates.
ARG RUST_VERSION=1.95

FROM rust:${RUST_VERSION}-slim-bookworm AS chef
RUN cargo install cargo-chef --locked --version ^0.1
WORKDIR /src

FROM chef AS planner
COPY . .
RUN cargo chef prepare --recipe-path recipe.json

FROM chef AS builder
ARG SERVICE
COPY --from=planner /src/recipe.json recipe.json
RUN cargo chef cook --release --recipe-path recipe.json --package shopmesh-${SERVICE}
COPY . .
RUN cargo build --release --package shopmesh-${SERVICE} --bin shopmesh-${SERVICE} \
 && cp target/release/shopmesh-${SERVICE} /service

FROM debian:bookworm-slim AS runtime
RUN useradd --system --uid 10001 --no-create-home shopmesh \
 && mkdir -p /var/lib/shopmesh/keys && chown 10001 /var/lib/shopmesh/keys
COPY --from=builder /service /usr/local/bin/service
USER 10001
ENV LOG_FORMAT=json
# `service healthcheck` GETs its own /health/live; no curl needed in the image.
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=3 CMD ["/usr/local/bin/service", "healthcheck"]
ENTRYPOINT ["/usr/local/bin/service"]
