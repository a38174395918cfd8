import nbhosting_core


def test_public_api_is_what_all_says_and_sorted():
    assert nbhosting_core.__all__ == sorted(nbhosting_core.__all__)
    public = {name for name in dir(nbhosting_core) if not name.startswith("_")}
    modules = {name for name in public if type(getattr(nbhosting_core, name)).__name__ == "module"}
    assert public - modules == set(nbhosting_core.__all__)


def test_the_library_imports_no_web_framework():
    import subprocess
    import sys

    code = (
        "import sys, nbhosting_core; print(sorted(m for m in sys.modules if m.split('.')[0] in "
        "('starlette', 'uvicorn', 'fastapi')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_every_public_callable_is_documented():
    for name in nbhosting_core.__all__:
        assert getattr(nbhosting_core, name).__doc__, name
