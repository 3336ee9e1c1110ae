# Two commands do everything: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
LOCALES := locales
LANGS := ru uk es uz tg ky ar
STAMP := $(VENV)/.installed

.PHONY: run test i18n i18n-compile chromium fonts clean

# Settings for `make run` may live in .env (see .env.example).
-include .env
export

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(STAMP)

# Compile the catalogs (the .mo files are build output, not in git).
i18n-compile: $(STAMP)
	$(BIN)/pybabel compile --use-fuzzy -d $(LOCALES) -D messages --statistics 2>&1 | grep -v "^$$" || true

# Extract interface strings from the code, merge them into every language, compile.
i18n: $(STAMP)
	$(BIN)/pybabel extract --no-location --sort-by-file -F $(LOCALES)/babel.cfg \
		-k N_ -k NP_:1c,2 -c TRANSLATORS: --project=hotline --msgid-bugs-address= \
		-o $(LOCALES)/messages.pot bot flows
	for l in en $(LANGS); do \
		if [ -f $(LOCALES)/$$l/LC_MESSAGES/messages.po ]; then \
			$(BIN)/pybabel update --no-fuzzy-matching --ignore-obsolete -i $(LOCALES)/messages.pot -d $(LOCALES) -D messages -l $$l; \
		else \
			$(BIN)/pybabel init -i $(LOCALES)/messages.pot -d $(LOCALES) -D messages -l $$l; \
		fi; \
	done
	$(MAKE) i18n-compile

var:
	mkdir -p -m 700 var

run: $(STAMP) i18n-compile var fonts
	$(BIN)/hotline db upgrade
	$(BIN)/hotline run

# Debian's chromium for the browser tests (Playwright drives it; it downloads no browser).
CHROMIUM := $(shell command -v chromium 2>/dev/null)
chromium:
ifeq ($(CHROMIUM),)
	@if [ "$$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq chromium >/dev/null; \
	else echo "chromium is missing: run 'sudo apt-get install chromium' for the browser tests"; exit 1; fi
endif

# Debian's Noto fonts for `hotline poster`: Latin and Cyrillic (Noto Sans) and Arabic (Noto Sans
# Arabic) for all eight languages. bot/poster.py looks for them in /usr/share/fonts/truetype/noto.
NOTO := $(wildcard /usr/share/fonts/truetype/noto/NotoSansArabic-Bold.ttf)
fonts:
ifeq ($(NOTO),)
	@if [ "$$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq fonts-noto-core >/dev/null; \
	else echo "the poster fonts are missing (hotline poster needs them): run 'sudo apt-get install fonts-noto-core'"; fi
endif

# Lint and type-check first (settings in pyproject.toml), then the suite.
test: $(STAMP) i18n-compile chromium fonts
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/pytest

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis
	find $(LOCALES) -name '*.mo' -delete
