.PHONY: demo test lint install
# `make demo`: install and run the demo on the embedded broker. `make test`: install and run every test.
demo:
	bash scripts/install.sh
	.venv/bin/pvwatch demo

test:
	bash scripts/install.sh --system
	.venv/bin/ruff check .
	.venv/bin/python scripts/typecheck.py
	.venv/bin/python -m pytest

lint:
	.venv/bin/ruff check .
	.venv/bin/python scripts/typecheck.py

install:
	bash scripts/install.sh --system
