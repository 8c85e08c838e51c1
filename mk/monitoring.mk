# Monitoring: Prometheus, Alertmanager and the exporters from Debian's packages, configured from
# deploy/ (docs/runbooks/README.md). Included by the top-level Makefile.
#
#   make monitoring        Prometheus + Alertmanager on 127.0.0.1 against a running gateway
#                          (MONITORING_GATEWAY, default 127.0.0.1:8080 as `make run` serves)
#   make monitoring-stop   stop what `make monitoring` started (PIDs in var/monitoring/)
#   make monitoring-check  promtool check config/rules, promtool test rules, amtool check-config,
#                          and the dashboards' JSON against tools/dashboards.py
#   make dashboards        regenerate deploy/grafana/dashboards/*.json from tools/dashboards.py
.PHONY: monitoring monitoring-stop monitoring-status monitoring-check monitoring-tools dashboards

MONITORING_DIR ?= var/monitoring
MONITORING_GATEWAY ?= 127.0.0.1:8080
# Optional extra targets, e.g. MONITORING_ARGS='--redis-addr redis://127.0.0.1:6379
#   --postgres-dsn postgresql://postgres@127.0.0.1:5432/postgres?sslmode=disable --rabbitmq 127.0.0.1:15692'
MONITORING_ARGS ?=
# command -> Debian package providing it
MONITORING_TOOLS := promtool:prometheus prometheus-alertmanager:prometheus-alertmanager \
  prometheus-redis-exporter:prometheus-redis-exporter \
  prometheus-postgres-exporter:prometheus-postgres-exporter redis-server:redis-server
MONITORING_SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

# The monitoring tests run real Prometheus/Alertmanager/exporters: install them with the suite.
test-setup: monitoring-tools

monitoring-tools:
	@missing=""; \
	for pair in $(MONITORING_TOOLS); do \
	  command -v "$${pair%%:*}" >/dev/null 2>&1 || missing="$$missing $${pair#*:}"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "monitoring-tools: installing$$missing"; \
	  $(MONITORING_SUDO) apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $(MONITORING_SUDO) apt-get install -y -qq --no-install-recommends $$missing; \
	fi

monitoring: $(STAMP) monitoring-tools
	$(PY) -m tools.monitoring --dir $(MONITORING_DIR) up --gateway $(MONITORING_GATEWAY) $(MONITORING_ARGS)

monitoring-status: $(STAMP)
	$(PY) -m tools.monitoring --dir $(MONITORING_DIR) status

monitoring-stop:
	$(if $(wildcard $(PY)),$(PY),$(PYTHON)) -m tools.monitoring --dir $(MONITORING_DIR) down

monitoring-check: monitoring-tools
	promtool check config deploy/prometheus/prometheus.yml
	promtool check rules deploy/prometheus/rules/*.rules.yml
	promtool test rules deploy/prometheus/tests/*.test.yml
	amtool check-config deploy/alertmanager/alertmanager.yml
	$(PYTHON) tools/dashboards.py --check

dashboards:
	$(PYTHON) tools/dashboards.py
