"""What `python -m stages.serve` sets up before a server starts: the web app of one mode
(pipeline.apps.webapp) after its checks, and uvicorn's proxy settings. A study whose rows were
not trained with the study's secret seed (anyone who rebuilds them from the repository can tell
A from B) is refused unless the caller says it may be unblinded (a demo, a pilot); an editor
whose model is a study row, served beyond this machine, is warned about."""
from __future__ import annotations

import ipaddress
import logging

from fastapi import FastAPI

from pipeline.apps.huev import training_seed
from pipeline.apps.webapp import create_app
from pipeline.apps.webapp_editor import build_editor
from pipeline.apps.webapp_study import build_study

log = logging.getLogger("serve")  # the server's lines, under the name stages.serve logs its own


class UnblindedError(ValueError):
    """A study whose rows anyone with the repository can rebuild, served without
    --unblinded-ok."""


def editor_app(params_path: str, row: str, data_root: str, study_rows, host: str) -> FastAPI:
    """The editor page of `row` (warned about when it is one of `study_rows` and `host` is
    not this machine's loopback)."""
    if row in study_rows and not _loopback(host):
        log.warning("the editor's model %s is a study row: keep study participants off "
                    "this server while the study runs", row)
    return create_app(editor=build_editor(params_path, row, data_root))


def study_app(params, database: str, results: str, secret: str | None = None,
              unblinded_ok: bool = False) -> FastAPI:
    """The study of params huev (pipeline.apps.webapp_study.build_study), refused with
    UnblindedError when params `seeds` does not start with its secret training seed, unless
    `unblinded_ok` (then a warning); logs its state (closed, items, rows, invitation codes)."""
    study = build_study(params, database, results, secret)
    seed, first = training_seed(study.secret), list(params.seeds)[:1]
    if first != [seed]:
        if not unblinded_ok:
            raise UnblindedError(
                f"the study's rows were trained with seed {first[0] if first else None}, not "
                f"the study's secret training seed: anyone who rebuilds them from the "
                f"repository can tell A from B; train them with `seeds: [{seed}]` (docs/huev.md,"
                f" \"Threat model\") or pass --unblinded-ok to serve it anyway (a demo, a pilot)")
        log.warning("UNBLINDED (--unblinded-ok): the study's rows were trained with seed %s, "
                    "not the secret one: anyone who rebuilds them from the repository can "
                    "tell A from B", first[0] if first else None)
    closed = study.store.closed_at()
    if closed:
        log.warning("the study closed at %s: joins and votes are refused", closed)
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


def proxy_options(trust_proxy: str | None) -> dict:
    """uvicorn's proxy settings: X-Forwarded-For ignored (uvicorn's default trusts it from
    127.0.0.1) unless --trust-proxy names the proxies it may come from."""
    if not trust_proxy:
        return {"proxy_headers": False}
    return {"proxy_headers": True,
            "forwarded_allow_ips": [a.strip() for a in trust_proxy.split(",")]}
