# polyir in two commands, from a fresh clone:
#
#   make demo    create the environment, install, run the quick experiment (runs/quick)
#   make test    create the environment, install, run the test suite
#
# The environment is a virtualenv in .venv built with $(BOOTSTRAP_PYTHON), unless PYTHON is given
# (`make test PYTHON=python`): then that interpreter is used as it is, no virtualenv.
# Both install with `-c constraints.txt -e ".[test]"`. Variables (override on the command line):
#   POLYIR_DATA_DIR  folder holding xquad-r/, mlqa-r/, ... (default ../shared/data; see README "Datasets")
#   PYTEST_ARGS      arguments for pytest, e.g. PYTEST_ARGS="tests/test_formats.py -x -q"
#   DEMO_ARGS        arguments for the experiment (default: --quick --output runs/quick)

BOOTSTRAP_PYTHON ?= python3
VENV ?= .venv
POLYIR_DATA_DIR ?= ../shared/data
PYTEST_ARGS ?=
DEMO_ARGS ?= --quick --output runs/quick

ifeq ($(origin PYTHON),undefined)
PYTHON := $(VENV)/bin/python
ENVIRONMENT := $(VENV)/bin/python
else
ENVIRONMENT :=
endif

.PHONY: demo test install

$(VENV)/bin/python:
	$(BOOTSTRAP_PYTHON) -m venv $(VENV)

install: $(ENVIRONMENT)
	$(PYTHON) -m pip install -c constraints.txt -e ".[test]"

demo: install
	POLYIR_DATA_DIR=$(POLYIR_DATA_DIR) $(PYTHON) -m polyir.cli experiment $(DEMO_ARGS)

test: install
	POLYIR_DATA_DIR=$(POLYIR_DATA_DIR) $(PYTHON) -m pytest $(PYTEST_ARGS)
