"""``audioembed client``: embed files with a running server; JSON summaries on stdout, optional ``.npz``."""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
from pathlib import Path
from typing import Any

from audioembed.cli import Command
from audioembed_server import classify_command
from audioembed_server.client import DEFAULT_CHUNK_BYTES, EmbeddingClient, ServiceError

MESSAGE_OVERHEAD = 64 * 1024  # bytes of a request besides the audio, with a wide margin
EXIT_OK = 0
EXIT_FAILED = 1  # at least one file could not be embedded


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("files", nargs="*", type=Path, help="audio files to embed")
    parser.add_argument(
        "--address",
        "--server",
        dest="address",
        action="append",
        default=None,
        help=(
            "server host:port; repeat it or separate with commas for replicas (balanced round-robin), or a "
            "target URI such as dns:///svc:50051 (env AUDIOEMBED_ADDRESS; default: localhost:50051)"
        ),
    )
    parser.add_argument("--token", default=None, help="bearer token (prefer env AUDIOEMBED_TOKEN)")
    parser.add_argument("--tls", action="store_true", help="connect with TLS (system roots)")
    parser.add_argument("--root-cert", type=Path, help="PEM roots to trust (implies --tls)")
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds per call (default: %(default)s)")
    parser.add_argument("--kind", choices=("both", "raw", "quantized"), default="both", help="outputs")
    parser.add_argument("--hop", type=float, default=None, help="seconds between example starts")
    parser.add_argument(
        "--short-clip", choices=("pad", "drop"), default=None, help="policy for clips < 0.975 s"
    )
    parser.add_argument("--stream", action="store_true", help="send files with EmbedStream (no size limit)")
    parser.add_argument("-o", "--output-dir", type=Path, help="write <file name>.npz here for each input")
    parser.add_argument("--info", action="store_true", help="print the server's model info as JSON")
    classify_command.add_arguments(parser)


def _summary(path: Path, result: Any) -> dict[str, Any]:
    return {
        "file": str(path),
        "num_examples": result.num_examples,
        "duration_seconds": round(result.duration_seconds, 6),
        "sample_rate": result.sample_rate,
        "short_clip": result.short_clip,
        "hop_seconds": result.hop_seconds,
        "raw": result.embeddings is not None,
        "quantized": result.quantized is not None,
    }


def run(args: argparse.Namespace) -> int:
    classify_command.check_arguments(args)
    token = args.token or os.environ.get("AUDIOEMBED_TOKEN") or None
    address = args.address or [os.environ.get("AUDIOEMBED_ADDRESS") or "localhost:50051"]
    client = EmbeddingClient(
        address, tls=args.tls, root_certificates=args.root_cert, token=token, timeout=args.timeout
    )
    options = {"output": args.kind, "hop_seconds": args.hop, "short_clip": args.short_clip}
    failures = 0
    with client:
        info = client.model_info() if args.info or not args.stream else None
        if args.info:
            print(json.dumps(dataclasses.asdict(info), sort_keys=True), flush=True)
        # Files too big for one message go through EmbedStream on their own (the request's other
        # fields need a little room next to the audio bytes).
        limit = (
            None if info is None else int(info.limits.get("max_receive_message_bytes", 0)) - MESSAGE_OVERHEAD
        )
        for path in args.files:
            try:
                stream = args.stream or (limit is not None and path.is_file() and path.stat().st_size > limit)
                chunk = DEFAULT_CHUNK_BYTES if limit is None else max(1024, min(DEFAULT_CHUNK_BYTES, limit))
                if args.classify is not None:  # a served classifier's scores instead of embeddings
                    print(
                        json.dumps(classify_command.classify_one(client, args, path, stream, chunk)),
                        flush=True,
                    )
                    continue
                if stream:
                    result = client.embed_file_stream(path, chunk_bytes=chunk, **options)
                else:
                    result = client.embed(path, **options)
            except (ServiceError, OSError) as error:
                failures += 1
                print(json.dumps({"file": str(path), "error": str(error)}), flush=True)
                continue
            summary = _summary(path, result)
            if args.output_dir is not None:
                target = args.output_dir / f"{path.name}.npz"
                result.save_npz(target)
                summary["npz"] = str(target)
            print(json.dumps(summary), flush=True)
    if failures:
        print(f"audioembed client: {failures} of {len(args.files)} files failed", file=sys.stderr)
        return EXIT_FAILED
    return EXIT_OK


COMMAND = Command(
    name="client",
    help="embed audio files with a running audioembed server (JSON summaries, optional .npz)",
    configure=configure,
    run=run,
)
