# Multi-stage build: compile in the Rust image, run on a slim Debian with only the binary.
# Written by reading, not run: our CI machines have no Docker engine.
# The builder is pinned to the rust-version of Cargo.toml; change both together.
FROM rust:1.94-bookworm AS build
WORKDIR /src

# Dependencies in their own layer: the workspace's manifests and lockfile with stub sources, so
# this layer is rebuilt only when Cargo.toml, loadgen/Cargo.toml or Cargo.lock change. The load
# tool (workspace member loadgen/) is not built; its stub stays so that cargo can resolve the
# workspace, and changes to it do not rebuild this image.
COPY Cargo.toml Cargo.lock build.rs ./
COPY loadgen/Cargo.toml ./loadgen/
RUN mkdir -p src loadgen/src \
    && echo 'fn main() {}' > src/main.rs \
    && touch src/lib.rs \
    && echo 'fn main() {}' > loadgen/src/main.rs \
    && cargo build --release --locked -p hereabouts --bin hereabouts

# The real sources (whole, with their non-Rust assets such as the docs page's HTML), the migrations
# (embedded by sqlx::migrate!) and openapi.yaml (embedded, served at /openapi.yaml). touch: COPY
# keeps the files' times, which may be older than the stub build, and cargo would skip them.
COPY src ./src
COPY migrations ./migrations
COPY openapi.yaml ./
COPY console/public ./console/public
RUN find src -name '*.rs' -exec touch {} + \
    && cargo build --release --locked -p hereabouts --bin hereabouts

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 hereabouts
COPY --from=build /src/target/release/hereabouts /usr/local/bin/hereabouts
USER hereabouts
ENV HEREABOUTS_LISTEN=0.0.0.0:8080 HEREABOUTS_LOG_FORMAT=json
EXPOSE 8080
# GET http://127.0.0.1:<port of HEREABOUTS_LISTEN>/readyz; exit 0 on 200 (no shell, no curl needed).
HEALTHCHECK --interval=5s --timeout=3s --start-period=10s --retries=10 CMD ["hereabouts", "healthcheck"]
ENTRYPOINT ["hereabouts"]
CMD ["serve"]
