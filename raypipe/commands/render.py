"""`raypipe render`: show samples as the model sees them, trained spans highlighted."""

from __future__ import annotations

import sys

from raypipe.registry import Command

GREEN = "\033[42;30m"  # trained: black on green
DIM = "\033[2m"
RESET = "\033[0m"


def _add(p) -> None:
    p.add_argument("samples", nargs="*", help="canonical sample files, globs or dataset folders")
    p.add_argument("--format", default="tools-dt", help="template preset (see docs/templates.md)")
    p.add_argument("--limit", type=int, default=None, help="render at most N samples")
    p.add_argument("--train-on", choices=("all", "last"), default="all")
    p.add_argument("--plain", action="store_true", help="mark trained spans as [[...]] instead of colour")
    p.add_argument("--chat-template", action="store_true",
                   help="print the format's Jinja chat template (for vLLM --chat-template) and exit")


def highlight(spans, *, train_on: str = "all", color: bool) -> str:
    last = max((s.turn for s in spans if s.trained), default=None)
    out = []
    for span in spans:
        trained = span.trained and (train_on == "all" or span.turn == last)
        if not trained:
            out.append(span.text)
        elif color:
            out.append(GREEN + span.text + RESET)
        else:
            out.append("[[" + span.text + "]]")
    return "".join(out)


def _run(args) -> int:
    from raypipe.errors import RaypipeError
    from raypipe.templates import chat_template, get_format, render_spans

    fmt = get_format(args.format)
    if args.chat_template:
        sys.stdout.write(chat_template(fmt))
        return 0
    if not args.samples:
        raise RaypipeError("render: give sample files (or --chat-template)")
    from raypipe.io import iter_samples

    color = sys.stdout.isatty() and not args.plain
    for i, sample in enumerate(iter_samples(args.samples)):
        if args.limit is not None and i >= args.limit:
            break
        header = f"### {sample.id} ({sample.source or '-'}, {sample.lang})"
        print(DIM + header + RESET if color else header)
        try:
            spans = render_spans(sample.messages, sample.functions, fmt)
        except ValueError as err:  # e.g. a call name the pythonic form cannot write
            raise RaypipeError(f"sample {sample.id}: cannot render in {args.format}: {err}") from None
        print(highlight(spans, train_on=args.train_on, color=color))
    return 0


COMMANDS = [
    Command(
        path=("render",),
        help="render samples in a template format with the trained spans highlighted",
        description="Trained spans (what the loss sees) are green on a terminal and [[...]] "
        "otherwise or with --plain.",
        add_arguments=_add,
        run=_run,
    )
]
