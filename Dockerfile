# Multi-stage build: compile in the Rust image, run on a slim Debian with only the binary.
FROM rust:1-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src ./src
COPY migrations ./migrations
COPY openapi.yaml ./
RUN cargo build --release --locked --bin hereabouts

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 hereabouts
COPY --from=build /src/target/release/hereabouts /usr/local/bin/hereabouts
USER hereabouts
ENV HEREABOUTS_LISTEN=0.0.0.0:8080 HEREABOUTS_LOG_FORMAT=json
EXPOSE 8080
ENTRYPOINT ["hereabouts"]
CMD ["serve"]
