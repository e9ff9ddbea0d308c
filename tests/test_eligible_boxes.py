"""stages.eligible_boxes: the count of test images with an eligible box on real Cityscapes
instance maps under both box rules (next to the authors' 376 of 500), and its section in
reports/datasets.md. A hand-made gtFine/val tree at 512x256 (resized nearest to 256x128)."""
import json
import subprocess
import sys

import numpy as np
from PIL import Image

from pipeline.evaluation.dataset_tables import real_counts_section
from stages.eligible_boxes import count
from tiny_project import REPO


def _tree(root):
    """Three val images: a car group stored as the plain id 26 (eligible under the authors'
    rule only), a car instance 26001 (both rules), nothing of an edit class (neither)."""
    city = root / "gtFine" / "val" / "city"
    city.mkdir(parents=True)
    maps = [np.full((256, 512), 7, np.uint16) for _ in range(3)]
    maps[0][40:120, 100:260] = 26         # 0.16 of the image: a large group region
    maps[1][40:120, 100:260] = 26001
    maps[2][40:120, 100:260] = 11         # building: not an edit class
    for i, m in enumerate(maps):
        Image.fromarray(m).save(city / f"city_{i:06d}_000019_gtFine_instanceIds.png")
    return root / "gtFine" / "val"


def test_counts_follow_the_box_rules(tmp_path):
    result = count(str(_tree(tmp_path)), "hand-made")
    assert result["images"] == 3 and result["size"] == "256x128"
    assert result["rules"]["authors"]["eligible_images"] == 2
    assert result["rules"]["tight"]["eligible_images"] == 1
    assert result["rules"]["authors"]["test_boxes_per_class"] == {"car": 2}
    assert result["rules"]["tight"]["skipped_images"] == ["city_000000_000019",
                                                          "city_000002_000019"]
    assert (result["authors"]["test_boxes"], result["authors"]["test_images"]) == (376, 500)
    text = "\n".join(real_counts_section(result))
    assert "| authors | 2 | 3 | car 2 |" in text and "| tight | 1 | 3 | car 1 |" in text
    assert "376 of 500" in text and "full val set" in text


def test_cli_prints_and_writes_the_counts(tmp_path):
    out = tmp_path / "counts.json"
    result = subprocess.run([sys.executable, "-m", "stages.eligible_boxes", "--inst-dir",
                             str(_tree(tmp_path)), "--out", str(out)], cwd=REPO,
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "box rule authors: 2 of 3 images" in result.stdout
    assert "376 of 500" in result.stdout
    assert json.loads(out.read_text())["rules"]["tight"]["eligible_images"] == 1
