# Apache Kafka (KRaft, one combined broker+controller node) from the Maven Central jars that
# `make kafka-jars` puts in kafka/libs, so no registry image is needed. From the repository root:
#   make kafka-jars && docker build -f docker/kafka.Dockerfile -t spanstream-kafka .
FROM debian:bookworm-slim
# (slim images drop /usr/share/man, where the JRE's postinst links java.1)
# hadolint ignore=DL3008
RUN mkdir -p /usr/share/man/man1 && apt-get update \
 && apt-get install -y --no-install-recommends openjdk-17-jre-headless \
 && apt-get clean && rm -rf /var/lib/apt/lists/* \
 && useradd --uid 10002 --create-home kafka && mkdir -p /var/lib/kafka && chown kafka /var/lib/kafka
COPY kafka/libs/ /opt/kafka/libs/
COPY docker/kafka-entrypoint.sh /opt/kafka/kafka-entrypoint.sh
USER 10002
EXPOSE 9092
VOLUME /var/lib/kafka
HEALTHCHECK --interval=5s --timeout=3s --start-period=60s CMD ["bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/9092"]
ENTRYPOINT ["/opt/kafka/kafka-entrypoint.sh"]
