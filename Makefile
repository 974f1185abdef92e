# fastthreadpool - build, tests and benchmarks.
#
#   make            the engine library (build/libftpool.a)
#   make test       engine tests (C) + Python tests (pytest): the test command
#   make bench      benchmark tables, quick mode (a few minutes; the first
#                   time also builds free-threaded CPython, see test-ft)
#   make bench-full the same with full-size runs
#   make asan tsan valgrind   the engine tests under sanitizers / memcheck
#   make asan-py valgrind-py  the Python tests on an ASan+UBSan build of the
#                   extension / under memcheck (tools/sanitize-python.sh)
#   make test-stdlib  CPython's own ThreadPoolExecutor and asyncio executor
#                   tests with ours in the standard one's place, on every
#                   CPython 3.9+ found (tests/stdlib/run.py)
#   make tsan-py    the Python tests on a ThreadSanitizer build of the
#                   extension, in a free-threaded CPython built with TSan
#   make check      all of the above plus the long stress runs
#   make test-win   the engine tests and the example cross-compiled for
#                   Windows (MinGW-w64) and run under Wine; needs
#                   tools/install-deps.sh --win
#   make test-ft    the Python suite on free-threaded CPython 3.13, built
#                   from Debian's source package (tools/build-python-ft.sh,
#                   about 5 minutes the first time), the GIL left off
#   make docs       the documentation (docs/, Sphinx + MyST) into build/docs
#   make docs-check the same with every warning an error, and README's links

CC      ?= cc
PYTHON  ?= python3
BUILD   ?= build
OPT     ?= -O2
CFLAGS  ?= $(OPT) -g
WARN    := -std=c11 -Wall -Wextra -Wpedantic -Wshadow -Wstrict-prototypes \
           -Wmissing-prototypes -Werror=implicit-function-declaration
CPPFLAGS += -Iinclude -Isrc/engine -D_POSIX_C_SOURCE=200809L
LDLIBS  += -lpthread

