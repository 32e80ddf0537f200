"""Small LLaVA-format data sets: images, conversations and a 3-task mixture, written into a folder."""

from __future__ import annotations

import json
import os

from PIL import Image


def write_images(folder, n=4, size=40):
    os.makedirs(folder, exist_ok=True)
    names = []
    for i in range(n):
        name = f"img{i}.png"
        Image.new("RGB", (size + 8 * i, size), (40 * i, 200 - 30 * i, 90)).save(os.path.join(folder, name))
        names.append(name)
    return names


def conversation(i, image=None, task=None, question="what shape is it?", answer="circle"):
    row = {"id": f"s{i}", "conversations": [
        {"from": "human", "value": ("<image>\n" if image else "") + question},
        {"from": "gpt", "value": answer}]}
    if image:
        row["image"] = image
    if task:
        row["task"] = task
    return row


def write_small_data(tmp_path):
    names = write_images(tmp_path)
    answers = {"shape": ["circle", "triangle"], "color": ["red", "blue"], "yesno": ["yes", "no"]}
    paths = {}
    for task, options in answers.items():
        rows = [conversation(f"{task}{i}", image=names[i % len(names)] if i % 4 else None,
                             question=f"what {task} is it?", answer=options[i % 2]) for i in range(8)]
        path = tmp_path / f"{task}.json"
        path.write_text(json.dumps(rows))
        paths[task] = str(path)
    spec = ",".join(f"{t}={p}" for t, p in paths.items())
    return spec, str(tmp_path)
