# make run   - start the edge proxy on 127.0.0.1:8080 with rules.yaml
# make test  - lint and run every test (installs Chromium, nginx and Apache for them first)
# make bench - what the edge costs against bare mitmdump (throughput, latency, memory, replay)
# make demo  - a bundled demo origin with the edge in front of it (ARGS="--port 0" for any port)
# Both create .venv themselves with a Python >= 3.12 they find on this machine.

VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

# What the browser and real-origin tests run, and the Debian packages that bring it.
TEST_COMMANDS := chromium nginx apache2
TEST_PACKAGES := chromium nginx-light apache2

# Every mitmproxy release pyproject.toml allows: what the edge relies on inside mitmproxy
# (tests/unit/test_mitmproxy_pin.py) is checked on each.
MITMPROXY_VERSIONS := 12.3.0 12.3.1

.PHONY: run test lint bench demo clean test-deps check-mitmproxy

$(STAMP): pyproject.toml
	@set -e; \
	py=""; \
	for cand in "$$PYTHON" python3.13 python3.12 \
	    "$$(pyenv root 2>/dev/null)/versions/$$(cat .python-version 2>/dev/null)/bin/python3" \
	    $$(ls -d $$HOME/.pyenv/versions/3.1[2-9]*/bin/python3 2>/dev/null) python3; do \
	  [ -n "$$cand" ] || continue; \
	  if command -v "$$cand" >/dev/null 2>&1 && "$$cand" -c 'import sys; sys.exit(sys.version_info < (3, 12))' 2>/dev/null; then \
	    py="$$cand"; break; fi; \
	done; \
	if [ -z "$$py" ]; then \
	  echo "error: no Python >= 3.12 found (mitmproxy 12 needs it)." >&2; \
	  echo "Install one (e.g. 'pyenv install 3.12') or run: make PYTHON=/path/to/python3.12 test" >&2; \
	  exit 1; fi; \
	echo "using $$py ($$("$$py" --version))"; \
	rm -rf $(VENV); "$$py" -m venv $(VENV); \
	$(PY) -m pip install -q --upgrade pip; \
	$(PY) -m pip install -q -e '.[test]'; \
	touch $(STAMP)

run: $(STAMP)
	$(VENV)/bin/mitmdump --listen-host 127.0.0.1 -p 8080 -s addon/edge.py $(ARGS)

lint: $(STAMP)
	$(VENV)/bin/ruff check addon tests bench

# Installs the test commands when this machine can (root, or sudo without a password);
# otherwise stops with the one command that does it.
test-deps:
	@set -e; missing=""; \
	for c in $(TEST_COMMANDS); do \
	  command -v $$c >/dev/null 2>&1 || [ -x /usr/sbin/$$c ] || missing="$$missing $$c"; done; \
	[ -z "$$missing" ] && exit 0; \
	if [ "$$(id -u)" -eq 0 ]; then sudo=""; \
	elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then sudo="sudo"; \
	else echo "error: the tests need$$missing; install them with: sudo apt-get install -y $(TEST_PACKAGES)" >&2; exit 1; fi; \
	if ! command -v apt-get >/dev/null 2>&1; then \
	  echo "error: the tests need$$missing (Debian packages: $(TEST_PACKAGES)); install them with your package manager" >&2; exit 1; fi; \
	echo "installing$$missing for the tests (apt-get install $(TEST_PACKAGES))"; \
	$$sudo apt-get update -q >/dev/null; \
	DEBIAN_FRONTEND=noninteractive $$sudo apt-get install -y -q --no-install-recommends $(TEST_PACKAGES) >/dev/null

test: lint test-deps
	$(PY) -m pytest -q
	@$(MAKE) --no-print-directory check-mitmproxy

# One venv per allowed mitmproxy version, inside .venv (rebuilt with it).
check-mitmproxy: $(STAMP)
	@set -e; for v in $(MITMPROXY_VERSIONS); do \
	  d=$(VENV)/mitmproxy-$$v; \
	  if [ ! -x $$d/bin/pytest ]; then \
	    $(PY) -m venv $$d; \
	    $$d/bin/pip install -q -e . "mitmproxy==$$v" pytest pytest-asyncio; fi; \
	  echo "mitmproxy $$v:"; \
	  $$d/bin/python -m pytest -q -p no:cacheprovider tests/unit/test_mitmproxy_pin.py; \
	done

bench: $(STAMP)
	PYTHONPATH=. $(PY) bench/run.py

demo: $(STAMP)
	$(PY) -m addon demo $(ARGS)

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
