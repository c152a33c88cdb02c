# The two entry points README.md promises: `make demo` and `make test`.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: venv demo test lint e2e e2e-libvirt bench deb

$(BIN)/xenreconcile: pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test]'
	touch $@

venv: $(BIN)/xenreconcile

# The agent on a simulated host (state in the gitignored .demo/), watching a copy of
# examples/desired/ that you can edit freely; metrics on http://127.0.0.1:9977/metrics.
demo: venv
	mkdir -p .demo
	[ -d .demo/desired ] || cp -r examples/desired .demo/desired
	chmod -R go-w .demo/desired  # strict_modes: a group-writable checkout would be refused
	$(BIN)/xenreconcile run --uri test://$(CURDIR)/.demo/host.json --dir .demo/desired \
		--state-dir .demo/state --prune shutdown --owner demo --config examples/xenreconcile.toml

test: venv
	$(BIN)/ruff check .
	$(BIN)/lint-imports
	$(BIN)/mypy
	$(BIN)/python -m pytest -q

lint: venv
	$(BIN)/ruff check .

# Real Xen 4.17 under QEMU (tests/e2e/README.md): needs root or mmdebstrap's unshare mode, and
# qemu-system-x86, mmdebstrap, e2fsprogs. The image is cached outside the checkout.
e2e: venv
	$(BIN)/python tests/e2e/run_e2e.py

e2e-libvirt: venv
	$(BIN)/python tests/e2e/run_e2e.py --libvirt

# Speed, scale and resources on the simulated host (tests/bench/, README "Benchmarks"): prints a
# table and writes bench-results/latest.json. `.venv/bin/python -m tests.bench --quick` is shorter.
bench: venv
	$(BIN)/python -m tests.bench

# The Debian package (debian/, debhelper): dist/xenreconcile_VERSION_ARCH.deb. Built from a copy of
# the tree without the venv and in-tree build products, with Debian's python3 and libxen-dev
# (apt-get install debhelper dh-python python3-all-dev python3-setuptools python3-cffi libxen-dev).
DEB_BUILD ?= build/deb
DEB_DIST ?= dist
deb:
	rm -rf $(DEB_BUILD) && mkdir -p $(DEB_BUILD)/src $(DEB_DIST)
	tar -c --exclude=./.venv --exclude=./.git --exclude=./build --exclude=./dist --exclude=./.demo \
		--exclude='*.so' --exclude=__pycache__ --exclude='*.egg-info' . | tar -x -C $(DEB_BUILD)/src
	cd $(DEB_BUILD)/src && dpkg-buildpackage -us -uc -b >../build.log 2>&1 || { tail -30 ../build.log; exit 1; }
	mv $(DEB_BUILD)/xenreconcile_*.deb $(DEB_DIST)/
	@ls $(DEB_DIST)/xenreconcile_*.deb
