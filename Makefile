# ngdbench — the README's two commands are `make reproduce` and `make test`; both install missing
# Debian packages and build first.

BUILD_DIR ?= build
BUILD_TYPE ?= Release
# Extra CMake arguments, e.g. CMAKE_ARGS=-DTorch_DIR=/path/to/libtorch/share/cmake/Torch
CMAKE_ARGS ?=
# Where `make reproduce` writes result files.
OUT ?= results/runs
# Spec scale: auto = paper with a CUDA device, cpu without; or name one (cpu, paper).
SCALE ?= auto
# Threads for training runs (0 = one per core).
THREADS ?= 0
# Tuned entries' trials per study (empty = each spec's whole budget). The first N are the full
# budget's first N, so a later `make reproduce` without it trains only the rest.
TRIALS ?=
# The paper suites: one folder per paper under experiments/.
SUITES := $(sort $(wildcard experiments/fngd/*.json experiments/tengrad/*.json experiments/sngd/*.json \
                            experiments/dldr/*.json experiments/lowrank/*.json))
# Specs `make reproduce` runs.
SPECS ?= $(SUITES)
# Where `make tables` writes report.md, report.html, tables/, plots/, results.sqlite and csv/.
REPORT_DIR ?= results
JOBS ?= $(shell nproc)

.PHONY: all deps configure build cli test test-slurm test-kernels test-asan test-verdicts fuzz bench bench-peers bench-timing-flags reproduce \
        tables export clean

all: build

deps:
	@scripts/install-deps.sh

$(BUILD_DIR)/build.ninja: CMakeLists.txt
	cmake -S . -B $(BUILD_DIR) -G Ninja -DCMAKE_BUILD_TYPE=$(BUILD_TYPE) $(CMAKE_ARGS)

configure: deps $(BUILD_DIR)/build.ninja

build: configure
	cmake --build $(BUILD_DIR) -j $(JOBS)

# Only the CLI: what `make reproduce` needs.
cli: configure
	cmake --build $(BUILD_DIR) -j $(JOBS) --target ngdbench

test: build
	cd $(BUILD_DIR) && ctest --output-on-failure -j $(JOBS)

# The Slurm test (CTest label slurm): brings up a one-node Slurm here (scripts/slurm-local.sh installs
# slurmctld, slurmd, munge), runs a sweep as a job array with one task requeued half-way, tears it down.
test-slurm: cli
	cd $(BUILD_DIR) && NGDBENCH_SLURM_TEST=1 ctest -L slurm --output-on-failure

# The outcomes of the tests the claims file names (claims of kind "test", docs/protocol.md#verdicts) as
# results/test-verdicts.json, which `make tables` reads: CTest's JUnit file of those tests, and Google
# Test's XML of the ones whose recorded properties the report prints. Commit the file with the results.
TEST_VERDICTS ?= results/test-verdicts.json
TEST_VERDICTS_SCRIPT = /usr/bin/python3 scripts/test-verdicts.py
test-verdicts: build
	regex="$$($(TEST_VERDICTS_SCRIPT) --ctest-regex)" && cd $(BUILD_DIR) && \
	  ctest -R "$$regex" --output-junit ctest-claims.xml -j $(JOBS) >/dev/null || true
	$(BUILD_DIR)/tests/ngdbench_numerical_tests --gtest_filter="$$($(TEST_VERDICTS_SCRIPT) --records-filter)" \
	  --gtest_output=xml:$(BUILD_DIR)/claims-records.xml >/dev/null || true
	$(TEST_VERDICTS_SCRIPT) --junit $(BUILD_DIR)/ctest-claims.xml --gtest-xml $(BUILD_DIR)/claims-records.xml \
	  --out $(TEST_VERDICTS)

# The numerical tests (CTest label `numerical`) and the tests that still bound a training outcome, under
# other CPUs' kernels: OpenBLAS kernels (auto, Haswell, Zen, Sandybridge, Nehalem) × ATen CPU capabilities
# (default, avx2, avx512 where the CPU has it). Fails on a failed test or an outcome bound whose margin is
# under 3× the spread the matrix shows (docs/testing.md). MATRIX_ARGS: e.g. --threads 1,2 or --combos.
MATRIX_ARGS ?=
test-kernels: build
	scripts/kernel-matrix.py --build $(BUILD_DIR) $(MATRIX_ARGS)

# The unit tests under AddressSanitizer + UndefinedBehaviorSanitizer (LibTorch itself is not
# instrumented; its static allocations are not reported as leaks).
ASAN_BUILD_DIR ?= build-asan
test-asan: deps
	cmake -S . -B $(ASAN_BUILD_DIR) -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DNGDBENCH_SANITIZE=ON $(CMAKE_ARGS)
	cmake --build $(ASAN_BUILD_DIR) -j $(JOBS)
	cd $(ASAN_BUILD_DIR) && ASAN_OPTIONS=detect_leaks=0:alloc_dealloc_mismatch=0 \
	  UBSAN_OPTIONS=print_stacktrace=1 ctest --output-on-failure -j $(JOBS)

# libFuzzer over the spec parser and the dataset readers, FUZZ_SECONDS each, with clang.
FUZZ_BUILD_DIR ?= build-fuzz
FUZZ_SECONDS ?= 60
fuzz: deps
	cmake -S . -B $(FUZZ_BUILD_DIR) -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_CXX_COMPILER=clang++ \
	  -DNGDBENCH_FUZZ=ON $(CMAKE_ARGS)
	cmake --build $(FUZZ_BUILD_DIR) -j $(JOBS) --target ngdbench_fuzz_spec ngdbench_fuzz_readers
	scripts/run-fuzz.sh $(FUZZ_BUILD_DIR) $(FUZZ_SECONDS)

# Microbenchmarks as JSON with google/benchmark's context block (BENCH_OUT to change the file).
# BENCH_MIN_TIME: seconds each benchmark runs at least (0.2 keeps `make bench` near 2 minutes on
# 2 cores); BENCH_ARGS: more flags, e.g. --benchmark_repetitions=5 --benchmark_filter=Gram.
BENCH_OUT ?= $(BUILD_DIR)/bench.json
BENCH_MIN_TIME ?= 0.2
BENCH_ARGS ?=
bench: build
	$(BUILD_DIR)/ngdbench_bench --benchmark_min_time=$(BENCH_MIN_TIME) --benchmark_out=$(BENCH_OUT) \
	  --benchmark_out_format=json $(BENCH_ARGS)

# ngdbench's training step next to a bare LibTorch loop, plain PyTorch and the public implementations
# (KFAC-Pytorch, AlgoPerf NAdamW, Muon, SOAP, Distributed Shampoo, Eva), interleaved, one thread: time and
# memory, BUILD_DIR/bench-peers.json and .md. Skips what is missing (python3-torch; a peer's clone, given
# by KFAC_PYTORCH_DIR, ALGOPERF_DIR, MUON_DIR, SOAP_DIR, DISTRIBUTED_SHAMPOO_DIR, EVA_DIR or the flags in
# PEERS_ARGS, e.g. PEERS_ARGS="--muon DIR") and says so.
PEERS_ARGS ?=
bench-peers: build
	/usr/bin/python3 scripts/bench-peers --build $(BUILD_DIR) $(PEERS_ARGS)

# Whether an epoch's clock depends on threads, OpenMP wait policy, prefetch and phase timing (3c1f,
# interleaved): BUILD_DIR/bench-timing-flags.json and .md (docs/performance.md).
bench-timing-flags: cli
	/usr/bin/python3 scripts/bench-timing-flags --build $(BUILD_DIR) --out $(BUILD_DIR)/bench-timing-flags

# Runs every suite (resuming finished runs), then makes the tables even when some runs failed.
reproduce: cli
	@status=0; $(BUILD_DIR)/ngdbench run $(SPECS) --out $(OUT) --threads $(THREADS) --scale $(SCALE) \
	  $(if $(TRIALS),--max-trials $(TRIALS)) || status=$$?; \
	  $(MAKE) --no-print-directory tables && exit $$status

# Every result as tables: REPORT_DIR/results.sqlite and REPORT_DIR/csv/*.csv (docs/results-database.md).
EXPORT = /usr/bin/python3 scripts/export_results.py $(OUT) --out $(REPORT_DIR)

# Tables (Markdown, LaTeX), plots, report.md, report.html and verdicts.json from the result files (and
# results/test-verdicts.json when present), then the results and verdicts as a database and CSV files.
tables:
	/usr/bin/python3 scripts/report.py $(OUT) --out $(REPORT_DIR)
	$(EXPORT)

export:
	$(EXPORT)

clean:
	rm -rf $(BUILD_DIR)
