# The two commands a new user needs:
#   make demo   - run the auditor end to end locally against moto
#   make test   - run every test (what .ci/run calls)
.PHONY: demo test bootstrap lint unit build

bootstrap:
	@scripts/bootstrap.sh

demo: bootstrap
	.venv/bin/python scripts/demo.py

test: bootstrap
	scripts/test.sh

build:
	cargo build --release
