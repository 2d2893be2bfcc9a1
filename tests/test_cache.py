"""The disk cache is used under every usual umask, and what it cannot use it cleans up."""
import os
import subprocess
import sys

from tracegrad.backends import cache


def test_the_cache_is_used_under_a_group_writable_umask(tmp_path):
    """Ubuntu and Fedora give users umask 002: the base directory must still be private and used."""
    base = tmp_path / "xdg" / "tracegrad"
    old = os.umask(0o002)
    try:
        with cache.using(base):
            path = cache.cache_dir("llvm")
    finally:
        os.umask(old)
    assert path == str(base / "llvm")
    assert os.stat(base).st_mode & 0o777 == 0o700 and os.stat(path).st_mode & 0o777 == 0o700


def test_a_private_fallback_directory_is_removed_when_the_process_ends(tmp_path):
    shared = tmp_path / "shared"
    shared.mkdir()
    os.chmod(shared, 0o777)  # others could plant code here: not used
    code = ("import tracegrad as tg; from tracegrad.backends import cache; "
            "tg.jit(lambda x: x * 3.0, backend='llvm')(1.0); print(cache.cache_dir('llvm'))")
    run = subprocess.run([sys.executable, "-c", code], env={**os.environ, "TRACEGRAD_CACHE_DIR": str(shared)},
                         capture_output=True, text=True, check=True)
    fallback = run.stdout.strip()
    assert not fallback.startswith(str(shared)) and not os.path.exists(fallback)
