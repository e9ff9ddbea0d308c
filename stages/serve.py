"""Serve the HuEv study or the editor page, make invitation codes, or export the votes.

  python -m stages.serve [--host 127.0.0.1] [--port 8000]   the study: http://HOST:PORT/study
  python -m stages.serve --unblinded-ok                      the study on public-seed rows (demo)
  python -m stages.serve --invite N                          N invitation codes, one per line
  python -m stages.serve --editor [--editor-row ROW]         the editor: http://HOST:PORT/editor
  python -m stages.serve --export [PATH] [--close]           votes -> CSV (default: huev.votes)
  python -m stages.serve --close                             close the study (no more votes)
  python -m stages.serve --training-seed                     the blinded study rows' seed

The study and the editor are never served together: the editor names its model and
reproduces a row's results, so it would unblind the study. The study's items are the per-box
results of params huev.rows written by the evaluate stage (artifacts/eval/results/<row>.npz);
participants join with an invitation code (one ballot per code) and votes go to the SQLite
database huev.database as they arrive. The study imports no torch. The editor runs
huev.editor_row through pipeline.apps.editing (the `edit` command's code) on the test maps of its
dataset (artifacts/data/<dataset>/test.h5) or an uploaded PNG. Binds to localhost unless
--host says otherwise; X-Forwarded-For is ignored unless --trust-proxy names the proxy.
The study secret (study.secret beside the database, made on first use, never in git) chooses
the items and the training seed (docs/huev.md, "Threat model"). A study whose rows were not
trained with that seed (params `seeds`) is refused in one line unless --unblinded-ok says that
it may be unblinded (a demo, a pilot).
"""
import ipaddress
import logging
import os

from pipeline.config.loading import load_params
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
    mode.add_argument("--training-seed", action="store_true",
                      help="print the training seed of a blinded study's rows (from the study "
                           "secret) and exit")
    parser.add_argument("--close", action="store_true",
                        help="close the study (joins and votes refused); with --export: "
                             "close, then export")
    parser.add_argument("--secret", help="study secret file (default: study.secret beside the "
                                         "database; made when missing)")
    parser.add_argument("--editor-row", help="model of the editor (default: params "
                                             "huev.editor_row); with --editor")
    parser.add_argument("--unblinded-ok", action="store_true",
                        help="serve the study although its rows were not trained with the "
                             "study's secret training seed (a demo, a pilot): anyone who "
                             "rebuilds the public models can tell A from B")
    parser.add_argument("--trust-proxy", metavar="IP[,IP]",
                        help="addresses of reverse proxies whose X-Forwarded-For header gives "
                             "the client's address (default: none, every header ignored and "
                             "rate limits keyed on the connection's address)")
    args = parser.parse_args(argv)
    if args.unblinded_ok and (args.editor or args.invite is not None or args.training_seed
                              or args.export is not None or args.close):
        parser.error("--unblinded-ok goes with serving the study")
    if args.editor_row and not args.editor:
        parser.error("--editor-row needs --editor")
    if args.close and (args.editor or args.invite is not None or args.training_seed):
        parser.error("--close goes alone or with --export")
    if args.trust_proxy:
        for address in args.trust_proxy.split(","):
            try:
                ipaddress.ip_network(address.strip())
            except ValueError:
                parser.error(f"--trust-proxy {address.strip()!r}: not an IP address or "
                             "network")
    if not 0 < args.port < 65536:
        parser.error(f"--port {args.port}: not a port number (1..65535)")
    return args


def make_app(args, params):
    """The web app of the mode the arguments choose: the study, or with --editor the editor."""
    from pipeline.apps.serving import editor_app, study_app
    if args.editor:
        return editor_app(args.params, args.editor_row or params.huev.editor_row, args.data,
                          params.huev.rows, args.host)
    return study_app(params, args.database or params.huev.database, args.results, args.secret,
                     args.unblinded_ok)


def main():
    args = parse_args()
    params = load_params(args.params)
    database = args.database or params.huev.database
    if args.training_seed:
        from pipeline.apps.huev import secret_path, study_secret, training_seed
        print(training_seed(study_secret(args.secret or secret_path(database))))
        return
    if args.export is not None or args.invite is not None or args.close:
        from pipeline.apps.huev_votes import VoteStore
        if args.invite is not None:
            for code in VoteStore(database).invite(args.invite):
                print(code)
            log.info("%d invitation codes stored in %s (one ballot each)", args.invite,
                     database)
            return
        if not os.path.exists(database):
            raise FileNotFoundError(f"{database} does not exist (no study has been served)")
        if args.export is None:
            print(f"the study in {database} closed at {VoteStore(database).close()}: joins and "
                  "votes are refused from now on")
            return
        path = args.export or params.huev.votes
        count, closed = VoteStore(database).export(path, close=args.close)
        state = (f"the study closed at {closed}: this is every vote" if closed else
                 "the study is STILL OPEN: votes cast from now on are not in this file "
                 "(--export --close closes it first)")
        print(f"exported {count} votes from {database} -> {path}; {state} (then: dvc repro "
              "huev report)")
        return
    import uvicorn
    from pipeline.apps.serving import proxy_options
    app = make_app(args, params)
    page = "editor" if args.editor else "study"
    print(f"serving http://{args.host}:{args.port}/{page} (Ctrl-C stops)", flush=True)
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning",
                **proxy_options(args.trust_proxy))


if __name__ == "__main__":
    run(main)
