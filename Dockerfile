# One image, one binary: `rukong`. The same image runs every cluster role, chosen by the
# command: `rukong engine`, `rukong kvproxy`, `rukong executor` (see docker-compose.yml
# and docs/cluster.md).
#
#   docker build -t rukong:latest .
#
# Plain Dockerfile syntax only (no BuildKit-only features), so the classic builder and
# BuildKit both build it.

# ---- Stage 1: build ------------------------------------------------------------------
# Edition 2024 needs Rust 1.85 or newer; rust:1 tracks the latest stable 1.x.
FROM rust:1-bookworm AS build
# `--build-arg FEATURES=cuda` builds the real-GPU executor (CUDA is loaded at run time; the
# runtime image then needs the NVIDIA container runtime and the CUDA 12 libraries).
ARG FEATURES=""
WORKDIR /src
COPY . .
RUN cargo build --release --locked -p rukong-client --bin rukong --features "$FEATURES" \
 && install -m 0755 target/release/rukong /usr/local/bin/rukong

# ---- Stage 2: runtime ----------------------------------------------------------------
FROM debian:bookworm-slim
# ca-certificates for TLS peers; curl for the engine's healthcheck. (bash, used by the
# kvproxy's TCP healthcheck, is already in the base image.)
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates curl \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --create-home --home-dir /home/rukong --shell /usr/sbin/nologin rukong
COPY --from=build /usr/local/bin/rukong /usr/local/bin/rukong
USER rukong
WORKDIR /home/rukong
ENV RUST_LOG=info
# 8080: the engine's HTTP API; 7070: the KV-store proxy (framed MessagePack over TCP).
EXPOSE 8080 7070
ENTRYPOINT ["rukong"]
CMD ["--help"]
