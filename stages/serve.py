"""Serve the HuEv study and the editor page (one web app), or export the study's votes.

  python -m stages.serve [--host 127.0.0.1] [--port 8000]   http://HOST:PORT/study, /editor
  python -m stages.serve --export [PATH]                     votes -> CSV (default: huev.votes)

The study's items are the per-box results of params huev.rows written by the evaluate stage
(artifacts/eval/results/<row>.npz); votes go to the SQLite database huev.database as they
arrive. The editor page runs huev.editor_row through pipeline.editing (the `edit` command's
code) on the test maps of its dataset (artifacts/data/<dataset>/test.h5) or an uploaded PNG.
A page whose inputs are missing is served with the reason instead; the server refuses to
start only when neither page can work. Binds to localhost unless --host says otherwise.
"""
import logging
import os

from pipeline.config import load_params
from stages.common import ArgumentParser, run

log = logging.getLogger("serve")


def main():
    parser = ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1",
                        help="interface to bind (default 127.0.0.1: this machine only; "
                             "0.0.0.0 for a lab network)")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--database", help="votes database (default: params huev.database)")
    parser.add_argument("--results", default="artifacts/eval/results",
                        help="the evaluate stage's per-box results")
    parser.add_argument("--data", default="artifacts/data", help="prepared datasets")
    parser.add_argument("--editor-row", help="model of the editor page (default: params "
                                             "huev.editor_row)")
    parser.add_argument("--no-editor", action="store_true", help="serve the study only")
    parser.add_argument("--export", nargs="?", const="", metavar="PATH",
                        help="write the votes to PATH (default: params huev.votes) and exit")
    args = parser.parse_args()
    params = load_params(args.params)
    database = args.database or params.huev.database
    if args.export is not None:
        from pipeline.huev import VoteStore
        if not os.path.exists(database):
            raise FileNotFoundError(f"{database} does not exist (no study has been served)")
        path = args.export or params.huev.votes
        count = VoteStore(database).export(path)
        print(f"exported {count} votes from {database} -> {path} (then: dvc repro huev report)")
        return
    if not 0 < args.port < 65536:
        raise ValueError(f"--port {args.port}: not a port number (1..65535)")
    import uvicorn
    from pipeline.webapp import build_editor, build_study, create_app
    unavailable, study, editor = {}, None, None
    try:
        study = build_study(params, database, args.results)
    except (OSError, ValueError) as err:
        unavailable["study"] = " ".join(str(err).split())
        log.warning("study unavailable: %s", unavailable["study"])
    if args.no_editor:
        unavailable["editor"] = "the server was started with --no-editor"
    else:
        try:
            editor = build_editor(args.params, args.editor_row or params.huev.editor_row,
                                  args.data)
        except (OSError, ValueError) as err:
            unavailable["editor"] = " ".join(str(err).split())
            log.warning("editor unavailable: %s", unavailable["editor"])
    if study is None and editor is None:
        raise RuntimeError(f"nothing to serve: study: {unavailable['study']}; editor: "
                           f"{unavailable['editor']}")
    if study is not None:
        log.info("study: %d items, %s vs %s, votes -> %s", len(study.items), *study.rows,
                 database)
    print(f"serving http://{args.host}:{args.port}/study and /editor (Ctrl-C stops)",
          flush=True)
    uvicorn.run(create_app(study, editor, unavailable=unavailable), host=args.host,
                port=args.port, log_level="warning")


if __name__ == "__main__":
    run(main)
