#!/bin/sh
# Entry point of docker/kafka/Dockerfile: writes server.properties from the environment, formats the
# storage on first start, then runs the broker in the foreground.
#   KAFKA_ADVERTISED_HOST (default: the container's hostname), KAFKA_CLUSTER_ID, KAFKA_NUM_PARTITIONS,
#   KAFKA_HEAP_OPTS (default -Xmx512m -Xms256m).
set -eu
DATA=/var/lib/kafka
HOST=${KAFKA_ADVERTISED_HOST:-$(hostname)}
cat > "$DATA/server.properties" <<PROPS
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@localhost:9093
listeners=PLAINTEXT://:9092,CONTROLLER://localhost:9093
advertised.listeners=PLAINTEXT://$HOST:9092
inter.broker.listener.name=PLAINTEXT
controller.listener.names=CONTROLLER
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
log.dirs=$DATA/data
offsets.topic.replication.factor=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
num.partitions=${KAFKA_NUM_PARTITIONS:-4}
PROPS
CP="/opt/kafka/libs/*"
if [ ! -f "$DATA/data/meta.properties" ]; then
  java -cp "$CP" kafka.tools.StorageTool format -g --cluster-id "${KAFKA_CLUSTER_ID:-c3BhbnN0cmVhbS1sb2NhbA}" \
    -c "$DATA/server.properties"
fi
# shellcheck disable=SC2086
exec java ${KAFKA_HEAP_OPTS:--Xmx512m -Xms256m} -XX:+UseG1GC -Djava.awt.headless=true -cp "$CP" kafka.Kafka \
  "$DATA/server.properties"
