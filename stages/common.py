"""What every stage CLI shares: logging set-up and the one-line error contract."""
from __future__ import annotations

import logging
import sys
import traceback


def run(main) -> None:
    """Run `main()`; any error becomes one line on stderr and exit status 1
    (MEXGAN_DEBUG=1 prints the traceback too)."""
    import os
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        main()
    except KeyboardInterrupt:
        sys.exit(130)
    except Exception as err:  # noqa: BLE001 - the CLI contract: one line, non-zero exit
        if os.environ.get("MEXGAN_DEBUG"):
            traceback.print_exc()
        message = str(err).strip().splitlines()[0] if str(err).strip() else repr(err)
        print(f"error: {message}", file=sys.stderr)
        sys.exit(1)
