# Quick start: `make demo` paints a photo on the bundled defaults, `make test` runs the tests.
# Each target creates the virtual environment it needs (.venv) on first use.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
SHARED ?= ../shared
export IMPASTO_VGG_WEIGHTS ?= $(abspath $(SHARED)/weights/vgg16_hed_bsds500.weights.h5)

.PHONY: venv chromium demo test bench clean

venv: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -e ".[dev,openvino]"
	touch $@

# One pass of the bundled default fast network (starry_night) over a photo.
demo: venv
	$(BIN)/impasto stylize $(SHARED)/data/content/tubingen.jpg --size 768 -o out/demo.jpg

# The web-page test drives Debian's headless Chromium: installed here when it is missing.
chromium:
	@command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || { \
	  echo "installing Debian's chromium for the web-page test"; \
	  SUDO=$$( [ "$$(id -u)" -eq 0 ] || echo sudo ); \
	  DEBIAN_FRONTEND=noninteractive $$SUDO apt-get update -q && \
	  DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -q chromium; }

# Every test, the slow end-to-end ones (marked `slow`) included; `-m "not slow"` skips those.
test: venv chromium
	$(BIN)/python -m pytest -q -ra

clean:
	rm -rf $(VENV) out build dist *.egg-info
