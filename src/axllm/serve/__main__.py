"""``python -m axllm.serve MODEL``: serve one model over an OpenAI-compatible HTTP API.

  python -m axllm.serve MODEL [--host 127.0.0.1] [--port 8000] [--api-key KEY] [--max-queue N]
                        [--kv-slots N] [--max-body-bytes N] [--max-prompt-tokens N]
                        [--request-timeout SECONDS] [--model-id NAME] [--backend auto]
                        [--threads N]
  python -m axllm.serve --demo ...      the Qwen2.5-Coder-0.5B demo model (fetched and built once)

The server listens on the loopback interface unless --host names another address; the log says
which, and warns when the address is reachable from other machines. --port 0 picks a free port
(the line "serving ... on http://HOST:PORT/v1", printed to stderr at every log level,
names it). --api-key (or the AXLLM_API_KEY
environment variable) makes every /v1 request need "Authorization: Bearer KEY". --threads N sets
the host engine's thread count (AXLLM_NUM_THREADS).

Exit status: 0 after a clean shutdown (Ctrl-C or SIGTERM: open requests get up to 5 s to finish,
then their generations are cancelled), 1 when the model cannot be loaded or the address
cannot be bound, 2 for a bad command line.
"""

from __future__ import annotations

import argparse
import ipaddress
import logging
import os
import signal
import socket
import sys
from typing import Optional

from axllm._cli import add_threads_argument, host_threads, int_at_least, plain_text, set_host_threads
from axllm.serve.config import (
    DEFAULT_MAX_BODY_BYTES,
    DEFAULT_MAX_QUEUE,
    DEFAULT_REQUEST_TIMEOUT,
    ServeConfig,
)

logger = logging.getLogger("axllm.serve")
API_KEY_ENV = "AXLLM_API_KEY"


def _timeout(text: str) -> Optional[float]:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not value >= 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a number of seconds >= 0 (0: no limit), got {text!r}")
    return value or None


def parse_args(argv: Optional[list[str]]) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m axllm.serve",
        description=plain_text(__doc__ or ""),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("model", nargs="?", help="model directory (a pulsar2 build or a model package)")
    p.add_argument("--demo", action="store_true", help="serve the demo model from PyPI")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1)")
    p.add_argument("--port", type=int_at_least(0), default=8000, help="port (default 8000; 0: any free)")
    p.add_argument(
        "--api-key",
        default=os.environ.get(API_KEY_ENV) or None,
        help=f"require 'Authorization: Bearer KEY' (default: ${API_KEY_ENV}, else none)",
    )
    p.add_argument(
        "--max-queue",
        type=int_at_least(0),
        default=DEFAULT_MAX_QUEUE,
        help=f"requests that may wait for the model; more get 503 (default {DEFAULT_MAX_QUEUE})",
    )
    p.add_argument(
        "--kv-slots",
        type=int_at_least(0),
        default=0,
        help="recent conversations whose KV cache is kept in host memory (default 0)",
    )
    p.add_argument(
        "--max-body-bytes",
        type=int_at_least(1),
        default=DEFAULT_MAX_BODY_BYTES,
        help=f"larger request bodies get 413 (default {DEFAULT_MAX_BODY_BYTES})",
    )
    p.add_argument(
        "--max-prompt-tokens",
        type=int_at_least(1),
        default=None,
        help="longer prompts get 400 (default and ceiling: the context length - 1)",
    )
    p.add_argument(
        "--request-timeout",
        type=_timeout,
        default=DEFAULT_REQUEST_TIMEOUT,
        help=f"seconds a request may take, queueing included (default {DEFAULT_REQUEST_TIMEOUT:g}; 0: none)",
    )
    p.add_argument("--model-id", help="the model's name in /v1/models (default: the directory's name)")
    p.add_argument("--backend", default="auto")
    add_threads_argument(p)
    p.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    args = p.parse_args(argv)
    if bool(args.model) == bool(args.demo):
        p.error("give a MODEL directory or --demo")
    if args.api_key is not None and not args.api_key:
        p.error("--api-key must not be empty")
    return args


def bind(host: str, port: int) -> socket.socket:
    """A listening-ready TCP socket bound to ``host``:``port``; OSError when it cannot be."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    if not infos:
        raise OSError(f"cannot resolve {host!r}")
    family, kind, proto, _, address = infos[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        sock.bind(address)
    except OSError:
        sock.close()
        raise
    return sock


def is_loopback(address: str) -> bool:
    try:
        return ipaddress.ip_address(address.split("%")[0]).is_loopback
    except ValueError:
        return False


def main(argv: Optional[list[str]] = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(levelname)s:     %(message)s")
    if args.threads is not None:
        try:
            set_host_threads(args.threads)  # before the imports below: they import axllm.LLM
        except ValueError as e:
            print(f"error: {e}", file=sys.stderr)
            return 1
    try:
        import uvicorn

        from axllm.serve.app import create_app
    except ImportError as e:
        print(f'error: the server needs the serve extra (pip install "pyaxllm[serve]"): {e}', file=sys.stderr)
        return 1
    import axllm
    from axllm.errors import AxllmError

    try:
        if args.demo:
            model_dir = axllm.demo_model()
        else:
            model_dir = args.model
        llm = axllm.LLM(model_dir, backend=args.backend)
        config = ServeConfig(
            api_key=args.api_key,
            max_queue=args.max_queue,
            kv_slots=args.kv_slots,
            max_body_bytes=args.max_body_bytes,
            max_prompt_tokens=args.max_prompt_tokens,
            request_timeout=args.request_timeout,
            model_id=args.model_id,
        )
        app = create_app(llm, config)
    except (AxllmError, OSError, ValueError) as e:
        print(f"error: {' '.join(str(e).split())}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    try:
        sock = bind(args.host, args.port)
    except OSError as e:
        print(f"error: cannot listen on {args.host}:{args.port}: {e}", file=sys.stderr)
        return 1
    host, port = sock.getsockname()[:2]
    url = f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"
    server = app.state.server
    if is_loopback(host):
        logger.info("axllm.serve: listening on the loopback interface only (%s)", host)
    else:
        logger.warning(
            "axllm.serve: listening on %s, reachable from other machines, as --host %s asks%s",
            host,
            args.host,
            "" if args.api_key else "; no --api-key is set, so anyone who can reach it may use it",
        )
    engine = f"{llm.backend}, {host_threads()} threads" if llm.backend == "host" else llm.backend
    print(
        f"axllm.serve: serving {server.model_id} ({engine}, context {llm.context_length}) on {url}/v1",
        file=sys.stderr,
        flush=True,
    )
    uv = uvicorn.Server(
        uvicorn.Config(app, host=host, port=port, log_level=args.log_level, timeout_graceful_shutdown=5)
    )
    signal.signal(signal.SIGTERM, _exit_cleanly)
    try:
        uv.run(sockets=[sock])
    except KeyboardInterrupt:
        pass
    return 0


def _exit_cleanly(signum: int, frame: object) -> None:
    """SIGTERM after uvicorn's graceful shutdown (uvicorn raises the signal again once it has
    stopped): exit with status 0, as Ctrl-C does."""
    raise SystemExit(0)


if __name__ == "__main__":
    sys.exit(main())
