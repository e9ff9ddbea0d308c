"""What a HuEv participant who has the public repository can unblind -> a benchmark JSON.

    .venv/bin/python tools/huev_unblinding_bench.py --served DIR --public DIR --label NAME \
        [--unblinded-ok] [--out reports/huev_unblinding.json]

--served: the operator's project (its params.yaml, artifacts/eval/results of huev.rows, the
study database huev/votes.sqlite and its study.secret). --public: what the participant rebuilt
from the repository (`make demo`: the same rows with the params as committed, seeds: [0]):
its artifacts/eval/results. The served project's own `python -m stages.serve` runs on a free
localhost port; one participant joins with an invitation code, fetches every trial's four
pictures as a browser does and votes A on each. The attacker then, per trial:
- finds the item among the public test boxes (the complete and the incomplete map are equal);
- unblinds it when A or B is bit for bit one public row's result (certain);
- otherwise guesses the assignment whose pictures are nearer (mean absolute pixel difference)
  to the public rows' results (chance: half right).
The truth is the server's own record (each vote's row A). Results are merged into --out under
--label; other labels are kept."""
from __future__ import annotations

import argparse
import io
import json
import os
import socket
import subprocess
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def participate(served: str, database: str, unblinded_ok: bool) -> tuple:
    """(server's first log lines, [{kind: (H, W, 3) array}] per trial in order) of one
    participant who answers A to every trial of the served study."""
    import httpx
    from PIL import Image
    from pipeline.apps.huev_votes import VoteStore
    code = VoteStore(database).invite(1)[0]
    port = free_port()
    command = [sys.executable, "-m", "stages.serve", "--port", str(port), "--database",
               database] + (["--unblinded-ok"] if unblinded_ok else [])
    env = dict(os.environ, PYTHONPATH=served, OMP_NUM_THREADS="1")
    process = subprocess.Popen(command, cwd=served, env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True)
    trials = []
    try:
        deadline = time.monotonic() + 120
        while True:
            if process.poll() is not None:
                raise SystemExit(f"the server exited: {process.stdout.read().strip()}")
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                assert time.monotonic() < deadline, "no server"
                time.sleep(0.2)
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60) as c:
            progress = c.post("/api/study/join", json={"code": code}).json()
            while not progress["finished"]:
                trial = progress["trial"]
                trials.append({kind: np.asarray(Image.open(io.BytesIO(
                    c.get(f"/api/study/images/{trial}/{kind}").content)).convert("RGB"))
                    for kind in ("complete", "incomplete", "A", "B")})
                answer = c.post("/api/study/vote", json={"trial": trial, "choice": "A"})
                assert answer.status_code == 201, answer.text
                progress = c.get("/api/study/next").json()
                time.sleep(0.5)  # under the vote rate limit (2 per second)
    finally:
        process.terminate()
        log = process.communicate(timeout=30)[0]
    return [line for line in log.splitlines() if line.strip()][:3], trials


def attack(trials: list, public_items: list, rows) -> list:
    """Per trial: what the repository holder concludes about row A."""
    out = []
    for trial in trials:
        found = [item for item in public_items
                 if np.array_equal(item.complete, trial["complete"])
                 and np.array_equal(item.incomplete, trial["incomplete"])]
        if not found:
            out.append({"item_public": False, "exact": None, "guess": None})
            continue
        item = found[0]
        exact = None
        for row in rows:
            other = rows[1] if row == rows[0] else rows[0]
            if np.array_equal(trial["A"], item.results[row]) or \
                    np.array_equal(trial["B"], item.results[other]):
                exact = row

        def distance(picture, row):
            return float(np.abs(picture.astype(int) - item.results[row].astype(int)).mean())
        straight = distance(trial["A"], rows[0]) + distance(trial["B"], rows[1])
        crossed = distance(trial["A"], rows[1]) + distance(trial["B"], rows[0])
        out.append({"item_public": True, "exact": exact,
                    "guess": rows[0] if straight < crossed else
                    rows[1] if crossed < straight else None})
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--served", required=True)
    parser.add_argument("--public", required=True)
    parser.add_argument("--label", required=True)
    parser.add_argument("--note", default="", help="what the served rows are (into the JSON)")
    parser.add_argument("--unblinded-ok", action="store_true",
                        help="pass --unblinded-ok to the served study (public-seed rows)")
    parser.add_argument("--out", default=os.path.join(HERE, "reports",
                                                      "huev_unblinding.json"))
    args = parser.parse_args()
    served, public = os.path.abspath(args.served), os.path.abspath(args.public)
    sys.path.insert(0, HERE)
    from pipeline.apps.huev import load_items, training_seed, study_secret
    from pipeline.apps.huev_votes import VoteStore
    from pipeline.atomic import write_json_atomic
    from pipeline.config.loading import load_params
    from pipeline.config.validation import check_huev_rows
    from pipeline.data.sets import get_spec
    params = load_params(os.path.join(served, "params.yaml"))
    rows = list(params.huev.rows)
    database = os.path.join(served, params.huev.database)
    if os.path.exists(database):
        raise SystemExit(f"error: {database} exists: start from an empty study")
    secret = study_secret(os.path.join(os.path.dirname(database), "study.secret"))
    log, trials = participate(served, database, args.unblinded_ok)
    truth = [vote["a_row"] for vote in VoteStore(database).votes()]
    palette = get_spec(check_huev_rows(params)).palette
    public_items = load_items(os.path.join(public, "artifacts", "eval", "results"), rows,
                              palette)
    found = attack(trials, public_items, rows)
    assert len(truth) == len(found)
    exact = [f["exact"] for f in found]
    report = {}
    if os.path.exists(args.out):
        with open(args.out) as f:
            report = json.load(f)
    report["what"] = (
        "A HuEv participant with the public repository against a served study "
        "(tools/huev_unblinding_bench.py): one participant's trials fetched as the browser "
        "does; 'items_public': trials whose complete and incomplete map are one of the public "
        "test boxes; 'unblinded_exact': trials where A or B is bit for bit one row's result as "
        "the repository rebuilds it (certain; 'unblinded_exact_right': of those, right); "
        "'guessed_right': trials where the assignment nearer (mean absolute pixel "
        "difference) to the public rows' results is the true one (chance: half).")
    report[args.label] = {
        "served_rows": rows, "served_seeds": list(params.seeds),
        "secret_training_seed": int(training_seed(secret)) == list(params.seeds)[0],
        "note": args.note, "server_log": log, "trials": len(found),
        "items_public": sum(f["item_public"] for f in found),
        "unblinded_exact": sum(e is not None for e in exact),
        "unblinded_exact_right": sum(e == t for e, t in zip(exact, truth)),
        "guessed_right": sum(f["guess"] == t for f, t in zip(found, truth)),
        "measured": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    print(args.label, json.dumps(report[args.label]))
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    write_json_atomic(args.out, report)


if __name__ == "__main__":
    main()
