"""Serve the HuEv study or the editor page, make invitation codes, or export the votes.

  python -m stages.serve [--host 127.0.0.1] [--port 8000]   the study: http://HOST:PORT/study
  python -m stages.serve --invite N                          N invitation codes, one per line
  python -m stages.serve --editor [--editor-row ROW]         the editor: http://HOST:PORT/editor
  python -m stages.serve --export [PATH]                     votes -> CSV (default: huev.votes)

The study and the editor are never served together: the editor names its model and
reproduces a row's results, so it would unblind the study. The study's items are the per-box
results of params huev.rows written by the evaluate stage (artifacts/eval/results/<row>.npz);
participants join with an invitation code (one ballot per code) and votes go to the SQLite
database huev.database as they arrive. The study imports no torch. The editor runs
huev.editor_row through pipeline.editing (the `edit` command's code) on the test maps of its
dataset (artifacts/data/<dataset>/test.h5) or an uploaded PNG. Binds to localhost unless
--host says otherwise.
"""
import ipaddress
import logging
import os

from pipeline.config import load_params
from stages.common import ArgumentParser, run

log = logging.getLogger("serve")


def parse_args(argv=None):
    parser = ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1",
                        help="interface to bind (default 127.0.0.1: this machine only; "
                             "0.0.0.0 for a lab network)")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--database", help="votes database (default: params huev.database)")
    parser.add_argument("--results", default="artifacts/eval/results",
                        help="the evaluate stage's per-box results (study)")
    parser.add_argument("--data", default="artifacts/data", help="prepared datasets (editor)")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--editor", action="store_true",
                      help="serve the editor page instead of the study")
    mode.add_argument("--invite", type=int, metavar="N",
                      help="store N new invitation codes in the database, print them, exit")
    mode.add_argument("--export", nargs="?", const="", metavar="PATH",
                      help="write the votes to PATH (default: params huev.votes) and exit")
    parser.add_argument("--editor-row", help="model of the editor (default: params "
                                             "huev.editor_row); with --editor")
    args = parser.parse_args(argv)
    if args.editor_row and not args.editor:
        parser.error("--editor-row needs --editor")
    if not 0 < args.port < 65536:
        parser.error(f"--port {args.port}: not a port number (1..65535)")
    return args


def make_app(args, params):
    """The web app of the mode the arguments choose: the study, or with --editor the editor."""
    from pipeline.webapp import build_editor, build_study, create_app
    if args.editor:
        row = args.editor_row or params.huev.editor_row
        if row in params.huev.rows and not _loopback(args.host):
            log.warning("the editor's model %s is a study row: keep study participants off "
                        "this server while the study runs", row)
        return create_app(editor=build_editor(args.params, row, args.data))
    database = args.database or params.huev.database
    study = build_study(params, database, args.results)
    unused, used = study.store.invitation_counts()
    log.info("study: %d items, %s vs %s, votes -> %s; invitation codes: %d unused, %d used%s",
             len(study.items), *study.rows, database, unused, used,
             "" if unused else " (python -m stages.serve --invite N makes some)")
    return create_app(study)


def _loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def main():
    args = parse_args()
    params = load_params(args.params)
    database = args.database or params.huev.database
    if args.export is not None or args.invite is not None:
        from pipeline.huev import VoteStore
        if args.invite is not None:
            for code in VoteStore(database).invite(args.invite):
                print(code)
            log.info("%d invitation codes stored in %s (one ballot each)", args.invite,
                     database)
            return
        if not os.path.exists(database):
            raise FileNotFoundError(f"{database} does not exist (no study has been served)")
        path = args.export or params.huev.votes
        count = VoteStore(database).export(path)
        print(f"exported {count} votes from {database} -> {path} (then: dvc repro huev report)")
        return
    import uvicorn
    app = make_app(args, params)
    page = "editor" if args.editor else "study"
    print(f"serving http://{args.host}:{args.port}/{page} (Ctrl-C stops)", flush=True)
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning")


if __name__ == "__main__":
    run(main)
