"""The original's module path, fastthreadpool.fastthreadpool: code written
for fastthreadpool 1.7/1.8 imports from it and gets the package's objects."""
import collections
import textwrap

from conftest import run_script

# What the original's compiled submodule gave to its users: the package's
# six names, the two logging constants and (1.8) the DBG trace.
NAMES = ['Pool', 'TimerObj', 'Semaphore', 'PoolCallback', 'PoolStopped',
         'Shutdown', 'LOGGER_NAME', 'DEFAULT_LOGGING_FORMAT']


def test_every_name_is_the_package_object():
    import fastthreadpool
    import fastthreadpool.fastthreadpool as mod
    for name in NAMES:
        assert getattr(mod, name) is getattr(fastthreadpool, name), name
    assert mod.LOGGER_NAME == "fastthreadpool"
    assert mod.DEFAULT_LOGGING_FORMAT == \
        "[%(levelname)s/%(processName)s] %(message)s"


def test_from_import_and_star_import():
    import fastthreadpool
    from fastthreadpool.fastthreadpool import Pool, Semaphore, Shutdown
    assert (Pool, Semaphore, Shutdown) == (
        fastthreadpool.Pool, fastthreadpool.Semaphore,
        fastthreadpool.Shutdown)
    ns = {}
    exec("from fastthreadpool.fastthreadpool import *", ns)
    ns.pop("__builtins__")
    assert sorted(ns) == sorted(NAMES + ["DBG"])


def test_importing_the_package_imports_the_submodule():
    # The original's package imported it: the attribute is there without
    # an import of its own.
    proc, _ = run_script("""
        import fastthreadpool
        print(fastthreadpool.fastthreadpool.Pool is fastthreadpool.Pool)
    """)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["True"]


def test_dbg_is_an_empty_deque_that_jobs_leave_empty(make_pool):
    import fastthreadpool.fastthreadpool as mod
    assert isinstance(mod.DBG, collections.deque)
    pool = make_pool(2)
    for i in range(100):
        pool.submit(abs, -i)
    pool.map(abs, range(100))
    assert pool.shutdown(5) is True
    assert len(pool.done) == 200
    assert len(mod.DBG) == 0


def test_code_written_for_the_original_runs():
    # The style of the original project's own tests: the submodule
    # imported, the pool used through the package name, DBG cleared.
    proc, _ = run_script(textwrap.dedent("""
        import fastthreadpool.fastthreadpool

        results = []
        fastthreadpool.fastthreadpool.DBG.clear()
        with fastthreadpool.Pool(done_callback=results.append) as pool:
            for value in range(10):
                pool.submit(lambda v: v * 2, value)
        sem = fastthreadpool.fastthreadpool.Semaphore(8)
        sem.acquire()
        print(sorted(results) == [v * 2 for v in range(10)], sem.value)
    """))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["True", "7"]
