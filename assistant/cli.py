"""The `tunesmith` command: the app, the headless chat, and the non-interactive verbs.

    tunesmith [--home DIR] [--session ID]          open the app
    tunesmith chat --headless [--session ID]       the same conversation over stdin/stdout
    tunesmith --llm PROVIDER:MODEL ...             talk through a language model (assistant.llm)
    tunesmith mcp [--session ID]                   the planner's tools for an agent, over MCP
    tunesmith profile FILE [--json]                how tunesmith reads a file, its findings, a baseline
    tunesmith sessions [--json]                    list saved sessions
    tunesmith export SESSION --out DIR             write a session's reproducible bundle
    tunesmith predict SESSION --input FILE|TEXT    label new texts with the session's model

A `TuningError` becomes one line on stderr and exit status 1; nobody sees a traceback for bad
input. Heavy libraries are imported only by the commands that need them.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # read at import by huggingface_hub: set it first

from assistant.progress import format_event
from assistant.store import HOME_ENV, SessionLocked, SessionStore
from tuning_core.errors import TuningError


def _home(args: argparse.Namespace) -> Path:
    return Path(args.home or os.environ.get(HOME_ENV) or "sessions")


def _print_replies(replies) -> None:
    for reply in replies:
        print(reply.text)
        print()
    sys.stdout.flush()


def _follow(conversation) -> None:
    from tuning_core.runs import follow_run

    def show(event: dict[str, Any]) -> None:
        line = format_event(event)
        if line:
            print(line, flush=True)
        for reply in conversation.watch([event]):
            print(reply.text, flush=True)

    status = follow_run(conversation.run_dir, show, poll_s=0.5)
    _print_replies(conversation.finish_run(status))


def _llm_front_end(args: argparse.Namespace, settings_spec: str | None = None):
    """The LLM front end that `--llm` / $TUNESMITH_LLM (or the app's settings) names, or None
    (the rule-based planner alone). LLMSetupError, one line, when it cannot be built."""
    from assistant.llm import llm_spec

    spec = llm_spec(getattr(args, "llm", None)) or settings_spec
    if not spec:
        return None
    from assistant.llm import LLMFrontEnd, build_model

    return LLMFrontEnd(build_model(spec), spec)


def run_headless(args: argparse.Namespace) -> int:
    from assistant.conversation import Conversation

    front = _llm_front_end(args)  # before the session opens: a setup problem is one line
    store = SessionStore(_home(args))
    try:
        conversation = Conversation.start(store, args.session)
    except SessionLocked as exc:  # another tunesmith writes it: show it, write nothing
        print(f"tunesmith: {exc.message}; opening it read-only.", file=sys.stderr, flush=True)
        conversation = Conversation.start(store, args.session, read_only=True, reason=exc.message)
    # what a slow step is doing goes to stderr, so stdout stays the conversation
    conversation.planner.progress = lambda text: print(f"… {text}", file=sys.stderr, flush=True)
    mode = " read-only" if conversation.read_only else ""
    print(f"[session {conversation.session_id}{mode}]", flush=True)
    # every turn printed below is already committed to session.db: a kill at any moment
    # loses nothing that was shown (the echo of a typed line waits for its turn to be saved)
    _print_replies(conversation.opening())
    if conversation.running:
        _follow(conversation)
    streamed: list[str] = []  # the lines of the model's explanation printed this turn
    for line in sys.stdin:
        text = line.rstrip("\r\n")
        show = {
            "on_reply": lambda reply: _print_replies([reply]),
            "on_user": lambda text=text: print(f"> {text}", flush=True),
        }
        if front is None:
            replies = conversation.say(text, **show)
        else:  # the model's explanation is printed line by line as it streams
            streamed.clear()
            replies = front.say(
                conversation,
                text,
                on_line=lambda line: (streamed.append(line), print(line, flush=True)),
                **show,
            )
            if streamed:
                print(flush=True)
        _print_replies(replies)
        if conversation.running:
            _follow(conversation)
    return 0


def run_mcp(args: argparse.Namespace) -> int:
    """Serve the planner's tools over MCP on stdio (stdout is the protocol: nothing else
    goes there); the session is a new one, or `--session ID` opened for writing."""
    from assistant.conversation import Conversation
    from assistant.mcp_server import serve

    conversation = Conversation.start(SessionStore(_home(args)), args.session)
    print(f"tunesmith mcp: session {conversation.session_id}", file=sys.stderr, flush=True)
    try:
        serve(conversation)
    finally:
        conversation.close()
    return 0


def run_sessions(args: argparse.Namespace) -> int:
    sessions = SessionStore(_home(args)).list()
    if args.json:
        print(json.dumps(sessions, indent=2, sort_keys=True))
        return 0
    if not sessions:
        print(f"No sessions in {_home(args)}")
        return 0
    for s in sessions:
        if "error" in s:  # the message names the session and says what is wrong
            print(f"{s['id']}  ! {s['error']}")
            continue
        updated = time.strftime("%Y-%m-%d %H:%M", time.localtime(s["updated"] or 0))
        run = s.get("last_run") or {}
        run_text = f"{run.get('status')}" if run else "no run"
        if run.get("headline"):
            run_text += " " + ", ".join(f"{k} {v}" for k, v in run["headline"].items())
        if run.get("message"):
            run_text += f" ({run['message']})"
        data = Path(s["data_file"]).name if s["data_file"] else "-"
        title = f'  "{s["title"]}"' if s.get("title") else ""
        holder = s.get("open_by")
        where = f"  open in pid {holder.get('pid') or '?'}" if holder else ""
        print(f"{s['id']}{title}  {updated}  stage {s['stage']:<7}  data {data}  {run_text}{where}")
    return 0


def run_profile(args: argparse.Namespace) -> int:
    """The data stage without the conversation: reading, profile, findings, baseline."""
    from assistant.planner import Planner

    planner = Planner(Path(os.devnull) / "runs")  # profiling writes nothing
    columns = {"text": args.text_column, "label": args.label_column}
    if not args.json:
        print(f"Reading {args.file} …", file=sys.stderr, flush=True)
    planner.load(args.file, {k: v for k, v in columns.items() if v})
    state = planner.state
    if args.json:
        out = {
            "data": state.spec,
            "profile": state.profile,
            "baseline": state.baseline,
            "plan": state.plan,
        }
        print(json.dumps(out, indent=2, sort_keys=True, default=str))
        return 0
    print(planner.reading_text())
    print()
    print(planner.findings_text())
    return 0


def finished_run(args: argparse.Namespace, to: str) -> tuple[dict, Path, dict]:
    """The session's saved state, its run folder and the run's report; TuningError (one line)
    when the session has no finished run (`to` says for what: "export", "report on", ...)."""
    from tuning_core.runs import read_report

    # read-only: these verbs work while the app or a chat has the session open
    session = SessionStore(_home(args)).open(args.session, read_only=True)
    try:
        state = session.load_state() or {}
    except ValueError as exc:
        raise TuningError(f"Session {args.session}: its saved state is unreadable ({exc})") from exc
    finally:
        session.close()
    run_dir = state.get("run_dir")
    if run_dir and not Path(run_dir).is_dir():
        raise TuningError(
            f"Session {args.session}: the folder of its run is missing ({run_dir}); it was "
            f"moved or deleted, so there is nothing to {to}"
        )
    report = read_report(Path(run_dir)) if run_dir else None
    if report is None:
        raise TuningError(f"Session {args.session} has no finished run to {to}")
    return state, Path(run_dir), report


def run_export(args: argparse.Namespace) -> int:
    from tuning_core.export import export_bundle

    _, run_dir, _ = finished_run(args, "export")
    out = export_bundle(run_dir, Path(args.out), model=args.model)
    print(f"Exported {args.session} to {out}")
    return 0


def run_report(args: argparse.Namespace) -> int:
    from tuning_core.judge import judge, judgement_text
    from tuning_core.recipe import headline

    _, run_dir, report = finished_run(args, "report on")
    verdict = report.get("judge") or judge(report)
    if args.json:
        out = {
            "session": args.session,
            "run_dir": str(run_dir),
            "headline": headline(report),
            "judge": verdict,
        }
        print(json.dumps(out, indent=2, sort_keys=True))
        return 0
    print(f"Session {args.session}, {Path(run_dir).name}\n")
    print(judgement_text(verdict))
    return 0


def run_predict(args: argparse.Namespace) -> int:
    from tuning_core.predict import (
        load_classifier,
        model_dir,
        predict,
        read_texts,
        write_predictions,
    )

    state, run_dir, report = finished_run(args, "predict with")
    plan = report.get("trained_plan") or state.get("plan") or {}
    spec = state.get("spec") or {}
    texts = read_texts(args.input, args.text_column or spec.get("text_column"))
    folder = model_dir(run_dir)
    out_path = Path(args.out).expanduser() if args.out else None
    if out_path is not None and out_path.is_dir():
        raise TuningError(f"--out {out_path} is a folder; name a file such as predictions.csv")
    # the plan carries the consents (model code, pickle weights) the person gave for its model
    model, tokenizer, labels = load_classifier(
        folder, (report.get("test") or {}).get("labels"), plan
    )

    def progress(done: int, total: int) -> None:
        if sys.stderr.isatty() or done == total:
            width = 30
            bar = "#" * (width * done // max(1, total))
            end = "\n" if done == total else "\r"
            print(f"predicting [{bar:<{width}}] {done}/{total}", end=end, file=sys.stderr)

    rows = predict(
        model,
        tokenizer,
        labels,
        texts,
        max_length=int(plan.get("max_length", 128)),
        batch_size=args.batch_size,
        progress=progress,
        thresholds=(report.get("test") or {}).get("thresholds"),
    )
    if out_path is None:
        write_predictions(rows, sys.stdout)
        return 0
    tmp = out_path.with_name(f".{out_path.name}.tmp")
    with open(tmp, "w", encoding="utf-8", newline="") as fh:
        write_predictions(rows, fh)
    tmp.replace(out_path)  # a crash mid-write leaves no half file under the name asked for
    print(f"Wrote {len(rows)} predictions to {out_path}", file=sys.stderr)
    return 0


def run_app(args: argparse.Namespace) -> int:
    from assistant.app import TunesmithApp
    from assistant.settings import Settings

    front = _llm_front_end(args, Settings(_home(args)).get("llm"))
    app = TunesmithApp(home=_home(args), session_id=args.session)
    app.llm = front
    app.run()
    return app.return_code or 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tunesmith",
        description="Fine-tune a pretrained text classifier, guided step by step.",
    )
    parser.add_argument("--home", help=f"sessions folder (default: ${HOME_ENV} or ./sessions)")
    parser.add_argument("--session", help="reopen this session")
    llm_help = (
        "talk through a language model, e.g. openai:gpt-4o-mini or ollama:llama3.1 "
        "(default: $TUNESMITH_LLM; none: the rule-based planner alone)"
    )
    parser.add_argument("--llm", metavar="PROVIDER:MODEL", help=llm_help)
    sub = parser.add_subparsers(dest="command")
    chat = sub.add_parser("chat", help="the conversation (the app, or --headless over stdin)")
    chat.add_argument("--headless", action="store_true", help="one user turn per stdin line")
    chat.add_argument("--session", dest="chat_session", help="reopen this session")
    chat.add_argument("--home", dest="chat_home", help="sessions folder")
    chat.add_argument("--llm", dest="chat_llm", metavar="PROVIDER:MODEL", help=llm_help)
    mcp = sub.add_parser("mcp", help="serve the planner's tools to an agent (MCP over stdio)")
    mcp.add_argument("--session", dest="chat_session", help="drive this session")
    mcp.add_argument("--home", dest="chat_home", help="sessions folder")
    profile = sub.add_parser("profile", help="read and profile a data file, with a baseline")
    profile.add_argument("file", help="CSV, TSV, JSONL, JSON, Parquet (or .gz), or a folder")
    profile.add_argument("--json", action="store_true", help="machine-readable output")
    profile.add_argument("--text-column", help="the column holding the text")
    profile.add_argument("--label-column", help="the column holding the label")
    sessions = sub.add_parser("sessions", help="list saved sessions")
    sessions.add_argument("--json", action="store_true", help="machine-readable output")
    sessions.add_argument("--home", dest="sub_home", help="sessions folder")
    export = sub.add_parser("export", help="write a session's reproducible bundle")
    export.add_argument("session", help="session id (see `tunesmith sessions`)")
    export.add_argument("--out", required=True, help="folder to write (must be new or empty)")
    export.add_argument(
        "--model",
        choices=("full", "adapter", "merged"),
        help="also write the trained model into DIR/model: 'full' for a fully tuned model, "
        "'adapter' or 'merged' (folded into the base) for a LoRA run",
    )
    export.add_argument("--home", dest="sub_home", help="sessions folder")
    report = sub.add_parser("report", help="the verdict on a session's finished run")
    report.add_argument("session", help="session id (see `tunesmith sessions`)")
    report.add_argument("--json", action="store_true", help="machine-readable output")
    report.add_argument("--home", dest="sub_home", help="sessions folder")
    predict = sub.add_parser("predict", help="label new texts with a session's trained model")
    predict.add_argument("session", help="session id (see `tunesmith sessions`)")
    predict.add_argument(
        "--input", required=True, help="a text, or a file: .txt (a text a line), .csv, .tsv, .jsonl"
    )
    predict.add_argument("--out", help="CSV to write (default: standard output)")
    predict.add_argument("--text-column", help="the text column of a CSV/TSV/JSONL input")
    predict.add_argument("--batch-size", type=int, default=32, help="texts per batch")
    predict.add_argument("--home", dest="sub_home", help="sessions folder")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    # options given after the sub-command win
    args.session = getattr(args, "chat_session", None) or args.session
    args.llm = getattr(args, "chat_llm", None) or args.llm
    args.home = getattr(args, "chat_home", None) or getattr(args, "sub_home", None) or args.home
    try:
        if args.command == "chat" and args.headless:
            return run_headless(args)
        if args.command == "mcp":
            return run_mcp(args)
        if args.command == "sessions":
            return run_sessions(args)
        if args.command == "profile":
            return run_profile(args)
        if args.command == "export":
            return run_export(args)
        if args.command == "report":
            return run_report(args)
        if args.command == "predict":
            return run_predict(args)
        return run_app(args)
    except TuningError as exc:
        print(f"tunesmith: {exc.message}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # e.g. `tunesmith sessions --json | head`
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - silence the flush at exit
        return 0


if __name__ == "__main__":
    sys.exit(main())
