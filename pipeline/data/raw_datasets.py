"""Readers that turn the official raw archives (extracted under one raw folder) into
``SplitArrays`` at the paper's resolution, and the fetching of those archives: the entry points
here; each dataset's reader, extraction and sources are in its registry module
(pipeline.data.sets), what they share in raw_files.

Raw folder layout (one folder may hold all four datasets)::

    gtFine/{train,val}/<city>/*_gtFine_{labelIds,instanceIds}.png      Cityscapes (val = test)
    leftImg8bit/{train,val}/<city>/*_leftImg8bit.png
    nyu_depth_v2_labeled.mat                                            NYU Depth v2 labeled
    helenstar_release/{train,test}/*_image.jpg, *_label.png             relabeled Helen
    facade/base/cmp_b*.{jpg,png}, facade/extended/cmp_x*.{jpg,png}      CMP Facade

Archives (gtFine_trainvaltest.zip, leftImg8bit_trainvaltest.zip, helenstar_release.zip,
CMP_facade_DB_{base,extended}.zip) lying in the raw folder are extracted on first use, into a
separate extraction folder when one is given (the pipeline's artifacts/raw/<dataset>: the
raw folder that `data.dvc` tracks is then never written).

Resizing: label and instance maps use PIL NEAREST (as the authors' loader); photos use PIL BOX,
i.e. area averaging (the authors' loader uses PIL BICUBIC, which PIL also anti-aliases when
shrinking; the two differ only in sharpness). Images are stretched to the target size, whatever
their aspect ratio (Cityscapes and NYU keep theirs exactly; Helen and Facade images vary).

Splits (all deterministic, independent of file-system listing order):

- Cityscapes: train = gtFine/train (2975), test = gtFine/val (500), sorted by relative path.
- NYU: train = the first 1200 frames of the .mat in file order, test = the next 249 (as the
  authors' code); the remaining frames are unused.
- Helen: the release's own train/ and test/ folders, each sorted by name (the paper: "default
  training and testing datasets", as the authors' code; the paper's 1800 / 299 counts do not
  match the release's folders and are not imposed).
- Facade: base (cmp_b*, 378) and extended (cmp_x*, 228) = 606 images. Test = the last 8 base
  images in sorted name order (cmp_b0371..cmp_b0378), train = the other 598, sorted (base first).

Instance maps: Cityscapes from instanceIds (id*1000+k); NYU = label*1000 + instance where both are
> 0, else the plain label; Helen and Facade from connected components of the resized label map
(``boxes.instance_map_from_components``; under the authors' box rule the prepare step regroups
Helen to one instance per class, see pipeline.data.preparation). Helen photos are set to 0 where the
label is 0.
"""
from __future__ import annotations

import os
import zipfile

from pipeline.data.raw_files import default_workers
from pipeline.data.sets import get_dataset


def prepare_raw_dir(dataset: str, raw_dir: str, extract_dir: str | None = None) -> str:
    """Extract the archives of ``dataset`` lying in ``raw_dir`` into ``extract_dir`` (default:
    ``raw_dir`` itself) unless their folders are in ``raw_dir`` already or this very archive
    was extracted there before. Returns the folder to read the dataset from: ``raw_dir`` when
    the user extracted it there, else ``extract_dir``. The pipeline passes an extraction folder
    that is a stage output (artifacts/raw/<dataset>), so the folder `data.dvc` tracks is only
    ever read."""
    return get_dataset(dataset).extract(raw_dir, extract_dir or raw_dir)


def load_raw(dataset: str, raw_dir: str, *, progress=True, workers=None,
             extract_dir: str | None = None, **options) -> dict:
    """Read ``dataset`` from ``raw_dir`` (extracting archives found there) into
    ``{"train": SplitArrays, "test": SplitArrays}`` at the paper's size (``Dataset.size``).
    Archives are extracted into ``extract_dir`` (default: ``raw_dir``; see prepare_raw_dir).
    ``options`` are the dataset reader's own (pipeline.data.sets.<dataset>), e.g.:

    - Cityscapes ``val_sequences``: in a folder with a train split only (the video frames), the
      sequences whose frames form the test split (split_by_sequence);
    - NYU ``nyu_split`` (train, test frame counts) and ``nyu_names_file``: an optional
      ``nyu894_to_40.txt``-style list of the expected class names; with it the .mat's labels
      are remapped by name, without it (None) the file's own order is kept (after checking the
      edit classes sit on their ``NYU_IDS`` ids);
    - Facade ``facade_test``: how many base images form the test split.
    """
    reader = get_dataset(dataset).read
    workers = workers or default_workers()
    raw_dir = prepare_raw_dir(dataset, raw_dir, extract_dir)
    return reader(raw_dir, progress=progress, workers=workers, **options)


def fetch_dataset(dataset: str, raw_dir: str, *, retries: int = 5) -> None:
    """Make ``raw_dir`` hold ``dataset``'s raw files: download the public ones, or say which
    file goes where (raising FileNotFoundError) for those behind a login or not downloadable
    here (the dataset's ``fetch``); then check that its archives there open."""
    fetch = get_dataset(dataset).fetch
    os.makedirs(raw_dir, exist_ok=True)
    fetch(raw_dir, retries)
    check_archives(dataset, raw_dir)


def check_archives(dataset: str, raw_dir: str) -> None:
    """Every zip archive of `dataset` in the raw folder opens (its central directory reads):
    a junk or truncated download fails here, naming the file, not at prepare time. Reads only."""
    for name in get_dataset(dataset).archives:
        path = os.path.join(raw_dir, name)
        if not os.path.isfile(path):
            continue
        try:
            with zipfile.ZipFile(path):
                pass
        except (zipfile.BadZipFile, OSError, EOFError) as err:
            raise ValueError(f"{path}: corrupt or truncated zip archive ({err})") from None
