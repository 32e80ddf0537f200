"""Which image files exist under a data root, answered from one directory listing per folder (a stat per record
would cost minutes on 665k records over a network disk), and where a COCO image id lives locally."""

from __future__ import annotations

import os
import re
from collections import Counter

# Where a COCO image can be, in the order tried: the 2017 names (LLaVA's layout) and the 2014 ones. train2017 holds
# every train2014 image and most of val2014; val2014 is looked in only when it is there (VQG's COCO images).
COCO_FOLDERS = (("coco/train2017", "{:012d}.jpg"), ("coco/train2014", "COCO_train2014_{:012d}.jpg"),
                ("coco/val2014", "COCO_val2014_{:012d}.jpg"))
_DIGITS = re.compile(r"(\d+)(?=\D*$)")


class LocalImages:
    """exists(relative path) from cached listings of `root`'s folders."""

    def __init__(self, root: str):
        self.root = root
        self._listings: dict[str, frozenset] = {}

    def _listing(self, folder: str) -> frozenset:
        if folder not in self._listings:
            full = os.path.join(self.root, folder)
            self._listings[folder] = frozenset(os.listdir(full)) if os.path.isdir(full) else frozenset()
        return self._listings[folder]

    def exists(self, relative: str) -> bool:
        folder, name = os.path.split(relative)
        return name in self._listing(folder)


def coco_id(name: str | int) -> int:
    """The COCO image id in `000000215677.jpg`, `COCO_train2014_000000215677.jpg`, a path to either, or an int."""
    if isinstance(name, int):
        return name
    match = _DIGITS.search(os.path.basename(str(name)))
    if match is None:
        raise ValueError(f"{name!r} holds no COCO image id")
    return int(match.group(1))


class CocoImages:
    """locate(image id) -> the image's path relative to the data root, or None; counts which naming was found."""

    def __init__(self, images: LocalImages):
        self.images = images
        self.found: Counter = Counter()

    def locate(self, image_id: int) -> str | None:
        for folder, pattern in COCO_FOLDERS:
            relative = f"{folder}/{pattern.format(image_id)}"
            if self.images.exists(relative):
                self.found[folder] += 1
                return relative
        return None
