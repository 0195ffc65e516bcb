# The operator image: the `sourcebuild` binary (controller, and the build Pods' `prepare`
# init step) on distroless cc: glibc, libgcc, CA certificates, a nonroot user, no shell,
# no package manager.
#
# Build stage and runtime share Debian 12 (bookworm), so the glibc the binary links against
# is the one it runs with. Both tags are pinned; pin digests too when publishing.
#
# The two ARGs exist so that a build without access to public registries can name stand-ins of
# the same content (scripts/operator-image.sh assembles them from Debian packages; the tests
# build this very file with Kaniko that way). Their defaults are what a release uses.
ARG RUST_IMAGE=rust:1.95.0-slim-bookworm
ARG RUNTIME_IMAGE=gcr.io/distroless/cc-debian12:nonroot

FROM ${RUST_IMAGE} AS build
WORKDIR /src

# Cargo.toml's release profile (one codegen unit, fat LTO, optimized for size: deterministic,
# and small on disk and in memory), plus for the image: symbols stripped, and the build paths
# remapped so they do not end up in the binary.
ENV CARGO_PROFILE_RELEASE_STRIP=symbols \
    CARGO_INCREMENTAL=0 \
    CARGO_HOME=/cargo \
    RUSTFLAGS="--remap-path-prefix=/src=/build --remap-path-prefix=/cargo/registry/src=/deps" \
    SOURCE_DATE_EPOCH=0

COPY Cargo.toml Cargo.lock ./
COPY src ./src
COPY crds ./crds
# --locked: exactly the dependency versions of Cargo.lock, or fail.
RUN cargo build --release --locked --bin sourcebuild \
    && cp target/release/sourcebuild /sourcebuild

FROM ${RUNTIME_IMAGE}
COPY --from=build /sourcebuild /sourcebuild
# distroless' nonroot user, numeric so runAsNonRoot can verify it.
USER 65532:65532
ENTRYPOINT ["/sourcebuild"]
CMD ["--help"]
