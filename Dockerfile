# Sluice's container image (docs/deploy.md): built in Rust's image, run on a minimal base as a
# non-root user, data in a volume, `sluice serve` as the entry point, settings from SLUICE_*
# variables.
#
#   docker build -t sluice .
#   docker run -p 9092:9092 -p 8080:8080 -v sluice-data:/var/lib/sluice \
#     -e SLUICE_ADVERTISED_LISTENER=localhost:9092 sluice
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked -p sluice \
    && strip target/release/sluice

# glibc and libgcc (what the binary links), CA certificates, nothing else: no shell.
FROM gcr.io/distroless/cc-debian12
COPY --from=build /src/target/release/sluice /usr/local/bin/sluice
USER 10001:10001
ENV SLUICE_DATA_DIR=/var/lib/sluice \
    SLUICE_LISTEN=0.0.0.0:9092 \
    SLUICE_HTTP_LISTEN=0.0.0.0:8080 \
    SLUICE_HTTP_AUTH=none \
    SLUICE_LOG_FORMAT=json
VOLUME /var/lib/sluice
EXPOSE 9092 9093 8080
ENTRYPOINT ["/usr/local/bin/sluice"]
CMD ["serve"]
