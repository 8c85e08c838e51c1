# HAProxy, the on-premises load balancer in front of several gateway instances
# (deploy/haproxy/haproxy.cfg, docs/operations.md "Load balancer: HAProxy"). Included by the
# top-level Makefile, which defines test-setup.
#
#   make haproxy-tools   install Debian's haproxy package when the haproxy binary is missing
#   make haproxy-check   haproxy -c on the reference config (with its built-in defaults)
.PHONY: haproxy-tools haproxy-check

HAPROXY_SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

# tests/e2e/test_failover.py runs a real HAProxy in front of three gateways: install it with
# the suite.
test-setup: haproxy-tools

haproxy-tools:
	@if ! command -v haproxy >/dev/null 2>&1; then \
	  echo "haproxy-tools: installing haproxy"; \
	  $(HAPROXY_SUDO) apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $(HAPROXY_SUDO) apt-get install -y -qq --no-install-recommends haproxy; \
	fi

haproxy-check: haproxy-tools
	haproxy -c -f deploy/haproxy/haproxy.cfg
