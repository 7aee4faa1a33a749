# portcullis container image: a release build, then a small non-root runtime.
#   docker build --build-arg PORTCULLIS_COMMIT=$(git rev-parse --short=12 HEAD) -t portcullis .
#   docker run --rm -p 8080:8080 -p 127.0.0.1:9091:9091 portcullis
# The image runs the example config (config/portcullis.toml) with its listeners moved to
# 0.0.0.0 so the published ports reach them; mount your own file over /etc/portcullis.

FROM rust:1-bookworm AS build
WORKDIR /src
# .git is not copied (see .dockerignore): the commit comes in as a build argument.
ARG PORTCULLIS_COMMIT=unknown
ENV PORTCULLIS_COMMIT=${PORTCULLIS_COMMIT}
COPY . .
RUN cargo build --release --locked --bin portcullis \
 && strip target/release/portcullis
# The container copy of the example config listens on all interfaces (inside its own network
# namespace) and keeps its state under /var/lib/portcullis.
RUN mkdir -p /out/etc/portcullis \
 && cp -r config/demo /out/etc/portcullis/demo \
 && sed -e 's/^listen = "127.0.0.1:8080"/listen = "0.0.0.0:8080"/' \
        -e 's/^listen = "127.0.0.1:9091"/listen = "0.0.0.0:9091"/' \
        -e 's|^store = "data/portcullis.db"|store = "/var/lib/portcullis/portcullis.db"|' \
        config/portcullis.toml > /out/etc/portcullis/portcullis.toml

FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates curl \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --home-dir /var/lib/portcullis --shell /usr/sbin/nologin portcullis \
 && mkdir -p /var/lib/portcullis \
 && chown portcullis:portcullis /var/lib/portcullis
COPY --from=build /src/target/release/portcullis /usr/local/bin/portcullis
COPY --from=build /out/etc/portcullis /etc/portcullis
USER portcullis
WORKDIR /var/lib/portcullis
VOLUME ["/var/lib/portcullis"]
# 8080: the gateway; 9091: the admin listener (health, metrics, reload, admin API: publish it on
# loopback only, as in the example above).
EXPOSE 8080 9091
HEALTHCHECK --interval=10s --timeout=3s --start-period=5s --retries=3 \
  CMD curl -fsS http://127.0.0.1:9091/healthz || exit 1
STOPSIGNAL SIGTERM
ENTRYPOINT ["portcullis"]
CMD ["serve", "--config", "/etc/portcullis/portcullis.toml", "--log-format", "json"]
