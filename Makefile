# Quick start: `make demo` paints a photo on the bundled defaults, `make test` runs the tests.
# Each target creates the virtual environment it needs (.venv) on first use.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
SHARED ?= ../shared
export IMPASTO_VGG_WEIGHTS ?= $(abspath $(SHARED)/weights/vgg16_hed_bsds500.weights.h5)

.PHONY: venv demo test bench clean

venv: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -e ".[dev,openvino]"
	touch $@

# One pass of the bundled fast "candy" network over a photo, on onnxruntime.
demo: venv
	$(BIN)/impasto stylize $(SHARED)/data/content/tubingen.jpg --style candy --size 768 -o out/demo.jpg

test: venv
	$(BIN)/python -m pytest -q -ra

clean:
	rm -rf $(VENV) out build dist *.egg-info
