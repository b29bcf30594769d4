# rebuild-quorum node image. Build: docker build -t rbq .
# Run:   docker run -d --name rbq -p 4777:4777 -v rbq-state:/var/lib/rbq rbq
# The node runs as the unprivileged user `node` and rebuilds recipes; Debian rebuilds need a
# privileged build helper (rbq build-helper, see README "Running a node"), which this image
# does not run. Configuration: mount a file at /etc/rbq/config.toml (or set RBQ_CONFIG).

FROM node:20-bookworm-slim AS build
WORKDIR /src
COPY package.json package-lock.json tsconfig.json ./
COPY protocol ./protocol
COPY common ./common
COPY identity ./identity
COPY debian ./debian
COPY client ./client
COPY node ./node
COPY cli ./cli
COPY bench ./bench
# prepare (tsc) runs during npm ci; npm pack gives exactly what `npm install -g` installs.
RUN npm ci --no-audit --no-fund && npm pack --pack-destination /tmp

FROM node:20-bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates tini \
    && rm -rf /var/lib/apt/lists/*
COPY --from=build /tmp/rebuild-quorum-*.tgz /tmp/
RUN npm install -g --no-audit --no-fund /tmp/rebuild-quorum-*.tgz && rm /tmp/rebuild-quorum-*.tgz \
    && mkdir -p /var/lib/rbq /etc/rbq && chown node:node /var/lib/rbq
# CONFIGURATION_DIRECTORY: where rbq looks for config.toml, as under systemd (common/data-dir.ts).
ENV RBQ_DATA_DIR=/var/lib/rbq CONFIGURATION_DIRECTORY=/etc/rbq
USER node
VOLUME /var/lib/rbq
# libp2p; the HTTP API stays on the container's loopback unless [api] listen says otherwise.
EXPOSE 4777
# `rbq init` keeps what exists, so every start is safe; then the node in the foreground.
ENTRYPOINT ["/usr/bin/tini", "--"]
CMD ["sh", "-c", "rbq init >/dev/null && exec rbq node start"]
