# The whole set-up is `make run` and `make test`; both need nothing but Python 3.11+.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: run test lint check worker bench clean

$(VENV)/.installed: requirements.txt requirements-dev.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	touch $@

run: $(VENV)/.installed
	DJANGO_SETTINGS_MODULE=lumiku.settings.local $(PY) manage.py migrate --noinput
	DJANGO_SETTINGS_MODULE=lumiku.settings.local $(PY) manage.py demo_user --url http://$(HOST):$(PORT)/
	DJANGO_SETTINGS_MODULE=lumiku.settings.local $(PY) manage.py runserver $(HOST):$(PORT)

test: $(VENV)/.installed
	$(PY) -m pytest

# makemigrations --check compares models with migrations only: an in-memory database keeps it off DATABASE_URL.
lint: $(VENV)/.installed
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	DATABASE_URL=sqlite://:memory: DJANGO_SETTINGS_MODULE=lumiku.settings.test $(PY) manage.py makemigrations --check --dry-run

worker: $(VENV)/.installed
	DJANGO_SETTINGS_MODULE=lumiku.settings.local $(VENV)/bin/celery -A lumiku worker -B --loglevel=INFO

# Needs PostgreSQL and Redis on 127.0.0.1 (see bench/README.md). Options: make bench BENCH_ARGS="--quick".
bench: $(VENV)/.installed
	$(PY) bench/run.py $(BENCH_ARGS)

clean:
	rm -rf $(VENV) .test-media staticfiles
