# The README's two commands: `make run` and `make test`. Both set up .venv first.
.PHONY: setup run test test-fast lint

setup: .venv/.installed
.venv/.installed: pyproject.toml scripts/setup
	./scripts/setup
	touch $@

# The main job: an exploded-view / knolling image into ./outputs, settings recorded in the PNG.
PROMPT ?= a wireless bluetooth speaker
PRESET ?= exploded-view
run: setup
	.venv/bin/nano-banana generate "$(PROMPT)" --preset $(PRESET) --out outputs $(ARGS)

# The studio's browser tests drive Debian's Chromium (installed here when we are root).
test: setup
	./scripts/install-browser
	.venv/bin/python -m pytest -q $(PYTEST_ARGS)

# Everything but the end-to-end tests (marked slow: real browsers, subprocesses, demo builds).
test-fast: setup
	.venv/bin/python -m pytest -q -m "not slow" $(PYTEST_ARGS)

lint: setup
	.venv/bin/ruff check src tests
