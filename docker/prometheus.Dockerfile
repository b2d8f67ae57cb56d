# Prometheus from Debian's package (no registry image needed), with the compose scrape config.
#   docker build -f docker/prometheus.Dockerfile -t spanstream-prometheus .
FROM debian:bookworm-slim
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends prometheus \
 && apt-get clean && rm -rf /var/lib/apt/lists/*
COPY docker/prometheus.yml /etc/prometheus/prometheus.yml
# the package's system user (its uid is assigned by Debian's adduser)
# hadolint ignore=DL3066
USER prometheus
EXPOSE 9090
ENTRYPOINT ["/usr/bin/prometheus", "--config.file=/etc/prometheus/prometheus.yml", \
            "--storage.tsdb.path=/var/lib/prometheus/metrics2", "--web.listen-address=:9090"]
