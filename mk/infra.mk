# Infrastructure checks (issue 7): terraform/ is checked without Terraform or AWS.
#   make infra-check  - checkov over terraform/ (zero failed checks required)
#   make infra-cost   - estimated monthly cost per environment, resource by resource
#   make infra-test   - the tests/infra suite only
# Included by the top-level Makefile, which defines VENV, PY, STAMP, PYTHON and test-setup.

CHECKOV_VENV := .venv-checkov
CHECKOV := $(CHECKOV_VENV)/bin/checkov
CHECKOV_VERSION := 3.3.30

.PHONY: infra-check infra-cost infra-test

# checkov lives in its own virtual environment: its pinned dependencies (including its own
# HCL parser) must not meet the gateway's.
$(CHECKOV_VENV)/.stamp: mk/infra.mk
	test -x $(CHECKOV_VENV)/bin/python || $(PYTHON) -m venv $(CHECKOV_VENV)
	$(CHECKOV_VENV)/bin/python -m pip install --quiet "checkov==$(CHECKOV_VERSION)"
	touch $@

test-setup: $(CHECKOV_VENV)/.stamp

infra-check: $(CHECKOV_VENV)/.stamp
	BC_SKIP_MAPPING=TRUE $(CHECKOV) --directory terraform --framework terraform \
		--quiet --compact --skip-download --download-external-modules false

infra-cost: $(STAMP)
	$(PY) tools/infra_cost.py $(INFRA_COST_ARGS)

infra-test: $(CHECKOV_VENV)/.stamp $(STAMP)
	$(PY) -m pytest tests/infra $(PYTEST_ARGS)
