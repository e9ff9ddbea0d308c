"""Stage: put one dataset's raw files in the raw folder (download, extract, or say what to place).

    python -m stages.download {cityscapes,nyu,helen,facade} --raw DIR

Cityscapes uses CITYSCAPES_USERNAME / CITYSCAPES_PASSWORD when set. Errors: one line on stderr,
exit status 1.
"""
from __future__ import annotations

import argparse
import sys

from pipeline.data.sets import SPECS
from pipeline.data.download import DownloadError
from pipeline.data.raw_datasets import fetch_dataset


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dataset", choices=sorted(SPECS))
    parser.add_argument("--raw", required=True, help="raw data folder")
    parser.add_argument("--retries", type=int, default=5,
                        help="resume attempts after a dropped connection")
    args = parser.parse_args(argv)
    try:
        fetch_dataset(args.dataset, args.raw, retries=args.retries)
    except (DownloadError, FileNotFoundError, ValueError, OSError) as err:
        print(f"download {args.dataset}: {' '.join(str(err).split())}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"download {args.dataset}: interrupted (a .part file resumes on the next run)",
              file=sys.stderr)
        return 1
    print(f"{args.dataset}: raw files ready in {args.raw}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
