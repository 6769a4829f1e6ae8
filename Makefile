# One command surface for wsrs. `make help` lists the targets.
PYTHON ?= python3
CONFORMANCE ?= ../shared/conformance

.DEFAULT_GOAL := help
.PHONY: help build-dev format lint lint-python lint-rust stubtest test test-rust bench bench-echo \
	bench-memory autobahn autobahn-full autobahn-lean autobahn-asyncio autobahn-uvicorn uvicorn-tests \
	coverage-rust all

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-14s %s\n", $$1, $$2}'

build-dev: ## Build the Rust extension into the current Python (release, editable)
	$(PYTHON) -m pip install -q -e '.[test]'

format: ## Format Python and Rust code
	$(PYTHON) -m ruff check --fix -q python tests compliance benches
	$(PYTHON) -m ruff format -q python tests compliance benches
	cargo fmt --all

lint-python: ## ruff and mypy --strict
	$(PYTHON) -m ruff check python tests compliance benches
	$(PYTHON) -m ruff format --check python tests compliance benches
	$(PYTHON) -m mypy

lint-rust: ## cargo fmt --check and clippy -D warnings
	cargo fmt --all -- --check
	cargo clippy --all-targets -- -D warnings

stubtest: ## Check python/wsrs/_core.pyi against the compiled wsrs._core (after build-dev)
	$(PYTHON) -m mypy.stubtest wsrs._core --allowlist stubtest-allowlist.txt

lint: lint-python lint-rust ## All linters

test: ## Every test (the README's test command)
	bash scripts/test.sh

test-rust: ## Rust unit and property tests
	cargo test

coverage-rust: ## Line coverage of src/ below lib.rs, without the glue in src/py/ (llvm-cov)
	bash scripts/rust-coverage.sh

.PHONY: wheels wheels-check lint-workflows docs
wheels: ## The sdist and every Linux wheel this machine can build into dist/ (maturin --zig), auditwheel show
	bash scripts/wheels.sh

wheels-check: ## The sdist builds with pip alone; the wheel passes the smoke tests installed in a fresh venv
	bash scripts/check-sdist.sh
	bash scripts/smoke.sh

lint-workflows: ## The GitHub workflows: schema, zizmor, shellcheck of the run steps (actionlint if installed)
	bash scripts/lint-workflows.sh

docs: ## The documentation site into docs/_build/html (Sphinx + furo, warnings are errors)
	bash scripts/docs.sh

bench: ## Criterion benches of the Rust kernels, next to their baselines
	cargo bench --bench core

bench-echo: ## Echo round trips: wsrs against websockets, aiohttp, picows and raw TCP
	$(PYTHON) -m pip install -q -r benches/requirements.txt && $(PYTHON) benches/echo_compare.py

bench-memory: ## Idle memory per connection: wsrs against websockets
	$(PYTHON) benches/memory.py

autobahn: ## Autobahn Testsuite, cases 1-11, as server and as client
	bash $(CONFORMANCE)/install-autobahn.sh
	$(PYTHON) $(CONFORMANCE)/autobahn.py server --exclude "12.*,13.*" --out /tmp/wsrs-ab-server \
		--cmd "$(PYTHON) $(CURDIR)/compliance/echo_server.py --port {port}"
	$(PYTHON) $(CONFORMANCE)/autobahn.py client --exclude "12.*,13.*" --out /tmp/wsrs-ab-client \
		--agent wsrs --cmd "$(PYTHON) $(CURDIR)/compliance/client.py --url {url} --agent {agent}"

autobahn-full: ## Autobahn Testsuite, all 517 cases, as server and as client (~20 min)
	bash $(CONFORMANCE)/install-autobahn.sh
	$(PYTHON) $(CONFORMANCE)/autobahn.py server --out /tmp/wsrs-ab-server \
		--cmd "$(PYTHON) $(CURDIR)/compliance/echo_server.py --port {port}"
	$(PYTHON) $(CONFORMANCE)/autobahn.py client --out /tmp/wsrs-ab-client \
		--agent wsrs --cmd "$(PYTHON) $(CURDIR)/compliance/client.py --url {url} --agent {agent}"

autobahn-lean: ## Autobahn Testsuite, cases 12-13 (compression), servers with compression="lean"
	bash $(CONFORMANCE)/install-autobahn.sh
	$(PYTHON) $(CONFORMANCE)/autobahn.py server --cases "12.*,13.*" --out /tmp/wsrs-ab-lean \
		--cmd "$(PYTHON) $(CURDIR)/compliance/echo_server.py --port {port} --compression lean"
	$(PYTHON) $(CONFORMANCE)/autobahn.py server --cases "12.*,13.*" --out /tmp/wsrs-ab-alean \
		--cmd "$(PYTHON) $(CURDIR)/compliance/echo_server.py --port {port} --api asyncio --compression lean"

autobahn-asyncio: ## Autobahn Testsuite, cases 1-11, through the wsrs.asyncio front end
	bash $(CONFORMANCE)/install-autobahn.sh
	$(PYTHON) $(CONFORMANCE)/autobahn.py server --exclude "12.*,13.*" --out /tmp/wsrs-ab-aserver \
		--cmd "$(PYTHON) $(CURDIR)/compliance/echo_server.py --port {port} --api asyncio"
	$(PYTHON) $(CONFORMANCE)/autobahn.py client --exclude "12.*,13.*" --out /tmp/wsrs-ab-aclient \
		--agent wsrs-asyncio \
		--cmd "$(PYTHON) $(CURDIR)/compliance/client.py --url {url} --agent {agent} --api asyncio"

autobahn-uvicorn: ## Autobahn Testsuite, cases 1-13, through uvicorn with wsrs.uvicorn (server)
	bash $(CONFORMANCE)/install-autobahn.sh
	$(PYTHON) $(CONFORMANCE)/autobahn.py server --exclude "12.*,13.*" --out /tmp/wsrs-ab-uvicorn \
		--cmd "$(PYTHON) $(CURDIR)/compliance/uvicorn_echo.py --port {port}"
	$(PYTHON) $(CONFORMANCE)/autobahn.py server --cases "12.*,13.*" --out /tmp/wsrs-ab-uvicorn-z \
		--cmd "$(PYTHON) $(CURDIR)/compliance/uvicorn_echo.py --port {port} --http httptools"

uvicorn-tests: ## uvicorn 0.54.0's own WebSocket tests against wsrs.uvicorn (fetches the sdist)
	bash scripts/uvicorn-tests.sh

all: format build-dev lint stubtest test ## Format, build, lint, check the stubs and test
