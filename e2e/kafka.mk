# A real single-node Kafka broker for the tests and the demo (included from the top-level
# Makefile). See e2e/README.md ("Kafka"). Jars are cached in $(NEPTUNE_CACHE)/kafka-<version>/; the
# broker's data, logs and pid live in $(NEPTUNE_KAFKA_STATE).
E2E_DIR ?= e2e
NEPTUNE_CACHE ?= /var/cache/neptune-k8s
NEPTUNE_KAFKA_STATE ?= /var/lib/neptune-kafka
export NEPTUNE_CACHE NEPTUNE_KAFKA_STATE

.PHONY: kafka-build kafka-up kafka-down kafka-status kafka-reset

kafka-build:          ## Kafka's jars from Maven Central, once per version
	@$(E2E_DIR)/kafka.sh build

kafka-up:             ## start the broker (idempotent), wait until it answers; prints NEPTUNE_KAFKA_BOOTSTRAP
	@$(E2E_DIR)/kafka.sh up

kafka-down:           ## stop the broker this checkout started; keeps its data
	@$(E2E_DIR)/kafka.sh down

kafka-status:
	@$(E2E_DIR)/kafka.sh status

kafka-reset:          ## stop the broker and remove its data and logs
	@$(E2E_DIR)/kafka.sh reset