ENGINE_SRC  := $(wildcard src/engine/*.c) src/engine/platform/posix.c
TEST_SRC    := $(wildcard tests/engine/*.c)

.PHONY: all lib examples test test-deps check-deps test-c test-py asan tsan valgrind check bench bench-full \
        ext clean stress deps test-win docs docs-deps docs-check test-ft \
        test-stdlib tsan-py bench-ft

all: lib

lib: $(BUILD)/libftpool.a

# One object directory per flavour so sanitizer builds never mix objects.
define flavour
$(BUILD)/$(1)/%.o: %.c include/ftpool.h $(wildcard src/engine/*.h src/engine/platform/*.h)
	@mkdir -p $$(dir $$@)
	$$(CC) $$(CPPFLAGS) $$(CFLAGS) $$(WARN) $(2) -c $$< -o $$@
$(BUILD)/$(1)/libftpool.a: $$(ENGINE_SRC:%.c=$(BUILD)/$(1)/%.o)
	$$(AR) rcs $$@ $$^
$$(TEST_SRC:%.c=$(BUILD)/$(1)/%.o): $(wildcard tests/engine/*.h)
$(BUILD)/$(1)/engine_tests: $$(TEST_SRC:%.c=$(BUILD)/$(1)/%.o) $(BUILD)/$(1)/libftpool.a
	$$(CC) $$(CFLAGS) $(2) $$^ -o $$@ $$(LDLIBS)
endef

# Flags in variables: a comma written inside $(call ...) would split its
# arguments (and silently drop everything after -fsanitize=address).
ASAN_FLAGS := -O1 -fsanitize=address,undefined -fno-omit-frame-pointer \
              -fno-sanitize-recover=all
TSAN_FLAGS := -O1 -fsanitize=thread
$(eval $(call flavour,release,))
$(eval $(call flavour,asan,$(ASAN_FLAGS)))
$(eval $(call flavour,tsan,$(TSAN_FLAGS)))

$(BUILD)/libftpool.a: $(BUILD)/release/libftpool.a
	cp $< $@

# Example programs that use the engine from plain C; built by test-c so they
# keep compiling against the public header.
EXAMPLES := $(patsubst examples/%.c,$(BUILD)/examples/%,$(wildcard examples/*.c))
examples: $(EXAMPLES)
$(BUILD)/examples/%: examples/%.c $(BUILD)/release/libftpool.a
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(CFLAGS) $(WARN) $< $(BUILD)/release/libftpool.a -o $@ $(LDLIBS)

test: test-deps test-c test-py

# pytest, hypothesis, mypy (for stubtest) and distributed (Dask), if missing.
test-deps:
	sh tools/install-deps.sh

test-c: $(BUILD)/release/engine_tests examples
	$(BUILD)/examples/parallel_sum
	$(BUILD)/release/engine_tests

# Windows: the engine on platform/win32.c, its tests and the examples built
# with MinGW-w64 into $(BUILD)/win, statically so that Wine needs no DLL
# beyond the system's, and run under Wine.  The run passes only if the last
# line says that every test passed: a crash leaves no such line.
WIN_CC   ?= x86_64-w64-mingw32-gcc
WIN_AR   ?= x86_64-w64-mingw32-ar
WINE     ?= $(shell command -v wine64 || command -v wine)
WIN_DIR  := $(BUILD)/win
WIN_ENGINE_SRC := $(wildcard src/engine/*.c) src/engine/platform/win32.c
WIN_FLAGS := -O2 $(WARN) -Werror
WIN_EXAMPLES := $(patsubst examples/%.c,$(WIN_DIR)/examples/%.exe,\
                $(wildcard examples/*.c))

$(WIN_DIR)/%.o: %.c include/ftpool.h \
                $(wildcard src/engine/*.h src/engine/platform/*.h)
	@mkdir -p $(dir $@)
	$(WIN_CC) -Iinclude -Isrc/engine $(WIN_FLAGS) -c $< -o $@
$(WIN_DIR)/libftpool.a: $(WIN_ENGINE_SRC:%.c=$(WIN_DIR)/%.o)
	$(WIN_AR) rcs $@ $^
$(TEST_SRC:%.c=$(WIN_DIR)/%.o): $(wildcard tests/engine/*.h)
$(WIN_DIR)/engine_tests.exe: $(TEST_SRC:%.c=$(WIN_DIR)/%.o) \
                             $(WIN_DIR)/libftpool.a
	$(WIN_CC) -static $(WIN_FLAGS) $^ -o $@
$(WIN_DIR)/examples/%.exe: examples/%.c $(WIN_DIR)/libftpool.a
	@mkdir -p $(dir $@)
	$(WIN_CC) -static -Iinclude $(WIN_FLAGS) $^ -o $@

test-win: $(WIN_DIR)/engine_tests.exe $(WIN_EXAMPLES)
	@test -n "$(WINE)" \
	    || { echo "no Wine: sh tools/install-deps.sh --win"; exit 1; }
	for e in $(WIN_EXAMPLES); do WINEDEBUG=-all $(WINE) $$e || exit 1; done
	rm -f $(WIN_DIR)/engine_tests.rc $(WIN_DIR)/engine_tests.log
	{ WINEDEBUG=-all $(WINE) $(WIN_DIR)/engine_tests.exe; \
	  echo $$? > $(WIN_DIR)/engine_tests.rc; } | tee $(WIN_DIR)/engine_tests.log
	test "$$(cat $(WIN_DIR)/engine_tests.rc)" = 0
	tail -n 1 $(WIN_DIR)/engine_tests.log | tr -d '\r' \
	    | grep -Eq '^[1-9][0-9]* passed, 0 failed$$'

asan: $(BUILD)/asan/engine_tests
	ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 $<

tsan: $(BUILD)/tsan/engine_tests
	TSAN_OPTIONS=halt_on_error=1 $<

valgrind: $(BUILD)/release/engine_tests
	FTPOOL_TEST_QUICK=1 valgrind --error-exitcode=99 --leak-check=full \
	    --errors-for-leak-kinds=definite $<

# The CPython extension, built in place so that the tests import it from here.
ext:
	$(PYTHON) setup.py -q build_ext --inplace

test-py: ext
	$(PYTHON) -m pytest -q tests/python

test-ft:
	sh tools/test-pythons.sh "$$(BUILD=$(BUILD) sh tools/build-python-ft.sh \
	    | tail -n 1)"

# Each interpreter gets a venv of its own (build/stdlib-venv-*) and the
# extension built for it; see tests/stdlib/run.py.  STDLIB_PYTHONS: more
# interpreters to run it on (paths); STDLIB_SET=--ends: only the oldest and
# newest GIL builds, the free-threaded ones and $(PYTHON) (a quicker run).
STDLIB_SET ?= --all
test-stdlib:
	sh tools/install-deps.sh --stdlib
	$(PYTHON) tests/stdlib/run.py $(STDLIB_SET) $(STDLIB_PYTHONS)

stress: $(BUILD)/release/engine_tests ext
	FTPOOL_STRESS=1 $(BUILD)/release/engine_tests
	FTPOOL_STRESS=1 $(PYTHON) -m pytest -q tests/python

# The extension built with ASan+UBSan into $(BUILD)/asan-py, the whole
# Python suite run against it.
asan-py:
	BUILD=$(BUILD) PYTHON=$(PYTHON) sh tools/sanitize-python.sh asan

# Memcheck is ~20x slower: a subset that passes every object through every
# path of the binding (the leak cycles, timers, fork, submit, results,
# callbacks, map, faults, bad input, lifetime, result queue, asyncio);
# subprocess-heavy and timing-bound files are left to asan-py.
VALGRIND_PY_TESTS ?= $(addprefix tests/python/test_,leaks.py \
    timers_cancel_race.py fork.py submit.py results.py callbacks.py \
    map.py lifetime.py faults.py bad_input.py result_queue.py \
    executor_asyncio.py)
valgrind-py: ext
	BUILD=$(BUILD) PYTHON=$(PYTHON) sh tools/sanitize-python.sh valgrind \
	    $(VALGRIND_PY_TESTS)

# ThreadSanitizer needs an instrumented interpreter: TSAN_PYTHON, or a
# free-threaded CPython 3.13 that tools/build-python-ft.sh builds once into
# $(BUILD)/python3.13t-tsan.  Everything runs ~10x slower: left out are the
# memory-growth files, whose cycles take minutes here and which asan-py and
# valgrind-py cover, and the files without threads of their own: stubs,
# docstrings, version and module path, the stdlib runner, the README's
# links, and Dask (whose own C extensions are not instrumented); and the
# fork tests: in the child of a threaded process TSan aborts when a new
# thread reuses the id of one of the parent's ("dup thread with used id"),
# so they would prove nothing there (asan-py and test-ft run them).
TSAN_PY_TESTS ?= $(filter-out $(addprefix tests/python/test_,\
    leaks_lookup_names.py result_queue_growth.py leaks.py stubs.py \
    docstrings.py version.py dask.py stdlib_runner.py docs_links.py \
    module_path.py fork.py),$(wildcard tests/python/test_*.py))
tsan-py:
	BUILD=$(BUILD) sh tools/sanitize-python.sh tsan $(TSAN_PY_TESTS)

check: check-deps test asan tsan valgrind asan-py valgrind-py stress test-stdlib

check-deps:
	sh tools/install-deps.sh --check

deps:
	sh tools/install-deps.sh --bench

# The free-threaded interpreter of the benchmarks' freethreading part (built
# once by tools/build-python-ft.sh, which prints its path), setuptools and
# uvloop for it, and the extension built for it beside the default one.
FT_PATH = BUILD=$(BUILD) sh tools/build-python-ft.sh | tail -n 1
bench-ft:
	ft=$$($(FT_PATH)) && test -x "$$ft" \
	    && PYTHON=$$ft sh tools/install-deps.sh --bench-ft \
	    && $$ft setup.py -q build_ext --inplace

bench: deps ext bench-ft
	$(MAKE) -C bench
	$(PYTHON) bench/run.py --quick --ft "$$($(FT_PATH))"

bench-full: deps ext bench-ft
	$(MAKE) -C bench
	$(PYTHON) bench/run.py --ft "$$($(FT_PATH))"

# The documentation.  Sphinx and MyST-Parser live in a virtual environment
# of their own (tools/install-deps.sh --docs); autodoc imports the extension
# built in place.
DOCS_VENV ?= $(BUILD)/docs-venv
SPHINX    := $(DOCS_VENV)/bin/python -m sphinx

docs-deps:
	PYTHON=$(PYTHON) DOCS_VENV=$(DOCS_VENV) sh tools/install-deps.sh --docs

docs: docs-deps ext
	$(SPHINX) -q -b html docs $(BUILD)/docs

# For CI: a fresh build (-E, so that no page kept from an earlier build hides
# its warnings) in which any warning fails (-W, all of them reported:
# --keep-going) and every cross-reference must resolve (-n); no network is
# needed.  Then the relative links and anchors of README.md.
docs-check: docs-deps ext
	$(SPHINX) -q -E -n -W --keep-going -b html docs $(BUILD)/docs
	$(PYTHON) -m pytest -q tests/python/test_docs_links.py

clean:
	rm -rf $(BUILD) fastthreadpool/*.so
