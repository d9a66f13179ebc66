# Cairn — the two entry points are `make demo` and `make test`; both install what they need.
SHELL := /bin/bash
CARGO ?= cargo
TESTDATA ?= $(CURDIR)/../shared/testdata

.PHONY: demo test deps deps-test build unit doc-tests fuzz-smoke test-keylime-interop nova-venv guest-kit bench clean

## demo: the local demo — a fresh swtpm, EK and AK, a quote, its verification.
demo: deps
	$(CARGO) build --release -p cairn
	./target/release/cairn demo

## test: the whole suite (unit, integration on real swtpm, vectors, doc tests, fuzz smoke).
test: deps-test fuzz-smoke doc-tests test-keylime-interop nova-venv guest-kit unit

deps:
	@scripts/install-deps.sh

deps-test:
	@scripts/install-deps.sh --test

unit:
	$(CARGO) nextest run --workspace --no-fail-fast -E 'not (binary(agent_keylime) | binary(tenant_keylime))'

## test-keylime-interop: Keylime 7.14.3 (venv under target/): its registrar enrols `cairn agent` on swtpm;
## its tenant adds a `cairn agent` with a payload through Cairn's registrar and verifier.
test-keylime-interop: deps-test
	@scripts/keylime-venv.sh || [ "$${CI:-}" != "true" ]
	$(CARGO) nextest run -p cairn --test agent_keylime --test tenant_keylime --no-fail-fast

## nova-venv: OpenStack Nova from PyPI (target/nova-venv), so the Cairn scheduler filter (contrib/nova) is
## tested against Nova's own classes by crates/cairn/tests/levels_placement.rs.
nova-venv: deps-test
	@scripts/nova-venv.sh || [ "$${CI:-}" != "true" ]

## guest-kit: Debian's cloud kernel, virtio modules and busybox (target/guest-kit), so
## crates/cairn/tests/vm_guest_qemu.rs boots a real guest on a vTPM with this build's agent inside.
guest-kit: deps-test
	@scripts/guest-kit.sh || [ "$${CI:-}" != "true" ]

doc-tests:
	$(CARGO) test --workspace --doc

## fuzz-smoke: every fuzz target over the shared vectors, its own seeds (fuzz/corpus/<target>) and mutations (stable toolchain).
fuzz-smoke:
	cd fuzz && CARGO_TARGET_DIR=../target/fuzz $(CARGO) build --release --bins
	@for t in $$(sed -n 's/^name = "\(.*\)"/\1/p' fuzz/Cargo.toml | grep -v cairn-fuzz); do \
		./target/fuzz/release/$$t $(TESTDATA) fuzz/corpus/$$t || exit 1; \
	done

## bench: benchmarks, JSON on stdout.
bench: deps
	$(CARGO) build --release -p cairn
	./target/release/cairn bench quote-verify

clean:
	$(CARGO) clean
